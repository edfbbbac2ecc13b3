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
from xaifool.book import experiments as BX
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


def test_blocks_cover_every_layer_once():
    from xaifool.models import cifar_resnet

    model = Normalized(cifar_resnet(20), cam_layer="net.layer3")
    b = S.blocks(model)
    assert b == ["net.conv1", "net.bn1", *[f"net.layer{i}.{j}" for i in (1, 2, 3) for j in range(3)], "net.linear"]
    owners = [[n for n in S.randomizable_layers(model) if n == blk or n.startswith(blk + ".")] for blk in b]
    assert sorted(n for o in owners for n in o) == sorted(S.randomizable_layers(model))  # each layer in one block


@pytest.mark.parametrize("order", ["top_down", "independent"])
def test_block_steps_change_exactly_their_layers(order):
    """Block steps (Adebayo et al.'s granularity): a step re-initialises every layer inside its block."""
    from xaifool.models import cifar_resnet

    torch.manual_seed(0)
    model = Normalized(cifar_resnet(20), cam_layer="net.layer3").eval()
    with torch.no_grad():  # trained-looking batch norms, so that a reset changes every layer
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5), m.bias.uniform_(-0.1, 0.1), m.running_mean.uniform_(-0.1, 0.1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    steps = S.blocks(model)
    inside = lambda blk: {n for n in S.randomizable_layers(model) if n == blk or n.startswith(blk + ".")}  # noqa: E731
    done = set()
    for name, net in S.randomized(model, order, seed=0, layers=steps):
        done = (done if order == "top_down" else set()) | inside(name)
        assert _changed(before, net) == done  # these layers, bit-identical elsewhere
    assert not _changed(before, model)


@pytest.mark.parametrize("call, name", [
    (lambda m, x: list(S.randomized(m, "sideways")), "order"),
    (lambda m, x: list(S.randomized(m, layers=["net.99"])), "layers"),
    (lambda m, x: S.cascading(m, x, ["no_such_method"]), "methods"),
    (lambda m, x: S.cascading(m, x, ["gradient"], options={"smoothgrad": {}}), "options"),
    (lambda m, x: S.cascading(m, x[0], ["gradient"]), "x"),
    (lambda m, x: S.similarity(torch.rand(2, 4, 4), torch.rand(2, 5, 4)), "a and b"),
    (lambda m, x: S.similarity(torch.rand(2, 4, 4), torch.rand(2, 4, 4), ["psnr"]), "metrics"),
    (lambda m, x: S.randomizable_layers("resnet"), "model"),
    (lambda m, x: list(S.randomized(m, layers=["net", "net.0"])), "layers"),  # overlapping steps
    (lambda m, x: S.cascading(m, x, ["gradient"], target=[0, 1]), "target"),
    (lambda m, x: S.cascading(m, x, ["gradient"], target=9), "target"),
    (lambda m, x: S.cascading(m, x, ["gradient"], options={"gradient": {"n_steps": 3}}), "option"),
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


# --------------------------------------------------------------------------------------
# Agreement with Quantus' MPRT (the reference implementation of the cascading test)
# --------------------------------------------------------------------------------------

def _quantus_explain(method):
    """An explain_func for Quantus that runs the book's interpreter (so that both sides explain alike
    and the comparison tests the randomisation and the similarity, not two gradient codes)."""
    from xaifool import explain as E

    def fn(model, inputs, targets, **kwargs):
        x = torch.as_tensor(inputs, dtype=torch.float32)
        t = torch.as_tensor(targets, dtype=torch.long).view(-1)
        return E.explain(model, x, t, method, reduce="sum", normalize=None).unsqueeze(1).numpy()
    return fn


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning", "ignore::FutureWarning",
                            "ignore:invalid value encountered:RuntimeWarning")  # constant Grad-CAM maps: NaN
@pytest.mark.parametrize("method", ["gradient", "gradcam"])
def test_cascading_agrees_with_quantus_mprt(method):
    """Quantus' MPRT (top-down cascading, Spearman of absolute, max-normalised maps) and
    :func:`xaifool.sanity.cascading`'s ``spearman_abs`` on the same model, images, targets,
    interpreter and seed: the same layer order and the same per-layer, per-image similarities
    within 1e-6 (the two only differ in float rounding of the normalisation; Spearman is
    invariant to Quantus' positive rescaling)."""
    quantus = pytest.importorskip("quantus")
    model, x = small_model(3), images(6, 16, seed=4)
    with torch.no_grad():
        y = model(x).argmax(1)
    mprt = quantus.MPRT(layer_order="top_down", seed=11, disable_warnings=True, display_progressbar=False)
    ref = mprt(model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=None, channel_first=True,
               explain_func=_quantus_explain(method), device="cpu", batch_size=64)
    ours = S.cascading(model, x, [method], target=y, order="top_down", seed=11, metrics=("spearman_abs",))
    ref_layers = [k for k in ref if k != "original"]
    assert ref_layers == ours["layers"] == S.randomizable_layers(model)[::-1]
    np.testing.assert_allclose(ref["original"], 1.0, atol=1e-6)
    got = ours["similarity"][method]["spearman_abs"].numpy()
    want = np.array([ref[k] for k in ref_layers])
    assert got.shape == want.shape == (len(ref_layers), len(x))
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert (want[-1] < 0.9).all()  # and the test is not vacuous: the fully randomised maps differ


# --------------------------------------------------------------------------------------
# Summaries for the chapter
# --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_result():
    model, x = small_model(5), images(5, 16, seed=6)
    return S.cascading(model, x, ["gradient", "grad_x_input"], seed=2, metrics=("spearman_abs", "ssim"))


def test_summarize_gives_means_and_t_intervals(small_result):
    from scipy import stats

    table = S.summarize(small_result, level=0.9)
    assert len(table) == 2 * 2 * len(small_result["layers"])
    row = table[(table.method == "gradient") & (table.metric == "ssim")].iloc[-1]
    v = small_result["similarity"]["gradient"]["ssim"][-1].double().numpy()
    lo, hi = stats.t.interval(0.9, len(v) - 1, loc=v.mean(), scale=stats.sem(v))
    assert row["mean"] == pytest.approx(v.mean()) and row.low == pytest.approx(lo) and row.high == pytest.approx(hi)
    assert row.step == len(small_result["layers"]) and row.layer == small_result["layers"][-1] and row.n == 5
    with pytest.raises(ValueError, match="level"):
        S.summarize(small_result, level=1.5)


def test_verdict_follows_the_threshold(small_result):
    import math

    v = S.verdict(small_result, top=0.5)
    per_step = small_result["similarity"]["gradient"]["spearman_abs"].double().mean(1)
    head = per_step[: math.ceil(len(per_step) / 2)].mean().item()
    assert v.loc["gradient", "after all steps"] == pytest.approx(per_step[-1].item())
    assert v.loc["gradient", "after first step"] == pytest.approx(per_step[0].item())
    assert v.loc["gradient", "upper layers (mean)"] == pytest.approx(head)
    assert v.loc["gradient", "passes"] == (head < S.PASS_THRESHOLD)
    strict = S.verdict(small_result, threshold=-1.0)
    assert not strict.passes.any() and S.verdict(small_result, threshold=1.01).passes.all()
    with pytest.raises(ValueError, match="metric"):
        S.verdict(small_result, metric="hog_pearson")  # not computed
    with pytest.raises(ValueError, match="top"):
        S.verdict(small_result, top=0)
    with pytest.raises(ValueError, match="result"):
        S.verdict({"layers": []})
    nums = BX.verdict_numbers(small_result)
    assert set(nums) == {"gradient", "grad_x_input"} and isinstance(nums["gradient"]["passes"], bool)


def test_verdict_fails_an_interpreter_blind_to_the_upper_layers():
    """Guided backprop ignores the logits layer's weights (they only scale the backward signal, and
    the guidance clips what is negative): randomising that layer alone leaves much of its map in place;
    the plain gradient changes."""
    model, x = small_model(5), images(6, 16, seed=6)
    r = S.cascading(model, x, ["gradient", "guided_backprop"], seed=2, layers=["net.7"], metrics=("spearman_abs",))
    v = S.verdict(r, top=1.0)
    assert v.loc["guided_backprop", "after first step"] > v.loc["gradient", "after first step"]


def test_compare_models_identical_and_different():
    import copy

    a, x = small_model(1), images(4, 16, seed=2)
    out = S.compare_models({"a": a, "copy": copy.deepcopy(a), "other": small_model(2)}, x, ["gradient"],
                           metrics=("spearman_abs", "ssim"))
    assert set(out["similarity"]) == {"copy", "other"}
    same = out["similarity"]["copy"]["gradient"]
    assert torch.allclose(same["spearman_abs"], torch.ones(4)) and torch.allclose(same["ssim"], torch.ones(4))
    assert (out["similarity"]["other"]["gradient"]["spearman_abs"] < 0.99).all()
    assert out["maps"]["a"]["gradient"].shape == (4, 16, 16)
    with pytest.raises(ValueError, match="models"):
        S.compare_models({"a": a}, x, ["gradient"])
    with pytest.raises(ValueError, match="reference"):
        S.compare_models({"a": a, "b": a}, x, ["gradient"], reference="c")


def test_sanity_figures(small_result):
    import matplotlib.pyplot as plt

    from xaifool import plot

    fig = plot.randomisation_grid(images(5, 16, seed=6)[0], small_result["original"], small_result["maps"],
                                  small_result["layers"], [0, 2])
    assert len(fig.axes) == 2 * 4  # 2 interpreters × (image, original, 2 steps)
    fig2 = plot.similarity_curves(S.summarize(small_result), metrics=("spearman_abs", "ssim"), ncols=2)
    assert sum(ax.has_data() for ax in fig2.axes) == 2
    plt.close(fig), plt.close(fig2)


def test_chapter_test_rejects_unknown_model():
    with pytest.raises(ValueError, match="base_key"):
        BX.sanity_test("vgg16")


def test_manipulation_checks_rows():
    import copy

    base, x = small_model(7), images(4, 16, seed=8)
    twin = copy.deepcopy(base)  # an "honest" copy: its maps equal the original's
    other = small_model(9)
    table = S.manipulation_checks(base, {"twin": (twin, "gradient"), "other": (other, "gradient")}, x)
    assert list(table.index) == ["twin", "other"]
    assert table.loc["twin", "similarity to original's map"] == pytest.approx(1.0)
    assert table.loc["other", "similarity to original's map"] < 0.99
    assert table.loc["twin", "randomisation, manipulated"] == pytest.approx(table.loc["twin", "randomisation, original"])
    v = S.verdict(S.cascading(base, x, ["gradient"], layers=S.blocks(base), metrics=("spearman_abs",)))
    assert table.loc["twin", "original, logits random"] == pytest.approx(v.loc["gradient", "after first step"])
    with pytest.raises(ValueError, match="manipulated"):
        S.manipulation_checks(base, {"bad": twin}, x)


def test_cascading_through_the_cache_gives_the_same_result(tmp_cache, monkeypatch):
    model, x = small_model(), images()
    fresh = S.cascading(model, x, ["gradient", "gradcam"], seed=0)
    steps = []
    original = S.randomized
    monkeypatch.setattr(S, "randomized", lambda *a, **k: steps.append(1) or original(*a, **k))
    rng = torch.get_rng_state()
    for _ in range(2):   # computed and stored, then loaded
        got = S.cascading(model, x, ["gradient", "gradcam"], seed=0, cache=True)
        assert torch.equal(torch.get_rng_state(), rng)        # the global generator left as it was, both ways
        assert got["layers"] == fresh["layers"]
        for part in ("original", "maps"):
            assert all(torch.equal(got[part][m], fresh[part][m]) for m in fresh[part])
        assert all(torch.equal(got["similarity"][m][k], v) for m in fresh["similarity"]
                   for k, v in fresh["similarity"][m].items())
    assert len(list((tmp_cache / "sanity-cascading").glob("*.pt"))) == 1 and len(steps) == 1   # the second: loaded
    with pytest.raises(ValueError, match="^x must be"):   # checked before the cache is consulted
        S.cascading(model, x[0], ["gradient", "gradcam"], seed=0, cache=True)
    S.cascading(model, x, ["gradient", "gradcam"], seed=1, cache=True)   # another seed: another entry
    assert len(list((tmp_cache / "sanity-cascading").glob("*.pt"))) == 2
