r"""Input-level manipulations of explanations (Definition 2 of the review).

Every attack here looks for a perturbed image :math:`x_{adv}` with

1. :math:`\lVert x_{adv} - x \rVert_\infty \le \varepsilon` (checked exactly on the float32 result),
2. :math:`x_{adv} \in [0, 1]^d` (the valid pixel range),
3. the *original* network's predicted label unchanged,

whose explanation :math:`h(x_{adv})` differs from :math:`h(x)` as much as possible (or, for the
targeted attacks, resembles a chosen target).

Attacks
-------
``random``    random-sign baseline of Ghorbani et al. (2019): :math:`x + \varepsilon\,\mathrm{sign}(u)`,
              :math:`u \sim \mathcal{N}(0, I)`.
``topk``      Ghorbani's top-k attack: minimise the saliency mass on the original top-k pixels.
``center``    Ghorbani's centre-of-mass attack: push the saliency centre away from the original one.
``region``    Ghorbani's targeted attack: maximise the saliency mass inside a chosen region
              (``location``: the same objective under Heo et al.'s name, e.g. a border frame).
``target``    Dombrowski et al. (2019): make :math:`h(x_{adv})` match a target map :math:`h_t`, with
              loss :math:`d\,\lVert h(x_{adv}) - h_t \rVert^2 + \gamma\,\lVert g(x_{adv}) - g(x)\rVert^2 / K`
              (maps normalised to sum 1, :math:`d` pixels, :math:`K` logits :math:`g`).

Dispatch
--------
The objectives themselves (loss and reference, e.g. the top-k mask of the original map) live in
the registry :data:`xaifool.attacks.objectives.OBJECTIVES`; this module only runs them. The
attack names are derived from that registry by the keyword arguments an objective's
``reference`` takes: an objective whose reference needs only ``k`` and / or ``region`` is run by
:func:`ghorbani_attack` (:data:`GHORBANI_KINDS`), one that needs a ``target`` map (and ``gamma``)
by :func:`dombrowski_attack` (:data:`DOMBROWSKI_KINDS`); :data:`ATTACKS` is ``"random"`` plus
both. :func:`run_attack` and :func:`cached_attack` dispatch through :data:`ATTACK_FUNCTIONS`, and
:func:`attack_grid` accepts the untargeted ones (:data:`GRID_ATTACKS`). Objectives that need
other references (``swap``: maps of two classes) are for model manipulations only. Explanations
come from :func:`xaifool.explain.heatmap`, the package's one differentiable path.

The iterative attacks take signed-gradient steps
:math:`x \leftarrow \Pi_{\varepsilon}(x - \alpha\,\mathrm{sign}\,\nabla_x L)` and, after every step,
evaluate the **original** network on the whole batch: each sample keeps the iterate with the
best objective (measured on the original network's explanation) among those that still carry
its original label — the rule of Ghorbani et al. Samples for which no iterate improved keep
:math:`x` itself, so every returned sample satisfies Definition 2 by construction.

The gradient of a saliency map of a ReLU network with respect to its input is piecewise
constant, so its derivative vanishes almost everywhere. Like both papers, the attack therefore
differentiates a copy of the network with every ReLU replaced by Softplus(β)
(:func:`xaifool.models.smooth`); labels, heatmaps and metrics are always reported on the
original network. LRP is the exception: its rules divide by pre-activations, which a Softplus
forward pass makes ill-conditioned, so its surrogate keeps the ReLU forward pass and gates the
relevance by sigmoid(β z) at each activation (:func:`xaifool.explain.lrp_objective_gradient`).

Everything is batched: one tensor of images per step on the model's device (split only into
chunks of ``batch_size`` images), never a Python loop over images.
"""
from __future__ import annotations

import inspect
import math
import time
from dataclasses import dataclass, field
from numbers import Real

import torch
import torch.nn as nn
from tqdm import tqdm

from .. import explain as E
from ..cache import cached, module_digest
from ..config import get_config
from ..models import device_of
from ..validate import check_images, check_int, check_module, check_positive
from .objectives import OBJECTIVES, default_k
from .result import BeforeAfter

__all__ = ["ATTACKS", "attack_methods", "GHORBANI_KINDS", "DOMBROWSKI_KINDS", "GRID_ATTACKS", "ATTACK_FUNCTIONS",
           "AttackResult", "random_sign", "ghorbani_attack", "dombrowski_attack", "run_attack", "cached_attack",
           "attack_grid", "project", "default_k",
           "default_step_size", "beta_schedule", "surrogate_network", "attack_step", "DEFAULT_BETA", "DOMBROWSKI_BETA"]



def attack_methods() -> tuple[str, ...]:
    """The interpreters the input attacks differentiate through: every registered differentiable image
    interpreter, each through its entry's surrogate (LRP: :func:`xaifool.explain.lrp_objective_gradient`)."""
    return E.names(modality="image", differentiable=True)

#: Objectives :func:`ghorbani_attack` runs: their reference needs at most ``k`` and ``region``.
GHORBANI_KINDS = tuple(n for n, o in OBJECTIVES.items() if set(o.options) <= {"k", "region"})
#: Objectives :func:`dombrowski_attack` runs: their reference needs a ``target`` map (and ``gamma``).
DOMBROWSKI_KINDS = tuple(n for n, o in OBJECTIVES.items()
                         if "target" in o.options and set(o.options) <= {"target", "gamma"})
#: Every input attack: the random-sign baseline and the objectives above, in registry order.
ATTACKS = ("random",) + tuple(n for n in OBJECTIVES if n in GHORBANI_KINDS + DOMBROWSKI_KINDS)
#: Attacks :func:`attack_grid` runs: those that need no region or target map.
GRID_ATTACKS = ("random",) + tuple(n for n in GHORBANI_KINDS if not OBJECTIVES[n].targeted)
DEFAULT_BETA = 30.0
#: Dombrowski et al.'s β schedule: the surrogate's β grows geometrically from 10 to 100 over the
#: steps (their reference code's ``get_beta``), so early steps follow a smooth network and late
#: ones a network close to the ReLU original.
DOMBROWSKI_BETA = (10.0, 100.0)
UPDATES = ("sign", "normalized")


# --------------------------------------------------------------------------------------
# Result
# --------------------------------------------------------------------------------------

@dataclass(kw_only=True)
class AttackResult(BeforeAfter):
    """What an input attack returns (all tensors on the CPU); a :class:`~xaifool.attacks.result.BeforeAfter`.

    attack:                a name of :data:`ATTACKS`; method: the interpreter attacked
    epsilon:               the ℓ∞ budget in (0, 1)
    x, x_adv:              (B, C, H, W) original and manipulated images
    label:                 (B,) the original network's prediction at ``x``
    heatmap, heatmap_adv:  (B, H, W) explanations of ``label`` by the *original* network
    logits, logits_adv:    (B, K) the original network's logits at ``x`` and ``x_adv``
    loss:                  (n_iter, B) the attack loss on the Softplus surrogate at each iterate
                           (empty for ``random``)
    objective:             (n_iter + 1, B) the same objective on the original network's
                           explanation at each iterate (row 0: at ``x``; lower is better)
    success:               (B,) True where a label-keeping iterate improved the objective
                           (``random``: where the label is kept)
    target_map:            (B, H, W) the target of ``target`` / region of ``region`` (else empty)
    seconds:               wall-clock time of the whole attack, measured with
                           ``settings["threads"]`` torch CPU threads on ``settings["device"]``
    settings:              the attack's settings (``k``, ``n_iter``, ``step_size``, …)
    """

    attack: str
    epsilon: float
    x: torch.Tensor
    x_adv: torch.Tensor
    loss: torch.Tensor
    objective: torch.Tensor
    success: torch.Tensor
    target_map: torch.Tensor = field(default_factory=lambda: torch.empty(0))
    seconds: float = 0.0

    def __len__(self) -> int:
        return self.x.shape[0]

    # ---- Definition 2 ----------------------------------------------------------------
    @property
    def delta_linf(self) -> torch.Tensor:
        """(B,) ‖x_adv − x‖∞ per sample."""
        return (self.x_adv - self.x).flatten(1).abs().amax(1)

    def definition2(self) -> dict:
        """Summary of the three conditions of Definition 2 over the batch."""
        return {
            "max_linf_over_eps": float(self.delta_linf.max() / self.epsilon),
            "in_range": bool((self.x_adv >= 0).all() and (self.x_adv <= 1).all()),
            "label_kept": float(self.label_kept.float().mean()),
            "success": float(self.success.float().mean()),
            "confidence_change": float((self.confidence_adv - self.confidence).mean()),
        }


# --------------------------------------------------------------------------------------
# Checks and helpers
# --------------------------------------------------------------------------------------

def default_step_size(epsilon: float, n_iter: int) -> float:
    """α = max(2.5 ε / n_iter, ε / 10): the iterates can cross the ε-ball within the budget."""
    n_iter = check_int(n_iter, "n_iter", 1)
    return max(2.5 * epsilon / n_iter, epsilon / 10)


def _check_epsilon(epsilon) -> float:
    if isinstance(epsilon, bool) or not isinstance(epsilon, Real) or not 0 < float(epsilon) < 1:
        raise ValueError(f"epsilon must be a number in (0, 1) (pixels are in [0, 1]; e.g. 8/255), got {epsilon!r}")
    return float(epsilon)


def beta_schedule(beta, n_iter: int) -> list[float]:
    r"""The surrogate's β at each of ``n_iter`` steps.

    beta: a number > 0 (the same β at every step) or a pair ``(start, end)`` of numbers > 0: β grows
          geometrically, :math:`\beta_i = \beta_{start} (\beta_{end} / \beta_{start})^{i / n}` for
          step i = 0 … n − 1, as in Dombrowski et al.'s reference code (:data:`DOMBROWSKI_BETA`).
    """
    n_iter = check_int(n_iter, "n_iter", 1)
    if isinstance(beta, (tuple, list)):
        if len(beta) != 2 or not all(_is_positive(b) for b in beta):
            raise ValueError(f"beta must be a number > 0 or a pair (start, end) of numbers > 0 (β grows "
                             f"geometrically from start to end over the steps), got {beta!r}")
        start, end = float(beta[0]), float(beta[1])
        return [start * (end / start) ** (i / n_iter) for i in range(n_iter)]
    if not _is_positive(beta):
        raise ValueError(f"beta must be a number > 0 or a pair (start, end) of numbers > 0 (β grows "
                         f"geometrically from start to end over the steps), got {beta!r}")
    return [float(beta)] * n_iter


def _is_positive(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, Real) and math.isfinite(value) and value > 0


def _check_beta(beta):
    """``beta`` as recorded in a result's settings: a float, or a (start, end) tuple of floats."""
    beta_schedule(beta, 1)
    return tuple(float(b) for b in beta) if isinstance(beta, (tuple, list)) else float(beta)


def _check_map(m, name, b, hw) -> torch.Tensor:
    if not isinstance(m, torch.Tensor) or not m.is_floating_point() and m.dtype != torch.bool:
        raise ValueError(f"{name} must be a tensor of shape ({b}, {hw[0]}, {hw[1]}) or {tuple(hw)}, got "
                         f"{type(m).__name__}")
    if tuple(m.shape) == tuple(hw):
        m = m.unsqueeze(0).expand(b, *hw)
    if tuple(m.shape) != (b, *hw):
        raise ValueError(f"{name} must have shape ({b}, {hw[0]}, {hw[1]}) or {tuple(hw)} (one map per image, "
                         f"the image's pixel grid), got {tuple(m.shape)}")
    if torch.isnan(m.float()).any():
        raise ValueError(f"{name} must not contain NaN")
    return m.float()



def project(x_new: torch.Tensor, x: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Projection onto {‖x' − x‖∞ ≤ ε} ∩ [0, 1], exact on the float32 result.

    After clamping, any entry whose difference to ``x`` exceeds ε in exact arithmetic (a
    float32 rounding of x ± ε) is replaced by the float32 point nearest to x ± ε on x's side.
    """
    if x_new.shape != x.shape:
        raise ValueError(f"x_new must have the shape of x {tuple(x.shape)}, got {tuple(x_new.shape)}")
    epsilon = _check_epsilon(epsilon)
    out = torch.maximum(torch.minimum(x_new, x + epsilon), x - epsilon).clamp(0, 1)
    d = out.double() - x.double()
    over = d.abs() > epsilon
    if over.any():
        # the boundary point x ± ε, rounded to float32 towards x (nearest, then one ulp inwards)
        edge = (x.double() + d.sign() * epsilon).to(out.dtype)
        edge = torch.where((edge.double() - x.double()).abs() > epsilon, torch.nextafter(edge, x), edge)
        out = torch.where(over, edge, out)
        if ((out.double() - x.double()).abs() > epsilon).any() or out.min() < 0 or out.max() > 1:
            raise AssertionError("projection failed")  # pragma: no cover
    return out


def _prepare(model, x, method, options):
    """Validate, move to the device, the original label and heatmaps (no graph)."""
    check_images(x)
    E.interpreter(method, modality="image", differentiable=True)
    check_module(model)
    options = dict(options or {})
    E.attribute(model, x[:1].to(device_of(model)), None, method, **options)  # explain's checks of the options
    return options


def _progress(progress, total, desc):
    disable = None if progress is None else not progress
    return tqdm(total=total, desc=desc, disable=disable, leave=False)


def _timing_context(dev) -> dict:
    """Where ``seconds`` was measured: torch's intra-op CPU threads and the device."""
    return {"threads": torch.get_num_threads(), "device": str(dev)}


def _chunks(n: int, batch_size: int | None):
    bs = n if batch_size is None else check_int(batch_size, "batch_size", 1)
    return [slice(i, min(n, i + bs)) for i in range(0, n, bs)]


# --------------------------------------------------------------------------------------
# Random-sign baseline
# --------------------------------------------------------------------------------------

def random_sign(model: nn.Module, x: torch.Tensor, method: str = "gradient", *, epsilon: float,
                seed: int | None = None, options: dict | None = None, batch_size: int | None = None,
                progress: bool | None = None) -> AttackResult:
    """Random-sign perturbation x + ε·sign(u), u ~ N(0, I), projected onto Definition 2's box.

    The baseline of Ghorbani et al. (2019): how much does noise of the same ℓ∞ size move the
    explanation? ``success`` marks the samples whose label the noise keeps.
    """
    epsilon = _check_epsilon(epsilon)
    options = _prepare(model, x, method, options)
    seed = get_config().seed if seed is None else int(seed)
    dev = device_of(model)
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    parts = []
    chunks = _chunks(x.shape[0], batch_size)
    bar = _progress(progress, len(chunks), f"random sign ({method})")
    for sl in chunks:
        xb = x[sl].to(dev)
        u = torch.randn(xb.shape, generator=g).sign().to(dev)
        xa = project(xb + epsilon * u, xb, epsilon)
        with torch.no_grad():
            lb = model(xb).argmax(1)
            la, lo = model(xa), model(xb)
        h0 = E.heatmap(model, xb, lb, method, **options)
        ha = E.heatmap(model, xa, lb, method, **options)
        parts.append(dict(x=xb, x_adv=xa, label=lb, heatmap=h0, heatmap_adv=ha, logits=lo, logits_adv=la,
                          success=la.argmax(1) == lb))
        bar.update(1)
    bar.close()
    cat = {k: torch.cat([p[k] for p in parts]).detach().cpu() for k in parts[0]}
    return AttackResult(attack="random", method=method, epsilon=epsilon, loss=torch.empty(0, len(x)),
                        objective=torch.empty(0, len(x)), seconds=time.perf_counter() - t0,
                        settings=dict(seed=seed, options=options, **_timing_context(dev)), **cat)


# --------------------------------------------------------------------------------------
# Iterative attacks (Ghorbani, Dombrowski)
# --------------------------------------------------------------------------------------

def surrogate_network(model, method, beta):
    """The network the attack differentiates, built by the interpreter's surrogate (a frozen
    Softplus(β) copy; for LRP the network itself, whose relevance gates are smoothed per call)."""
    return E.METHODS[method].surrogate.build(model, beta)


def attack_step(model, surrogate, method, kind, xt, x0, lab, ref, ref_s, *, epsilon, alpha, beta, options, update):
    """One attack iteration on a batch: the loss of objective ``kind`` (a key of
    :data:`~xaifool.attacks.objectives.OBJECTIVES`) on the surrogate and its input gradient, the step
    with the exact projection, and the original network's logits, heatmap and objective at the new
    iterate (for the keep-the-best rule). ``ref`` / ``ref_s``: the objective's reference for the
    original network / the surrogate. Returns (x_new, loss, logits, heatmap, objective)."""
    obj = OBJECTIVES[kind]
    objective_gradient = E.METHODS[method].surrogate.objective_gradient
    if objective_gradient is not None:
        loss, grad = objective_gradient(
            model, xt, lab, lambda rel, out: obj.loss(E.postprocess(rel), out, ref_s), beta=beta, **options)
    else:
        xg = xt.detach().requires_grad_(True)
        hs = E.heatmap(surrogate, xg, lab, method, create_graph=True, **options)
        ls = surrogate(xg) if obj.needs_logits else None
        loss = obj.loss(hs, ls, ref_s)
        (grad,) = torch.autograd.grad(loss.sum(), xg)
    if update == "sign":
        direction = grad.sign()
    else:  # gradient scaled per sample so that its largest entry is 1
        direction = grad / grad.flatten(1).abs().amax(1).clamp_min(1e-30).view(-1, 1, 1, 1)
    x_new = project(xt - alpha * direction, x0, epsilon)
    h, logits = E.heatmap_and_logits(model, x_new, lab, method, options)
    return x_new, loss.detach(), logits, h, obj.loss(h, logits, ref)


def _chunk_options(ref_options: dict, sl: slice, dev) -> dict:
    """The reference options of one chunk: per-image tensors (B, …) sliced and moved to the device."""
    return {key: v[sl].to(dev) if isinstance(v, torch.Tensor) else v for key, v in ref_options.items()}


def _iterative(model, x, method, kind, *, epsilon, n_iter, step_size, beta, options, batch_size, progress,
               ref_options=None, update="sign", extra_settings=None) -> AttackResult:
    """The loop shared by every iterative attack. ``kind``: a key of
    :data:`~xaifool.attacks.objectives.OBJECTIVES`; ``ref_options``: the keyword arguments of its
    ``reference`` (per-image tensors (B, …) are split with the batch)."""
    obj = OBJECTIVES[kind]
    ref_options = dict(ref_options or {})
    dev = device_of(model)
    betas = beta_schedule(beta, n_iter)
    set_surrogate_beta = E.METHODS[method].surrogate.set_beta   # None: β goes to every call instead
    surrogate = surrogate_network(model, method, betas[0])
    alpha = default_step_size(epsilon, n_iter) if step_size is None else check_positive(step_size, "step_size")
    chunks = _chunks(x.shape[0], batch_size)
    bar = _progress(progress, n_iter * len(chunks), f"{kind} attack ({method})")
    t0 = time.perf_counter()
    parts = []
    for sl in chunks:
        x0 = x[sl].to(dev)
        with torch.no_grad():
            logits0 = model(x0)
        lab = logits0.argmax(1)
        h0 = E.heatmap(model, x0, lab, method, **options)
        ref = obj.reference(h0, logits0, **_chunk_options(ref_options, sl, dev))
        obj0 = obj.loss(h0, logits0, ref)
        # An output term must be anchored at the surrogate's own output at x, or
        # γ‖g_s(x_adv) − g(x)‖² would pull the surrogate towards the ReLU network's logits.
        ref_s = ref
        best_x, best_obj, best_h, best_logits = x0.clone(), obj0.clone(), h0.clone(), logits0.clone()
        objective, losses = [obj0], []
        xt = x0
        for i in range(n_iter):
            if i == 0 or betas[i] != betas[i - 1]:
                if set_surrogate_beta is not None:
                    set_surrogate_beta(surrogate, betas[i])
                if obj.needs_logits and (i == 0 or set_surrogate_beta is not None):
                    # re-anchored whenever β changes: the Softplus surrogate's output at x moves with β
                    # (a surrogate that takes β per call keeps the ReLU forward pass: one anchor)
                    with torch.no_grad():
                        ref_s = {**ref, "logits": surrogate(x0)}
            xt, loss, lt, ht, ot = attack_step(model, surrogate, method, kind, xt, x0, lab, ref, ref_s, epsilon=epsilon,
                                         alpha=alpha, beta=betas[i], options=options, update=update)
            losses.append(loss)
            better = (lt.argmax(1) == lab) & (ot < best_obj)
            best_x[better], best_obj[better], best_h[better], best_logits[better] = xt[better], ot[better], \
                ht[better], lt[better]
            objective.append(ot)
            bar.update(1)
        parts.append(dict(x=x0, x_adv=best_x, label=lab, heatmap=h0, heatmap_adv=best_h, logits=logits0,
                          logits_adv=best_logits, success=best_obj < obj0, loss=torch.stack(losses, 0),
                          objective=torch.stack(objective, 0)))
    bar.close()
    cat = {key: torch.cat([p[key] for p in parts], dim=1 if key in ("loss", "objective") else 0).detach().cpu()
           for key in parts[0]}
    ref_map = next((v for v in ref_options.values() if isinstance(v, torch.Tensor)), None)
    settings = dict(n_iter=n_iter, step_size=alpha, beta=beta, options=options, k=ref_options.get("k"),
                    gamma=ref_options.get("gamma", 0.0), update=update, **_timing_context(dev))
    settings.update(extra_settings or {})
    return AttackResult(attack=kind, method=method, epsilon=epsilon, seconds=time.perf_counter() - t0,
                        target_map=torch.empty(0) if ref_map is None else ref_map.detach().cpu(),
                        settings=settings, **cat)


def ghorbani_attack(model: nn.Module, x: torch.Tensor, method: str = "gradient", attack: str = "topk", *,
                    epsilon: float, n_iter: int = 20, step_size: float | None = None, k: int | None = None,
                    region: torch.Tensor | None = None, beta: float | tuple = DEFAULT_BETA,
                    options: dict | None = None,
                    update: str = "sign", batch_size: int | None = None,
                    progress: bool | None = None) -> AttackResult:
    """Iterative attacks of Ghorbani et al. (2019) on the explanation of ``model``'s prediction.

    model:     the original (ReLU) network, eval mode, inputs in [0, 1]
    x:         (B, C, H, W) images in [0, 1]
    method:    an interpreter of :func:`attack_methods`
    attack:    an objective of :data:`GHORBANI_KINDS`: ``"topk"`` (mass out of the original top-k
               pixels), ``"center"`` (move the centre of mass), ``"region"`` / ``"location"`` (mass
               into ``region``)
    epsilon:   ℓ∞ budget in (0, 1), e.g. 8/255
    n_iter:    signed-gradient steps; step_size: α (default :func:`default_step_size`)
    k:         top-k size in 1..H·W (default :func:`default_k`)
    region:    (H, W) or (B, H, W) mask in [0, 1], for objectives that take one (``region``, ``location``;
               e.g. :func:`xaifool.attacks.objectives.region_mask`)
    beta:      Softplus β of the surrogate that is differentiated (LRP: β of its sigmoid relevance gates);
               a pair ``(start, end)`` grows it geometrically over the steps (:func:`beta_schedule`)
    update:    ``"sign"`` (α·sign ∇, Ghorbani) or ``"normalized"`` (α·∇/‖∇‖∞ per sample)
    options:   interpreter options (``n_steps``, ``n_samples``, …), used for attack and evaluation
    batch_size: images per device batch (default: all at once)
    progress:  tqdm bar (None: only on a terminal)
    """
    if attack not in GHORBANI_KINDS:
        raise ValueError(f"attack must be one of {GHORBANI_KINDS}, got {attack!r}")
    takes = OBJECTIVES[attack].options
    epsilon = _check_epsilon(epsilon)
    n_iter = check_int(n_iter, "n_iter", 1)
    beta = _check_beta(beta)
    options = _prepare(model, x, method, options)
    hw = tuple(x.shape[-2:])
    if "k" in takes:
        k = default_k(hw) if k is None else check_int(k, "k", 1, hw[0] * hw[1])
    elif k is not None:
        k = check_int(k, "k", 1, hw[0] * hw[1])
    ref_options = {"k": k} if "k" in takes else {}
    if "region" in takes:
        if region is None:
            raise ValueError(f"region must be given for attack={attack!r}: a (H, W) or (B, H, W) mask in [0, 1]")
        ref = _check_map(region, "region", x.shape[0], hw)
        if ref.min() < 0 or ref.max() > 1:
            raise ValueError("region must be a mask with values in [0, 1]")
        ref_options["region"] = ref
    if update not in UPDATES:
        raise ValueError(f"update must be one of {UPDATES}, got {update!r}")
    return _iterative(model, x, method, attack, epsilon=epsilon, n_iter=n_iter, step_size=step_size, beta=beta,
                      options=options, batch_size=batch_size, progress=progress, ref_options=ref_options,
                      update=update, extra_settings={"k": k})


def dombrowski_attack(model: nn.Module, x: torch.Tensor, target_map: torch.Tensor, method: str = "gradient", *,
                      epsilon: float, n_iter: int = 50, step_size: float | None = None, gamma: float = 1.0,
                      beta: float | tuple = DOMBROWSKI_BETA, options: dict | None = None,
                      update: str = "normalized",
                      batch_size: int | None = None, progress: bool | None = None) -> AttackResult:
    """Target-map attack of Dombrowski et al. (2019): h(x_adv) ≈ ``target_map``, output ≈ g(x).

    target_map: (B, H, W) heatmaps to imitate (e.g. the explanations of other images); they are
                normalised to sum 1 like every heatmap of the book
    gamma:      weight γ ≥ 0 of the output term ‖g(x_adv) − g(x)‖² / K
    beta:       β schedule of the surrogate, default :data:`DOMBROWSKI_BETA` (10 → 100 geometrically,
                as the paper's code); a number fixes it
    update:     ``"normalized"`` (default, α·∇/‖∇‖∞: pixels with a small gradient barely move, which
                matters when matching a whole map) or ``"sign"``; step_size default ε/8
    The other arguments are those of :func:`ghorbani_attack`.
    """
    epsilon = _check_epsilon(epsilon)
    n_iter = check_int(n_iter, "n_iter", 1)
    beta = _check_beta(beta)
    if isinstance(gamma, bool) or not isinstance(gamma, Real) or not float(gamma) >= 0:
        raise ValueError(f"gamma must be a number >= 0, got {gamma!r}")
    options = _prepare(model, x, method, options)
    tm = _check_map(target_map, "target_map", x.shape[0], tuple(x.shape[-2:])).abs()
    mass = tm.flatten(1).sum(1)
    bad = (~torch.isfinite(mass)).nonzero().view(-1).tolist()
    if bad:
        raise ValueError(f"target_map must hold finite values (each map is normalised to sum 1); rows {bad} "
                         "hold inf or overflow when summed")
    zero = (mass == 0).nonzero().view(-1).tolist()
    if zero:
        raise ValueError(f"target_map must have a non-zero entry in every row (each map is normalised to sum 1); "
                         f"rows {zero} are all zero")
    tm = tm / mass.view(-1, 1, 1)
    if update not in UPDATES:
        raise ValueError(f"update must be one of {UPDATES}, got {update!r}")
    step_size = epsilon / 8 if step_size is None else step_size
    return _iterative(model, x, method, "target", epsilon=epsilon, n_iter=n_iter, step_size=step_size,
                      beta=beta, options=options, batch_size=batch_size, progress=progress,
                      ref_options={"target": tm, "gamma": float(gamma)}, update=update)


#: The function that runs each attack of :data:`ATTACKS`.
ATTACK_FUNCTIONS = {"random": random_sign, **{n: ghorbani_attack for n in GHORBANI_KINDS},
                    **{n: dombrowski_attack for n in DOMBROWSKI_KINDS}}


def _attack_function(attack):
    if not isinstance(attack, str) or attack not in ATTACK_FUNCTIONS:
        raise ValueError(f"attack must be one of {ATTACKS}, got {attack!r}")
    return ATTACK_FUNCTIONS[attack]


def run_attack(model: nn.Module, x: torch.Tensor, attack: str, method: str = "gradient", **kwargs) -> AttackResult:
    """Dispatch on ``attack`` (one of :data:`ATTACKS`) to its function in :data:`ATTACK_FUNCTIONS`.

    model:   the original network; x: (B, C, H, W) images in [0, 1]
    attack:  a name of :data:`ATTACKS`; method: an interpreter of :func:`attack_methods`
    kwargs:  the keyword arguments of that function (``target_map`` for :func:`dombrowski_attack`);
             ``batch_size`` defaults to the profile's ``attack_batch_size`` (images per device batch)
    """
    fn = _attack_function(attack)
    kwargs.setdefault("batch_size", get_config().profile.attack_batch_size)
    if fn is random_sign:
        return random_sign(model, x, method, **kwargs)
    if fn is dombrowski_attack:
        return dombrowski_attack(model, x, kwargs.pop("target_map", None), method, **kwargs)
    return ghorbani_attack(model, x, method, attack, **kwargs)


def cached_attack(model_key: str, model: nn.Module, x: torch.Tensor, attack: str, method: str = "gradient",
                  **kwargs) -> AttackResult:
    """:func:`run_attack` through the on-disk cache, keyed by ``model_key``, the images and every setting.

    Two chapters that ask for the same attack with the same settings share one cached result.
    ``progress`` does not enter the key; ``batch_size`` does (SmoothGrad's noise draws depend on
    how the images are chunked), and so do the model's weights and the device.
    """
    if not isinstance(model_key, str) or not model_key:
        raise ValueError(f"model_key must be a non-empty string naming the model, got {model_key!r}")
    target = _attack_function(attack)
    accepted = set(inspect.signature(target).parameters) - {"model", "x", "method", "attack"}
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise ValueError(f"option(s) {unknown} are not accepted by the {attack!r} attack; accepted: {sorted(accepted)}")
    settings = {"model": model_key, "weights": module_digest(model), "device": str(device_of(model)), "x": x,
                "attack": attack, "method": method, "seed": get_config().seed,
                "batch_size": kwargs.get("batch_size") or get_config().profile.attack_batch_size,
                **{k: v for k, v in kwargs.items() if k not in ("progress", "batch_size")}}
    if not E.METHODS.is_builtin(method):   # an interpreter registered at run time: its code is not in the key
        return run_attack(model, x, attack, method, **kwargs)
    d = cached("input-attack", settings, lambda: run_attack(model, x, attack, method, **kwargs).to_dict(), depends=(__name__,))
    return AttackResult.from_dict(d)


def attack_grid(model_key: str, model: nn.Module, x: torch.Tensor, *, attacks, methods, epsilons,
                n_iter: int, options: dict | None = None, progress: bool | None = None,
                **kwargs) -> dict[tuple[str, str, float], AttackResult]:
    """Every (attack, method, ε) combination through :func:`cached_attack`.

    attacks:  subset of :data:`GRID_ATTACKS` (``"random"`` and the untargeted objectives: ``topk``,
              ``center``); methods: subset of :func:`attack_methods`
    epsilons: ε values in units of 1/255 (e.g. ``(1, 2, 4, 8)``)
    options:  {method: {option: value}} interpreter options per method
    returns:  {(attack, method, ε·255): AttackResult}; chapters that call this with the same
              arguments share the cached results
    """
    bad = [a for a in attacks if a not in GRID_ATTACKS]
    if bad:
        raise ValueError(f"attacks must be among {GRID_ATTACKS} (attacks that need no region or target map), "
                         f"got {bad}")
    small = [e for e in epsilons if not 0.5 <= float(e) < 255]
    if small:
        raise ValueError(f"epsilons are in units of 1/255 and must lie in [0.5, 255), e.g. (1, 2, 4, 8); got {small}")
    n_iter = check_int(n_iter, "n_iter", 1)
    options = options or {}
    out = {}
    for method in methods:
        for e in epsilons:
            for attack in attacks:
                extra = {} if attack == "random" else {"n_iter": int(n_iter), **kwargs}
                out[(attack, method, float(e))] = cached_attack(
                    model_key, model, x, attack, method, epsilon=float(e) / 255, options=options.get(method),
                    progress=progress, **extra)
    return out
