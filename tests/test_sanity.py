"""Sanity checks (xaifool.sanity, Adebayo et al. 2018): randomisation changes exactly the layers it
should, the similarity functions behave at their extremes and match scikit-image / scipy, and a
randomised model's gradient no longer looks like the trained one's."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
from scipy.stats import pearsonr, spearmanr
from skimage.feature import hog

from xaifool import sanity as S
from xaifool.models import Normalized


def small_model(seed: int = 0) -> Normalized:
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1, stride=2), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4),
    )
    with torch.no_grad():
        net[1].running_mean.uniform_(-0.1, 0.1)
        net[1].running_var.uniform_(0.5, 1.5)
        net[1].weight.uniform_(0.5, 1.5)
    return Normalized(net, mean=(0.5,) * 3, std=(0.25,) * 3, cam_layer="net.4").eval()


def images(n=6, size=16, seed=0):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _layer_of(key: str) -> str:
    return key.rsplit(".", 1)[0]


def _changed(before: dict, model: nn.Module) -> set[str]:
    return {_layer_of(k) for k, v in model.state_dict().items() if not torch.equal(before[k], v)}


def test_layers_are_the_modules_with_an_initialiser():
    assert S.randomizable_layers(small_model()) == ["net.0", "net.1", "net.3", "net.7"]


@pytest.mark.parametrize("order", ["top_down", "bottom_up"])
def test_cascading_changes_exactly_the_layers_randomised_so_far(order):
    model = small_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    layers = S.randomizable_layers(model)
    expected = layers[::-1] if order == "top_down" else layers
    seen = []
    for name, net in S.randomized(model, order, seed=0):
        seen.append(name)
        assert net is not model
        assert _changed(before, net) == set(seen)  # these layers and no others (bit-identical)
    assert seen == expected
    assert not _changed(before, model)  # the original is never modified


def test_independent_changes_exactly_one_layer():
    model = small_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for name, net in S.randomized(model, "independent", seed=0):
        assert _changed(before, net) == {name}
    assert not _changed(before, model)


def test_randomisation_is_seeded_and_uses_the_layers_own_initialiser():
    model = small_model()
    a = [{k: v.clone() for k, v in net.state_dict().items()} for _, net in S.randomized(model, "independent", seed=3)]
    b = [{k: v.clone() for k, v in net.state_dict().items()} for _, net in S.randomized(model, "independent", seed=3)]
    assert all(torch.equal(x[k], y[k]) for x, y in zip(a, b) for k in x)
    # the batch norm's reset_parameters: weight 1, bias 0, running statistics 0 / 1
    bn = a[1]
    assert torch.equal(bn["net.1.weight"], torch.ones(8)) and torch.equal(bn["net.1.bias"], torch.zeros(8))
    assert torch.equal(bn["net.1.running_mean"], torch.zeros(8)) and torch.equal(bn["net.1.running_var"], torch.ones(8))


def test_similarity_extremes_and_references():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(4, 24, 24, generator=g)
    same = S.similarity(a, a)
    for k in ("spearman_abs", "spearman", "ssim", "hog_pearson"):
        assert torch.allclose(same[k], torch.ones(4), atol=1e-5), k
    b = torch.randn(4, 24, 24, generator=g)
    other = S.similarity(a, b)
    assert other["spearman"].abs().max() < 0.15 and other["spearman_abs"].abs().max() < 0.15
    # Spearman of the signed maps is scipy's; HOG similarity is skimage's hog + scipy's pearsonr
    assert float(other["spearman"][0]) == pytest.approx(spearmanr(a[0].flatten(), b[0].flatten())[0], abs=1e-5)
    ua, ub = a.abs() / a.abs().flatten(1).amax(1).view(-1, 1, 1), b.abs() / b.abs().flatten(1).amax(1).view(-1, 1, 1)
    for i in range(2):
        fa = hog(ua[i].double().numpy(), orientations=9, pixels_per_cell=(3, 3), cells_per_block=(2, 2))
        fb = hog(ub[i].double().numpy(), orientations=9, pixels_per_cell=(3, 3), cells_per_block=(2, 2))
        assert float(other["hog_pearson"][i]) == pytest.approx(pearsonr(fa, fb)[0], abs=1e-5)
        assert float(S.hog_pearson(ua, ub)[i]) == pytest.approx(pearsonr(fa, fb)[0], abs=1e-5)


def test_randomised_gradient_is_less_similar_than_the_original_to_itself():
    model, x = small_model(), images()
    out = S.cascading(model, x, ["gradient", "gradcam"], order="top_down", seed=0)
    assert out["layers"] == S.randomizable_layers(model)[::-1]
    sim = out["similarity"]["gradient"]["spearman_abs"]
    assert sim.shape == (4, 6) and out["maps"]["gradient"].shape == (4, 6, 16, 16)
    assert float(sim[-1].mean()) < 0.9  # fully randomised vs 1.0 for the original against itself
    again = S.cascading(model, x, "gradient", order="top_down", seed=0, metrics="spearman_abs")
    assert torch.equal(again["similarity"]["gradient"]["spearman_abs"], sim)  # seeded: the same numbers
    self_sim = S.similarity(out["original"]["gradient"], out["original"]["gradient"], "spearman_abs")["spearman_abs"]
    assert torch.allclose(self_sim, torch.ones(6), atol=1e-6)


@pytest.mark.parametrize("call, name", [
    (lambda m, x: list(S.randomized(m, "sideways")), "order"),
    (lambda m, x: list(S.randomized(m, layers=["net.99"])), "layers"),
    (lambda m, x: S.cascading(m, x, ["no_such_method"]), "methods"),
    (lambda m, x: S.cascading(m, x, ["gradient"], options={"smoothgrad": {}}), "options"),
    (lambda m, x: S.cascading(m, x[0], ["gradient"]), "x"),
    (lambda m, x: S.similarity(torch.rand(2, 4, 4), torch.rand(2, 5, 4)), "a and b"),
    (lambda m, x: S.similarity(torch.rand(2, 4, 4), torch.rand(2, 4, 4), ["psnr"]), "metrics"),
    (lambda m, x: S.randomizable_layers("resnet"), "model"),
])
def test_bad_input_raises_value_error_naming_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call(small_model(), images())


def test_data_randomisation_model_memorises_permuted_labels_and_learns_nothing_true(monkeypatch, tmp_path,
                                                                                   mirror_available):
    """256 lossless training images, 15 epochs (measured: 34 % eval-mode accuracy on its own permuted
    labels, 9.4 % on 500 true test labels; the true-label model of the same recipe fits its labels too,
    and at this size reaches only 13 % on the test set, so the two are not compared on the test set)."""
    from xaifool import config
    from xaifool.data import load_cifar10

    monkeypatch.setenv("XAIFOOL_CACHE", str(tmp_path))
    config.get_config.cache_clear()
    try:
        rand = S.label_trained_model(True, n_train=256, epochs=15, progress=False)
        true = S.label_trained_model(False, n_train=256, epochs=15, progress=False)
        again = S.label_trained_model(True, n_train=256, epochs=15, progress=False)  # from the cache
        assert len(list((tmp_path / "sanity-label-model").glob("*.pt"))) == 2
        assert all(torch.equal(a, b) for a, b in zip(rand.state_dict().values(), again.state_dict().values()))
    finally:
        config.get_config.cache_clear()
    train, test = load_cifar10("train4000", 256, seed=0), load_cifar10("test", 500, seed=1)
    labels = rand.training_record["labels"]
    assert sorted(labels.tolist()) == sorted(train.y.tolist()) and (labels != train.y).float().mean() > 0.8
    with torch.no_grad():
        fit_rand = float((rand(train.x).argmax(1) == labels).float().mean())
        test_rand = float((rand(test.x).argmax(1) == test.y).float().mean())
        test_true = float((true(test.x).argmax(1) == test.y).float().mean())
        fit_true = float((true(train.x).argmax(1) == train.y).float().mean())
    print(f"\npermuted-label model: {fit_rand:.2f} on its labels, {test_rand:.3f} on test; true-label model "
          f"{test_true:.3f} on test")
    assert rand.training_record["history"]["accuracy"][-1] > 0.9  # memorised (batch norm in train mode)
    assert fit_rand > 0.25 and test_rand < 0.2  # chance is 0.1
    assert fit_true > 0.25 and torch.equal(true.training_record["labels"], train.y)


@pytest.mark.parametrize("kw, name", [({"permute": "yes"}, "permute"), ({"n_train": 0}, "n_train"),
                                      ({"n_train": 5000}, "n_train"), ({"epochs": 0}, "epochs"), ({"lr": 0}, "lr")])
def test_label_trained_model_rejects_bad_settings(kw, name):
    with pytest.raises(ValueError, match=name):
        S.label_trained_model(**{"permute": True, **kw})
