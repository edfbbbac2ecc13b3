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
