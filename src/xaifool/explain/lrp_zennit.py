"""LRP through zennit (Bach et al. 2015): the canonizers of the book's architectures and the
zennit composite of each entry of :data:`xaifool.explain.lrp_composites.COMPOSITES`.

:func:`lrp_zennit` is the LRP interpreter's map (no graph to the weights: zennit builds its modified
weights from ``param.data``); :func:`lrp_objective_gradient` is the input attacks' surrogate (relevance
gated by sigmoid(β z)). A map differentiable in the weights comes from
:func:`xaifool.explain.lrp_functional.relevance`, tested equal to :func:`lrp_zennit`.
"""
from __future__ import annotations

import functools

import torch
import torch.nn as nn
import torch.nn.functional as F

from .lrp_composites import composite_spec

__all__ = ["lrp_zennit", "lrp_objective_gradient", "lrp_canonizers", "lrp_composite", "lrp_input", "exact_merge"]


@functools.lru_cache(maxsize=None)  # one subclass per zennit class, not one per call
def exact_merge(merge_cls):
    """``merge_cls`` (a zennit MergeBatchNorm canonizer) whose merged batch norms are exactly the
    identity (see :func:`lrp_canonizers`); zennit restores the original statistics on removal."""

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


def lrp_canonizers(net: nn.Module):
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
    on ResNet-20). :func:`exact_merge` sets ``running_var = 1 − eps`` instead, which makes the
    leftover batch norm the identity.
    """
    from torchvision.models.mobilenetv2 import InvertedResidual, MobileNetV2
    from zennit.canonizers import AttributeCanonizer, NamedMergeBatchNorm, SequentialMergeBatchNorm
    from zennit.layer import Sum

    from ..models import CifarResNet, BasicBlock

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
        if isinstance(module, BasicBlock):
            return {"forward": basic_block_forward.__get__(module), "canonizer_sum": Sum()}
        return None

    canon = [AttributeCanonizer(attribute_map)]
    NamedMergeBatchNorm, SequentialMergeBatchNorm = exact_merge(NamedMergeBatchNorm), exact_merge(SequentialMergeBatchNorm)
    if isinstance(net, CifarResNet):
        pairs = [(["conv1"], "bn1")]
        for lname in ("layer1", "layer2", "layer3"):
            for i in range(len(getattr(net, lname))):
                pairs += [([f"{lname}.{i}.conv1"], f"{lname}.{i}.bn1"), ([f"{lname}.{i}.conv2"], f"{lname}.{i}.bn2")]
        canon.append(NamedMergeBatchNorm(pairs))
    else:
        canon.append(SequentialMergeBatchNorm())
    return canon


def lrp_composite(net, composite="epsilon_plus_flat", epsilon=1e-6, beta_smooth=None):
    """The zennit composite ``composite`` (a key of :data:`xaifool.explain.lrp_composites.COMPOSITES`) for
    ``net``; ``beta_smooth`` swaps the ReLUs' Pass rule for zennit's ``ReLUBetaSmooth`` (relevance gated
    by sigmoid(β z), see :func:`lrp_objective_gradient`)."""
    from zennit.rules import ReLUBetaSmooth

    spec = composite_spec(composite)
    extra = [] if beta_smooth is None else [((nn.ReLU, nn.ReLU6), ReLUBetaSmooth(beta_smooth=float(beta_smooth)))]
    return spec.zennit(epsilon, extra, lrp_canonizers(net))


def lrp_input(model, x):
    from ..models import Normalized

    if isinstance(model, Normalized):
        return model.net, (x - model.mean) / model.std
    return model, x


def lrp_zennit(model, x, target, create_graph=False, composite="epsilon_plus_flat", epsilon=1e-6):
    """Relevance at the (normalised) network input, composite EpsilonPlusFlat by default.

    For a :class:`~xaifool.models.Normalized` model the relevance is taken at the network's
    own input ``z = (x − μ)/σ`` (same pixel grid), so that it is conserved; a plain model is
    explained at ``x``. (A gradient *of* this map comes from :func:`heatmap` with
    ``create_graph=True``, which runs :func:`xaifool.explain.lrp_functional.relevance`; the input attacks use the
    smoothed surrogate of :func:`lrp_objective_gradient`.)
    """
    from zennit.attribution import Gradient

    net, z = lrp_input(model, x)
    comp = lrp_composite(net, composite, epsilon)
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

    from ..models import Normalized

    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    net = model.net if isinstance(model, Normalized) else model
    other = sorted({type(m).__name__ for m in net.modules()
                    if isinstance(m, Activation) and not isinstance(m, (nn.ReLU, nn.ReLU6))})
    if other:
        raise ValueError(f"model must use nn.ReLU / nn.ReLU6 activations only (the surrogate gates those), "
                         f"found {other}")
    comp = lrp_composite(net, composite, epsilon, beta_smooth=beta)
    xg = x.detach().requires_grad_(True)
    with comp.context(net):
        _, z = lrp_input(model, xg)
        out = net(z)
        # Relevance starts from the target logit (one-hot × output), as in lrp_zennit.
        (rel,) = torch.autograd.grad(out, z, F.one_hot(target, out.shape[1]).to(out.dtype) * out,
                                     create_graph=True)
        loss = objective(rel, out)
        with comp.inactive():
            (grad,) = torch.autograd.grad(loss.sum(), xg)
    return loss.detach(), grad
