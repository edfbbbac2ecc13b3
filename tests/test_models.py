"""Pretrained models reach the accuracy the MANIFEST states; derived weights match; helpers behave."""
import pytest
import torch
import torch.nn as nn

from xaifool import data, models


@pytest.fixture(scope="module")
def imagenet(mirror_available):
    return data.load_imagenet_samples()


@pytest.mark.slow
@pytest.mark.parametrize("activation, manifest_top1", [("relu6", 0.827), ("relu", 0.832)])
def test_mobilenet_top1_on_1000_samples(imagenet, activation, manifest_top1):
    model = models.load_imagenet_classifier(activation, device="cpu")
    acc = models.accuracy(model, imagenet.x, imagenet.y, batch_size=50)
    assert abs(acc - manifest_top1) <= 0.01, acc


def test_dequantization_reproduces_mirror_file(mirror_available):
    derived = models.dequantize_mobilenet_v2(data.fetch("mobilenet_quantized.pt"))
    ref = torch.load(data.fetch("mobilenet_v2_dequantized_float.pth"), weights_only=True)
    assert set(derived) == set(ref)
    for k in ref:
        assert torch.equal(derived[k], ref[k]), k


@pytest.mark.slow
def test_resnet20_jpeg_test_accuracy(mirror_available):
    test = data.load_cifar10("test")
    acc = models.accuracy(models.load_cifar_resnet(20, device="cpu"), test.x, test.y, batch_size=500)
    assert abs(acc - 0.8103) <= 0.01, acc


def test_resnet20_lossless_train_accuracy(mirror_available):
    train = data.load_cifar10("train4000")
    acc = models.accuracy(models.load_cifar_resnet(20, device="cpu"), train.x, train.y, batch_size=500)
    assert acc >= 0.99, acc


def test_cifar_resnet_depths_and_params():
    params = {20: 269_722, 32: 464_154, 44: 658_586, 56: 853_018}  # MANIFEST
    for depth, n in params.items():
        assert sum(p.numel() for p in models.cifar_resnet(depth).parameters()) == n
    with pytest.raises(ValueError, match="depth"):
        models.cifar_resnet(18)


def test_smooth_replaces_relu_and_converges(mirror_available):
    model = models.load_cifar_resnet(20, device="cpu")
    n_relu = sum(isinstance(m, nn.ReLU) for m in model.modules())
    soft = models.smooth(model, beta=50.0)
    assert sum(isinstance(m, nn.ReLU) for m in soft.modules()) == 0
    assert sum(isinstance(m, nn.Softplus) for m in soft.modules()) == n_relu
    assert sum(isinstance(m, nn.ReLU) for m in model.modules()) == n_relu  # original untouched
    x = data.load_cifar10("test", 8).x
    with torch.no_grad():
        a, b = model(x), soft(x)
        assert (a.argmax(1) == b.argmax(1)).float().mean() >= 0.75
        # the smoothed copy is close but not equal
        assert 0 < (a - b).abs().max() < 5
    with pytest.raises(ValueError, match="beta"):
        models.smooth(model, 0)


def test_smooth_relu6_surrogate():
    act = models.SmoothReLU6(beta=200.0)
    x = torch.linspace(-3, 9, 101)
    assert torch.allclose(act(x), torch.clamp(x, 0, 6), atol=1e-2)


def test_tabular_model_trains_and_is_cached(mirror_available, tmp_path, monkeypatch):
    monkeypatch.setenv("XAIFOOL_CACHE", str(tmp_path))
    from xaifool import config

    config.get_config.cache_clear()
    ds = data.load_tabular("german")
    try:
        net = models.train_tabular_model(ds, "logreg", epochs=30)
        assert len(list(tmp_path.rglob("*.pt"))) == 1
        calls = []
        monkeypatch.setattr(torch.optim, "Adam", lambda *a, **k: calls.append(1))  # training would fail now
        again = models.train_tabular_model(ds, "logreg", epochs=30)
        assert calls == []  # loaded from the cache, not retrained
    finally:
        config.get_config.cache_clear()
    for (k, v), (_, w) in zip(net.state_dict().items(), again.state_dict().items()):
        assert torch.equal(v, w), k
    X, y = torch.from_numpy(ds.X_test), torch.from_numpy(ds.y_test)
    base = max(ds.y_test.mean(), 1 - ds.y_test.mean())
    assert models.accuracy(net, X, y) >= base  # at least as good as the majority class
    with pytest.raises(ValueError, match="kind"):
        models.train_tabular_model(ds, "forest")


def test_mlp_beats_majority_on_adult(mirror_available):
    ds = data.load_tabular("adult")
    net = models.train_tabular_model(ds, "mlp", epochs=20)
    acc = models.accuracy(net, torch.from_numpy(ds.X_test), torch.from_numpy(ds.y_test))
    assert acc > 1 - ds.y_test.mean() + 0.04, acc  # majority class is ~75 %


# --- depthwise convolutions as shifted sums (the surrogate's fast double backward) ---

@pytest.mark.parametrize("k,stride,padding,dilation,bias", [
    (3, 1, 1, 1, True), (3, 2, 1, 1, False), (5, 1, 2, 1, True), (3, 2, 0, 1, True), (3, 1, 2, 2, False),
    ((3, 1), (2, 1), (1, 0), 1, True)])
def test_depthwise_shifts_equal_the_grouped_convolution(k, stride, padding, dilation, bias):
    from xaifool.models import DepthwiseShifts

    torch.manual_seed(0)
    conv = nn.Conv2d(6, 6, k, stride=stride, padding=padding, dilation=dilation, groups=6, bias=bias).double()
    x = torch.randn(2, 6, 11, 9, dtype=torch.float64, requires_grad=True)
    shifts = DepthwiseShifts(conv)
    assert shifts.weight is conv.weight and set(shifts.state_dict()) == set(conv.state_dict())
    assert torch.allclose(shifts(x), conv(x), atol=1e-12)
    # the same function, so the same first derivatives w.r.t. input and weights
    r = torch.randn_like(conv(x))
    g_conv = torch.autograd.grad((conv(x) * r).sum(), [x, conv.weight])
    g_shift = torch.autograd.grad((shifts(x) * r).sum(), [x, conv.weight])
    assert all(torch.allclose(a, b, atol=1e-12) for a, b in zip(g_conv, g_shift))
    assert torch.autograd.gradgradcheck(lambda t: shifts(t) ** 2, (x,))


def test_depthwise_shifts_refuse_other_convolutions():
    from xaifool.models import DepthwiseShifts

    for conv in (nn.Conv2d(4, 8, 3), nn.Conv2d(4, 4, 3, groups=2), nn.Conv2d(4, 4, 3, groups=4, padding="same"),
                 nn.Conv2d(4, 4, 3, groups=4, padding=1, padding_mode="reflect")):
        with pytest.raises(ValueError, match="^conv must be a depthwise"):
            DepthwiseShifts(conv)


def test_smooth_surrogate_double_backward_unchanged_by_the_shifts():
    """The attack's quantity — the input gradient of a loss on the surrogate's gradient map — is the
    same with the depthwise layers as shifted sums (what smooth() builds) as with grouped convolutions."""
    from xaifool.models import DepthwiseShifts, smooth

    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU6(), nn.Conv2d(8, 8, 3, padding=1, groups=8, stride=2),
                        nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval()
    with torch.no_grad():
        net[3].running_mean.uniform_(-0.5, 0.5)
        net[3].running_var.uniform_(0.5, 2.0)
    fast = smooth(net, 20.0)
    assert isinstance(fast[2], DepthwiseShifts)
    assert not any(isinstance(m, nn.Conv2d) and m.groups > 1 for m in fast.modules())
    slow = smooth(net, 20.0)
    slow[2] = net[2]                      # the grouped convolution itself (frozen, same weights)
    x = torch.rand(3, 3, 16, 16)

    def attack_gradient(model):
        xg = x.clone().requires_grad_(True)
        (h,) = torch.autograd.grad(model(xg)[:, 1].sum(), xg, create_graph=True)
        (g,) = torch.autograd.grad((h.abs().sum(1).flatten(1)[:, :40]).sum(), xg)
        return g

    a, b = attack_gradient(fast), attack_gradient(slow)
    assert torch.allclose(a, b, rtol=1e-4, atol=1e-6 * b.abs().max())


def test_depthwise_round_trip_keeps_the_parameters_and_the_function():
    from xaifool.models import DepthwiseShifts, depthwise_as_convs, depthwise_as_shifts

    torch.manual_seed(2)
    net = nn.Sequential(nn.Conv2d(3, 6, 1), nn.Conv2d(6, 6, 3, padding=1, groups=6, stride=2), nn.ReLU6(),
                        nn.Conv2d(6, 6, 3, padding=1, groups=6, bias=False))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    params = [id(p) for p in net.parameters()]
    x = torch.rand(2, 3, 10, 10)
    y = net(x)
    assert depthwise_as_shifts(net) == 2 and isinstance(net[1], DepthwiseShifts) and isinstance(net[0], nn.Conv2d)
    assert torch.allclose(net(x), y, atol=1e-6) and [id(p) for p in net.parameters()] == params
    assert depthwise_as_convs(net) == 2 and type(net[1]) is nn.Conv2d and net[3].groups == 6 and net[3].bias is None
    assert [id(p) for p in net.parameters()] == params and torch.equal(net(x), y)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
