r"""Fooling objectives: small named callables in one registry, shared by input and model attacks.

An attack on an explanation minimises a per-sample loss of the heatmap (and, for some
objectives, the logits), measured against a *reference* fixed before the attack starts — the
way captum's PGD takes a loss function. Each :class:`Objective` is a pair of plain functions:

* ``reference(h0, logits0, **kw) -> ref``: built once from the original heatmaps ``h0``
  (B, H, W) and logits ``logits0`` (B, K), e.g. the top-k mask of the original map;
* ``loss(h, logits, ref) -> (B,)``: the loss of heatmaps ``h`` (B, H, W) (and logits (B, K), or
  ``None`` where ``needs_logits`` is False) against ``ref``; **lower = more fooled**.

Entries (name, keyword arguments of ``reference``, per-sample loss; maps normalised to sum 1,
:math:`d = H W` pixels, :math:`K` logits):

``topk`` (``k``)
    mass left on the original top-k pixels, :math:`\sum_{i \in T_k(h_0)} h_i` (Ghorbani et al. 2019).
``center``
    minus the shift of the centre of mass, :math:`-\lVert C(h) - C(h_0)\rVert_2` (Ghorbani et al. 2019).
``region`` (``region``)
    minus the mass inside a mask :math:`m`, :math:`-\sum_i h_i m_i` (Ghorbani's targeted attack).
``target`` (``target``, ``gamma``)
    :math:`d\,\lVert h - h_t\rVert^2 + \gamma\,\lVert g - g_0\rVert^2 / K` (Dombrowski et al. 2019).
``location`` (``region``)
    the loss of ``region`` under Heo et al. (2019)'s name: a fixed region such as a frame along
    the border (:func:`region_mask`).
``swap`` (``partner``)
    :math:`d\,\lVert h - h_0[\mathrm{partner}]\rVert^2`: each row imitates the original map of its
    partner row (Heo et al.'s active fooling).

``swap`` works on a batch that holds the explanations of two classes of the same images:
rows ``0..n−1`` explain class ``a`` and rows ``n..2n−1`` class ``b`` (``target = cat([a, b])``,
``x = cat([x, x])``). Its default ``partner`` swaps the two halves, so the map of class ``a``
is pulled towards the original map of class ``b`` and vice versa.

:mod:`xaifool.attacks.input` derives its attack names, dispatch and allow-lists from
:data:`OBJECTIVES`, and :func:`xaifool.plot.attack_curves` its palette: a new objective is one
entry here.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Callable

import torch

from .. import metrics as M

__all__ = ["Objective", "OBJECTIVES", "get_objective", "region_mask", "default_k", "REGION_KINDS"]


@dataclass(frozen=True)
class Objective:
    """One fooling objective (see the module docstring for the table of entries).

    name:         key in :data:`OBJECTIVES`
    loss:         ``(h (B, H, W), logits (B, K) or None, ref dict) -> (B,)``; lower = more fooled
    reference:    ``(h0 (B, H, W), logits0 (B, K) or None, **kw) -> ref dict``, built before the attack
    targeted:     True if the objective pulls the map towards something chosen (a region, a map)
    needs_logits: True if ``loss`` reads the logits (attacks then also evaluate them on the surrogate)
    description:  one line for tables and legends
    """

    name: str
    loss: Callable
    reference: Callable
    targeted: bool
    needs_logits: bool
    description: str

    @property
    def options(self) -> tuple[str, ...]:
        """The keyword arguments of ``reference`` (e.g. ``("k",)`` for ``topk``)."""
        params = inspect.signature(self.reference).parameters.values()
        return tuple(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY)


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------

def default_k(hw) -> int:
    """Top-k size: 1000 pixels at 224 × 224 as in Ghorbani et al. (2019), ~2 % of the pixels."""
    return max(1, round(1000 * (hw[0] * hw[1]) / (224 * 224)))


REGION_KINDS = ("frame", "corner")


def region_mask(hw, kind: str = "frame", width: int | None = None) -> torch.Tensor:
    """A 0/1 mask (H, W) for the ``region`` / ``location`` objectives.

    hw:     (H, W) of the heatmaps
    kind:   ``"frame"`` (a border of ``width`` pixels on all four sides, Heo et al.'s location
            fooling) or ``"corner"`` (the top-left ``width`` × ``width`` square)
    width:  in pixels, 1..min(H, W) (frame: at most half the shorter side); default an eighth of
            the shorter side (4 at 32 × 32, 28 at 224 × 224)
    returns: (H, W) float32 tensor of 0 and 1
    """
    try:
        h, w = (int(v) for v in hw)
    except (TypeError, ValueError):
        raise ValueError(f"hw must be a pair (H, W) of positive ints, got {hw!r}") from None
    if h < 1 or w < 1:
        raise ValueError(f"hw must be a pair (H, W) of positive ints, got {hw!r}")
    if kind not in REGION_KINDS:
        raise ValueError(f"kind must be one of {REGION_KINDS}, got {kind!r}")
    limit = min(h, w) // 2 if kind == "frame" else min(h, w)
    if width is None:
        width = max(1, min(h, w) // 8)
    if isinstance(width, bool) or not isinstance(width, Integral) or not 1 <= width <= max(1, limit):
        raise ValueError(f"width must be an int in 1..{max(1, limit)} for kind={kind!r} on a {h} × {w} map, "
                         f"got {width!r}")
    width = int(width)
    mask = torch.zeros(h, w)
    if kind == "frame":
        mask[:width] = 1
        mask[-width:] = 1
        mask[:, :width] = 1
        mask[:, -width:] = 1
    else:
        mask[:width, :width] = 1
    return mask


def _check_maps(h0) -> None:
    if not isinstance(h0, torch.Tensor) or h0.dim() != 3 or not h0.is_floating_point():
        raise ValueError(f"h0 must be a floating-point tensor of heatmaps (B, H, W), got "
                         f"{tuple(h0.shape) if isinstance(h0, torch.Tensor) else type(h0).__name__}")


def _as_map(m, name, h0) -> torch.Tensor:
    """``m`` as (H, W) or (B, H, W) on h0's device and dtype; ValueError naming ``name`` otherwise."""
    b, hw = h0.shape[0], tuple(h0.shape[-2:])
    if not isinstance(m, torch.Tensor) or tuple(m.shape) not in (hw, (b, *hw)):
        got = tuple(m.shape) if isinstance(m, torch.Tensor) else type(m).__name__
        raise ValueError(f"{name} must be a tensor of shape {hw} or ({b}, {hw[0]}, {hw[1]}) (the heatmaps' "
                         f"pixel grid), got {got}")
    return m.to(device=h0.device, dtype=h0.dtype)


def _map_distance(h, t) -> torch.Tensor:
    """(B,) d·‖h − t‖² with d the number of pixels (Dombrowski et al.'s scaling)."""
    d = h[0].numel()
    return d * (h - t).flatten(1).pow(2).sum(1)


# --------------------------------------------------------------------------------------
# The objectives
# --------------------------------------------------------------------------------------

def _topk_reference(h0, logits0=None, *, k=None):
    """ref["mask"]: (B, H·W) 1 on each original map's top-k pixels (k default :func:`default_k`)."""
    _check_maps(h0)
    n = h0[0].numel()
    k = default_k(h0.shape[-2:]) if k is None else k
    if isinstance(k, bool) or not isinstance(k, Integral) or not 1 <= k <= n:
        raise ValueError(f"k must be an int in 1..{n} (pixels per map), got {k!r}")
    idx = h0.flatten(1).topk(int(k), dim=1).indices
    return {"mask": torch.zeros_like(h0.flatten(1)).scatter_(1, idx, 1.0)}


def _topk_loss(h, logits, ref):
    return (h.flatten(1) * ref["mask"]).sum(1)


def _center_reference(h0, logits0=None):
    """ref["com"]: (B, 2) centre of mass (row, column) of each original map."""
    _check_maps(h0)
    return {"com": M.center_of_mass_unchecked(h0)}


def _center_loss(h, logits, ref):
    return -torch.linalg.vector_norm(M.center_of_mass_unchecked(h) - ref["com"], dim=1)


def _region_reference(h0, logits0=None, *, region):
    """ref["region"]: the mask, (H, W) or (B, H, W), on h0's device."""
    _check_maps(h0)
    return {"region": _as_map(region, "region", h0)}


def _region_loss(h, logits, ref):
    return -(h * ref["region"]).flatten(1).sum(1)


def _target_reference(h0, logits0, *, target, gamma=0.0):
    """ref: "target" the maps to imitate, "gamma" γ ≥ 0, "logits" the logits to stay close to."""
    _check_maps(h0)
    if isinstance(gamma, bool) or not isinstance(gamma, Real) or not float(gamma) >= 0:
        raise ValueError(f"gamma must be a number >= 0, got {gamma!r}")
    if float(gamma) > 0 and logits0 is None:
        raise ValueError("logits0 must be given (B, K) when gamma > 0 (the output term γ‖g − g0‖²/K)")
    return {"target": _as_map(target, "target", h0), "gamma": float(gamma), "logits": logits0}


def _target_loss(h, logits, ref):
    out = _map_distance(h, ref["target"])
    if logits is None:
        if ref["gamma"] != 0:
            raise ValueError("logits must be given (B, K) for the target objective with gamma > 0")
        return out
    return out + ref["gamma"] * (logits - ref["logits"]).pow(2).mean(1)


def _swap_reference(h0, logits0=None, *, partner=None):
    """ref["target"]: h0[partner], detached; default partner swaps the two halves of the batch."""
    _check_maps(h0)
    b = h0.shape[0]
    if partner is None:
        if b % 2:
            raise ValueError(f"partner must be given for an odd batch ({b} maps); the default swaps the two "
                             "halves: rows 0..n−1 (class a) with rows n..2n−1 (class b)")
        partner = torch.arange(b, device=h0.device).roll(b // 2)
    partner = torch.as_tensor(partner, device=h0.device)
    if partner.dtype != torch.long or tuple(partner.shape) != (b,) or (partner < 0).any() or (partner >= b).any():
        raise ValueError(f"partner must be a long tensor of shape ({b},) with row indices in 0..{b - 1}, got "
                         f"{partner.dtype} {tuple(partner.shape)}")
    return {"target": h0.detach()[partner]}


def _swap_loss(h, logits, ref):
    return _map_distance(h, ref["target"])


OBJECTIVES: dict[str, Objective] = {
    o.name: o for o in [
        Objective("topk", _topk_loss, _topk_reference, False, False,
                  "mass left on the original top-k pixels (Ghorbani et al. 2019)"),
        Objective("center", _center_loss, _center_reference, False, False,
                  "minus the shift of the centre of mass (Ghorbani et al. 2019)"),
        Objective("region", _region_loss, _region_reference, True, False,
                  "minus the mass inside a region mask (Ghorbani et al. 2019)"),
        Objective("target", _target_loss, _target_reference, True, True,
                  "d‖h − h_t‖² + γ‖g − g0‖²/K towards a target map (Dombrowski et al. 2019)"),
        Objective("location", _region_loss, _region_reference, True, False,
                  "minus the mass inside a fixed region, e.g. a border frame (Heo et al. 2019)"),
        Objective("swap", _swap_loss, _swap_reference, True, False,
                  "d‖h − h_swap‖²: two classes trade their original maps (Heo et al. 2019, active)"),
    ]
}


def get_objective(name, argument: str = "objective") -> Objective:
    """The registered :class:`Objective` called ``name``; ValueError naming ``argument`` otherwise.

    name:     a key of :data:`OBJECTIVES`
    argument: the caller's name for the argument, used in the error message (e.g. ``"attack"``)
    """
    try:
        return OBJECTIVES[name]
    except (KeyError, TypeError):
        raise ValueError(f"{argument} must be one of {tuple(OBJECTIVES)}, got {name!r}") from None
