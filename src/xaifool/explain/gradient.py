"""The gradient family, Grad-CAM and guided backpropagation, computed with ``torch.autograd``.

Every function here has the interpreter signature ``fn(model, x, target, create_graph=False, **options)``
and returns the raw attribution: (B, C, H, W) for images or (B, d) for tables; Grad-CAM (B, 1, H, W).
With ``create_graph=True`` the map keeps its graph to the input and the parameters (what attacks and
Heo et al.'s fine-tuning differentiate). The tests check them against captum's ``Saliency``,
``InputXGradient``, ``NoiseTunnel``, ``IntegratedGradients``, ``LayerGradCam`` and ``GuidedBackprop``.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import get_config
from ..quiet import import_quietly

__all__ = ["gradient", "grad_x_input", "smoothgrad", "integrated_gradients", "gradcam", "guided_backprop",
           "guided_gradcam", "GUIDED_ACTIVATIONS"]


def _select(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return logits.gather(1, target.view(-1, 1)).sum()


def _input_gradient(model, x, target, create_graph):
    if not x.requires_grad:
        x = x.detach().requires_grad_(True)
    out = model(x)
    (g,) = torch.autograd.grad(_select(out, target), x, create_graph=create_graph)
    return g


def gradient(model, x, target, create_graph=False):
    return _input_gradient(model, x, target, create_graph)


def grad_x_input(model, x, target, create_graph=False):
    return x * _input_gradient(model, x, target, create_graph)


def smoothgrad(model, x, target, create_graph=False, n_samples=None, noise_level=0.15, seed=None,
                chunk=None):
    """Mean gradient over ``n_samples`` noisy copies, σ = noise_level · (max x − min x) per image.

    The noise is one seeded draw of shape (n_samples, B, …): image i's noise depends on the seed,
    on i and on the batch size B, so explaining a batch in parts draws other noise than explaining
    it at once (attack results are cached per ``batch_size`` for that reason). Fixed draws are
    what lets an attack "see" SmoothGrad's noise; the Input chapter re-explains with a fresh seed.
    """
    cfg = get_config()
    n = cfg.profile.smoothgrad_samples if n_samples is None else int(n_samples)
    if n < 1:
        raise ValueError(f"n_samples must be >= 1, got {n}")
    if not noise_level >= 0:
        raise ValueError(f"noise_level must be >= 0, got {noise_level}")
    g = torch.Generator(device="cpu").manual_seed(cfg.seed if seed is None else int(seed))
    dims = tuple(range(1, x.dim()))
    sigma = noise_level * (x.detach().amax(dims, keepdim=True) - x.detach().amin(dims, keepdim=True))
    noise = torch.randn((n, *x.shape), generator=g).to(x.device) * sigma.unsqueeze(0)
    chunk = chunk or max(1, cfg.profile.batch_size // max(1, x.shape[0]))
    total = torch.zeros_like(x)
    for i in range(0, n, chunk):  # chunks of noise samples, each batched over all images
        eps = noise[i:i + chunk]
        k = eps.shape[0]
        xs = (x.unsqueeze(0) + eps).reshape(k * x.shape[0], *x.shape[1:])
        grad = _input_gradient(model, xs, target.repeat(k), create_graph)
        total = total + grad.view(k, *x.shape).sum(0)
    return total / n


def _ig_baseline(baseline, x: torch.Tensor) -> torch.Tensor:
    """The baseline x₀ expanded to x's shape: a number, a tensor of x's shape, of one sample's shape
    ``x.shape[1:]`` (the same baseline for every sample), or any other shape that broadcasts to x's."""
    accepted = (f"a number, a tensor of x's shape {tuple(x.shape)} or of one sample's shape {tuple(x.shape[1:])} "
                "(or any shape that broadcasts to x's)")
    try:
        x0 = torch.as_tensor(baseline, dtype=x.dtype, device=x.device)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"baseline must be {accepted}, got {type(baseline).__name__}") from None
    try:
        fits = torch.broadcast_shapes(x0.shape, x.shape) == x.shape
    except RuntimeError:
        fits = False
    if not fits:
        raise ValueError(f"baseline must be {accepted}, got shape {tuple(x0.shape)}")
    return x0.expand_as(x)


def integrated_gradients(model, x, target, create_graph=False, n_steps=None, baseline=None,
                          quadrature="gausslegendre", chunk=None):
    """(x − x₀) ⊙ ∫₀¹ ∂f_c/∂x(x₀ + α(x − x₀)) dα, with captum's quadrature rules (``quadrature``: one of
    captum's ``method`` names, default ``"gausslegendre"``; ``"riemann_trapezoid"`` is Quantus' choice)."""
    approximation_parameters = import_quietly("captum.attr._utils.approximation_methods").approximation_parameters

    cfg = get_config()
    n = cfg.profile.ig_steps if n_steps is None else int(n_steps)
    if n < 1:
        raise ValueError(f"n_steps must be >= 1, got {n}")
    x0 = torch.zeros_like(x) if baseline is None else _ig_baseline(baseline, x)
    rules = ("gausslegendre", "riemann_trapezoid", "riemann_left", "riemann_right", "riemann_middle")
    if quadrature not in rules:
        raise ValueError(f"quadrature must be one of {rules}, got {quadrature!r}")
    step_sizes, alphas = approximation_parameters(quadrature)
    w, a = step_sizes(n), alphas(n)
    chunk = chunk or max(1, cfg.profile.batch_size // max(1, x.shape[0]))
    total = torch.zeros_like(x)
    for i in range(0, n, chunk):
        al = torch.tensor(a[i:i + chunk], dtype=x.dtype, device=x.device).view(-1, *[1] * x.dim())
        ws = torch.tensor(w[i:i + chunk], dtype=x.dtype, device=x.device).view(-1, *[1] * x.dim())
        k = al.shape[0]
        xs = (x0.unsqueeze(0) + al * (x - x0).unsqueeze(0)).reshape(k * x.shape[0], *x.shape[1:])
        grad = _input_gradient(model, xs, target.repeat(k), create_graph).view(k, *x.shape)
        total = total + (ws * grad).sum(0)
    return (x - x0) * total


# --------------------------------------------------------------------------------------
# Grad-CAM
# --------------------------------------------------------------------------------------

def _get_layer(model: nn.Module, layer) -> nn.Module:
    if isinstance(layer, nn.Module):
        return layer
    name = layer or getattr(model, "cam_layer", "")
    if not name:
        raise ValueError("layer: Grad-CAM needs a convolutional layer; pass layer=<module or dotted name> "
                         "or use a model from xaifool.models (they set cam_layer)")
    try:
        return model.get_submodule(name)
    except AttributeError as err:
        raise ValueError(f"layer {name!r} is not a submodule of the model") from err


def gradcam(model, x, target, create_graph=False, layer=None, upsample="bilinear"):
    """ReLU(Σ_k α_k A_k), α_k = spatial mean of ∂f_c/∂A_k, upsampled to the input size."""
    mod = _get_layer(model, layer)
    store = {}
    handle = mod.register_forward_hook(lambda m, i, o: store.__setitem__("a", o))
    try:
        # The input always needs a graph, or a frozen model (requires_grad=False) leaves the
        # hooked activation without one.
        xin = x if x.requires_grad else x.detach().requires_grad_(True)
        out = model(xin)
    finally:
        handle.remove()
    act = store["a"]
    if act.dim() != 4:
        raise ValueError(f"layer output must be (B, K, h, w) for Grad-CAM, got shape {tuple(act.shape)}")
    (g,) = torch.autograd.grad(_select(out, target), act, create_graph=create_graph)
    cam = F.relu((g.mean(dim=(2, 3), keepdim=True) * act).sum(1, keepdim=True))
    if upsample == "bilinear":
        cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)
    elif upsample == "nearest":
        cam = F.interpolate(cam, size=x.shape[-2:], mode="nearest")
    else:
        raise ValueError(f"upsample must be 'bilinear' or 'nearest', got {upsample!r}")
    return cam


class _GuidedClamp(torch.autograd.Function):
    """ReLU / ReLU6 whose backward passes only positive gradients where the unit is active."""

    @staticmethod
    def forward(ctx, x, upper):
        out = x.clamp(0, upper) if upper is not None else x.clamp_min(0)
        ctx.save_for_backward(out)
        ctx.upper = upper
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        active = out > 0
        if ctx.upper is not None:
            active = active & (out < ctx.upper)
        return (grad * active).clamp_min(0), None


#: Activations guided backpropagation overrides, with their upper clamp.
GUIDED_ACTIVATIONS = {nn.ReLU: None, nn.ReLU6: 6.0}


def guided_backprop(model, x, target, create_graph=False):
    """∂f_c/∂x with every ReLU's (and ReLU6's) backward replaced by ReLU(grad · 1[active])
    (Springenberg et al. 2015); the same as captum's ``GuidedBackprop`` on ReLU networks."""
    acts = [(m, GUIDED_ACTIVATIONS[type(m)]) for m in model.modules() if type(m) in GUIDED_ACTIVATIONS]
    if not acts:
        raise ValueError("method 'guided_backprop' needs a model with nn.ReLU or nn.ReLU6 modules (it overrides "
                         "their backward pass); this model has none (a smoothed model? use the original)")
    handles = [m.register_forward_hook(lambda mod, inp, out, up=up: _GuidedClamp.apply(inp[0], up))
               for m, up in acts]
    try:
        return _input_gradient(model, x, target, create_graph)
    finally:
        for h in handles:
            h.remove()


def guided_gradcam(model, x, target, create_graph=False, layer=None, upsample="bilinear"):
    """Guided backprop (B, C, H, W) times the upsampled Grad-CAM map (B, 1, H, W) (Selvaraju et al. 2017)."""
    return guided_backprop(model, x, target) * gradcam(model, x, target, layer=layer, upsample=upsample)
