"""Two defences against input manipulation, attacked at a fixed budget (chapter 05).

``beta_sweep``    Dombrowski et al. (2019): explain a Softplus(β) copy of the ReLU network
                  (:func:`xaifool.models.smooth`) instead of the network itself. The attacker knows the
                  defence and differentiates the smoothed map directly.
``sigma_sweep``   SmoothGrad (Smilkov et al. 2017) with noise level σ, attacked through its own map.

For every setting, on the same images: the attack's effect (the top-k intersection and the Spearman ρ
of the map after Ghorbani et al.'s top-k attack with the map before; the SSIM to a target map before and after
Dombrowski et al.'s target-map attack), the faithfulness cost (Spearman ρ between the defended map
and the ReLU network's gradient on the clean images) and, for β-smoothing, the curvature (the
largest Hessian eigenvalue of the explained logit). Each sweep is cached.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from . import explain as E
from . import metrics as M
from .attacks.input import dombrowski_attack, ghorbani_attack
from .attacks.objectives import default_k
from .cache import cached_call
from .curvature import top_hessian_eigenvalue
from .models import device_of, smooth
from .validate import check_images, check_int, check_module, check_positive

__all__ = ["beta_sweep", "sigma_sweep", "DEFENCE_MEASURES"]

#: The per-image measures of every setting of a sweep.
DEFENCE_MEASURES = ("topk_after", "spearman_after", "target_ssim_before", "target_ssim_after", "faithfulness",
                    "label_kept", "curvature")


def _check_values(values, name: str) -> tuple[float, ...]:
    if isinstance(values, (int, float)):
        values = (values,)
    values = tuple(values)
    if not values:
        raise ValueError(f"{name} must hold at least one value")
    return tuple(check_positive(v, name) for v in values)


def _attacked(model, x, method, *, epsilon, n_iter, target_iters, k, beta, options, batch_size):
    """The two attacks on ``method``'s map of ``model`` and their per-image effect."""
    top = ghorbani_attack(model, x, method, "topk", epsilon=epsilon, n_iter=n_iter, k=k, beta=beta, options=options,
                          batch_size=batch_size, progress=False)
    goal = E.explain(model, x.roll(1, 0).to(device_of(model)), None, method, **(options or {})).cpu()
    tgt = dombrowski_attack(model, x, goal, method, epsilon=epsilon, n_iter=target_iters, beta=beta, options=options,
                            batch_size=batch_size, progress=False)
    return {"topk_after": M.topk_intersection(top.heatmap, top.heatmap_adv, k),
            "spearman_after": M.spearman(top.heatmap, top.heatmap_adv),
            "target_ssim_before": M.ssim(tgt.heatmap, goal), "target_ssim_after": M.ssim(tgt.heatmap_adv, goal),
            "label_kept": (top.label_kept & tgt.label_kept).double()}


def _beta_sweep(model, x, betas, epsilon, n_iter, target_iters, k, curvature_iters, batch_size, relu_beta):
    dev = device_of(model)
    plain = E.explain(model, x.to(dev), None, "gradient").cpu()
    out = {}
    for beta in (*betas, None):
        net = model if beta is None else smooth(model, beta)
        row = _attacked(net, x, "gradient", epsilon=epsilon, n_iter=n_iter, target_iters=target_iters, k=k,
                        beta=relu_beta if beta is None else beta, options=None, batch_size=batch_size)
        h = plain if beta is None else E.explain(net, x.to(dev), None, "gradient").cpu()
        row["faithfulness"] = M.spearman(h, plain)
        # the ReLU network's Hessian is zero almost everywhere: its curvature is the attacker's surrogate's
        curv_net = smooth(model, relu_beta if beta is None else beta)
        row["curvature"] = top_hessian_eigenvalue(curv_net, x, n_iter=curvature_iters).abs().double()
        out["relu" if beta is None else float(beta)] = {m: v.double().cpu() for m, v in row.items()}
    return out


def beta_sweep(model: nn.Module, x: torch.Tensor, betas, *, epsilon: float = 8 / 255, n_iter: int = 12,
               target_iters: int = 60, k: int | None = None, curvature_iters: int = 10,
               batch_size: int | None = None, relu_beta: float = 30.0) -> dict:
    """The β-smoothing defence under attack, for every β and for the undefended ReLU network.

    model:  ReLU network on images in [0, 1], eval mode; x: (B, C, H, W) images in [0, 1]
    betas:  Softplus β values (> 0) of the defended explanation (the gradient of the smoothed copy)
    epsilon: ℓ∞ budget; n_iter / target_iters: steps of the top-k and target-map attacks; k: top-k size
    curvature_iters: power-iteration steps of the curvature; relu_beta: β of the attacker's surrogate
             against the undefended network, and of the network whose curvature stands for it
    returns: ``{β or "relu": {measure: (B,) float64}}`` for the measures of :data:`DEFENCE_MEASURES`
    """
    model = check_module(model)
    x = check_images(x).cpu()
    betas = _check_values(betas, "betas")
    k = default_k(x.shape[-2:]) if k is None else check_int(k, "k", 1, x.shape[-2] * x.shape[-1])
    args = (model, x, betas, float(epsilon), check_int(n_iter, "n_iter", 1), check_int(target_iters, "target_iters", 1),
            k, check_int(curvature_iters, "curvature_iters", 1), batch_size, check_positive(relu_beta, "relu_beta"))
    return cached_call("beta-sweep", _beta_sweep, *args)


def _sigma_sweep(model, x, sigmas, epsilon, n_iter, target_iters, k, n_samples, batch_size):
    dev = device_of(model)
    plain = E.explain(model, x.to(dev), None, "gradient").cpu()
    out = {}
    for sigma in sigmas:
        options = {"noise_level": float(sigma), "n_samples": n_samples}
        row = _attacked(model, x, "smoothgrad", epsilon=epsilon, n_iter=n_iter, target_iters=target_iters, k=k,
                        beta=30.0, options=options, batch_size=batch_size)
        row["faithfulness"] = M.spearman(E.explain(model, x.to(dev), None, "smoothgrad", **options).cpu(), plain)
        out[float(sigma)] = {m: v.double().cpu() for m, v in row.items()}
    return out


def sigma_sweep(model: nn.Module, x: torch.Tensor, sigmas, *, epsilon: float = 8 / 255, n_iter: int = 12,
                target_iters: int = 60, k: int | None = None, n_samples: int = 4,
                batch_size: int | None = None) -> dict:
    """SmoothGrad under attack for every noise level σ (a share of each image's value range).

    Arguments as :func:`beta_sweep`; ``n_samples``: SmoothGrad's noisy copies inside the attack.
    returns: ``{σ: {measure: (B,) float64}}`` (no curvature: SmoothGrad smooths the map, not the network)
    """
    model = check_module(model)
    x = check_images(x).cpu()
    sigmas = _check_values(sigmas, "sigmas")
    k = default_k(x.shape[-2:]) if k is None else check_int(k, "k", 1, x.shape[-2] * x.shape[-1])
    args = (model, x, sigmas, float(epsilon), check_int(n_iter, "n_iter", 1), check_int(target_iters, "target_iters", 1),
            k, check_int(n_samples, "n_samples", 1), batch_size)
    return cached_call("sigma-sweep", _sigma_sweep, *args)
