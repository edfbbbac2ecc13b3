r"""Curvature of a classifier's output with respect to its input.

Dombrowski et al. (2019) bound how far a gradient explanation can move under a small input
change by the curvature of the network's output: for the logit :math:`f_c` of class ``c``,
:math:`\lVert \nabla f_c(x + \delta) - \nabla f_c(x) \rVert \lesssim \lVert H_c(x) \rVert\,\lVert\delta\rVert`,
with :math:`H_c(x) = \nabla^2_x f_c(x)` the Hessian of the logit with respect to the input. The
functions here measure that curvature without building the Hessian (``C·H·W`` squared entries):

* :func:`hessian_vector_product` — :math:`H_i v_i` for every image of a batch (one double backward
  pass for the whole batch);
* :func:`top_hessian_eigenvalue` — the eigenvalue of largest magnitude of every :math:`H_i`, by
  power iteration on those products;
* :func:`directional_curvature` — :math:`\lVert H_i d_i \rVert / \lVert d_i \rVert` along a direction
  (an attack's :math:`\delta = x_{adv} - x`).

Batching: image ``i``'s logits depend on image ``i`` only (the model must be in eval mode: a model
whose BatchNorm or Dropout modules are in training mode is refused), so the Hessian of the *sum* of the selected logits is block diagonal and one backward pass of the
gradient gives every image's product at once.

A ReLU network is piecewise linear: its Hessian is zero almost everywhere and every function here
returns zeros for it. Pass a twice-differentiable surrogate, ``xaifool.models.smooth(model, beta)``
(each ReLU replaced by Softplus(β)), to see the curvature the attacks exploit.

Every function runs on the model's device, turns gradients on for itself (it works under a caller's
``torch.no_grad()``), turns the parameters' ``requires_grad`` off while it runs (the products need
input gradients only; the flags are restored on return, also after an error), and returns detached
CPU tensors in the dtype of ``x``.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import torch
import torch.nn as nn

from .models import device_of
from .validate import check_images, check_int, check_labels, check_module, check_positive

__all__ = ["hessian_vector_product", "top_hessian_eigenvalue", "directional_curvature"]


# --------------------------------------------------------------------------------------------- checks
def _check_like(v, x: torch.Tensor, name: str) -> torch.Tensor:
    """``v`` if it is a finite floating-point tensor of the shape of ``x``."""
    if not isinstance(v, torch.Tensor) or not v.is_floating_point() or v.shape != x.shape:
        got = f"{v.dtype} tensor of shape {tuple(v.shape)}" if isinstance(v, torch.Tensor) else type(v).__name__
        raise ValueError(f"{name} must be a floating-point tensor of the shape of x {tuple(x.shape)}, got {got}")
    if not torch.isfinite(v).all():
        raise ValueError(f"{name} must hold finite values only (no NaN or inf)")
    return v


def _model_device(model: nn.Module, x: torch.Tensor) -> torch.device:
    """The model's device; a model without parameters runs where ``x`` is."""
    try:
        return device_of(model)
    except StopIteration:
        return x.device


def _per_image_norm(t: torch.Tensor) -> torch.Tensor:
    """(B,) Euclidean norms of the images of ``t`` (B, ...)."""
    return torch.linalg.vector_norm(t.reshape(t.shape[0], -1), dim=1)


def _per_image_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).reshape(a.shape[0], -1).sum(dim=1)


def _broadcast(per_image: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return per_image.view(-1, *([1] * (like.dim() - 1)))


@contextmanager
def _input_gradients_only(model: nn.Module) -> Iterator[None]:
    """Gradients on, parameters' ``requires_grad`` off inside, both restored on leaving.

    The products need gradients with respect to the input only; with the parameters in the graph the
    passes also carry their terms (smoothed ResNet-20, 4 CIFAR images, 2 busy CPU cores, forward pass +
    gradient + one product, median of 12: 0.55 s with the parameters in the graph, 0.40 s without).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    try:
        for p in params:
            p.requires_grad_(False)
        with torch.enable_grad():
            yield
    finally:
        for p in params:
            p.requires_grad_(True)


# ---------------------------------------------------------------------------------- the HVP operator
def _hvp_operator(model: nn.Module, x: torch.Tensor, target) -> Callable[[torch.Tensor], torch.Tensor]:
    """``v ↦ H v`` (batched, block diagonal) for the selected logits at ``x``; call under
    :func:`_input_gradients_only`.

    The gradient of the selected logits' sum is built once with its graph; each product is one more
    backward pass through it (``retain_graph``), so power iteration pays for one forward pass only.
    """
    xg = x.detach().requires_grad_(True)
    logits = model(xg)
    n = x.shape[0]
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or logits.shape[0] != n:
        got = f"shape {tuple(logits.shape)}" if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"model must return logits of shape (N, K) = ({n}, K) for x, got {got}")
    k = logits.shape[1]
    if target is None:
        target = logits.detach().argmax(dim=1)
    else:
        target = target.to(logits.device)
        if bool(((target < 0) | (target >= k)).any()):
            raise ValueError(f"target must hold class indices in 0..{k - 1} (the model has {k} classes), "
                             f"got values in {int(target.min())}..{int(target.max())}")
    picked = logits.gather(1, target.view(-1, 1)).sum()
    if not picked.requires_grad:                 # the logits do not depend on x: H = 0
        return torch.zeros_like
    (grad,) = torch.autograd.grad(picked, xg, create_graph=True, allow_unused=True)
    if grad is None or not grad.requires_grad:   # the gradient does not depend on x: H = 0
        return torch.zeros_like

    def hvp(v: torch.Tensor) -> torch.Tensor:
        (hv,) = torch.autograd.grad(grad, xg, grad_outputs=v, retain_graph=True, allow_unused=True)
        return torch.zeros_like(v) if hv is None else hv.detach()

    return hvp


_BATCH_DEPENDENT = (nn.modules.batchnorm._BatchNorm, nn.modules.dropout._DropoutNd)


def _prepared(model, x, target):
    """Checked model, ``x`` and ``target`` with ``x`` and ``target`` on the model's device."""
    check_module(model, "model")
    training = sorted({type(m).__name__ for m in model.modules() if isinstance(m, _BATCH_DEPENDENT) and m.training})
    if training:
        raise ValueError(f"model must be in eval mode: its {', '.join(training)} modules are in training mode "
                         "(they couple the images of a batch or draw noise, and BatchNorm would update its statistics)")
    check_images(x, "x")
    check_labels(target, x.shape[0], "target", allow_none=True)
    dev = _model_device(model, x)
    return model, x.detach().to(dev), (None if target is None else target.to(dev)), dev


# --------------------------------------------------------------------------------------- public API
def hessian_vector_product(model: nn.Module, x: torch.Tensor, v: torch.Tensor,
                           target: torch.Tensor | None = None) -> torch.Tensor:
    """Per-image Hessian-vector product :math:`H_i v_i` of the logit of class ``target[i]`` w.r.t. ``x_i``.

    One double backward pass gives the whole batch (the Hessian of the sum of the selected logits is
    block diagonal). Zero for a piecewise-linear (ReLU) network: pass ``models.smooth(model, beta)``.

    Args:
        model: ``nn.Module`` mapping (B, C, H, W) images to (B, K) logits, in eval mode, twice differentiable.
        x: (B, C, H, W) floating tensor of images, pixels in [0, 1].
        v: (B, C, H, W) floating tensor of directions (any finite values), one per image.
        target: (B,) ``torch.long`` class indices in 0..K-1, or None for the predicted class (argmax of ``model(x)``).

    Returns:
        (B, C, H, W) detached CPU tensor of the dtype of ``x``, any real values.
    """
    model, x, target, dev = _prepared(model, x, target)
    v = _check_like(v, x, "v").detach().to(device=dev, dtype=x.dtype)
    with _input_gradients_only(model):
        return _hvp_operator(model, x, target)(v).cpu()


def top_hessian_eigenvalue(model: nn.Module, x: torch.Tensor, target: torch.Tensor | None = None, *,
                           n_iter: int = 20, seed: int = 0, tol: float | None = None) -> torch.Tensor:
    """Per image, the eigenvalue of largest magnitude of :math:`H_i`, by power iteration on Hessian-vector products.

    All images iterate at once, each vector normalised on its own. The start is Gaussian noise from a
    CPU ``torch.Generator`` seeded with ``seed`` (moved to the model's device), so the result is
    deterministic for a seed. The returned value is the Rayleigh quotient :math:`v^\\top H_i v` of the
    final unit vector, so its sign is the eigenvalue's. Power iteration converges at the rate
    :math:`|\\lambda_2 / \\lambda_1|` per step: when the two largest magnitudes are close (or equal with
    opposite signs) more iterations are needed (or it does not settle), and the value returned is then a
    lower bound on the largest magnitude. An image whose Hessian is zero gets 0.

    Args:
        model: ``nn.Module`` mapping (B, C, H, W) images to (B, K) logits, in eval mode, twice differentiable.
        x: (B, C, H, W) floating tensor of images, pixels in [0, 1].
        target: (B,) ``torch.long`` class indices in 0..K-1, or None for the predicted class.
        n_iter: int >= 1, the most power-iteration steps (each one Hessian-vector product for the batch).
        seed: int >= 0, seed of the random start.
        tol: None (run all ``n_iter`` steps) or a number > 0: stop once every image's Rayleigh quotient
            changed by at most ``tol`` times its magnitude in one step.

    Returns:
        (B,) detached CPU tensor of the dtype of ``x``, signed eigenvalues (any real values).
    """
    n_iter = check_int(n_iter, "n_iter", 1)
    seed = check_int(seed, "seed", 0)
    if tol is not None:
        tol = check_positive(tol, "tol", "relative change of the eigenvalue estimate; or None")
    model, x, target, dev = _prepared(model, x, target)
    gen = torch.Generator().manual_seed(seed)
    v = torch.randn(x.shape, generator=gen, dtype=x.dtype).to(dev)
    v = v / _broadcast(_per_image_norm(v), v)
    with _input_gradients_only(model):
        hvp = _hvp_operator(model, x, target)
        previous = None
        for _ in range(n_iter):
            w = hvp(v)
            estimate = _per_image_dot(v, w)
            norm = _per_image_norm(w)
            # an image whose product vanishes keeps its vector (its eigenvalue is 0 along it)
            v = torch.where(_broadcast(norm > 0, w), w / _broadcast(norm.clamp_min(torch.finfo(w.dtype).tiny), w), v)
            if tol is not None and previous is not None and \
                    bool(((estimate - previous).abs() <= tol * estimate.abs()).all()):
                break
            previous = estimate
        return _per_image_dot(v, hvp(v)).cpu()


def directional_curvature(model: nn.Module, x: torch.Tensor, direction: torch.Tensor,
                          target: torch.Tensor | None = None) -> torch.Tensor:
    """Per image, :math:`\\lVert H_i d_i \\rVert / \\lVert d_i \\rVert`: the curvature along a direction.

    E.g. along an attack's perturbation ``d = x_adv - x``; it is at most the largest eigenvalue
    magnitude of :math:`H_i`. An image whose direction is zero (the attack left it unchanged) gets 0.

    Args:
        model: ``nn.Module`` mapping (B, C, H, W) images to (B, K) logits, in eval mode, twice differentiable.
        x: (B, C, H, W) floating tensor of images, pixels in [0, 1].
        direction: (B, C, H, W) floating tensor of directions (any finite values; an all-zero image is allowed).
        target: (B,) ``torch.long`` class indices in 0..K-1, or None for the predicted class.

    Returns:
        (B,) detached CPU tensor of the dtype of ``x``, values >= 0.
    """
    model, x, target, dev = _prepared(model, x, target)
    d = _check_like(direction, x, "direction").detach().to(device=dev, dtype=x.dtype)
    length = _per_image_norm(d)
    unit = d / _broadcast(torch.where(length > 0, length, torch.ones_like(length)), d)
    with _input_gradients_only(model):
        out = _per_image_norm(_hvp_operator(model, x, target)(unit))
    return torch.where(length > 0, out, torch.zeros_like(out)).cpu()
