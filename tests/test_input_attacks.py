"""Input manipulations (xaifool.attacks.input): Definition 2 holds exactly, the attacks beat noise."""
import dataclasses
import io
import re

import pytest
import torch
import torch.nn as nn

from xaifool import explain as E
from xaifool import metrics as M
from xaifool.attacks import input as A
from xaifool.attacks import transfer as TR
from xaifool.attacks.objectives import OBJECTIVES, region_mask
from xaifool.attacks.result import BeforeAfter
from xaifool.models import Normalized, smooth


def tiny_model(seed: int = 0) -> Normalized:
    """A small seeded ReLU CNN with a Grad-CAM layer (no data needed)."""
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1, stride=2), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4),
    )
    return Normalized(net, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), cam_layer="net.3").eval()


def images(seed: int, n: int = 6, size: int = 12) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, size, size, generator=g)
    x[0, :, :2] = 0.0  # exact 0 and 1 pixels exercise the range clamp and the exact projection
    x[1, :, -2:] = 1.0
    return x


def run(kind, model, x, eps, method="gradient"):
    if kind == "random":
        return A.random_sign(model, x, method, epsilon=eps, progress=False)
    if "region" in OBJECTIVES.get(kind, OBJECTIVES["topk"]).options:  # region, location
        region = torch.zeros(x.shape[-2:])
        region[:4, :4] = 1
        return A.ghorbani_attack(model, x, method, kind, region=region, epsilon=eps, n_iter=4, progress=False)
    if kind == "target":
        tm = E.explain(model, x.roll(1, 0), None, method)
        return A.dombrowski_attack(model, x, tm, method, epsilon=eps, n_iter=4, progress=False)
    return A.ghorbani_attack(model, x, method, kind, epsilon=eps, n_iter=4, progress=False)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("eps", [1 / 255, 8 / 255, 0.3])
@pytest.mark.parametrize("kind", A.ATTACKS)
def test_definition2_holds_exactly(seed, eps, kind):
    model, x = tiny_model(seed), images(seed)
    res = run(kind, model, x, eps)
    # the l-infinity bound and the pixel range hold on the float32 result, with no tolerance
    assert res.x_adv.dtype == torch.float32 and res.x_adv.shape == x.shape
    assert ((res.x_adv - x).abs() <= eps).all()
    assert ((res.x_adv.double() - x.double()).abs() <= eps).all()
    assert res.x_adv.min() >= 0 and res.x_adv.max() <= 1
    assert res.definition2()["max_linf_over_eps"] <= 1.0
    # reported logits are the original model's; success samples keep their label there
    with torch.no_grad():
        logits = model(res.x_adv)
        label = model(x).argmax(1)
    assert torch.equal(res.label, label)
    assert torch.allclose(res.logits_adv, logits, atol=1e-5)
    assert (logits.argmax(1)[res.success] == label[res.success]).all()
    # heatmaps before/after are the original model's explanations, normalised to sum 1
    assert torch.allclose(res.heatmap, E.explain(model, x, label, "gradient"), atol=1e-6)
    assert torch.allclose(res.heatmap_adv.sum((1, 2)), torch.ones(len(x)), atol=1e-4)
    assert torch.allclose(res.heatmap_adv, E.explain(model, res.x_adv, label, "gradient"), atol=1e-6)
    if kind != "random":
        assert res.loss.shape == (4, len(x)) and res.objective.shape == (5, len(x))
    if kind == "topk":
        # recompute the objective of the kept iterate from its heatmap: never worse than the
        # start, strictly better exactly where success is reported
        k = res.settings["k"]
        mask = torch.zeros_like(res.heatmap.flatten(1)).scatter_(1, res.heatmap.flatten(1).topk(k, 1).indices, 1.0)
        kept = (res.heatmap_adv.flatten(1) * mask).sum(1)
        assert torch.allclose(kept, (res.heatmap.flatten(1) * mask).sum(1).where(~res.success, kept), atol=1e-6)
        assert (kept <= res.objective[0] + 1e-6).all()
        assert (kept[res.success] < res.objective[0][res.success]).all()


@pytest.mark.parametrize("method", A.attack_methods())
def test_every_interpreter_can_be_attacked(method):
    model, x = tiny_model(3), images(3, n=4)
    res = A.ghorbani_attack(model, x, method, "topk", epsilon=8 / 255, n_iter=3, k=10,
                            options={"n_steps": 2} if method == "integrated_gradients" else
                            {"n_samples": 2} if method == "smoothgrad" else None, progress=False)
    assert ((res.x_adv - x).abs() <= 8 / 255).all()
    assert torch.isfinite(res.loss).all()
    # the top-k mass on the original top-k pixels goes down for some image at some step
    assert res.objective.isfinite().all()
    assert (res.objective[1:].min(0).values < res.objective[0]).any()


def test_lrp_attack_leaves_the_callers_model_trainable():
    """The LRP attack differentiates the caller's network itself (no Softplus copy): it must not
    switch off the parameters' requires_grad."""
    model, x = tiny_model(4), images(4, n=2)
    A.ghorbani_attack(model, x, "lrp", "topk", epsilon=4 / 255, n_iter=1, k=10, progress=False)
    assert all(p.requires_grad for p in model.parameters())


def test_result_round_trip_through_torch_save():
    model, x = tiny_model(0), images(0, n=3)
    res = A.ghorbani_attack(model, x, "gradient", "center", epsilon=4 / 255, n_iter=2, progress=False)
    buf = io.BytesIO()
    torch.save(res.to_dict(), buf)
    buf.seek(0)
    back = A.AttackResult.from_dict(torch.load(buf, weights_only=True))
    assert torch.equal(back.x_adv, res.x_adv) and back.settings == res.settings and back.attack == "center"


def test_project_is_exact_at_the_boundary():
    x = torch.tensor([0.0, 2 / 255, 1.0, 0.5, 1 - 2 / 255])
    for eps in [2 / 255, 1e-3, 0.49]:
        for direction in (-1.0, 1.0):
            out = A.project(x + direction, x, eps)
            assert ((out.double() - x.double()).abs() <= eps).all() and out.min() >= 0 and out.max() <= 1


# ----------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("eps", [0, -0.1, 1, 1.5, float("nan"), "8/255"])
def test_bad_epsilon(eps):
    with pytest.raises(ValueError, match="epsilon"):
        A.ghorbani_attack(tiny_model(), images(0, 2), epsilon=eps, progress=False)
    with pytest.raises(ValueError, match="epsilon"):
        A.random_sign(tiny_model(), images(0, 2), epsilon=eps, progress=False)


@pytest.mark.parametrize("k", [0, -3, 12 * 12 + 1, 2.5])
def test_bad_k(k):
    with pytest.raises(ValueError, match="k must"):
        A.ghorbani_attack(tiny_model(), images(0, 2), "gradient", "topk", epsilon=0.1, k=k, progress=False)


@pytest.mark.parametrize("method", ["lime", "kernel_shap", "saliency", None])
def test_unknown_interpreter(method):
    with pytest.raises(ValueError, match="method must be one of"):
        A.ghorbani_attack(tiny_model(), images(0, 2), method, epsilon=0.1, progress=False)


def test_bad_attack_and_update():
    with pytest.raises(ValueError, match="attack must be one of"):
        A.ghorbani_attack(tiny_model(), images(0, 2), "gradient", "target", epsilon=0.1, progress=False)
    with pytest.raises(ValueError, match="attack must be one of"):
        A.run_attack(tiny_model(), images(0, 2), "fgsm", epsilon=0.1)
    with pytest.raises(ValueError, match="update must be one of"):
        A.ghorbani_attack(tiny_model(), images(0, 2), epsilon=0.1, update="adam", progress=False)


@pytest.mark.parametrize("shape", [(2, 12, 11), (3, 12, 12), (12,), (2, 1, 12, 12)])
def test_target_map_of_wrong_shape(shape):
    with pytest.raises(ValueError, match="target_map"):
        A.dombrowski_attack(tiny_model(), images(0, 2), torch.rand(shape), epsilon=0.1, progress=False)


def test_region_missing_or_wrong():
    with pytest.raises(ValueError, match="region"):
        A.ghorbani_attack(tiny_model(), images(0, 2), "gradient", "region", epsilon=0.1, progress=False)
    with pytest.raises(ValueError, match="region"):
        A.ghorbani_attack(tiny_model(), images(0, 2), "gradient", "region", epsilon=0.1,
                          region=torch.ones(5, 5), progress=False)


@pytest.mark.parametrize("bad", ["above", "below", "nan", "3d", "int"])
def test_images_outside_valid_range(bad):
    x = images(0, 2)
    if bad == "above":
        x = x * 255
    elif bad == "below":
        x = x - 0.5
    elif bad == "nan":
        x[0, 0, 0, 0] = float("nan")
    elif bad == "3d":
        x = x[0]
    else:
        x = (x * 255).to(torch.uint8)
    with pytest.raises(ValueError, match="x must"):
        A.ghorbani_attack(tiny_model(), x, epsilon=0.1, progress=False)


@pytest.mark.parametrize("name,value", [("n_iter", 0), ("beta", 0.0), ("gamma", -1.0), ("step_size", -0.1)])
def test_bad_numeric_settings(name, value):
    x = images(0, 2)
    with pytest.raises(ValueError, match=name):
        if name == "gamma":
            A.dombrowski_attack(tiny_model(), x, torch.rand(2, 12, 12), epsilon=0.1, gamma=value, progress=False)
        else:
            A.ghorbani_attack(tiny_model(), x, epsilon=0.1, progress=False, **{name: value})


@pytest.mark.parametrize("rows", [[1], [0, 1]])
def test_target_map_with_all_zero_rows(rows):
    """An all-zero target row cannot be normalised to sum 1: named, with the offending rows."""
    tm = torch.rand(2, 12, 12)
    tm[rows] = 0.0
    with pytest.raises(ValueError, match=rf"^target_map .*rows {re.escape(str(rows))} are all zero"):
        A.dombrowski_attack(tiny_model(), images(0, 2), tm, epsilon=0.1, n_iter=1, progress=False)


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), 3e38])
def test_target_map_with_infinite_rows(value):
    tm = torch.rand(2, 12, 12)
    tm[1, :, :4] = value  # inf itself, or finite entries whose sum overflows float32
    with pytest.raises(ValueError, match=r"^target_map must hold finite values.*rows \[1\]"):
        A.dombrowski_attack(tiny_model(), images(0, 2), tm, epsilon=0.1, n_iter=1, progress=False)


def test_transfer_takes_one_name_or_a_non_empty_sequence_of_names():
    model, x = tiny_model(), images(0, 2)
    res = A.random_sign(model, x, epsilon=4 / 255, progress=False)
    # a single name is one interpreter, not a sequence of letters
    out = TR.to_interpreters(model, res, "lrp")
    assert set(out) == {"lrp"} and out["lrp"]["topk"].shape == (2,)
    assert set(TR.to_interpreters(model, res, ("gradient",))) == {"gradient"}
    for bad in ([], (), [None], ["gradient", 3], 3):
        with pytest.raises(ValueError, match="^methods must") as info:
            TR.to_interpreters(model, res, bad)
        assert "gradient" in str(info.value)  # the accepted names are listed


@pytest.mark.parametrize("kind", ["random", "topk", "target"])
def test_fresh_result_records_threads_and_device(kind, tmp_path, monkeypatch):
    """``seconds`` is only comparable with the CPU thread count and device it was measured with."""
    import dataclasses

    from xaifool import cache
    from xaifool.config import get_config

    monkeypatch.setattr(cache, "get_config", lambda: dataclasses.replace(get_config(), cache_dir=tmp_path))
    model, x = tiny_model(), images(0, 2)
    res = run(kind, model, x, 4 / 255)
    assert res.settings["threads"] == torch.get_num_threads() >= 1
    assert res.settings["device"] == "cpu"
    kwargs = {"epsilon": 4 / 255, "progress": False}
    if kind != "random":
        kwargs["n_iter"] = 1
    if kind == "target":
        kwargs["target_map"] = torch.rand(2, 12, 12)
    fresh = A.cached_attack("tiny", model, x, kind, **kwargs)
    assert fresh.settings["threads"] == torch.get_num_threads() and fresh.settings["device"] == "cpu"
    assert list(tmp_path.rglob("*.pt"))  # computed, not read from the book's cache
    assert A.cached_attack("tiny", model, x, kind, **kwargs).settings == fresh.settings  # kept in the cache


# ----------------------------------------------------------- names from the objective registry

def test_attack_names_come_from_the_objective_registry():
    assert A.ATTACKS[0] == "random" and set(A.ATTACKS[1:]) <= set(OBJECTIVES)
    assert {"topk", "center", "region", "location", "target"} <= set(A.ATTACKS)
    assert "swap" not in A.ATTACKS  # needs the maps of two classes: a model-level objective
    assert set(A.ATTACK_FUNCTIONS) == set(A.ATTACKS)
    assert A.GRID_ATTACKS == ("random", "topk", "center")
    # the chapter's original five keep their order
    assert A.ATTACKS[:5] == ("random", "topk", "center", "region", "target")


def test_location_is_the_region_attack_under_heos_name():
    model, x = tiny_model(6), images(6, n=3)
    frame = region_mask(x.shape[-2:], "frame", width=2)
    a = A.ghorbani_attack(model, x, "gradient", "region", region=frame, epsilon=4 / 255, n_iter=2, progress=False)
    b = A.run_attack(model, x, "location", region=frame, epsilon=4 / 255, n_iter=2, progress=False, batch_size=None)
    assert b.attack == "location" and torch.equal(a.x_adv, b.x_adv) and torch.equal(a.objective, b.objective)
    assert torch.equal(b.target_map, frame.expand(3, 12, 12))


def test_unknown_attack_names_list_the_accepted_ones():
    for call in (lambda: A.run_attack(tiny_model(), images(0, 2), "swap", epsilon=0.1),
                 lambda: A.cached_attack("tiny", tiny_model(), images(0, 2), "fgsm", epsilon=0.1),
                 lambda: A.ghorbani_attack(tiny_model(), images(0, 2), "gradient", "swap", epsilon=0.1)):
        with pytest.raises(ValueError, match="^attack must be one of") as info:
            call()
        assert "'topk'" in str(info.value)
    with pytest.raises(ValueError, match="^attacks must be among") as info:
        A.attack_grid("tiny", tiny_model(), images(0, 2), attacks=("region",), methods=("gradient",),
                      epsilons=(4,), n_iter=1)
    assert "'center'" in str(info.value)


def test_attack_result_is_a_before_after():
    model, x = tiny_model(0), images(0, n=3)
    res = A.ghorbani_attack(model, x, "gradient", "topk", epsilon=4 / 255, n_iter=1, progress=False)
    assert isinstance(res, BeforeAfter) and len(res) == 3
    sim = res.similarity()
    assert list(sim) == ["topk", "spearman", "pearson", "ssim", "mse", "com_distance"]
    k = res.settings["k"]
    assert torch.equal(sim["topk"], M.topk_intersection(res.heatmap, res.heatmap_adv, k))
    assert torch.equal(res.similarity(5)["topk"], M.topk_intersection(res.heatmap, res.heatmap_adv, 5))


# ------------------------------------------------- the attacks beat noise on the book's model

@pytest.fixture(scope="module")
def cifar(mirror_available):
    from xaifool import data, models

    torch.manual_seed(0)
    model = models.load_cifar_resnet(20, device="cpu")
    batch = data.load_cifar10("test", 64, seed=0)
    with torch.no_grad():
        pred = model(batch.x).argmax(1)
    return model, batch.x[pred == batch.y][:8]


@pytest.mark.parametrize("method,eps", [("gradient", 2 / 255), ("gradcam", 8 / 255), ("lrp", 4 / 255)])
def test_topk_attack_beats_random_sign_on_resnet20(cifar, method, eps):
    model, x = cifar
    noise = A.random_sign(model, x, method, epsilon=eps, seed=0, progress=False)
    attack = A.ghorbani_attack(model, x, method, "topk", epsilon=eps, n_iter=6, progress=False)
    k = A.default_k(x.shape[-2:])
    t_noise = M.topk_intersection(noise.heatmap, noise.heatmap_adv, k).mean()
    t_attack = M.topk_intersection(attack.heatmap, attack.heatmap_adv, k).mean()
    assert t_attack < t_noise - 0.1, (float(t_attack), float(t_noise))
    assert attack.label_kept.all()  # by the keep-the-best-label-keeping-iterate rule


@pytest.mark.parametrize("method", ["gradient", "lrp"])
def test_dombrowski_moves_towards_the_target_on_resnet20(cifar, method):
    model, x = cifar
    target = E.explain(model, x.roll(1, 0), None, method)
    res = A.dombrowski_attack(model, x, target, method, epsilon=8 / 255, n_iter=10, progress=False)
    before = M.pearson(res.heatmap, target).mean()
    after = M.pearson(res.heatmap_adv, target).mean()
    assert after > before + 0.05, (float(before), float(after))
    assert res.label_kept.all()
    # the output barely moves: the predicted class keeps most of its probability
    assert (res.confidence_adv - res.confidence).abs().mean() < 0.2


def test_transfer_reports_every_interpreter(cifar):
    model, x = cifar
    res = A.ghorbani_attack(model, x[:4], "gradient", "topk", epsilon=4 / 255, n_iter=2, progress=False)
    out = TR.to_interpreters(model, res, ["grad_x_input", "lrp"])
    assert set(out) == {"grad_x_input", "lrp"}
    assert all(v["topk"].shape == (4,) and (v["spearman"] <= 1).all() for v in out.values())
    with pytest.raises(ValueError, match="methods"):
        TR.to_interpreters(model, res, ["nope"])


def test_chunked_batches_give_the_same_result():
    """Images are attacked independently: splitting the batch into chunks changes nothing."""
    model, x = tiny_model(5), images(5, n=5)
    whole = A.ghorbani_attack(model, x, "gradcam", "center", epsilon=4 / 255, n_iter=3, progress=False)
    parts = A.ghorbani_attack(model, x, "gradcam", "center", epsilon=4 / 255, n_iter=3, batch_size=2,
                              progress=False)
    # equal up to the odd sign flip of a near-zero gradient entry (batch-size dependent rounding)
    assert ((whole.x_adv - parts.x_adv).abs() > 1e-6).float().mean() < 0.01
    assert parts.loss.shape == (3, 5) and parts.objective.shape == (4, 5)


def test_transfer_to_inputs_moves_perturbations_between_images_within_the_budget():
    model, x = tiny_model(), images(0, 4)
    res = A.ghorbani_attack(model, x, "gradient", "topk", epsilon=8 / 255, n_iter=3, progress=False)
    own = TR.to_inputs(model, res, shift=0)
    # shift 0: every image gets its own perturbation back — the attack's own similarity
    sim = res.similarity()
    assert torch.allclose(own["topk"], sim["topk"]) and torch.allclose(own["spearman"], sim["spearman"], atol=1e-6)
    assert torch.equal(own["label_kept"], res.label_kept)
    out = TR.to_inputs(model, res, shift=1)
    assert all(v.shape == (4,) for v in out.values())
    # image j received δ_{j−1}: recompute image 1 by hand
    xj = (x[1] + (res.x_adv[0] - res.x[0])).clamp(0, 1)
    assert float((xj - x[1]).abs().max()) <= 8 / 255 + 1e-6
    from xaifool import explain as E
    from xaifool import metrics as M
    pred = model(x[1:2]).argmax(1)
    a, b = E.explain(model, x[1:2], pred, "gradient"), E.explain(model, xj[None], pred, "gradient")
    assert float(out["topk"][1]) == pytest.approx(float(M.topk_intersection(a, b, res.settings["k"])[0]))
    for bad in (-1, 4, 1.0):
        with pytest.raises(ValueError, match="shift"):
            TR.to_inputs(model, res, shift=bad)


def test_transfer_to_models_the_source_model_reproduces_the_attack():
    model, x = tiny_model(), images(0, 4)
    res = A.ghorbani_attack(model, x, "gradient", "topk", epsilon=8 / 255, n_iter=3, progress=False)
    out = TR.to_models(res, {"same": model, "other": tiny_model(seed=1)})
    assert torch.allclose(out["same"]["topk"], res.similarity()["topk"])
    assert torch.equal(out["same"]["label_kept"], res.label_kept)
    assert out["other"]["topk"].shape == (4,) and ((out["other"]["topk"] >= 0) & (out["other"]["topk"] <= 1)).all()
    with pytest.raises(ValueError, match="models"):
        TR.to_models(res, {})
    with pytest.raises(ValueError, match="result"):
        TR.to_models("not a result", {"same": model})


# --- β schedule (Dombrowski et al.: β grows geometrically from 10 to 100 over the steps) ---

def test_beta_schedule_grows_geometrically_like_the_reference_code():
    b = A.beta_schedule((10.0, 100.0), 1500)
    assert len(b) == 1500 and b[0] == 10.0 and b[-1] < 100.0
    ratios = torch.tensor(b[1:], dtype=torch.float64) / torch.tensor(b[:-1], dtype=torch.float64)
    assert torch.allclose(ratios, torch.full_like(ratios, 10 ** (1 / 1500)), rtol=1e-12)
    assert b[750] == pytest.approx(10 * 10 ** 0.5)       # half way: the geometric mean
    assert A.beta_schedule(30, 3) == [30.0, 30.0, 30.0]
    assert A.DOMBROWSKI_BETA == (10.0, 100.0)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf"), True, "30", (10.0,), (10.0, 0.0),
                                 (10.0, 50.0, 100.0), (float("nan"), 100.0), None])
def test_bad_beta_is_refused_by_name(bad):
    with pytest.raises(ValueError, match="^beta must be a number > 0 or a pair"):
        A.beta_schedule(bad, 4)
    with pytest.raises(ValueError, match="^beta must"):
        A.dombrowski_attack(tiny_model(), images(0, 2), torch.rand(2, 12, 12), epsilon=0.1, beta=bad, progress=False)


def test_set_beta_equals_a_fresh_smooth_copy():
    from xaifool.models import SmoothReLU6, set_beta, smooth

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.ReLU6(), nn.Flatten()).eval()
    x = torch.randn(2, 3, 8, 8) * 4
    s = smooth(net, 10.0)
    assert set_beta(s, 55.0) == 2
    assert all(m.beta == 55.0 for m in s.modules() if isinstance(m, (nn.Softplus, SmoothReLU6)))
    assert torch.equal(s(x), smooth(net, 55.0)(x))
    with pytest.raises(ValueError, match="no Softplus"):
        set_beta(net, 10.0)


@pytest.mark.parametrize("method", ["gradient", "lrp"])
def test_attack_steps_follow_the_beta_schedule(method, monkeypatch):
    """Every step differentiates the surrogate at its scheduled β (the Softplus modules carry it), and
    the surrogate is re-anchored at x whenever β changes; a constant pair equals the fixed β bit for bit."""
    from xaifool.models import SmoothReLU6

    model, x = tiny_model(3), images(3, 4)
    tm = E.explain(model, x.roll(1, 0), None, method)
    seen, step = [], A.attack_step

    def spy(model_, surrogate, *args, beta, **kw):
        acts = {m.beta for m in surrogate.modules() if isinstance(m, (nn.Softplus, SmoothReLU6))}
        seen.append((beta, acts, args[6]["logits"].clone()))   # args: method, kind, xt, x0, lab, ref, ref_s
        return step(model_, surrogate, *args, beta=beta, **kw)

    monkeypatch.setattr(A, "attack_step", spy)
    A.dombrowski_attack(model, x, tm, method, epsilon=8 / 255, n_iter=5, batch_size=2, progress=False)
    want = A.beta_schedule(A.DOMBROWSKI_BETA, 5) * 2          # two chunks, the schedule restarts per chunk
    assert [b for b, _, _ in seen] == want
    if method == "lrp":
        assert all(a == set() for _, a, _ in seen)               # LRP's surrogate is the ReLU network itself
    else:
        assert all(a == {b} for b, a, _ in seen)
        anchors = [lg for _, _, lg in seen[:5]]
        assert not torch.equal(anchors[0], anchors[-1])           # the anchor follows β
        surrogate = smooth(model, want[4])
        with torch.no_grad():
            assert torch.allclose(anchors[4], surrogate(x[:2]))
    monkeypatch.setattr(A, "attack_step", step)
    fixed = A.dombrowski_attack(model, x, tm, method, epsilon=8 / 255, n_iter=3, beta=30.0, progress=False)
    pair = A.dombrowski_attack(model, x, tm, method, epsilon=8 / 255, n_iter=3, beta=(30.0, 30.0), progress=False)
    assert torch.equal(fixed.x_adv, pair.x_adv) and pair.settings["beta"] == (30.0, 30.0)


@pytest.mark.parametrize("method", A.attack_methods())
def test_logits_read_off_the_heatmaps_pass_are_the_logits(cifar, method, monkeypatch):
    """The keep-the-best rule's logits come from the heatmap's own forward pass where the
    interpreter runs the network once on the image: bit for bit the logits of a separate pass,
    and an attack run with and without the shared pass gives the same iterates."""
    model, x = cifar
    x = x[:4]
    with torch.no_grad():
        logits = model(x)
    label = logits.argmax(1)
    options = {"n_samples": 2} if method == "smoothgrad" else {"n_steps": 2} if method == "integrated_gradients" else {}
    h, shared = E.heatmap_and_logits(model, x, label, method, options)
    assert torch.equal(shared, logits) and not shared.requires_grad
    assert torch.equal(h, E.heatmap(model, x, label, method, **options))
    if not E.METHODS[method].shares_forward:
        return
    one = A.ghorbani_attack(model, x, method, "topk", epsilon=4 / 255, n_iter=3, progress=False)
    # the textbook step: a separate forward pass
    monkeypatch.setitem(E.METHODS, method, dataclasses.replace(E.METHODS[method], shares_forward=False))
    two = A.ghorbani_attack(model, x, method, "topk", epsilon=4 / 255, n_iter=3, progress=False)
    assert torch.equal(one.x_adv, two.x_adv) and torch.equal(one.logits_adv, two.logits_adv)
    assert torch.equal(one.objective, two.objective)


def test_shared_forward_pass_refuses_an_interpreter_that_runs_the_network_twice(monkeypatch):
    model, x = tiny_model(2), images(2, n=3)
    label = torch.zeros(3, dtype=torch.long)
    monkeypatch.setitem(E.METHODS, "smoothgrad", dataclasses.replace(E.METHODS["smoothgrad"], shares_forward=True))
    with pytest.raises(RuntimeError, match="expected once"):
        E.heatmap_and_logits(model, x, label, "smoothgrad", {"n_samples": 2})
