"""Functional LRP: a relevance map that autograd can differentiate with respect to the model's *parameters*.

:func:`xaifool.explain.lrp_zennit.lrp_zennit` runs zennit, which builds its modified weights from ``param.data``
(and merges batch norms into ``.data``): the autograd graph to the weights is cut, so an attack
that fine-tunes a model to fool its LRP map (Heo et al. 2019) has no gradient to follow.
:func:`relevance` computes the same map from the live parameters, with ordinary tensor
operations only:

1. a forward pass through the canonized network (batch norms merged into the preceding
   convolution, functionally, from parameters and running statistics) records every layer's
   input;
2. relevance starts at ``one_hot(target) × logits`` and is propagated back layer by layer with
   zennit's rules, each written as ``R_in = x ⊙ Wᵀ (R_out / stab(z))`` with an explicit transposed
   convolution / matrix product (no ``stop_grad``: the denominator ``z`` and ``R_out`` stay in the
   graph, so the derivative is the derivative of the map itself).

zennit (0.5.1, with the canonizers of :func:`xaifool.explain.lrp_zennit.lrp_canonizers`) is the reference
implementation; ``tests/test_lrp.py`` checks agreement with it (ResNet-20 in float32: 6e-7
relative; MobileNetV2: identical; float64: ~1e-13) and the parameter and input gradients against
finite differences.

Rules (zennit 0.5.1 definitions, ``stab(z) = z + ε·(sign(z) + [z = 0])``):

* ``Epsilon(ε)``: ``R_in = x ⊙ Wᵀ(R / stab_ε(W x + b))``;
* ``ZPlus``: ``z = W⁺x⁺ + b⁺ + W⁻x⁻`` (positive contributions from both signs of the input),
  ``R_in = x⁺ ⊙ W⁺ᵀ s + x⁻ ⊙ W⁻ᵀ s`` with ``s = R / stab_1e-6(z)``;
* ``AlphaBeta(2, 1)``: ``2·`` (the ZPlus term) ``− 1·`` (the same with the roles of W⁺ and W⁻
  swapped, bias b⁻);
* ``Flat``: all weights 1, bias 0, input 1: ``R_in = 1ᵀ(R / stab_1e-6(1ᵀ1))``;
* ``Norm`` at residual sums and average pools: ``R_in = x ⊙ ∂pool/∂xᵀ (R / stab_1e-6(pool(x)))``
  (each summand ``a_i`` of ``Σ a_i`` gets ``a_i R / stab(Σ a)``);
* ``Pass`` at activations and left-over batch norms: relevance passes unchanged.

Composites (every entry of :data:`xaifool.explain.lrp_composites.COMPOSITES`): ``"epsilon_plus_flat"`` (the book's default: Flat on the first
linear/convolutional layer in module order, ZPlus on the other convolutions, Epsilon(ε) on
``nn.Linear``), ``"epsilon"`` (Epsilon(ε) on every convolution and linear layer) and
``"epsilon_alpha2_beta1_flat"`` (as the default, AlphaBeta(2, 1) on convolutions); all three
use Norm at sums and pools and Pass at activations.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .lrp_composites import composite_spec

__all__ = ["relevance", "SUPPORTED_ARCHITECTURES"]

SUPPORTED_ARCHITECTURES = ("xaifool.models.CifarResNet", "torchvision MobileNetV2",
                           "nn.Sequential of Conv2d/Linear/BatchNorm/ReLU/ReLU6/AvgPool/Flatten/Dropout/Identity "
                           "(and xaifool's BasicBlock / torchvision's InvertedResidual)",
                           "any of these wrapped in xaifool.models.Normalized")
_STABILIZER = 1e-6  # zennit's stabiliser of every rule other than Epsilon (composites' default)


def _stabilize(z: torch.Tensor, epsilon: float) -> torch.Tensor:
    """zennit.core.stabilize: ``z + ε·sign(z)``, with sign(0) = +1. Its derivative is 1."""
    return z + ((z == 0).to(z) + z.sign()) * epsilon


def _unsupported(what: str) -> ValueError:
    return ValueError(f"model contains {what}, which relevance() does not support; supported architectures: "
                      f"{'; '.join(SUPPORTED_ARCHITECTURES)}")


def _linear_vjp(fn, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``(∂fn/∂x)ᵀ v`` for a *linear* parameter-free op ``fn`` (pooling, slicing, padding); differentiable in v."""
    with torch.enable_grad():
        dummy = torch.zeros_like(x, requires_grad=True)  # fn is linear: its Jacobian does not depend on x
        (g,) = torch.autograd.grad(fn(dummy), dummy, v, create_graph=v.requires_grad)
    return g


# --------------------------------------------------------------------------------------
# Layers: forward(x) -> (y, state); relevance(state, R_out) -> R_in
# --------------------------------------------------------------------------------------

class _Seq:
    def __init__(self, ops):
        self.ops = list(ops)

    def forward(self, x):
        states = []
        for op in self.ops:
            x, s = op.forward(x)
            states.append(s)
        return x, states

    def relevance(self, states, r):
        for op, s in zip(reversed(self.ops), reversed(states)):
            r = op.relevance(s, r)
        return r


class _Affine:
    """Conv2d or Linear, with the batch norm that follows it merged in; rule ``epsilon``, ``zplus``,
    ``alpha_beta`` or ``flat``."""

    def __init__(self, module, bn, rule, epsilon):
        if isinstance(module, nn.Conv2d):
            if module.padding_mode != "zeros" or isinstance(module.padding, str):
                raise _unsupported(f"a Conv2d with padding={module.padding!r}, padding_mode={module.padding_mode!r}")
        if bn is not None and (bn.running_mean is None or bn.running_var is None):
            raise _unsupported("a batch norm without running statistics")
        self.m, self.bn, self.rule, self.epsilon = module, bn, rule, epsilon
        self.conv = isinstance(module, nn.Conv2d)

    def params(self):
        """Weight and bias with the batch norm merged (zennit's MergeBatchNorm, exact: no leftover BN)."""
        w, b = self.m.weight, self.m.bias
        bn = self.bn
        if bn is not None:
            scale = (bn.running_var + bn.eps) ** .5
            scale = (bn.weight / scale) if bn.weight is not None else 1.0 / scale
            w = w * scale.view(-1, *[1] * (w.dim() - 1))
            b = ((b if b is not None else 0.0) - bn.running_mean) * scale
            if bn.bias is not None:
                b = b + bn.bias
        return w, b

    def apply(self, x, w, b=None):
        if self.conv:
            m = self.m
            return F.conv2d(x, w, b, m.stride, m.padding, m.dilation, m.groups)
        return F.linear(x, w, b)

    def adjoint(self, s, w, x_shape):
        """Wᵀ s: the transpose of :meth:`apply` (without bias) at ``s``."""
        if not self.conv:
            return s @ w
        m = self.m
        out_pad = tuple(
            x_shape[2 + i] - ((s.shape[2 + i] - 1) * m.stride[i] - 2 * m.padding[i]
                              + m.dilation[i] * (m.kernel_size[i] - 1) + 1)
            for i in range(2))
        return F.conv_transpose2d(s, w, None, m.stride, m.padding, out_pad, m.groups, m.dilation)

    def forward(self, x):
        w, b = self.params()
        y = self.apply(x, w, b)
        return y, (x, w, b, y)

    def relevance(self, state, r):
        x, w, b, y = state
        if self.rule == "epsilon":
            return x * self.adjoint(r / _stabilize(y, self.epsilon), w, x.shape)
        if self.rule == "flat":
            ones_w = torch.ones_like(w)
            z = self.apply(torch.ones_like(x), ones_w)
            return self.adjoint(r / _stabilize(z, _STABILIZER), ones_w, x.shape)
        xp, xn = x.clamp(min=0), x.clamp(max=0)
        wp, wn = w.clamp(min=0), w.clamp(max=0)
        bp = None if b is None else b.clamp(min=0)

        def term(w_pos_in, w_neg_in, bias):
            # x⁺ through w_pos_in (with bias) plus x⁻ through w_neg_in, normalised by their sum
            z = self.apply(xp, w_pos_in, bias) + self.apply(xn, w_neg_in)
            s = r / _stabilize(z, _STABILIZER)
            return xp * self.adjoint(s, w_pos_in, x.shape) + xn * self.adjoint(s, w_neg_in, x.shape)

        if self.rule == "zplus":
            return term(wp, wn, bp)
        if self.rule == "alpha_beta":  # alpha = 2, beta = 1
            bn_ = None if b is None else b.clamp(max=0)
            return 2.0 * term(wp, wn, bp) - term(wn, wp, bn_)
        raise AssertionError(self.rule)


class _BatchNormPass:
    """A batch norm not merged into a layer: eval-mode forward from running stats, Pass rule."""

    def __init__(self, bn):
        if bn.running_mean is None or bn.running_var is None:
            raise _unsupported("a batch norm without running statistics")
        self.bn = bn

    def forward(self, x):
        bn = self.bn
        return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps), None

    def relevance(self, state, r):
        return r


class _Activation:
    """ReLU / ReLU6 (never in place: recorded tensors must stay intact); Pass rule."""

    def __init__(self, fn):
        self.fn = fn

    def forward(self, x):
        return self.fn(x), None

    def relevance(self, state, r):
        return r


class _Reshape:
    """Flatten, Dropout (eval), Identity: the relevance is reshaped back (gradient = Pass here)."""

    def __init__(self, fn):
        self.fn = fn

    def forward(self, x):
        return self.fn(x), x.shape

    def relevance(self, shape, r):
        return r.reshape(shape)


class _LinearOp:
    """A parameter-free linear op without a rule (the option-A shortcut): relevance flows as its gradient."""

    def __init__(self, fn):
        self.fn = fn

    def forward(self, x):
        return self.fn(x), x

    def relevance(self, x, r):
        return _linear_vjp(self.fn, x, r)


class _Pool:
    """Average pooling with zennit's Norm rule."""

    def __init__(self, fn):
        self.fn = fn

    def forward(self, x):
        y = self.fn(x)
        return y, (x, y)

    def relevance(self, state, r):
        x, y = state
        return x * _linear_vjp(self.fn, x, r / _stabilize(y, _STABILIZER))


class _Residual:
    """``post(branch(x) + shortcut(x))``; the sum gets the Norm rule (zennit's ``Sum`` canonizer)."""

    def __init__(self, branch, shortcut, post=None):
        self.branch, self.shortcut, self.post = branch, shortcut, post or _Seq([])

    def forward(self, x):
        a, sa = self.branch.forward(x)
        c, sc = self.shortcut.forward(x)
        y = a + c
        out, sp = self.post.forward(y)
        return out, (a, c, y, sa, sc, sp)

    def relevance(self, state, r):
        a, c, y, sa, sc, sp = state
        s = self.post.relevance(sp, r) / _stabilize(y, _STABILIZER)
        return self.branch.relevance(sa, a * s) + self.shortcut.relevance(sc, c * s)


# --------------------------------------------------------------------------------------
# Architectures
# --------------------------------------------------------------------------------------

class _Builder:
    def __init__(self, net, composite, epsilon):
        self.spec, self.epsilon = composite_spec(composite), float(epsilon)
        # zennit's SpecialFirstLayerMapComposite: the first linear-type module in named_modules() order
        self.first = next((m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))), None)

    def affine(self, module, bn=None):
        spec = self.spec   # the rules of the composite's entry in the shared table
        if module is self.first and spec.first_rule is not None:
            rule = spec.first_rule
        elif isinstance(module, nn.Linear):
            rule = spec.linear_rule
        else:
            rule = spec.conv_rule
        return _Affine(module, bn, rule, self.epsilon)

    def sequence(self, modules) -> _Seq:
        """Modules run in order; a batch norm right after a Conv2d / Linear is merged into it, as
        zennit's SequentialMergeBatchNorm does (nested nn.Sequential flattened)."""
        from torchvision.models.mobilenetv2 import InvertedResidual

        from ..models import BasicBlock

        flat = []

        def collect(mods):
            for m in mods:
                if type(m) is nn.Sequential or (isinstance(m, nn.Sequential) and type(m).forward is nn.Sequential.forward):
                    collect(m)
                else:
                    flat.append(m)

        collect(modules)
        ops, i = [], 0
        while i < len(flat):
            m = flat[i]
            nxt = flat[i + 1] if i + 1 < len(flat) else None
            if isinstance(m, (nn.Conv2d, nn.Linear)) and type(m) in (nn.Conv2d, nn.Linear):
                bn_type = nn.BatchNorm2d if isinstance(m, nn.Conv2d) else nn.BatchNorm1d
                if type(nxt) is bn_type:
                    ops.append(self.affine(m, nxt))
                    i += 2
                    continue
                ops.append(self.affine(m))
            elif type(m) in (nn.BatchNorm1d, nn.BatchNorm2d):
                ops.append(_BatchNormPass(m))
            elif type(m) is nn.ReLU:
                ops.append(_Activation(F.relu))
            elif type(m) is nn.ReLU6:
                ops.append(_Activation(lambda t: F.hardtanh(t, 0.0, 6.0)))
            elif type(m) is nn.AvgPool2d:
                ops.append(_Pool(lambda t, m=m: F.avg_pool2d(t, m.kernel_size, m.stride, m.padding, m.ceil_mode,
                                                             m.count_include_pad, m.divisor_override)))
            elif type(m) is nn.AdaptiveAvgPool2d:
                ops.append(_Pool(lambda t, m=m: F.adaptive_avg_pool2d(t, m.output_size)))
            elif type(m) is nn.Flatten:
                ops.append(_Reshape(lambda t, m=m: t.flatten(m.start_dim, m.end_dim)))
            elif type(m) in (nn.Dropout, nn.Identity):
                ops.append(_Reshape(lambda t: t))
            elif type(m) is BasicBlock:
                ops.append(self.basic_block(m))
            elif type(m) is InvertedResidual:
                ops.append(self.inverted_residual(m))
            else:
                raise _unsupported(f"a {type(m).__name__} module")
            i += 1
        return _Seq(ops)

    def basic_block(self, blk) -> _Residual:
        from ..models import ShortcutA

        branch = _Seq([self.affine(blk.conv1, blk.bn1), _Activation(F.relu), self.affine(blk.conv2, blk.bn2)])
        if type(blk.shortcut) is ShortcutA:
            pad = blk.shortcut.pad
            shortcut = _LinearOp(lambda t: F.pad(t[:, :, ::2, ::2], (0, 0, 0, 0, pad, pad)))
        elif type(blk.shortcut) is nn.Identity:
            shortcut = _Seq([])
        else:
            raise _unsupported(f"a BasicBlock with shortcut {type(blk.shortcut).__name__}")
        if type(blk.relu1) is not nn.ReLU or type(blk.relu2) is not nn.ReLU:
            raise _unsupported("a BasicBlock whose activations are not nn.ReLU")
        return _Residual(branch, shortcut, _Seq([_Activation(F.relu)]))

    def inverted_residual(self, blk):
        branch = self.sequence(blk.conv)
        return _Residual(branch, _Seq([])) if blk.use_res_connect else branch

    def cifar_resnet(self, net) -> _Seq:
        if type(net.relu) is not nn.ReLU:
            raise _unsupported("a CifarResNet whose activations are not nn.ReLU")
        blocks = [b for layer in (net.layer1, net.layer2, net.layer3) for b in layer]
        return _Seq([self.affine(net.conv1, net.bn1), _Activation(F.relu), self.sequence(blocks),
                     _Pool(lambda t: F.adaptive_avg_pool2d(t, net.pool.output_size)),
                     _Reshape(lambda t: torch.flatten(t, 1)), self.affine(net.linear)])

    def mobilenet_v2(self, net) -> _Seq:
        # torchvision's forward pools functionally; explain._lrp_canonizers routes it through an
        # AdaptiveAvgPool2d((1, 1)) module, i.e. the Norm rule.
        return _Seq([self.sequence(net.features), _Pool(lambda t: F.adaptive_avg_pool2d(t, (1, 1))),
                     _Reshape(lambda t: torch.flatten(t, 1)), self.sequence(net.classifier)])


def _program(net: nn.Module, composite: str, epsilon: float):
    from torchvision.models import MobileNetV2

    from ..models import CifarResNet

    builder = _Builder(net, composite, epsilon)
    if type(net) is CifarResNet:
        return builder.cifar_resnet(net)
    if type(net) is MobileNetV2:
        return builder.mobilenet_v2(net)
    if type(net) is nn.Sequential:
        return builder.sequence(net)
    raise ValueError(f"model must be one of the supported architectures ({'; '.join(SUPPORTED_ARCHITECTURES)}), "
                     f"got {type(net).__name__}")


def relevance(model: nn.Module, x: torch.Tensor, target, *, composite: str = "epsilon_plus_flat",
              epsilon: float = 1e-6, create_graph: bool = False) -> torch.Tensor:
    """LRP relevance at the network's own input, differentiable in the parameters and in ``x``.

    Computes what :func:`xaifool.explain._lrp` (zennit, the reference implementation) returns,
    from the live parameters and buffers of ``model`` (see the module docstring for the rules):

    model:        a supported architecture (:data:`SUPPORTED_ARCHITECTURES`); for a
                  :class:`~xaifool.models.Normalized` model the relevance is taken at the
                  network's input ``z = (x − mean)/std``, otherwise at ``x``. Batch norms use their
                  running statistics (eval-mode semantics) whatever ``model.training`` says;
                  dropout is the identity. The model is not modified (no hooks, no ``.data``
                  writes).
    x:            (B, C, H, W) images (or (B, d) rows for a Sequential of Linear layers)
    target:       int or (B,) class indices; relevance starts from ``one_hot(target) × logits``
    composite:    a key of :data:`xaifool.explain.lrp_composites.COMPOSITES`
    epsilon:      the Epsilon rule's stabiliser (the other rules use zennit's fixed 1e-6)
    create_graph: keep the autograd graph, so that e.g.
                  ``torch.autograd.grad(loss(relevance(...)), model.parameters())`` works; the
                  derivative is that of the map itself (denominators and upper relevances are
                  not detached). With ``False`` (or under ``torch.no_grad()``) the result is
                  computed without a graph.
    returns:      relevance of x's shape (B, C, H, W), on x's device
    """
    from ..models import Normalized

    composite_spec(composite)   # a ValueError naming the composites of the shared table
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() < 2 or x.shape[0] == 0:
        raise ValueError(f"x must be a floating-point tensor (B, C, H, W) or (B, d), got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be an nn.Module of a supported architecture ({'; '.join(SUPPORTED_ARCHITECTURES)}),"
                         f" got {type(model).__name__}")
    net = model.net if isinstance(model, Normalized) else model
    program = _program(net, composite, epsilon)
    with torch.set_grad_enabled(bool(create_graph) and torch.is_grad_enabled()):
        z = (x - model.mean) / model.std if isinstance(model, Normalized) else x
        logits, states = program.forward(z)
        if logits.dim() != 2 or logits.shape[0] != x.shape[0]:
            raise ValueError(f"model must map (B, ...) to logits (B, K); got output shape {tuple(logits.shape)}")
        t = torch.as_tensor(target, dtype=torch.long, device=logits.device).reshape(-1)
        if t.numel() == 1:
            t = t.expand(x.shape[0])
        if t.numel() != x.shape[0]:
            raise ValueError(f"target must be an int or have one entry per sample ({x.shape[0]}), got {t.numel()}")
        k = logits.shape[1]
        if (t < 0).any() or (t >= k).any():
            raise ValueError(f"target must be a class index in 0..{k - 1}, got {t.tolist()}")
        r = F.one_hot(t, k).to(logits.dtype) * logits
        return program.relevance(states, r)
