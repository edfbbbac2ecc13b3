"""One entry point for every interpreter: ``explain(model, x, target, method, **options)``,
and beneath it one differentiable path, ``heatmap(model, x, target, method, create_graph=…)``.

Heatmaps follow Definition 1 of the review: ``h = I(x, c; ω)`` scores every input feature
for the logit of class ``c``. The registry :data:`METHODS` holds

============================  ==========  =================================================
method                        family      implementation
============================  ==========  =================================================
``gradient``                  gradient    ∂f_c/∂x (SimpleGrad, Simonyan et al. 2014)
``grad_x_input``              gradient    x ⊙ ∂f_c/∂x (Shrikumar et al. 2017)
``smoothgrad``                gradient    mean gradient over x + N(0, σ²) (Smilkov et al. 2017)
``integrated_gradients``      gradient    path integral from a baseline (Sundararajan et al. 2017)
``gradcam``                   cam         ReLU(Σ_k α_k A_k) at ``model.cam_layer`` (Selvaraju et al. 2017)
``guided_backprop``           gradient    gradient with negative signals zeroed at every ReLU (Springenberg et al. 2015)
``guided_gradcam``            cam         guided backprop ⊙ upsampled Grad-CAM (Selvaraju et al. 2017)
``lrp``                       lrp         zennit, composite EpsilonPlusFlat (Bach et al. 2015);
                                          with ``create_graph=True`` :func:`xaifool.lrp.relevance`
``lime``                      perturb.    the ``lime`` package (Ribeiro et al. 2016)
``kernel_shap``               perturb.    the ``shap`` package's KernelExplainer (Lundberg & Lee 2017)
============================  ==========  =================================================

Guided backpropagation overrides the backward pass of every ``nn.ReLU`` *and* ``nn.ReLU6``
module (captum's ``GuidedBackprop`` hooks ``nn.ReLU`` only, so on a ReLU6 network it silently
returns the plain gradient); a model without such modules is refused with a ValueError.

The gradient family and Grad-CAM are computed here with ``torch.autograd`` rather than
through captum, because attacks need ``create_graph=True`` (a gradient of the explanation)
and captum's attribution methods detach their graph; tests check them against captum's
``Saliency``, ``InputXGradient``, ``NoiseTunnel``, ``IntegratedGradients`` and ``LayerGradCam``.
zennit builds LRP's modified weights from ``param.data``, which cuts the graph to the weights;
with ``create_graph=True`` LRP is therefore computed by the functional implementation
:func:`xaifool.lrp.relevance` (tested equal to zennit), differentiable in ``x`` and the weights.

**Two entry points.** :func:`explain` is the checked, user-facing call: it validates its
arguments (one no-grad forward pass resolves ``target=None`` and checks the classes) and runs
the model in eval mode for the duration of the call, restoring every module's ``training``
flag afterwards, so it never moves batch-norm statistics. :func:`heatmap` is what attacks,
fine-tuning and sanity checks call in their loops: no validation forward pass, ``target`` a
(B,) long tensor, the model used in whatever mode it is in, and with ``create_graph=True`` a map
differentiable with respect to the input and the model's parameters (every method with
``differentiable=True``). Both apply the same post-processing, so ``heatmap == explain`` for an
eval-mode model.

**Post-processing, the same for every method** (stated once here):

* images: the raw attribution ``a`` (B, C, H, W) is reduced over channels by
  ``reduce="abs_sum"`` (default, ``Σ_c |a_c|``) or ``"sum"`` (signed ``Σ_c a_c``); Grad-CAM
  (one channel, non-negative) and superpixel methods are upsampled / painted to (H, W) first.
  Tables keep one value per feature, (B, d), and are reduced by ``abs`` only with ``"abs_sum"``.
* ``normalize="sum"`` (default) divides each map by the sum of its absolute values, so a
  non-negative map is a distribution over pixels (as in Ghorbani et al. 2019); ``"max"``
  divides by the largest absolute value; ``None`` keeps raw scale.
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import io
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import get_config
from .models import channels_last

__all__ = ["Method", "METHODS", "IMAGE_METHODS", "TABULAR_METHODS", "DIFFERENTIABLE_METHODS", "LRP_COMPOSITES",
           "explain", "heatmap", "attribute", "postprocess", "lrp_objective_gradient", "lime_table", "kernel_shap_table"]


@dataclass(frozen=True)
class Method:
    name: str
    fn: Callable
    family: str              # "gradient", "cam", "lrp", "perturbation"
    differentiable: bool     # supports create_graph=True (w.r.t. the input and the parameters)
    modalities: tuple[str, ...]
    citation: str


def import_quietly(name: str):
    """Import ``shap`` / ``lime`` without their import-time warnings (tqdm's IProgress notice)."""
    import importlib
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return importlib.import_module(name)


# --------------------------------------------------------------------------------------
# Gradient family
# --------------------------------------------------------------------------------------

def _select(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return logits.gather(1, target.view(-1, 1)).sum()


def _input_gradient(model, x, target, create_graph):
    if not x.requires_grad:
        x = x.detach().requires_grad_(True)
    out = model(x)
    (g,) = torch.autograd.grad(_select(out, target), x, create_graph=create_graph)
    return g


def _gradient(model, x, target, create_graph=False):
    return _input_gradient(model, x, target, create_graph)


def _grad_x_input(model, x, target, create_graph=False):
    return x * _input_gradient(model, x, target, create_graph)


def _smoothgrad(model, x, target, create_graph=False, n_samples=None, noise_level=0.15, seed=None,
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


def _integrated_gradients(model, x, target, create_graph=False, n_steps=None, baseline=None,
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


def _gradcam(model, x, target, create_graph=False, layer=None, upsample="bilinear"):
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


def _guided_backprop(model, x, target, create_graph=False):
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


def _guided_gradcam(model, x, target, create_graph=False, layer=None, upsample="bilinear"):
    """Guided backprop (B, C, H, W) times the upsampled Grad-CAM map (B, 1, H, W) (Selvaraju et al. 2017)."""
    return _guided_backprop(model, x, target) * _gradcam(model, x, target, layer=layer, upsample=upsample)


# --------------------------------------------------------------------------------------
# LRP with zennit
# --------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)  # one subclass per zennit class, not one per call
def _exact_merge(merge_cls):
    """``merge_cls`` (a zennit MergeBatchNorm canonizer) whose merged batch norms are exactly the
    identity (see :func:`_lrp_canonizers`); zennit restores the original statistics on removal."""

    class ExactMerge(merge_cls):
        @staticmethod
        def merge_batch_norm(modules, batch_norm):
            eps = batch_norm.eps
            merge_cls.merge_batch_norm(modules, batch_norm)
            # zennit 1.0 also sets eps to 0, which torch before 2.14 refuses in every batch_norm call
            # (2.14 only in training): keep the layer's own eps, and a variance of 1 - eps
            batch_norm.eps = eps
            batch_norm.running_var.data = torch.full_like(batch_norm.running_var.data, 1.0 - eps)

    ExactMerge.__name__ = f"Exact{merge_cls.__name__}"
    return ExactMerge


def _lrp_canonizers(net: nn.Module):
    """zennit canonizers for the architectures of this book.

    zennit ships canonizers for torchvision VGG/ResNet only. MobileNetV2's residual sum and
    our CIFAR ResNet's blocks add tensors functionally, which no rule would see; the
    AttributeCanonizer below routes those sums through zennit's ``Sum`` module so that its
    ``Norm`` rule distributes relevance over both branches (the same device zennit uses for
    torchvision's ResNet). MobileNetV2 also pools functionally (``F.adaptive_avg_pool2d``):
    unhooked, relevance would pass that op as a gradient, i.e. split *uniformly* over
    positions, dead ones included; the same canonizer routes it through an
    ``AdaptiveAvgPool2d`` module, which gets the proportional ``Norm`` rule.

    Batch norms are merged into the preceding convolution. zennit (0.5.1) then leaves each
    batch norm with ``running_var = 1`` but its ``eps``, so every merged layer still scales by
    1/√(1 + eps) — the canonized network is not exactly the original one (logits off by ~3e-4
    on ResNet-20). :func:`_exact_merge` sets ``running_var = 1 − eps`` instead, which makes the
    leftover batch norm the identity.
    """
    from torchvision.models.mobilenetv2 import InvertedResidual, MobileNetV2
    from zennit.canonizers import AttributeCanonizer, NamedMergeBatchNorm, SequentialMergeBatchNorm
    from zennit.layer import Sum

    from .models import CifarResNet, _BasicBlock

    def inverted_residual_forward(self, x):
        out = self.conv(x)
        if self.use_res_connect:
            out = self.canonizer_sum(torch.stack([x, out], dim=-1))
        return out

    def basic_block_forward(self, x):
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = self.canonizer_sum(torch.stack([self.shortcut(x), out], dim=-1))
        return self.relu2(out)

    def mobilenet_forward(self, x):
        x = self.canonizer_pool(self.features(x))
        return self.classifier(torch.flatten(x, 1))

    def attribute_map(name, module):
        if isinstance(module, MobileNetV2):
            return {"forward": mobilenet_forward.__get__(module), "canonizer_pool": nn.AdaptiveAvgPool2d((1, 1))}
        if isinstance(module, InvertedResidual):
            return {"forward": inverted_residual_forward.__get__(module), "canonizer_sum": Sum()}
        if isinstance(module, _BasicBlock):
            return {"forward": basic_block_forward.__get__(module), "canonizer_sum": Sum()}
        return None

    canon = [AttributeCanonizer(attribute_map)]
    NamedMergeBatchNorm, SequentialMergeBatchNorm = _exact_merge(NamedMergeBatchNorm), _exact_merge(SequentialMergeBatchNorm)
    if isinstance(net, CifarResNet):
        pairs = [(["conv1"], "bn1")]
        for lname in ("layer1", "layer2", "layer3"):
            for i in range(len(getattr(net, lname))):
                pairs += [([f"{lname}.{i}.conv1"], f"{lname}.{i}.bn1"), ([f"{lname}.{i}.conv2"], f"{lname}.{i}.bn2")]
        canon.append(NamedMergeBatchNorm(pairs))
    else:
        canon.append(SequentialMergeBatchNorm())
    return canon


LRP_COMPOSITES = ("epsilon_plus_flat", "epsilon", "epsilon_alpha2_beta1_flat")


def _lrp_composite(net, composite="epsilon_plus_flat", epsilon=1e-6, beta_smooth=None):
    """The zennit composite for ``net``; ``beta_smooth`` swaps the ReLUs' Pass rule for zennit's
    ``ReLUBetaSmooth`` (relevance gated by sigmoid(β z), see :func:`lrp_objective_gradient`)."""
    from zennit.composites import EpsilonAlpha2Beta1Flat, EpsilonPlusFlat, LayerMapComposite, layer_map_base
    from zennit.rules import Epsilon, ReLUBetaSmooth
    from zennit.types import Convolution, Linear

    extra = [] if beta_smooth is None else [((nn.ReLU, nn.ReLU6), ReLUBetaSmooth(beta_smooth=float(beta_smooth)))]
    canonizers = _lrp_canonizers(net)
    if composite == "epsilon":
        # layer_map_base gives activations Pass and sums / average pools the Norm rule.
        return LayerMapComposite(extra + layer_map_base() + [(Convolution, Epsilon(epsilon)), (Linear, Epsilon(epsilon))],
                                 canonizers=canonizers)
    if composite == "epsilon_plus_flat":
        return EpsilonPlusFlat(epsilon=epsilon, layer_map=extra, canonizers=canonizers)
    if composite == "epsilon_alpha2_beta1_flat":
        return EpsilonAlpha2Beta1Flat(epsilon=epsilon, layer_map=extra, canonizers=canonizers)
    raise ValueError(f"composite must be one of {LRP_COMPOSITES}, got {composite!r}")


def _lrp_input(model, x):
    from .models import Normalized

    if isinstance(model, Normalized):
        return model.net, (x - model.mean) / model.std
    return model, x


def _lrp(model, x, target, create_graph=False, composite="epsilon_plus_flat", epsilon=1e-6):
    """Relevance at the (normalised) network input, composite EpsilonPlusFlat by default.

    For a :class:`~xaifool.models.Normalized` model the relevance is taken at the network's
    own input ``z = (x − μ)/σ`` (same pixel grid), so that it is conserved; a plain model is
    explained at ``x``. (A gradient *of* this map comes from :func:`heatmap` with
    ``create_graph=True``, which runs :func:`xaifool.lrp.relevance`; the input attacks use the
    smoothed surrogate of :func:`lrp_objective_gradient`.)
    """
    from zennit.attribution import Gradient

    net, z = _lrp_input(model, x)
    comp = _lrp_composite(net, composite, epsilon)
    z = z.detach().requires_grad_(True)
    with Gradient(model=net, composite=comp, create_graph=create_graph) as attributor:
        # Start from the target logit itself (one-hot × output), so relevance sums to ≈ f_c(x).
        out, rel = attributor(z, lambda o: F.one_hot(target, o.shape[1]).to(o.dtype) * o)
    return rel


def lrp_objective_gradient(model, x, target, objective, *, beta, composite="epsilon_plus_flat", epsilon=1e-6):
    """Value and input gradient of ``objective(relevance, logits)`` for an LRP map: what an attack on LRP needs.

    An LRP map is itself a (modified) gradient, so its derivative with respect to ``x`` is a
    second derivative. Two things make that derivative meaningful (both checked against finite
    differences in the tests):

    * the surrogate keeps the network's ReLU forward pass and gates the relevance at each
      ReLU by sigmoid(β z) instead of passing it through (zennit's ``ReLUBetaSmooth`` rule, the
      Softplus derivative that Dombrowski et al. (2019) use for gradients). The map is then
      piecewise smooth with a derivative that does not vanish, and it tends to LRP as β → ∞.
      Dombrowski et al. ran LRP on a Softplus forward pass instead; here that is no good: rules
      that divide by a pre-activation z (the ``Norm`` rule at the residual sums) then see
      softplus(z)/z, which blows up near 0 (on ResNet-20 the resulting map correlates with
      LRP at ρ ≈ 0.3);
    * the outer derivative must use the network's *true* backward pass: it is taken inside the
      composite's ``inactive()`` context, while the canonizers (merged batch norms) are still
      in place.

    objective: callable ``(relevance (B, C, H, W), logits (B, K)) → (B,)`` per-sample loss.
    Returns ``(loss (B,), grad (B, C, H, W))``, both detached.
    """
    from zennit.types import Activation

    from .models import Normalized

    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    net = model.net if isinstance(model, Normalized) else model
    other = sorted({type(m).__name__ for m in net.modules()
                    if isinstance(m, Activation) and not isinstance(m, (nn.ReLU, nn.ReLU6))})
    if other:
        raise ValueError(f"model must use nn.ReLU / nn.ReLU6 activations only (the surrogate gates those), "
                         f"found {other}")
    comp = _lrp_composite(net, composite, epsilon, beta_smooth=beta)
    xg = x.detach().requires_grad_(True)
    with comp.context(net):
        _, z = _lrp_input(model, xg)
        out = net(z)
        # Relevance starts from the target logit (one-hot × output), as in _lrp.
        (rel,) = torch.autograd.grad(out, z, F.one_hot(target, out.shape[1]).to(out.dtype) * out,
                                     create_graph=True)
        loss = objective(rel, out)
        with comp.inactive():
            (grad,) = torch.autograd.grad(loss.sum(), xg)
    return loss.detach(), grad


# --------------------------------------------------------------------------------------
# Perturbation methods: lime and shap packages
# --------------------------------------------------------------------------------------

def _probabilities(model, batch_size):
    dev = next(model.parameters()).device

    @torch.no_grad()
    def fn(arr: np.ndarray) -> np.ndarray:
        t = torch.as_tensor(np.asarray(arr), dtype=torch.float32)
        # image perturbations are forward-only: faster in channels-last order on a CPU
        outs = [F.softmax(model(channels_last(t[i:i + batch_size].to(dev))), 1).cpu()
                for i in range(0, len(t), batch_size)]
        return torch.cat(outs).double().numpy()

    return fn


def _segments(img_hwc: np.ndarray, n_segments: int) -> np.ndarray:
    from skimage.segmentation import slic

    return slic(img_hwc, n_segments=n_segments, compactness=10, start_label=0)


def _lime(model, x, target, create_graph=False, background=None, n_samples=None, n_segments=50, seed=None,
          feature_names=None, categorical=None):
    cfg = get_config()
    seed = cfg.seed if seed is None else int(seed)
    bs = max(cfg.profile.batch_size, 64)
    out = torch.zeros(x.shape[0], 1, *x.shape[2:]) if x.dim() == 4 else torch.zeros(x.shape)
    if x.dim() == 4:
        lime_image = import_quietly("lime.lime_image")

        n = cfg.profile.lime_image_samples if n_samples is None else int(n_samples)
        explainer = lime_image.LimeImageExplainer(random_state=seed)
        proba = _probabilities(model, bs)
        for i in range(x.shape[0]):  # lime explains one image at a time; its samples are batched
            img = x[i].permute(1, 2, 0).detach().cpu().double().numpy()
            segs = _segments(img, n_segments)
            with contextlib.redirect_stderr(io.StringIO()):  # lime 0.2 always draws a tqdm bar
                exp = explainer.explain_instance(
                    img, lambda b: proba(np.transpose(b, (0, 3, 1, 2))), labels=(int(target[i]),),
                    top_labels=None, hide_color=0.0, num_samples=n, batch_size=bs,
                    segmentation_fn=lambda im: segs, random_seed=seed)
            heat = np.zeros(segs.shape)
            for s, wgt in exp.local_exp[int(target[i])]:
                heat[segs == s] = wgt
            out[i, 0] = torch.from_numpy(heat)
        return out.to(x.device)
    LimeTabularExplainer = import_quietly("lime.lime_tabular").LimeTabularExplainer

    if background is None:
        raise ValueError("background: LIME on tables needs training rows (N, d) to learn feature statistics")
    n = cfg.profile.lime_samples if n_samples is None else int(n_samples)
    proba = _probabilities(model, 4096)
    xs = x.detach().cpu().double().numpy()
    for c in torch.unique(target).tolist():
        rows = (target == c).nonzero().view(-1).cpu().numpy()
        a = lime_table(proba, xs[rows], background, n_samples=n, seed=seed, indices=rows, labels=(int(c),),
                       feature_names=feature_names, categorical=categorical)
        out[rows] = torch.as_tensor(a[0], dtype=out.dtype)
    return out.to(x.device)


def lime_table(predict_proba, rows, training, *, n_samples: int, seed: int, indices=None, labels=(1,),
               feature_names=None, categorical=(), sample_around_instance: bool = False,
               num_features: int | None = None) -> np.ndarray:
    """LIME (the ``lime`` package's ``LimeTabularExplainer``) on table rows; (len(labels), n, d) weights.

    The one seeding path for tabular LIME in the book: row ``i`` of ``rows`` is sampled with
    ``RandomState(seed + indices[i])`` (``indices`` defaults to 0, 1, …: the rows' positions in the
    caller's full set), so a row's explanation does not depend on which rows are explained with it
    or on how rows are split between processes. ``predict_proba`` receives all
    perturbations of one row in one call and returns (m, K) scores; ``labels`` picks the columns
    explained (several columns are explained on the same samples). ``discretize_continuous=False``;
    ``categorical`` lists the 0/1 columns (sampled from their training frequencies).
    """
    LimeTabularExplainer = import_quietly("lime.lime_tabular").LimeTabularExplainer

    training = np.asarray(training, dtype=np.float64)
    rows = np.asarray(rows, dtype=np.float64)
    d = training.shape[1]
    labels = tuple(int(c) for c in labels)
    nf = d if num_features is None else int(num_features)
    explainer = LimeTabularExplainer(training, feature_names=list(feature_names or range(d)),
                                     categorical_features=list(categorical or []), discretize_continuous=False,
                                     sample_around_instance=sample_around_instance, random_state=seed)
    out = np.zeros((len(labels), len(rows), d))
    indices = _row_indices(indices, len(rows))
    for i, r in enumerate(rows):
        explainer.random_state = explainer.base.random_state = np.random.RandomState(seed + indices[i])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # several score columns need not sum to one
            exp = explainer.explain_instance(r, predict_proba, labels=labels, num_features=nf, num_samples=n_samples)
        for k, c in enumerate(labels):
            for j, wgt in exp.as_map()[c]:
                out[k, i, j] = wgt
    return out


def _row_indices(indices, n: int) -> list[int]:
    idx = list(range(n)) if indices is None else [int(i) for i in np.asarray(indices).reshape(-1)]
    if len(idx) != n:
        raise ValueError(f"indices must give one index per row ({n}), got {len(idx)}")
    return idx


def kernel_shap_table(fn, rows, background, *, n_samples, seed: int, indices=None) -> np.ndarray:
    """KernelSHAP (the ``shap`` package's ``KernelExplainer``) on table rows; (K, n, d) Shapley values.

    The one seeding path for tabular KernelSHAP in the book: the explainer is built after
    ``np.random.seed(seed)`` and row ``i`` is explained after ``np.random.seed(seed + indices[i])``
    (shap samples coalitions with NumPy's global generator; ``indices`` as in :func:`lime_table`),
    so a row's values do not depend on the other rows of the call. ``fn(X)`` returns (m,) or (m, K) outputs; shap evaluates the row alone
    and then all its coalitions in one call. ``background``: (k, d) rows (equal weights) or a shap
    ``DenseData`` summary (weighted, e.g. from ``shap.kmeans``). ``n_samples``: coalitions per row
    (an int, or ``"auto"``: shap's 2·d + 2048).
    """
    shap = import_quietly("shap")

    rows = np.asarray(rows, dtype=np.float64)
    np.random.seed(seed)
    explainer = shap.KernelExplainer(fn, background)
    out = None
    indices = _row_indices(indices, len(rows))
    for i, r in enumerate(rows):
        np.random.seed(seed + indices[i])
        v = explainer.shap_values(r[None], nsamples=n_samples, silent=True)
        v = np.stack(v, -1) if isinstance(v, list) else np.asarray(v)  # (1, d) or (1, d, K)
        v = v.reshape(v.shape[1], -1).T  # (K, d)
        if out is None:
            out = np.zeros((len(v), len(rows), rows.shape[1]))
        out[:, i] = v
    return np.zeros((1, 0, rows.shape[1])) if out is None else out


def _kernel_shap(model, x, target, create_graph=False, background=None, n_samples=None, n_segments=50,
                 seed=None, n_background=None, feature_names=None, categorical=None):
    shap = import_quietly("shap")

    cfg = get_config()
    seed = cfg.seed if seed is None else int(seed)
    bs = max(cfg.profile.batch_size, 64)
    proba = _probabilities(model, bs)
    if x.dim() == 4:
        n = cfg.profile.lime_image_samples if n_samples is None else int(n_samples)
        out = torch.zeros(x.shape[0], 1, *x.shape[2:])
        for i in range(x.shape[0]):  # one image at a time; all coalitions of an image are batched
            img = x[i].detach().cpu().numpy()
            segs = _segments(img.transpose(1, 2, 0).astype(np.float64), n_segments)
            n_seg = int(segs.max()) + 1
            c = int(target[i])

            def f(z, img=img, segs=segs, c=c):
                masks = np.asarray(z, dtype=np.float32)[:, segs][:, None]  # (m, 1, H, W) superpixels on/off
                return proba(img[None] * masks)[:, c]

            np.random.seed(seed)
            explainer = shap.KernelExplainer(f, np.zeros((1, n_seg)))
            vals = np.asarray(explainer.shap_values(np.ones((1, n_seg)), nsamples=n, silent=True)).reshape(-1)
            out[i, 0] = torch.from_numpy(vals[segs])
        return out.to(x.device)
    n = cfg.profile.shap_samples if n_samples is None else int(n_samples)
    if background is None:
        raise ValueError("background: KernelSHAP on tables needs background rows (N, d)")
    bg = np.asarray(background, dtype=np.float64)
    k = cfg.profile.shap_background if n_background is None else int(n_background)
    np.random.seed(seed)
    summary = shap.kmeans(bg, k) if len(bg) > k else bg
    proba = _probabilities(model, 1 << 16)
    out = torch.zeros(x.shape)
    xs = x.detach().cpu().double().numpy()
    for c in torch.unique(target).tolist():
        rows = (target == c).nonzero().view(-1).cpu().numpy()
        vals = kernel_shap_table(lambda a, c=c: proba(a)[:, c], xs[rows], summary, n_samples=n, seed=seed,
                                 indices=rows)
        out[rows] = torch.as_tensor(vals[0], dtype=torch.float32)
    return out.to(x.device)


METHODS: dict[str, Method] = {
    m.name: m for m in [
        Method("gradient", _gradient, "gradient", True, ("image", "table"), "simonyan2014deep"),
        Method("grad_x_input", _grad_x_input, "gradient", True, ("image", "table"), "shrikumar2017learning"),
        Method("smoothgrad", _smoothgrad, "gradient", True, ("image", "table"), "smilkov2017smoothgrad"),
        Method("integrated_gradients", _integrated_gradients, "gradient", True, ("image", "table"),
               "sundararajan2017axiomatic"),
        Method("gradcam", _gradcam, "cam", True, ("image",), "selvaraju2017gradcam"),
        Method("guided_backprop", _guided_backprop, "gradient", False, ("image", "table"), "springenberg2015striving"),
        Method("guided_gradcam", _guided_gradcam, "cam", False, ("image",), "selvaraju2017gradcam"),
        Method("lrp", _lrp, "lrp", True, ("image", "table"), "bach2015pixel"),  # create_graph: xaifool.lrp
        Method("lime", _lime, "perturbation", False, ("image", "table"), "ribeiro2016why"),
        Method("kernel_shap", _kernel_shap, "perturbation", False, ("image", "table"), "lundberg2017unified"),
    ]
}
IMAGE_METHODS = tuple(n for n, m in METHODS.items() if "image" in m.modalities)
TABULAR_METHODS = tuple(n for n, m in METHODS.items() if "table" in m.modalities)
DIFFERENTIABLE_METHODS = tuple(n for n, m in METHODS.items() if m.differentiable)

#: Data-set context that every method accepts; methods that do not need it ignore it, so one
#: call site can loop over all methods of a table.
CONTEXT_OPTIONS = frozenset({"background", "feature_names", "categorical"})
REDUCTIONS = ("abs_sum", "sum")
NORMALIZATIONS = ("sum", "max", None)


def _check_call(method, x, create_graph) -> None:
    """The checks that need no forward pass: method name, x's type and shape, modality, create_graph."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}, got {method!r}")
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise ValueError("x must be a floating-point torch.Tensor of shape (B, C, H, W) or (B, d)")
    if x.dim() not in (2, 4) or x.shape[0] == 0:
        raise ValueError(f"x must have shape (B, C, H, W) for images or (B, d) for tables, got {tuple(x.shape)}")
    modality = "image" if x.dim() == 4 else "table"
    if modality not in METHODS[method].modalities:
        raise ValueError(f"method {method!r} does not apply to {modality}s; accepted for {modality}s: "
                         f"{IMAGE_METHODS if modality == 'image' else TABULAR_METHODS}")
    if create_graph and not METHODS[method].differentiable:
        raise ValueError(f"create_graph=True needs a differentiable method; method {method!r} is not. "
                         f"Differentiable methods: {DIFFERENTIABLE_METHODS}")


def _check_postprocess(reduce, normalize) -> None:
    if reduce not in REDUCTIONS:
        raise ValueError(f"reduce must be one of {REDUCTIONS}, got {reduce!r}")
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")


@functools.lru_cache(maxsize=None)
def _accepted_options(method: str) -> frozenset:
    return frozenset(inspect.signature(METHODS[method].fn).parameters) - {"model", "x", "target", "create_graph"}


def _method_options(method: str, options: dict) -> dict:
    """``options`` reduced to those ``method`` takes; a ValueError for any option no method takes."""
    accepted = _accepted_options(method)
    unknown = sorted(set(options) - accepted - CONTEXT_OPTIONS)
    if unknown:
        raise ValueError(f"option(s) {unknown} are not accepted by method {method!r}; accepted: "
                         f"{sorted(accepted)} (and {sorted(CONTEXT_OPTIONS)}, which every method takes)")
    return {k: v for k, v in options.items() if k in accepted}


@contextlib.contextmanager
def _eval_mode(model: nn.Module):
    """Every module of ``model`` in eval mode inside the block, each ``training`` flag restored after."""
    modes = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        yield model
    finally:
        for m, mode in modes:
            m.training = mode


def _validate(model, x, target, method, create_graph):
    """explain()'s checks: those of :func:`_check_call`, then one no-grad forward pass (call it with
    the model in eval mode, see :func:`_eval_mode`) for the output shape and the target classes."""
    _check_call(method, x, create_graph)
    dev = next(model.parameters()).device
    x = x.to(dev)
    with torch.no_grad():
        logits = model(x)
    if logits.dim() != 2 or logits.shape[0] != x.shape[0]:
        raise ValueError(f"model must map (B, ...) to logits (B, K); got output shape {tuple(logits.shape)}")
    k = logits.shape[1]
    if target is None:
        t = logits.argmax(1)
    else:
        t = torch.as_tensor(target, dtype=torch.long, device=dev).reshape(-1)
        if t.numel() == 1:
            t = t.expand(x.shape[0])
        if t.numel() != x.shape[0]:
            raise ValueError(f"target must be an int or have one entry per sample ({x.shape[0]}), got {t.numel()}")
        if (t < 0).any() or (t >= k).any():
            raise ValueError(f"target must be a class index in 0..{k - 1}, got {t.tolist()}")
    return x, t.contiguous()


def _attribution(model, x, target, method, create_graph, options):
    """The raw attribution; LRP with ``create_graph`` through the functional :func:`xaifool.lrp.relevance`."""
    if method == "lrp" and create_graph:
        from .lrp import relevance  # lrp imports this module

        return relevance(model, x, target, create_graph=True, **options)
    return METHODS[method].fn(model, x, target, create_graph=create_graph, **options)


def postprocess(a: torch.Tensor, image_shape=None, reduce: str = "abs_sum", normalize: str | None = "sum"):
    """Channel reduction and normalisation shared by every method (see module docstring).

    a: (B, C, H, W) or (B, d) raw attribution → (B, H, W) or (B, d) heatmap
    """
    _check_postprocess(reduce, normalize)
    if a.dim() == 4:
        h = a.abs().sum(1) if reduce == "abs_sum" else a.sum(1)
    else:
        h = a.abs() if reduce == "abs_sum" else a
    if normalize is not None:
        dims = tuple(range(1, h.dim()))
        scale = h.abs().sum(dims, keepdim=True) if normalize == "sum" else h.abs().amax(dims, keepdim=True)
        h = h / scale.clamp_min(1e-12)
    return h


def heatmap(model: nn.Module, x: torch.Tensor, target: torch.Tensor, method: str, *, create_graph: bool = False,
            reduce: str = "abs_sum", normalize: str | None = "sum", **options) -> torch.Tensor:
    """Heatmaps without a validation forward pass: the path attacks, fine-tuning and sanity checks call.

    model:        nn.Module mapping x to logits (B, K), used in the mode it is in (train mode: batch
                  statistics, and the method's own forward passes update batch-norm running stats)
    x:            (B, C, H, W) images or (B, d) table rows, on the model's device
    target:       (B,) long tensor of class indices in 0..K−1 (not range-checked here)
    method:       a key of :data:`METHODS`
    create_graph: keep the graph: the map is differentiable w.r.t. ``x`` and the model's parameters
                  (methods of :data:`DIFFERENTIABLE_METHODS`; LRP then runs :func:`xaifool.lrp.relevance`)
    reduce, normalize: post-processing, see the module docstring (the same as :func:`explain`)
    options:      method options (n_samples, n_steps, baseline, layer, composite, epsilon, seed, …)
    returns:      (B, H, W) for images, (B, d) for tables; detached unless ``create_graph``
    """
    _check_call(method, x, create_graph)
    if not isinstance(target, torch.Tensor) or target.dtype != torch.long or tuple(target.shape) != (x.shape[0],):
        got = (f"{target.dtype} tensor of shape {tuple(target.shape)}" if isinstance(target, torch.Tensor)
               else type(target).__name__)
        raise ValueError(f"target must be a torch.long tensor of shape ({x.shape[0]},) (one class per sample; "
                         f"explain() also takes None or an int), got {got}")
    _check_postprocess(reduce, normalize)
    a = _attribution(model, x, target, method, create_graph, _method_options(method, options))
    if not create_graph:
        a = a.detach()
    return postprocess(a, reduce=reduce, normalize=normalize)


def attribute(model: nn.Module, x: torch.Tensor, target=None, method: str = "gradient", *,
              create_graph: bool = False, **options) -> torch.Tensor:
    """Raw attribution of ``method`` before post-processing: same shape as ``x``
    (Grad-CAM and superpixel methods: (B, 1, H, W)). Validated and run in eval mode like :func:`explain`."""
    with _eval_mode(model):
        x, t = _validate(model, x, target, method, create_graph)
        return _attribution(model, x, t, method, create_graph, _method_options(method, options))


def explain(model: nn.Module, x: torch.Tensor, target=None, method: str = "gradient", *,
            create_graph: bool = False, reduce: str = "abs_sum", normalize: str | None = "sum",
            **options) -> torch.Tensor:
    """Heatmaps of ``model`` at ``x`` for class ``target``, with every argument checked.

    The model runs in eval mode for the call (each module's ``training`` flag is restored after), so
    batch-norm statistics never move; loops that need no checks call :func:`heatmap`.

    model:        nn.Module mapping x to logits (B, K)
    x:            (B, C, H, W) images in [0, 1] or (B, d) table rows
    target:       None (predicted class), an int, or (B,) class indices in 0..K−1
    method:       a key of :data:`METHODS`
    create_graph: keep the graph so the heatmap can be differentiated (:data:`DIFFERENTIABLE_METHODS`)
    reduce, normalize: post-processing, see module docstring
    options:      method options (n_samples, n_steps, baseline, layer, composite, background, seed, …)
    returns:      (B, H, W) for images, (B, d) for tables; on the model's device
    """
    with _eval_mode(model):
        x, t = _validate(model, x, target, method, create_graph)
        return heatmap(model, x, t, method, create_graph=create_graph, reduce=reduce, normalize=normalize,
                       **options)


def explain_many(model: nn.Module, x: torch.Tensor, methods, target=None, *, options: dict | None = None,
                 cache: bool = False, **common) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """Run several methods on the same batch.

    methods: iterable of method names
    options: {method: {option: value}} per-method options
    cache:   take the maps (and the seconds measured when they were computed) from the on-disk
             cache when the same network, images and settings were explained before
             (:func:`xaifool.cache.cached_call`)
    common:  options for every method (``reduce``, ``normalize``, ``background``, …)
    returns: ({method: heatmaps on CPU}, {method: wall-clock seconds per sample})
    """
    import time

    options = options or {}
    methods = list(methods)
    unknown = sorted(set(options) - set(methods))
    if unknown:
        raise ValueError(f"options has entries {unknown} for methods not in methods={list(methods)}")
    if cache:
        from .cache import cached_call

        return tuple(cached_call("explain-many", explain_many, model, x, methods, target, options=options, **common))
    maps, seconds = {}, {}
    # One untimed gradient call first, so that one-off start-up costs (thread pools, kernel
    # selection) are not charged to whichever method happens to run first.
    explain(model, x[:1], None if target is None else torch.as_tensor(target).reshape(-1)[:1], "gradient")
    for m in methods:
        t0 = time.perf_counter()
        maps[m] = explain(model, x, target, m, **{**common, **options.get(m, {})}).cpu()
        seconds[m] = (time.perf_counter() - t0) / x.shape[0]
    return maps, seconds
