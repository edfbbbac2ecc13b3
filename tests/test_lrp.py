"""Tests for :mod:`xaifool.explain.lrp_functional`, the functional LRP that is differentiable in the model's parameters.

* equality with zennit (:func:`xaifool.explain.lrp_zennit.lrp_zennit`, the reference) on ResNet-20, MobileNetV2 and
  small Sequentials built from their blocks, for the composites;
* parameter and input gradients of a loss of the relevance against central differences (float64);
* non-zero, finite parameter gradients on ResNet-20 (zennit's graph to the weights is cut);
* the model is left untouched, and argument validation.
"""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn

from xaifool.explain.lrp_composites import COMPOSITES
from xaifool.explain.lrp_functional import relevance

pytest.importorskip("zennit")

CPU = torch.device("cpu")


def _rel_errors(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    """(‖a − b‖ / ‖b‖, max |a − b| / max |b|)."""
    return (float((a - b).norm() / b.norm()), float((a - b).abs().max() / b.abs().max()))


def _assert_matches(got, ref, tol, what):
    assert got.shape == ref.shape, (got.shape, ref.shape)
    assert torch.isfinite(got).all()
    assert ref.abs().max() > 0
    errs = _rel_errors(got, ref)
    assert max(errs) <= tol, f"{what}: relative errors (norm, max) = {errs}, tolerance {tol}"


def _zennit(model, x, t, composite):
    from xaifool.explain.lrp_zennit import lrp_zennit as _lrp

    return _lrp(model, x, t, composite=composite).detach()


# ======================================================================================
# Fixtures
# ======================================================================================

@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: on the shared 2-core machine a second one spin-waits (the tiny float64
    network ran 30× slower with two)."""
    from xaifool.config import one_thread

    with one_thread():
        yield


@pytest.fixture(scope="module")
def resnet():
    from xaifool.data import DataFileError
    from xaifool.models import load_cifar_resnet

    try:
        return load_cifar_resnet(20, device=CPU)
    except DataFileError as err:
        pytest.skip(f"ResNet-20 weights unavailable: {err}")


@pytest.fixture(scope="module")
def cifar4(resnet):
    """Four CIFAR-10 test images (random images in [0, 1] without the data mirror) and predicted classes."""
    from xaifool.data import DataFileError, load_cifar10

    try:
        x = load_cifar10("test", 4, seed=0).x
    except DataFileError:
        x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        t = resnet(x).argmax(1)
    return x, t


@pytest.fixture(scope="module")
def mobilenet():
    from xaifool.data import DataFileError, load_imagenet_samples
    from xaifool.models import load_imagenet_classifier

    try:
        model, x = load_imagenet_classifier(device=CPU), load_imagenet_samples(2).x
    except DataFileError as err:
        pytest.skip(f"ImageNet samples or MobileNetV2 weights unavailable: {err}")
    with torch.no_grad():
        t = model(x).argmax(1)
    return model, x, t


def _randomize_batch_norms(net: nn.Module, g: torch.Generator):
    """Non-trivial running statistics and affine parameters, so that merging them matters."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(0.2 * torch.randn(c, generator=g))
                m.running_var.copy_(0.5 + torch.rand(c, generator=g))
                m.weight.copy_(0.5 + torch.rand(c, generator=g))
                m.bias.copy_(0.3 * torch.rand(c, generator=g) - 0.05)  # mostly positive: few dead ReLUs


def _resnet_like(seed=0) -> nn.Sequential:
    """conv+BN+ReLU, a CIFAR-ResNet block with the option-A shortcut (stride 2, channel padding), an
    identity-shortcut block, AvgPool2d, Flatten, Linear."""
    from xaifool.models import BasicBlock

    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         BasicBlock(4, 8, 2), BasicBlock(8, 8, 1),
                         nn.AvgPool2d(2), nn.Flatten(), nn.Linear(32, 5))


def _mobilenet_like(seed=0) -> nn.Sequential:
    """conv+BN+ReLU6, MobileNetV2 blocks (depthwise convolutions, in-place ReLU6, a residual sum, and
    linear bottlenecks, so later convolutions see negative inputs), a conv with bias and no BN,
    AdaptiveAvgPool2d, Flatten, Dropout, Linear."""
    from torchvision.models.mobilenetv2 import InvertedResidual

    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU6(inplace=True),
                         InvertedResidual(8, 8, 1, 2), InvertedResidual(8, 12, 2, 2),
                         nn.Conv2d(12, 6, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2),
                         nn.Linear(6, 5))


SMALL_NETS = {"resnet_like": _resnet_like, "mobilenet_like": _mobilenet_like}


@pytest.fixture(scope="module", params=sorted(SMALL_NETS))
def small(request):
    """A small float64 network in eval mode with non-trivial batch norms, 5 random images (B, 3, 8, 8),
    targets 0..4 (every class, so every row of the last layer matters)."""
    net = SMALL_NETS[request.param]()
    _randomize_batch_norms(net, torch.Generator().manual_seed(1))
    with torch.no_grad():
        net[-1].weight.mul_(10.0)  # logits of order 1
    g = torch.Generator().manual_seed(2)
    x = torch.rand(5, 3, 8, 8, generator=g, dtype=torch.float64)
    return net.double().eval(), x, torch.arange(5)


# ======================================================================================
# 1. Equal to zennit
# ======================================================================================

@pytest.mark.parametrize("composite", COMPOSITES)
def test_small_net_equals_zennit(small, composite):
    """Small Sequentials (CIFAR-ResNet blocks; MobileNetV2 blocks with negative inputs to convolutions):
    generic parsing, BN merging and every rule of every composite, in float64 (measured: identical)."""
    net, x, t = small
    _assert_matches(relevance(net, x, t, composite=composite), _zennit(net, x, t, composite), 1e-10,
                    f"small net, {composite}")


def test_resnet20_equals_zennit_float32(resnet, cifar4):
    """The book's setting (float32, EpsilonPlusFlat). Measured: 6e-7 (norm) / 2e-6 (max) relative.

    (The "epsilon" composite is compared in float64 below: in float32, zennit's own map changes by
    5e-5 / 1.1e-4 relative between explaining the 4 images as a batch or one by one — the ε rule
    divides by near-cancelling sums — so 1e-4 is below float32's noise floor there.)"""
    x, t = cifar4
    _assert_matches(relevance(resnet, x, t), _zennit(resnet, x, t, "epsilon_plus_flat"), 1e-4,
                    "ResNet-20 float32, epsilon_plus_flat")


@pytest.mark.parametrize("composite", ["epsilon_plus_flat", "epsilon"])
def test_resnet20_equals_zennit_float64(resnet, cifar4, composite):
    """Measured: 7e-15 (epsilon_plus_flat) and 9e-14 (epsilon) relative."""
    x, t = cifar4
    model = copy.deepcopy(resnet).double()
    x = x.double()
    _assert_matches(relevance(model, x, t, composite=composite), _zennit(model, x, t, composite), 1e-9,
                    f"ResNet-20 float64, {composite}")


@pytest.mark.parametrize("composite", ["epsilon_plus_flat", "epsilon"])
def test_mobilenet_v2_equals_zennit(mobilenet, composite):
    """MobileNetV2 (ReLU), 2 images at 224 px, float32: the same tensor as zennit (measured error 0)."""
    model, x, t = mobilenet
    _assert_matches(relevance(model, x, t, composite=composite), _zennit(model, x, t, composite), 1e-4,
                    f"MobileNetV2, {composite}")


def test_batch_norm_merge_is_exact(resnet, cifar4):
    """The functionally merged network computes the model's own logits (float64, 1e-12): no leftover
    1/√(1 + eps) scaling per merged layer, which would be off by ~1e-4 relative on ResNet-20."""
    from xaifool.explain.lrp_functional import _program

    x, _ = cifar4
    model = copy.deepcopy(resnet).double()
    x = x.double()
    with torch.no_grad():
        ref = model(x)
        got, _ = _program(model.net, "epsilon_plus_flat", 1e-6).forward((x - model.mean) / model.std)
    assert float((got - ref).abs().max() / ref.abs().max()) < 1e-12


# ======================================================================================
# 2. Gradients against finite differences
# ======================================================================================

def _loss_fn(mask):
    return lambda rel: (mask * rel.pow(2)).sum()


def _derivative(f, h=1e-6):
    """f'(0) by central differences with one Richardson step, (4 D(h/2) − D(h)) / 3: the ε map has
    large third derivatives (plain central differences: 6e-6 relative error at h = 1e-6, 2e-6 from
    rounding at h = 1e-7), the extrapolation removes the h² term."""
    with torch.no_grad():
        d = [(f(s) - f(-s)) / (2 * s) for s in (h, h / 2)]
    return (4 * d[1] - d[0]) / 3


# ε = 1e-2 for the ε composite: with ε → 0 the map z / (z + ε·sign z) turns sharply at units with
# |z| ~ ε, where its derivatives grow like 1/ε; a finite-difference check then needs h ≪ ε
# (measured on the MobileNet-like net at ε = 1e-6: errors 1e-2 at h = 1e-6, shrinking as h²).
# ZPlus and the Norm rule normalise by sums of same-signed terms and keep zennit's 1e-6.
FD_CASES = [("epsilon_plus_flat", 1e-6), ("epsilon", 1e-2), ("epsilon_alpha2_beta1_flat", 1e-6)]


@pytest.mark.parametrize("composite, epsilon", FD_CASES)
def test_parameter_gradient_matches_finite_differences(small, composite, epsilon):
    """d/dθ Σ mask ⊙ R² for every weight tensor (conv, BN γ and β, linear), at the entry of the largest
    autograd gradient and two random entries. Measured: ≤ 1.5e-8 relative."""
    net, x, t = small
    net = copy.deepcopy(net)
    g = torch.Generator().manual_seed(3)
    mask = torch.rand(x.shape, generator=g, dtype=torch.float64)
    loss = _loss_fn(mask)
    params = dict(net.named_parameters())
    # every parameter but the last layer's bias (its derivative only goes through the ε-stabilised
    # ratio z / stab(z) of the logits: ~1e-6 of the others, below what differences resolve)
    names = [n for n in params if n != f"{len(net) - 1}.bias"]
    grads = torch.autograd.grad(loss(relevance(net, x, t, composite=composite, epsilon=epsilon, create_graph=True)),
                                [params[n] for n in names])
    assert all(torch.isfinite(gr).all() for gr in grads)
    worst = {}
    for name, grad in zip(names, grads):
        p = params[name]
        idx = [int(grad.abs().argmax())] + torch.randint(p.numel(), (2,), generator=g).tolist()
        ad, fd = [], []
        for i in idx:
            flat, old = p.detach().view(-1), p.view(-1)[i].item()

            def f(delta, flat=flat, i=i, old=old):
                flat[i] = old + delta
                try:
                    return loss(relevance(net, x, t, composite=composite, epsilon=epsilon))
                finally:
                    flat[i] = old

            ad.append(grad.reshape(-1)[i])
            fd.append(_derivative(f))
        ad, fd = torch.stack(ad), torch.stack(fd)
        assert fd.abs().max() > 0, f"{name}: finite differences vanish, the check would be vacuous"
        worst[name] = float((ad - fd).norm() / fd.norm())
    assert max(worst.values()) <= 1e-5, worst


@pytest.mark.parametrize("composite, epsilon", FD_CASES)
def test_input_gradient_matches_finite_differences(small, composite, epsilon):
    """Directional derivatives along the gradient itself and two random directions, errors relative to
    ‖∇‖·‖u‖ (the largest directional derivative along u). Measured: ≤ 5e-10."""
    net, x, t = small
    g = torch.Generator().manual_seed(4)
    mask = torch.rand(x.shape, generator=g, dtype=torch.float64)
    loss = _loss_fn(mask)
    xg = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(loss(relevance(net, xg, t, composite=composite, epsilon=epsilon,
                                                 create_graph=True)), xg)
    assert torch.isfinite(grad).all() and grad.abs().max() > 0
    errs = []
    for u in (grad / grad.norm(), *(torch.randn(x.shape, generator=g, dtype=torch.float64) for _ in range(2))):
        fd = _derivative(lambda delta, u=u: loss(relevance(net, x + delta * u, t, composite=composite,
                                                           epsilon=epsilon)))
        errs.append(float(((grad * u).sum() - fd).abs() / (grad.norm() * u.norm())))
    assert max(errs) <= 1e-5, errs


# ======================================================================================
# 3. Weight gradients on ResNet-20
# ======================================================================================

def test_resnet20_parameter_gradients_are_nonzero(resnet, cifar4):
    x, t = cifar4
    model = copy.deepcopy(resnet)
    named = dict(model.named_parameters())
    rel = relevance(model, x, t, create_graph=True)
    assert rel.requires_grad
    grads = dict(zip(named, torch.autograd.grad(rel.pow(2).sum(), list(named.values()))))
    for name, grad in grads.items():
        assert torch.isfinite(grad).all(), name
    convs_bns = [n for n in grads if n.endswith(".weight") and ("conv" in n or "bn" in n)]
    assert len(convs_bns) == 2 * 19  # 19 convolutions, 19 batch norms
    zero = [n for n in convs_bns if not grads[n].abs().sum() > 0]
    assert not zero, f"vanishing gradients for {zero}"


# ======================================================================================
# 4. The model is left alone; validation
# ======================================================================================

def _hooks(model):
    return {name: len(d) for name, m in model.named_modules()
            for d in (m._forward_hooks, m._forward_pre_hooks, m._backward_hooks, m._backward_pre_hooks)
            if len(d)}


def test_model_unchanged(resnet, cifar4, small):
    x, t = cifar4
    for model, xs, ts in ((resnet, x, t), (small[0], small[1], small[2])):
        before = {k: v.clone() for k, v in model.state_dict().items()}
        flags = [p.requires_grad for p in model.parameters()]
        rel = relevance(model, xs, ts, create_graph=True)
        rel.pow(2).sum().backward(inputs=list(model.parameters()))
        relevance(model, xs, ts, composite="epsilon")
        after = model.state_dict()
        assert before.keys() == after.keys()
        assert all(torch.equal(before[k], after[k]) for k in before)
        assert not _hooks(model)
        assert not model.training
        assert flags == [p.requires_grad for p in model.parameters()]
        for p in model.parameters():
            p.grad = None
    assert not relevance(resnet, x, t).requires_grad  # create_graph=False: no graph


def test_unsupported_model_raises():
    class Custom(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(x)

    x = torch.rand(2, 3, 8, 8)
    for model in (Custom(), nn.Sequential(nn.Conv2d(3, 4, 3), nn.Tanh(), nn.Flatten(), nn.Linear(144, 2)),
                  nn.Sequential(nn.Conv2d(3, 4, 3), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(36, 2))):
        with pytest.raises(ValueError, match="^model") as err:
            relevance(model.eval(), x if not isinstance(model, Custom) else torch.rand(2, 4), 0)
        assert "CifarResNet" in str(err.value) and "MobileNetV2" in str(err.value)


def test_unknown_composite_raises(small):
    net, x, t = small
    with pytest.raises(ValueError, match="^composite") as err:
        relevance(net, x, t, composite="gamma")
    assert "epsilon_plus_flat" in str(err.value)
    with pytest.raises(ValueError, match="^target"):
        relevance(net, x, torch.tensor([0, 9, 1, 2, 3]))


def test_exact_merge_keeps_a_positive_eps_when_zennit_zeroes_it():
    """zennit 1.0's merge sets the batch norm's eps to 0, which torch before 2.14 refuses in every
    batch_norm call (seen on a GPU machine with torch 2.11): the merged batch norm must keep its own
    eps and still be exactly the identity, and the merged convolution must compute conv → bn."""
    import torch
    from torch import nn
    from zennit.canonizers import MergeBatchNorm

    from xaifool.explain.lrp_zennit import exact_merge as _exact_merge

    class ZeroEpsMerge(MergeBatchNorm):    # zennit 1.0's behaviour on top of the installed version's
        @staticmethod
        def merge_batch_norm(modules, batch_norm):
            MergeBatchNorm.merge_batch_norm(modules, batch_norm)
            batch_norm.eps = 0.0

    torch.manual_seed(0)
    conv, bn = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4, eps=1e-3)
    bn.running_mean.uniform_(-1, 1), bn.running_var.uniform_(0.5, 2), bn.weight.data.uniform_(0.5, 2)
    conv.eval(), bn.eval()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        want = bn(conv(x))
        _exact_merge(ZeroEpsMerge).merge_batch_norm([conv], bn)
        assert bn.eps == 1e-3
        z = conv(x)
        assert torch.equal(bn(z), z)
        torch.testing.assert_close(z, want, rtol=1e-5, atol=1e-5)
