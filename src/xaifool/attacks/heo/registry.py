"""Heo et al.'s model attacks as registry entries: one :class:`ModelAttack` each, holding the fooling
objective it fine-tunes with, how its reference is built, its per-image statistic, its success rule
and its default λ. Fine-tuning, evaluation and the chapters read everything from the entry.

Adding a model attack is one call, ``register(ModelAttack(...))`` (or ``registered(...)`` for a
``with`` block); :func:`~xaifool.attacks.heo.finetuning.finetune`, :func:`~xaifool.attacks.heo.evaluation.evaluate`
and :func:`~xaifool.attacks.heo.models.manipulated_model` then take it.

The statistics and thresholds are Heo et al.'s (§4 of the paper; their released code logs the same
statistics on min-max-rescaled maps), the losses the book's shared objectives
(:mod:`xaifool.attacks.objectives`); see :mod:`xaifool.attacks.heo` for the differences.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from ... import explain as E
from ... import metrics as M
from ...entries import Registry
from ...validate import check_choice, check_int, check_nonnegative
from ..objectives import OBJECTIVES, region_mask

__all__ = ["ModelAttack", "MODEL_ATTACKS", "register", "unregister", "registered", "model_attack", "passive_attacks",
           "default_lambda", "FRAME_DIVISOR", "TOPK_FRACTION", "LOCATION_THRESHOLD", "TOPK_THRESHOLD",
           "CENTER_THRESHOLD", "SWAP_CLASSES", "default_region", "heo_k", "check_region", "check_k",
           "fooling_statistic", "fooling_success", "reference", "fooling_loss", "REFERENCE_OPTIONS", "check_settings"]

#: Heo's frame: width ``side // FRAME_DIVISOR`` pixels (``k = l // 7`` in ``location``).
FRAME_DIVISOR = 7
#: Heo's top-k: the top 10 % of the pixels (``l // 10`` in ``topk``).
TOPK_FRACTION = 0.1
#: Fooling success, location: at least 70 % of the map's mass Σ|h| inside the region (the default
#: frame covers 44 % of a 32 × 32 image; the original Grad-CAM maps put ~18 % there).
LOCATION_THRESHOLD = 0.7
#: top-k: at most 30 % of the original top-k pixels still among the fooled map's top-k.
TOPK_THRESHOLD = 0.3
#: centre of mass: shift sqrt((Δr/(H−1))² + (Δc/(W−1))²)/√2 ≥ 0.1 (Heo's ``center_mass`` statistic).
CENTER_THRESHOLD = 0.1
#: Default class pair of the active attack (CIFAR-10 indices).
SWAP_CLASSES = (1, 7)
#: The settings a model attack's reference may take (``ModelAttack.reference_options``).
REFERENCE_OPTIONS = ("region", "k")


def default_region(hw) -> torch.Tensor:
    """Heo's location target: a frame of width ``min(H, W) // 7`` (4 px at 32 × 32, 32 px at 224 × 224), (H, W)."""
    h, w = (int(v) for v in hw)
    return region_mask((h, w), "frame", max(1, min(h, w) // FRAME_DIVISOR))


def heo_k(hw) -> int:
    """Heo's top-k size: 10 % of the pixels (102 at 32 × 32, 5018 at 224 × 224). (The input attacks'
    top-k, :func:`xaifool.attacks.objectives.default_k`, is Ghorbani's 2 %.)"""
    return max(1, round(TOPK_FRACTION * int(hw[0]) * int(hw[1])))


def check_region(region, hw) -> torch.Tensor:
    """``region`` as a float (H, W) 0/1 mask covering part of the image (None: :func:`default_region`)."""
    if region is None:
        return default_region(hw)
    if not isinstance(region, torch.Tensor) or tuple(region.shape) != tuple(hw):
        got = tuple(region.shape) if isinstance(region, torch.Tensor) else type(region).__name__
        raise ValueError(f"region must be a 0/1 tensor of the heatmaps' shape {tuple(hw)} (e.g. "
                         f"xaifool.attacks.objectives.region_mask), got {got}")
    r = region.float()
    if torch.isnan(r).any() or r.min() < 0 or r.max() > 1:
        raise ValueError("region must hold values in [0, 1] (1 inside the region)")
    if not 0 < float(r.sum()) < r.numel():
        raise ValueError(f"region must cover part of the image: between 1 and {r.numel() - 1} of its "
                         f"{r.numel()} pixels, got {float(r.sum()):g}")
    return r


def check_k(k, hw) -> int:
    """``k`` as an int in 1..H·W − 1 (None: :func:`heo_k`)."""
    n = int(hw[0]) * int(hw[1])
    return heo_k(hw) if k is None else check_int(k, "k", 1, n - 1)


def _unit(h: torch.Tensor) -> torch.Tensor:
    """Each map min-max rescaled to [0, 1] (Heo's ``normalize``)."""
    flat = h.flatten(1)
    lo, hi = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    return ((flat - lo) / (hi - lo + 1e-8)).view_as(h)


# ---- Heo's per-image statistics: (h_orig, h_fooled, region, k) → (B,) ----------------------

def mass_in_region(h0, h1, region, k):
    """The share of the fooled map's mass Σ|h'| inside the region (higher = fooled)."""
    w = h1.abs().flatten(1)
    return (w * region.flatten()).sum(1) / w.sum(1).clamp_min(1e-30)


def topk_kept(h0, h1, region, k):
    """The top-k intersection of the fooled with the original map (lower = fooled)."""
    return M.topk_intersection(h0, h1, k)


def center_shift(h0, h1, region, k):
    """sqrt((Δr/(H−1))² + (Δc/(W−1))²)/√2 ∈ [0, 1] between the centres of mass of the min-max-rescaled
    maps (Heo's ``center_mass`` statistic; higher = fooled)."""
    hw = tuple(h0.shape[-2:])
    d = M.center_of_mass_unchecked(_unit(h1)) - M.center_of_mass_unchecked(_unit(h0))
    scale = torch.tensor([max(hw[0] - 1, 1), max(hw[1] - 1, 1)], dtype=d.dtype)
    return torch.linalg.vector_norm(d / scale, dim=1) / math.sqrt(2)


def swap_margin(h0, h1, region, k):
    """(n,) the smaller of the margins ρ(h'_a, h_b) − ρ(h'_a, h_a) and ρ(h'_b, h_a) − ρ(h'_b, h_b)
    (Spearman ρ; > 0 = fooled) for 2n rows: 0..n−1 class a, n..2n−1 class b."""
    if h0.shape[0] % 2:
        raise ValueError(f"h_orig must hold 2n maps for swap (rows 0..n−1 class a, n..2n−1 class b), got "
                         f"{h0.shape[0]}")
    n = h0.shape[0] // 2
    a0, b0, a1, b1 = h0[:n], h0[n:], h1[:n], h1[n:]
    margin_a = M.spearman(a1, b0) - M.spearman(a1, a0)
    margin_b = M.spearman(b1, a0) - M.spearman(b1, b0)
    return torch.minimum(margin_a, margin_b)


@dataclass(frozen=True)
class ModelAttack:
    """One model attack (Heo et al. 2019): L = L_acc + λ·L_fool, with L_fool = ``objective``.

    name:              the key (``attack=`` everywhere)
    objective:         the key of :data:`xaifool.attacks.objectives.OBJECTIVES` fine-tuned against
    statistic:         ``(h_orig, h_fooled, region, k) → (B,)`` Heo's per-image statistic
    success:           ``statistic (B,) → (B,) bool``: fooled (NaN statistics must give False)
    rule:              the success rule in words, for tables (``"≥ 0.7"``)
    default_lambda:    λ before the interpreter's ``lambda_scale``
    reference_options: which of :data:`REFERENCE_OPTIONS` the objective's reference and the statistic take
    active:            fooled on two-object composites for a pair of classes (Heo's active fooling);
                       passive attacks are fooled on the training images' own maps
    loss_scale:        ``(H, W) → number`` dividing the objective (keeps λ independent of the image size), or None
    reference_map:     the objective's reference needs the original model's maps (False: a fixed target)
    description:       one line for tables
    """

    name: str
    objective: str
    statistic: Callable
    success: Callable
    rule: str
    default_lambda: float
    reference_options: tuple[str, ...] = ()
    active: bool = False
    loss_scale: Callable | None = None
    reference_map: bool = True
    description: str = ""

    def __post_init__(self):
        check_choice(self.objective, "objective", tuple(OBJECTIVES))
        for name in ("statistic", "success"):
            if not callable(getattr(self, name)):
                raise ValueError(f"{name} must be callable, got {type(getattr(self, name)).__name__}")
        if self.loss_scale is not None and not callable(self.loss_scale):
            raise ValueError(f"loss_scale must be None or callable, got {type(self.loss_scale).__name__}")
        check_nonnegative(self.default_lambda, "default_lambda", "the weight λ of the fooling loss")
        bad = [o for o in self.reference_options if o not in REFERENCE_OPTIONS]
        if bad:
            raise ValueError(f"reference_options must be among {REFERENCE_OPTIONS}, got {bad}")


#: λ of L = L_acc + λ·L_fool (book's objectives, maps normalised to sum 1): 10 for the passive attacks,
#: 2 for swap, times the interpreter's ``lambda_scale`` (the gradient's: 3, its top-k barely moved at
#: λ = 10). Measured on the ResNet-20 (2,048 lossless training images, one epoch, Adam 3e-4, batch 32;
#: 500 held-out test images, accuracy 80 %): larger λ buys FSR with accuracy — location λ = 20: FSR 0.48
#: at 21 % accuracy; LRP top-k λ = 30: FSR 0.66 at 50 %; swap λ = 3: FSR 0.79 at 60 %, λ = 10: 0.90
#: at 52 %; the λ = 0 control loses 3 points. Pairs outside the quick grid are untuned.
MODEL_ATTACKS: Registry = Registry("model attack", ModelAttack, [
    ModelAttack("location", "region", mass_in_region, lambda s: s >= LOCATION_THRESHOLD, f"≥ {LOCATION_THRESHOLD:g}",
                10.0, ("region",), reference_map=False,
                description="mass pushed into a frame along the border"),
    ModelAttack("topk", "topk", topk_kept, lambda s: s <= TOPK_THRESHOLD, f"≤ {TOPK_THRESHOLD:g}", 10.0, ("k",),
                description="mass driven out of the original top-k pixels"),
    ModelAttack("center", "center", center_shift, lambda s: s >= CENTER_THRESHOLD, f"≥ {CENTER_THRESHOLD:g}", 10.0,
                loss_scale=lambda hw: math.hypot(hw[0] - 1, hw[1] - 1),
                description="centre of mass moved away from the original's"),
    ModelAttack("swap", "swap", swap_margin, lambda s: s > 0, "> 0", 2.0, active=True,
                description="two classes' maps exchanged on two-object images"),
])
#: Add, remove, or add for a ``with`` block a :class:`ModelAttack` (see :class:`xaifool.entries.Registry`).
register, unregister, registered = MODEL_ATTACKS.register, MODEL_ATTACKS.unregister, MODEL_ATTACKS.registered


def model_attack(name, argument: str = "attack") -> ModelAttack:
    """The entry of ``name``; a ValueError naming ``argument`` and the registered attacks otherwise."""
    return MODEL_ATTACKS.entry(name, argument)


def passive_attacks() -> tuple[str, ...]:
    """The registered attacks fooled on single images (not :attr:`ModelAttack.active`)."""
    return tuple(n for n, a in MODEL_ATTACKS.items() if not a.active)


def default_lambda(attack: str, method: str) -> float:
    """The attack's default λ times the interpreter's ``lambda_scale``."""
    return model_attack(attack).default_lambda * E.interpreter(method).lambda_scale


def _check_pair(h_orig, h_fooled):
    for name, h in (("h_orig", h_orig), ("h_fooled", h_fooled)):
        if not isinstance(h, torch.Tensor) or h.dim() != 3 or not h.is_floating_point() or h.shape[0] == 0:
            got = tuple(h.shape) if isinstance(h, torch.Tensor) else type(h).__name__
            raise ValueError(f"{name} must be a floating-point tensor of heatmaps (B, H, W), got {got}")
    if h_orig.shape != h_fooled.shape:
        raise ValueError(f"h_orig and h_fooled must have the same shape, got {tuple(h_orig.shape)} and "
                         f"{tuple(h_fooled.shape)}")


def check_settings(spec: ModelAttack, region, k, hw) -> tuple:
    """``(region, k)`` checked for ``spec``: defaults filled in where it takes them, refused where it does not."""
    if region is not None and "region" not in spec.reference_options:
        raise ValueError(f"region is for attacks that take a region {[n for n, a in MODEL_ATTACKS.items() if 'region' in a.reference_options]}, got attack={spec.name!r}")
    if k is not None and "k" not in spec.reference_options:
        raise ValueError(f"k is for attacks that take a top-k size {[n for n, a in MODEL_ATTACKS.items() if 'k' in a.reference_options]}, got attack={spec.name!r}")
    return (check_region(region, hw) if "region" in spec.reference_options else None,
            check_k(k, hw) if "k" in spec.reference_options else None)


def fooling_statistic(attack: str, h_orig: torch.Tensor, h_fooled: torch.Tensor, *, region=None,
                      k: int | None = None) -> torch.Tensor:
    """The per-image statistic behind :func:`fooling_success` (the entry's ``statistic``).

    attack:   a key of :data:`MODEL_ATTACKS`
    h_orig:   (B, H, W) the original model's maps (``swap``: rows 0..n−1 class ``a``, n..2n−1 class ``b``)
    h_fooled: (B, H, W) the manipulated model's maps of the same images and classes
    region:   attacks with a region (``location``): the (H, W) 0/1 target region (default :func:`default_region`)
    k:        attacks with a top-k (``topk``): top-k size (default :func:`heo_k`, 10 % of the pixels)
    returns:  (B,) — ``location``: the share of the fooled map's mass inside the region; ``topk``: the top-k
              intersection; ``center``: the centre-of-mass shift; ``swap``: (n,) the smaller Spearman margin
    """
    spec = model_attack(attack)
    _check_pair(h_orig, h_fooled)
    region, k = check_settings(spec, region, k, tuple(h_orig.shape[-2:]))
    return spec.statistic(h_orig.detach().float().cpu(), h_fooled.detach().float().cpu(), region, k)


def fooling_success(attack: str, h_orig: torch.Tensor, h_fooled: torch.Tensor, *, region=None,
                    k: int | None = None) -> torch.Tensor:
    """(B,) bool (``swap``: (n,)): is each image fooled? The entry's success rule on :func:`fooling_statistic`:
    ``location`` ≥ :data:`LOCATION_THRESHOLD`; ``topk`` ≤ :data:`TOPK_THRESHOLD`; ``center`` ≥
    :data:`CENTER_THRESHOLD`; ``swap`` > 0 (both classes' fooled maps closer to the other class's original
    map than to their own: this book's criterion; Heo et al. report correlations, no FSR). An unchanged
    map is never fooled; NaN statistics (constant maps) count as not fooled."""
    return model_attack(attack).success(fooling_statistic(attack, h_orig, h_fooled, region=region, k=k))


def reference(attack: str, h0: torch.Tensor, *, region=None, k=None) -> dict:
    """The shared objective's reference for original maps ``h0`` (B, H, W), with the entry's options."""
    spec = model_attack(attack)
    given = {"region": region, "k": k}
    return OBJECTIVES[spec.objective].reference(h0, None, **{o: given[o] for o in spec.reference_options})


def fooling_loss(attack: str, h: torch.Tensor, ref: dict) -> torch.Tensor:
    """(B,) the shared objective, divided by the entry's ``loss_scale`` (λ independent of the image size)."""
    spec = model_attack(attack)
    loss = OBJECTIVES[spec.objective].loss(h, None, ref)
    if spec.loss_scale is not None:
        loss = loss / spec.loss_scale(tuple(h.shape[-2:]))
    return loss
