"""Model manipulations (xaifool.attacks.heo, Heo et al. 2019): properties on small seeded runs.

* fine-tuning raises the held-out fooling success rate far above the unmodified model's (0 by
  construction) while the held-out accuracy drops by at most 5 points;
* the FSR is a direct count of Heo-style criteria on synthetic maps built to pass or fail;
* the two-object composites keep each object recognisable;
* the manipulated model is a copy: the base is untouched and only parameters move;
* bad input raises ValueError naming the argument.
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest
import torch
import torch.nn as nn

from xaifool import config
from xaifool import explain as E
from xaifool.attacks import heo as HM
from xaifool.attacks.heo import maps as HMAPS
from xaifool.attacks.objectives import region_mask
from xaifool.attacks.result import BeforeAfter
from xaifool.models import Normalized


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    """Recompute instead of reading cached results, so the code under test really runs."""
    monkeypatch.setenv("XAIFOOL_NO_CACHE", "1")


@pytest.fixture(scope="module")
def resnet(mirror_available):
    return HM.base_model("cifar_resnet20", device="cpu")


@pytest.fixture(scope="module")
def cifar(mirror_available):
    from xaifool.data import load_cifar10

    return load_cifar10("train4000", 2048, seed=0), load_cifar10("test", 200, seed=1)


def tiny_model(seed: int = 0, cam: bool = True) -> Normalized:
    """A small seeded ReLU CNN with batch norm and (optionally) a Grad-CAM layer."""
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1, stride=2), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4),
    )
    with torch.no_grad():  # non-trivial running statistics, to see that they do not move
        net[1].running_mean.uniform_(-0.1, 0.1)
        net[1].running_var.uniform_(0.5, 1.5)
    return Normalized(net, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), cam_layer="net.4" if cam else "").eval()


def tiny_data(n: int = 24, size: int = 12, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g), torch.arange(n) % 4


# ---------------------------------------------------------------------------------------
# The attack works on the real model
# ---------------------------------------------------------------------------------------

def test_finetuning_raises_heldout_fsr_and_keeps_accuracy(resnet):
    """The chapter's own setting (quick profile defaults: top-k / Grad-CAM, 1,536 training images, one
    epoch, λ = 10, Adam 3e-4, batch 32), on the chapter's 500 held-out test images. Measured: FSR
    0 → 0.24, accuracy 80.0 → 73.4 % (74.0 % before the loss took its logits from the map's forward
    pass, a change of rounding: see the test below). Asserted: FSR ≥ 0.15 (the unmodified model's is 0) and an
    accuracy drop within the bound the chapter states (MM.ACCURACY_BOUND, 10 points)."""
    fooled = HM.manipulated_model("cifar_resnet20", "topk", "gradcam", progress=False)
    test = HM.heldout_data("cifar_resnet20")
    r = HM.evaluate(resnet, fooled, test.x, test.y, "topk", "gradcam")
    unmodified = HM.evaluate(resnet, resnet, test.x, test.y, "topk", "gradcam")
    hist = fooled.manipulation["history"]
    print(f"\nFSR {unmodified.fsr:.2f} -> {r.fsr:.2f}; accuracy {r.accuracy:.3f} -> {r.accuracy_adv:.3f}")
    assert unmodified.fsr == 0.0
    assert r.fsr >= 0.15
    assert r.accuracy - r.accuracy_adv <= HM.ACCURACY_BOUND
    steps = hist["steps"]["fooling_loss"]
    assert steps[-1] < steps[0]  # the mass on the original top-k fell during fine-tuning
    assert isinstance(r, BeforeAfter) and r.heatmap.shape == (len(test), 32, 32)


def test_two_object_images_keep_both_objects(resnet, cifar):
    """Each half of a composite alone is classified as its class: measured 100 % for automobile
    (left) and 99–100 % for horse (right) on the lossless training images; asserted ≥ 90 %."""
    train, _ = cifar
    a, b = HM.SWAP_CLASSES
    xc = HM.two_object_images(train, a, b, 64, seed=0)
    assert xc.shape == (64, 3, 32, 64)
    with torch.no_grad():
        left, right = resnet(xc[..., :32]).argmax(1), resnet(xc[..., 32:]).argmax(1)
        both = resnet(xc).softmax(1)
    acc_a, acc_b = float((left == a).float().mean()), float((right == b).float().mean())
    print(f"\nhalf accuracy: class {a} (left) {acc_a:.2f}, class {b} (right) {acc_b:.2f}; "
          f"mean p(a)+p(b) on the composite {float((both[:, a] + both[:, b]).mean()):.2f}")
    assert acc_a >= 0.9 and acc_b >= 0.9
    # the package's measurement (quoted in the chapter) is the same direct count
    seen = HM.composite_recognition(resnet, xc, a, b)
    assert seen["left"] == pytest.approx(acc_a) and seen["right"] == pytest.approx(acc_b)
    assert seen["mass_ab"] == pytest.approx(float((both[:, a] + both[:, b]).mean()), rel=1e-5)
    top2 = both.topk(2, dim=1).indices
    assert seen["both_top2"] == pytest.approx(float(((top2 == a).any(1) & (top2 == b).any(1)).float().mean()))
    # every left half is a class-a image and every right half a class-b image of the batch
    idx_a = (train.y == a).nonzero().view(-1)
    assert all(any(torch.equal(xc[i, :, :, :32], train.x[j]) for j in idx_a) for i in range(4))
    # the pairing is seeded, and more composites than images of the rarer class are allowed
    assert torch.equal(xc, HM.two_object_images((train.x, train.y), a, b, 64, seed=0))
    assert HM.two_object_images(train, a, b, 1000, seed=0).shape[0] == 1000


def test_swap_and_transfer_run_end_to_end(resnet, cifar):
    train, test = cifar
    a, b = HM.SWAP_CLASSES
    sub = torch.cat([(train.y == c).nonzero().view(-1)[:24] for c in range(10)])
    fooled, hist = HM.finetune(resnet, train.x[sub], train.y[sub], "swap", "gradcam", lam=1.0, epochs=1,
                               lr=1e-4, batch_size=16, seed=0, progress=False)
    assert set(hist) >= {"loss", "accuracy_loss", "fooling_loss", "accuracy", "seconds"}
    r = HM.evaluate(resnet, fooled, test.x, test.y, "swap", "gradcam", n_pairs=6)
    assert r.x.shape == (12, 3, 32, 64) and r.heatmap.shape == (12, 32, 64)
    assert r.label.tolist() == [a] * 6 + [b] * 6 and r.success.shape == (6,)
    out = HM.evaluate_interpreters(resnet, fooled, test.x[:8], test.y[:8], "center", ["smoothgrad", "gradient"],
                      options={"smoothgrad": {"n_samples": 2}})
    assert set(out) == {"smoothgrad", "gradient"} and out["smoothgrad"].heatmap.shape == (8, 32, 32)


# ---------------------------------------------------------------------------------------
# FSR = a direct count of the criteria on synthetic maps
# ---------------------------------------------------------------------------------------

def _blob(hw, r, c, n=1, size=3):
    h = torch.full((n, *hw), 1e-3)
    h[:, r:r + size, c:c + size] = 1.0
    return h


def test_fsr_is_a_direct_count_on_synthetic_maps():
    hw = (16, 16)
    region = HM.default_region(hw)  # a frame of width 16 // 7 = 2
    assert region.sum() == 16 * 16 - 12 * 12
    orig = _blob(hw, 6, 6, n=4)  # all mass in the centre
    # location: maps 0, 1 in the frame (pass), 2 in the centre (fail), 3 half in, half out (fail)
    fooled = torch.full((4, *hw), 0.0)
    fooled[0] = region
    fooled[1, :2, :] = 1.0
    fooled[2] = orig[2]
    fooled[3] = region + (1 - region) * (region.sum() / (1 - region).sum())
    s = HM.fooling_statistic("location", orig, fooled)
    direct = (fooled * region).flatten(1).sum(1) / fooled.flatten(1).sum(1)
    assert torch.allclose(s, direct)
    assert HM.fooling_success("location", orig, fooled).tolist() == [True, True, False, False]
    # top-k (k = 10 % = 26 pixels): maps that keep 0, 100 % and about half of the original top-k
    g = torch.Generator().manual_seed(0)
    o = torch.rand(3, *hw, generator=g)
    top = o.flatten(1).topk(26, dim=1).indices
    f = o.clone().flatten(1)
    f[0].scatter_(0, top[0], -1.0)                      # original top-k pushed to the bottom
    f[2].scatter_(0, top[2][:13], -1.0)                 # half of it
    f = f.view(3, *hw)
    s = HM.fooling_statistic("topk", o, f)
    assert torch.allclose(s, torch.tensor([0.0, 1.0, 0.5]))
    assert HM.fooling_success("topk", o, f).tolist() == [True, False, False]
    # centre of mass: shifts of 0, 2 and 8 pixels along a row of a 16 × 16 map: (Δ/15)/√2 vs 0.1
    o = _blob(hw, 6, 4, n=3)
    f = torch.cat([_blob(hw, 6, 4), _blob(hw, 6, 6), _blob(hw, 6, 12)])
    s = HM.fooling_statistic("center", o, f)
    assert torch.allclose(s, torch.tensor([0.0, 2 / 15, 8 / 15]) / 2 ** 0.5, atol=1e-4)
    assert HM.fooling_success("center", o, f).tolist() == [False, False, True]
    # swap: rows 0..n−1 class a, n..2n−1 class b; image 0 swapped, image 1 unchanged
    a0, b0 = torch.cat([_blob(hw, 2, 2), _blob(hw, 2, 2)]), torch.cat([_blob(hw, 10, 10), _blob(hw, 10, 10)])
    a0 = a0 + 0.01 * torch.rand(2, *hw, generator=g)
    b0 = b0 + 0.01 * torch.rand(2, *hw, generator=g)
    orig = torch.cat([a0, b0])
    fooled = torch.cat([torch.stack([b0[0], a0[1]]), torch.stack([a0[0], b0[1]])])
    assert HM.fooling_success("swap", orig, fooled).tolist() == [True, False]
    # an unchanged map is never fooled, and the FSR is the mean of the successes
    for attack in HM.passive_attacks():
        assert not HM.fooling_success(attack, o, o).any()


# ---------------------------------------------------------------------------------------
# A copy, with only parameters changed
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ("gradcam", "lrp", "gradient"))
def test_manipulated_model_is_a_copy_and_only_parameters_move(method):
    model = tiny_model()
    x, y = tiny_data()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fooled, hist = HM.finetune(model, x, y, "location", method, lam=5.0, epochs=2, lr=1e-2, batch_size=8,
                               seed=0, progress=False)
    assert fooled is not model and all(m.training is False for m in fooled.modules())
    after_base = model.state_dict()
    assert all(torch.equal(before[k], after_base[k]) for k in before)
    params = {n for n, _ in fooled.named_parameters()}
    new = fooled.state_dict()
    moved = {k for k in before if not torch.equal(before[k], new[k])}
    assert moved and moved <= params  # BN running statistics (buffers) unchanged
    assert "net.1.running_mean" not in moved and "net.1.running_var" not in moved
    assert len(hist["loss"]) == 2


def test_distill_runs_without_labels_and_lambda_zero_is_a_control():
    model = tiny_model()
    x, _ = tiny_data()
    fooled, hist = HM.finetune(model, x, None, "center", "gradient", lam=0.0, epochs=1, lr=1e-3, batch_size=8,
                               distill=True, seed=0, progress=False)
    # the accuracy term is the KL to the original's softmax; "accuracy" is the agreement with its predictions
    assert 0 <= hist["accuracy_loss"][0] < 0.01 and hist["accuracy"][0] >= 0.75
    assert hist["fooling_loss"][0] <= 0


def test_manipulated_model_is_cached_and_reloaded(monkeypatch, tmp_path, mirror_available):
    monkeypatch.delenv("XAIFOOL_NO_CACHE")
    monkeypatch.setenv("XAIFOOL_CACHE", str(tmp_path))
    config.get_config.cache_clear()
    try:
        m1 = HM.manipulated_model("cifar_resnet20", "center", "gradcam", n_train=32, epochs=1, batch_size=16)
        files = list((tmp_path / "heo-model").glob("*.pt"))
        m2 = HM.manipulated_model("cifar_resnet20", "center", "gradcam", n_train=32, epochs=1, batch_size=16)
        assert len(files) == 1 and list((tmp_path / "heo-model").glob("*.pt")) == files
        assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))
        assert m2.manipulation["settings"]["attack"] == "center" and "loss" in m2.manipulation["history"]
        base = HM.base_model("cifar_resnet20")
        assert any(not torch.equal(a, b) for a, b in zip(base.state_dict().values(), m1.state_dict().values()))
    finally:
        config.get_config.cache_clear()


# ---------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------

def _finetune(**kw):
    x, y = tiny_data()
    args = dict(model=tiny_model(), x_train=x, y_train=y, attack="location", method="gradcam", lam=1.0, epochs=1,
                lr=1e-3, batch_size=8, progress=False)
    args.update(kw)
    return HM.finetune(**args)


@pytest.mark.parametrize("kw, name", [
    ({"lam": -0.1}, "lam"),
    ({"lam": float("nan")}, "lam"),
    ({"attack": "frame"}, "attack"),
    ({"method": "guided_backprop"}, "method"),   # not differentiable
    ({"method": "lime"}, "method"),
    ({"region": torch.ones(5, 5)}, "region"),                 # wrong shape
    ({"region": torch.zeros(12, 12)}, "region"),              # covers nothing
    ({"region": torch.full((12, 12), 2.0)}, "region"),        # not a mask
    ({"attack": "topk", "region": region_mask((12, 12))}, "region"),
    ({"attack": "topk", "k": 144}, "k"),
    ({"attack": "swap", "classes": (2, 2)}, "classes"),
    ({"attack": "swap", "classes": (0, 9)}, "classes"),       # the tiny model has 4 classes
    ({"attack": "center", "classes": (0, 1)}, "classes"),
    ({"model": tiny_model(cam=False)}, "cam_layer"),
    ({"epochs": 0}, "epochs"),
    ({"lr": 0.0}, "lr"),
    ({"y_train": None}, "y_train"),
    ({"y_train": torch.zeros(3, dtype=torch.long)}, "y_train"),
    ({"x_train": torch.zeros(4, 12, 12)}, "x_train"),
])
def test_bad_input_raises_value_error_naming_the_argument(kw, name):
    with pytest.raises(ValueError, match=name):
        _finetune(**kw)


def test_bad_input_elsewhere():
    model = tiny_model()
    x, y = tiny_data()
    with pytest.raises(ValueError, match="attack"):
        HM.fooling_success("frame", torch.rand(2, 4, 4), torch.rand(2, 4, 4))
    with pytest.raises(ValueError, match="h_fooled"):
        HM.fooling_success("topk", torch.rand(2, 4, 4), torch.rand(2, 5, 4))
    with pytest.raises(ValueError, match="region"):
        HM.fooling_success("location", torch.rand(2, 4, 4), torch.rand(2, 4, 4), region=torch.ones(3, 3))
    with pytest.raises(ValueError, match="classes"):
        HM.two_object_images((x, y), 1, 1)
    with pytest.raises(ValueError, match="class 7"):
        HM.two_object_images((x, y), 1, 7)
    with pytest.raises(ValueError, match="method"):
        HM.evaluate(model, model, x, y, "topk", "no_such_method")
    with pytest.raises(ValueError, match="cam_layer"):
        HM.evaluate(tiny_model(cam=False), model, x, y, "topk", "gradcam")
    with pytest.raises(ValueError, match="base_key"):
        HM.manipulated_model("vgg19", "topk", "gradcam")
    with pytest.raises(ValueError, match="swap"):
        HM.manipulated_model("mobilenet_v2", "swap", "gradcam")


# ---------------------------------------------------------------------------------------
# The chapter's grid, the training curve, divergence
# ---------------------------------------------------------------------------------------

def test_profile_grids_are_valid_and_full_covers_quick():
    for prof in (config.QUICK, config.FULL, config.SMOKE):
        for grid in (prof.heo_grid, prof.heo_imagenet_grid):
            assert HM.check_grid(grid) == tuple(grid)
            assert all(HM.default_lambda(*pair) > 0 for pair in grid)
        assert all(a in HM.passive_attacks() for a, _ in prof.heo_imagenet_grid)  # no composites on ImageNet
    assert set(config.QUICK.heo_grid) <= set(config.FULL.heo_grid)
    assert set(config.QUICK.heo_imagenet_grid) <= set(config.FULL.heo_imagenet_grid)
    assert set(config.FULL.heo_grid) == {(a, m) for a in HM.MODEL_ATTACKS for m in ("gradcam", "lrp", "gradient")}


@pytest.mark.parametrize("pairs", [[], "topk", [("topk",)], [("frame", "gradcam")], [("topk", "lime")], 3])
def test_check_grid_rejects_bad_pairs(pairs):
    with pytest.raises(ValueError, match="pairs|attack|method"):
        HM.check_grid(pairs)


def test_finetune_records_a_training_curve_and_rejects_divergence():
    model = tiny_model()
    x, y = tiny_data()
    _, hist = HM.finetune(model, x, y, "topk", "gradient", lam=1.0, epochs=2, lr=1e-3, batch_size=8, seed=0,
                          progress=False, log_every=1)
    steps = hist["steps"]
    assert steps["step"] == [1, 2, 3, 4, 5, 6]  # 24 images in batches of 8, two epochs
    assert sum(steps["fooling_loss"][:3]) / 3 == pytest.approx(hist["fooling_loss"][0], rel=1e-5)
    with pytest.raises(ValueError, match="diverged"):
        HM.finetune(model, x, y, "topk", "gradient", lam=1.0, epochs=1, lr=1e30, batch_size=8, seed=0,
                    progress=False)


def test_run_grid_loads_cached_models_and_scores_the_unmodified_model(monkeypatch, tmp_path, cifar):
    monkeypatch.delenv("XAIFOOL_NO_CACHE")
    monkeypatch.setenv("XAIFOOL_CACHE", str(tmp_path))
    config.get_config.cache_clear()
    _, test = cifar
    try:
        out = HM.run_grid("cifar_resnet20", [("center", "gradcam"), ("topk", "gradient")], x_test=test.x[:16],
                          y_test=test.y[:16], n_train=32, epochs=1, batch_size=16, progress=False)
        assert set(out["results"]) == set(out["models"]) == {("center", "gradcam"), ("topk", "gradient")}
        for pair, r in out["results"].items():
            assert out["unmodified"][pair].fsr == 0.0  # an unchanged map passes no passive criterion
            assert r.heatmap.shape == (16, 32, 32)
            settings = out["models"][pair].manipulation["settings"]
            assert settings["lam"] == HM.default_lambda(*pair) and settings["n_train"] == 32
            assert len(out["models"][pair].manipulation["history"]["steps"]["step"]) >= 1
        assert len(list((tmp_path / "heo-model").glob("*.pt"))) == 2
    finally:
        config.get_config.cache_clear()


def test_training_curves_figure():
    from xaifool import plot

    hist = {"steps": {"step": [8, 16, 24], "fooling_loss": [-0.2, -0.3, -0.4], "accuracy_loss": [0.1, 0.2, 0.3]}}
    fig = plot.training_curves({"a": hist, "b": hist}, quantities=("fooling_loss", "accuracy_loss"))
    ax = fig.axes[0]
    assert len(fig.axes) == 2 and len(ax.lines) == 2
    assert list(ax.lines[0].get_ydata()) == pytest.approx([0.0, -0.5, -1.0])  # change / |first point|
    with pytest.raises(ValueError, match="log_every"):
        plot.training_curves({"a": {"loss": [1.0]}})


@pytest.mark.parametrize("method", ["gradient", "gradcam"])
def test_finetuning_a_depthwise_network_returns_convolutions_and_matches_them(method, monkeypatch):
    """Gradient-family fine-tuning trains depthwise layers as shifted sums (fast double backward); the
    returned model has its nn.Conv2d layers back and follows the same trajectory as with the plain
    convolutions (to float rounding)."""
    import xaifool.attacks.heo.finetuning as MM_

    torch.manual_seed(3)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1, groups=8),
                        nn.ReLU(), nn.Conv2d(8, 16, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(16, 4))
    model = Normalized(net, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), cam_layer="net.5").eval()
    x, y = tiny_data()
    kw = dict(lam=1.0, epochs=1, lr=1e-3, batch_size=8, seed=0, progress=False)
    seen = []
    real = MM_.depthwise_as_shifts
    monkeypatch.setattr(MM_, "depthwise_as_shifts", lambda m: seen.append(1) or real(m))
    fast, _ = HM.finetune(model, x, y, "topk", method, **kw)
    assert len(seen) == (1 if method == "gradient" else 0)
    assert type(fast.net[2]) is nn.Conv2d and fast.net[2].groups == 8
    assert type(model.net[2]) is nn.Conv2d                      # the caller's model is untouched
    monkeypatch.setattr(MM_, "depthwise_as_shifts", lambda m: 0)   # plain convolutions throughout
    plain, _ = HM.finetune(model, x, y, "topk", method, **kw)
    for (name, a), b in zip(fast.state_dict().items(), plain.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-5), name
    assert not torch.equal(fast.net[2].weight, model.net[2].weight)   # it did train


@pytest.mark.parametrize("attack", tuple(HM.MODEL_ATTACKS))
@pytest.mark.parametrize("method", ["gradcam", "gradient", "smoothgrad"])
def test_unmodified_equals_evaluating_the_original_on_both_sides(attack, method):
    """run_grid takes the unmodified model's scores from the original side of the evaluation
    instead of explaining the images twice more: the numbers must be those of evaluate(base, base)."""
    base, other = tiny_model(0), tiny_model(1)
    x, y = tiny_data(24, 12)
    kw = {"classes": (0, 1)} if attack == "swap" else {}
    opts = {"n_samples": 3} if method == "smoothgrad" else None
    r = HM.evaluate(base, other, x, y, attack, method, options=opts, **kw)
    HM.clear_memo()   # the comparison is with maps computed afresh, not remembered
    got, want = HM.unmodified(r), HM.evaluate(base, base, x, y, attack, method, options=opts, **kw)
    for name in ("x", "label", "heatmap", "heatmap_adv", "logits", "logits_adv", "score", "success"):
        assert torch.equal(getattr(got, name), getattr(want, name)), name
    assert got.accuracy == want.accuracy and got.accuracy_adv == want.accuracy_adv
    assert not torch.equal(r.heatmap_adv, got.heatmap_adv)     # the manipulated side really was replaced
    with pytest.raises(ValueError, match="^result must be"):
        HM.unmodified(r.heatmap)


def _counting_heatmap(monkeypatch):
    """Count the images explained by xaifool.explain.heatmap, per network."""
    counts, original = {}, E.heatmap

    def counted(model, x, *args, **kwargs):
        counts[id(model)] = counts.get(id(model), 0) + x.shape[0]
        return original(model, x, *args, **kwargs)

    monkeypatch.setattr(E, "heatmap", counted)
    return counts


@pytest.mark.parametrize("method, opts", [("gradcam", None), ("smoothgrad", {"n_samples": 3})])
def test_original_maps_are_computed_once_per_content(monkeypatch, method, opts):
    """evaluate/transfer explain the original model once for all manipulated models (the memo),
    and the remembered maps are bitwise those computed afresh."""
    HM.clear_memo()
    counts = _counting_heatmap(monkeypatch)
    base, m1, m2 = tiny_model(0), tiny_model(1), tiny_model(2)
    x, y = tiny_data(24, 12)
    r1 = HM.evaluate(base, m1, x, y, "topk", method, options=opts, batch_size=10)
    r2 = HM.evaluate(base, m2, x, y, "topk", method, options=opts, batch_size=10)
    assert counts == {id(base): 24, id(m1): 24, id(m2): 24}     # the base explained once, not twice
    HM.clear_memo()
    fresh = HM.evaluate(base, m2, x, y, "topk", method, options=opts, batch_size=10)
    for r in (r1, r2):
        assert torch.equal(r.heatmap, fresh.heatmap)
    assert torch.equal(r2.heatmap_adv, fresh.heatmap_adv) and torch.equal(r2.score, fresh.score)
    r2.heatmap.zero_()                                          # results do not alias the memo
    assert torch.equal(HM.evaluate(base, m1, x, y, "topk", method, options=opts, batch_size=10).heatmap,
                       fresh.heatmap)


def test_memo_misses_whenever_the_maps_would_differ(monkeypatch):
    """A changed weight, buffer, mode, image, class, option, chunk size or seed is explained again."""
    HM.clear_memo()
    counts = _counting_heatmap(monkeypatch)
    net = tiny_model(0)
    x, y = tiny_data(8, 12)
    t = torch.zeros(8, dtype=torch.long)

    def maps(model=net, x=x, t=t, opts=None, bs=8):
        before = counts.get(id(model), 0)
        h = HMAPS.heatmaps(model, x, t, "smoothgrad", batch_size=bs, options=opts or {"n_samples": 2})
        return h, counts.get(id(model), 0) - before

    h0, n = maps()
    assert n == 8 and maps()[1] == 0                            # the same content: remembered
    changes = {
        "image": lambda: maps(x=x.flip(-1)), "class": lambda: maps(t=t + 1),
        "option": lambda: maps(opts={"n_samples": 3}), "chunk size": lambda: maps(bs=4),
    }
    for what, call in changes.items():
        assert call()[1] == 8, what
    with torch.no_grad():
        net.net[0].weight[0, 0, 0, 0] += 0.5
    h1, n = maps()
    assert n == 8 and not torch.equal(h0, h1)
    with torch.no_grad():
        net.net[1].running_mean += 0.3                          # a buffer only
    assert maps()[1] == 8
    net.net[2].train()                                          # a mode flag only (BatchNorm would update its statistics)
    assert maps()[1] == 8
    net.eval()
    assert maps()[1] == 0
    from dataclasses import replace

    cfg = config.get_config()
    other_seed = replace(cfg, profile=replace(cfg.profile, seed=cfg.seed + 1))
    monkeypatch.setattr(HMAPS, "get_config", lambda: other_seed)
    assert maps()[1] == 8
    monkeypatch.setattr(HMAPS, "MEMO_BYTES", 3 * 8 * 12 * 12 * 4)  # room for three sets of maps
    for s in range(5):
        maps(x=x + s / 100)
    assert len(HMAPS._MEMO) == 3
    assert HMAPS._MEMO_HELD[0] == sum(v.numel() * v.element_size() for v in HMAPS._MEMO.values())
    HM.clear_memo()
    assert not HMAPS._MEMO and HMAPS._MEMO_HELD[0] == 0


def test_evaluation_through_the_cache_is_the_evaluation(tmp_cache, monkeypatch):
    """run_grid and the chapters' transfer tables read evaluations from the cache: a loaded
    result equals the computed one field by field, and loading explains nothing."""
    base, other = tiny_model(0), tiny_model(1)
    x, y = tiny_data(16, 12)
    opts = {"smoothgrad": {"n_samples": 2}}
    HM.clear_memo()
    fresh = HM.evaluate_interpreters(base, other, x, y, "topk", ["gradcam", "smoothgrad"], options=opts)
    stored = HM.evaluate_interpreters(base, other, x, y, "topk", ["gradcam", "smoothgrad"], options=opts, cache=True)
    counts = _counting_heatmap(monkeypatch)
    HM.clear_memo()
    loaded = HM.evaluate_interpreters(base, other, x, y, "topk", ["gradcam", "smoothgrad"], options=opts, cache=True)
    assert counts == {}
    for by in (stored, loaded):
        for m, r in by.items():
            for name in ("x", "label", "heatmap", "heatmap_adv", "logits", "logits_adv", "score", "success"):
                assert torch.equal(getattr(r, name), getattr(fresh[m], name)), (m, name)
            assert r.fsr == fresh[m].fsr and r.accuracy_adv == fresh[m].accuracy_adv
    for by in (stored, loaded):
        assert all(r.settings["k"] == fresh[m].settings["k"] and r.accuracy == fresh[m].accuracy for m, r in by.items())
    with torch.no_grad():
        other.net[0].bias += 0.1
    HM.evaluate_interpreters(base, other, x, y, "topk", ["gradcam"], cache=True)    # another network: computed again
    assert counts.get(id(other), 0) == 16
    with pytest.raises(ValueError, match="cam_layer"):                 # checked before the cache is consulted
        HM.evaluate(base, tiny_model(1, cam=False), x, y, "topk", "gradcam", cache=True)


@pytest.mark.parametrize("method,distill", [("gradient", False), ("gradcam", True), ("gradcam", False)])
def test_finetuning_with_the_shared_logits_pass_is_the_textbook_finetuning(method, distill, monkeypatch):
    """The accuracy term's logits come from the map's own forward pass (one pass less per step):
    the same logits, so the same loss; only the order in which autograd sums the two terms'
    gradients changes, which moves the weights by rounding alone. Measured on the chapter's
    ResNet-20 settings (48 Adam steps): through the gradient the weights are bit for bit equal and
    the fine-tuning 17 % faster; through Grad-CAM (top-k) 13 % faster, the weights apart by at most
    1.2e-3 after Adam has amplified the rounding, FSR 0.242 both ways, held-out accuracy 73.4 %
    against 74.0 % (3 of 500 images)."""
    model, (x, y) = tiny_model(3), tiny_data(16, 12, seed=3)
    args = dict(lam=1.0, epochs=2, lr=1e-3, batch_size=8, seed=0, progress=False, distill=distill)
    shared, h1 = HM.finetune(model, x, None if distill else y, "topk", method, **args)
    # the textbook loss: a forward pass of its own
    monkeypatch.setitem(E.METHODS, method, dataclasses.replace(E.METHODS[method], shares_forward=False))
    textbook, h2 = HM.finetune(model, x, None if distill else y, "topk", method, **args)
    for p, q in zip(shared.parameters(), textbook.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h1["loss"], h2["loss"], rtol=1e-5)
    assert h1["accuracy"] == h2["accuracy"]


# ---------------------------------------------------------------------------------------
# Heo's claim at matched accuracy: the Pareto front of a sweep
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(5))
def test_pareto_front_is_the_set_of_non_dominated_points(seed):
    g = torch.Generator().manual_seed(seed)
    pts = torch.rand(40, 2, generator=g)
    pts[::7] = torch.round(pts[::7] * 4) / 4          # ties on both axes
    pts = [tuple(map(float, p)) for p in pts]
    front = set(HM.pareto_front(pts))
    # an independent construction: sweep the FSR values from the highest down; a point is on the front
    # when it has its group's highest accuracy and beats every accuracy of a higher FSR
    expected, best = set(), float("-inf")
    for f in sorted({p[0] for p in pts}, reverse=True):
        group = [i for i, p in enumerate(pts) if p[0] == f]
        top = max(pts[i][1] for i in group)
        if top > best:
            expected |= {i for i in group if pts[i][1] == top}
        best = max(best, top)
    assert front == expected
    assert front   # a finite set always has a non-dominated point
    # the front's points, sorted by FSR, have falling accuracy
    ordered = sorted((pts[i] for i in front), key=lambda p: (p[0], -p[1]))
    assert all(b[1] <= a[1] for a, b in zip(ordered, ordered[1:]))
    assert HM.pareto_front([(float("nan"), 1.0), (0.5, 0.5)]) == [1]


def test_best_within_an_accuracy_drop():
    rows = [{"fsr": 0.9, "drop": 0.30}, {"fsr": 0.4, "drop": 0.02}, {"fsr": 0.4, "drop": 0.01}, {"fsr": 0.1, "drop": 0.0}]
    assert HM.best_within(rows, 0.02) == {"fsr": 0.4, "drop": 0.01}
    assert HM.best_within(rows, 0.5)["fsr"] == 0.9 and HM.best_within(rows[:1], 0.02) is None
    with pytest.raises(ValueError, match="max_drop"):
        HM.best_within(rows, 2.0)
