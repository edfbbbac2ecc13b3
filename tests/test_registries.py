"""A new interpreter and a new model attack are one entry each: registered here, in the test alone, they
run through an input attack, a model attack, a sanity check and transfer without any edit of the package."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from xaifool import explain as E
from xaifool import plot
from xaifool import sanity as S
from xaifool.attacks import heo as H
from xaifool.attacks import input as A
from xaifool.attacks import transfer as TR
from xaifool.attacks.heo import registry as HR
from xaifool.models import Normalized


@pytest.fixture(autouse=True)
def _no_cache(monkeypatch):
    monkeypatch.setenv("XAIFOOL_NO_CACHE", "1")


def tiny_model(seed: int = 0) -> Normalized:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1, stride=2), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4))
    return Normalized(net, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), cam_layer="net.3").eval()


def tiny_data(n: int = 16, size: int = 12, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g), torch.arange(n) % 4


def squared_gradient(model, x, target, create_graph=False, power=2.0):
    """A toy interpreter: the input gradient raised to ``power`` (differentiable)."""
    xg = x if x.requires_grad else x.detach().requires_grad_(True)
    out = model(xg)
    (g,) = torch.autograd.grad(out.gather(1, target.view(-1, 1)).sum(), xg, create_graph=create_graph)
    return g.abs() ** power


TOY = E.Interpreter("squared_gradient", squared_gradient, "gradient", True, ("image",), "simonyan2014deep",
                    "Squared gradient", shares_forward=True)


def left_half_share(h0, h1, region, k):
    """A toy statistic: the share of the fooled map's mass in the left half."""
    w = h1.abs()
    half = w.shape[-1] // 2
    return w[..., :half].flatten(1).sum(1) / w.flatten(1).sum(1).clamp_min(1e-30)


LEFT = H.ModelAttack("left_half", "region", left_half_share, lambda s: s >= 0.6, "≥ 0.6", 5.0, ("region",),
                     reference_map=False, description="mass pushed into the left half")


def test_a_registered_interpreter_and_model_attack_run_everywhere():
    model, (x, y) = tiny_model(), tiny_data()
    with E.registered(TOY), H.registered(LEFT):
        assert plot.method_label("squared_gradient") == "Squared gradient"
        assert "squared_gradient" in A.attack_methods()
        # the explain API, with its option checked against the function's signature
        h = E.explain(model, x, None, "squared_gradient", power=1.0)
        assert h.shape == (16, 12, 12) and torch.allclose(h.sum((1, 2)), torch.ones(16))
        with pytest.raises(ValueError, match="not accepted"):
            E.explain(model, x, None, "squared_gradient", n_steps=3)

        # an input attack through it: Definition 2 holds
        eps = 8 / 255
        r = A.ghorbani_attack(model, x, "squared_gradient", "topk", epsilon=eps, n_iter=4, progress=False)
        assert r.method == "squared_gradient"
        assert float((r.x_adv - r.x).abs().max()) <= eps + 1e-7
        assert bool((r.logits_adv.argmax(1)[r.success] == r.label[r.success]).all())
        assert float(r.objective[-1].mean()) <= float(r.objective[0].mean())

        # transfer from and to it
        moved = TR.to_interpreters(model, r, ["squared_gradient", "gradient"], k=10)
        assert set(moved) == {"squared_gradient", "gradient"} and moved["squared_gradient"]["topk"].shape == (16,)

        # a sanity check of it: randomising the top layer changes its maps
        res = S.cascading(model, x[:4], ["squared_gradient"], layers=["net.6"])
        assert res["similarity"]["squared_gradient"]["spearman_abs"].shape == (1, 4)
        assert not torch.allclose(res["maps"]["squared_gradient"][0], res["original"]["squared_gradient"])

        # the toy model attack through the toy interpreter: fine-tuning moves mass to the left half
        region = torch.zeros(12, 12)
        region[:, :6] = 1
        before = HR.fooling_statistic("left_half", E.explain(model, x, y, "squared_gradient"),
                                      E.explain(model, x, y, "squared_gradient"), region=region)
        fooled, hist = H.finetune(model, x, y, "left_half", "squared_gradient", lam=5.0, epochs=3, lr=3e-3,
                                  batch_size=8, region=region, seed=0, progress=False)
        assert hist["fooling_loss"][-1] < hist["fooling_loss"][0]
        res = H.evaluate(model, fooled, x, y, "left_half", "squared_gradient", region=region)
        assert res.attack == "left_half" and 0.0 <= res.fsr <= 1.0
        assert float(res.score.mean()) > float(before.mean())
        assert torch.equal(res.success, res.score >= 0.6)
        many = H.evaluate_interpreters(model, fooled, x, y, "left_half", ["squared_gradient", "gradient"],
                                       region=region)
        assert set(many) == {"squared_gradient", "gradient"}
        assert math.isclose(H.default_lambda("left_half", "squared_gradient"), 5.0)
    # gone after the block: the package is as it was
    assert "squared_gradient" not in E.METHODS and "left_half" not in H.MODEL_ATTACKS
    with pytest.raises(ValueError, match="method must be one of"):
        E.explain(model, x, None, "squared_gradient")
    with pytest.raises(ValueError, match="attack must be one of"):
        H.evaluate(model, model, x, y, "left_half", "gradient")


def test_registries_refuse_bad_entries():
    with pytest.raises(ValueError, match="family"):
        E.Interpreter("x", squared_gradient, "magic", True, ("image",), "k", "X")
    with pytest.raises(ValueError, match="registered already"):
        E.register(E.METHODS["gradient"])
    with pytest.raises(ValueError, match="objective"):
        H.ModelAttack("y", "no_such_objective", left_half_share, lambda s: s > 0, "> 0", 1.0)
    with pytest.raises(ValueError, match="registered already"):
        H.register(H.MODEL_ATTACKS["topk"])


def test_a_registered_attack_with_a_region_and_a_reference_map_gets_its_region():
    """A model attack whose reference reads both the original maps and a region (unlike location) gets the
    region the caller passed on every batch."""
    model, (x, y) = tiny_model(), tiny_data()
    region = torch.zeros(12, 12)
    region[:, :6] = 1
    seen = []

    def share_in_region(h0, h1, region, k):
        seen.append(region is not None)
        return left_half_share(h0, h1, region, k)

    both = H.ModelAttack("region_with_map", "region", share_in_region, lambda s: s >= 0.6, "≥ 0.6", 5.0,
                         ("region",), reference_map=True)
    with H.registered(both):
        fooled, hist = H.finetune(model, x, y, "region_with_map", "gradient", lam=1.0, epochs=1, lr=1e-3,
                                  batch_size=8, region=region, seed=0, progress=False)
        r = H.evaluate(model, fooled, x, y, "region_with_map", "gradient", region=region)
    assert len(hist["loss"]) == 1 and seen and all(seen) and r.settings["region"].shape == (12, 12)


def test_artefacts_of_runtime_entries_are_never_cached(tmp_path, monkeypatch):
    """The cache keys hold the package's code, not a caller's: an entry registered (or replaced) at run time
    is computed every time, so a changed entry under the same name cannot be answered from the cache."""
    monkeypatch.delenv("XAIFOOL_NO_CACHE")
    monkeypatch.setenv("XAIFOOL_CACHE", str(tmp_path))
    from xaifool import config

    config.get_config.cache_clear()
    try:
        model, (x, y) = tiny_model(), tiny_data(4)
        fsr = []
        for rule in (lambda s: s < -1, lambda s: s > -1):    # never / always fooled, under one name
            toy = H.ModelAttack("toy_rule", "center", HR.center_shift, rule, "toy", 1.0)
            with H.registered(toy):
                fsr.append(H.evaluate(model, model, x, y, "toy_rule", "gradient", cache=True).fsr)
        assert fsr == [0.0, 1.0]
        assert E.METHODS.is_builtin("gradient") and H.MODEL_ATTACKS.is_builtin("topk")
        with E.registered(TOY):
            assert not E.METHODS.is_builtin("squared_gradient")
            A.cached_attack("toy", model, x, "random", "squared_gradient", epsilon=2 / 255)
        assert not list(tmp_path.rglob("*.pt"))            # nothing was written for them
        H.evaluate(model, model, x, y, "center", "gradient", cache=True)
        assert list(tmp_path.rglob("*.pt"))                # a built-in evaluation is cached
    finally:
        config.get_config.cache_clear()


def test_entries_are_checked_when_built():
    with pytest.raises(ValueError, match="surrogate"):
        E.Interpreter("x", squared_gradient, "gradient", True, ("image",), "k", "X", surrogate="nope")
    with pytest.raises(ValueError, match="lambda_scale"):
        E.Interpreter("x", squared_gradient, "gradient", True, ("image",), "k", "X", lambda_scale=float("nan"))
    with pytest.raises(ValueError, match="statistic"):
        H.ModelAttack("y", "topk", None, lambda s: s > 0, "> 0", 1.0)
    with pytest.raises(ValueError, match="default_lambda"):
        H.ModelAttack("y", "topk", left_half_share, lambda s: s > 0, "> 0", -1.0)
    with pytest.raises(ValueError, match="lams"):
        H.sweep("cifar_resnet20", "topk", "gradcam", ["ten"], [1e-4])
    # a failed registration inside registered() leaves nothing behind
    with pytest.raises(ValueError, match="registered already"):
        with E.registered(TOY, E.METHODS["gradient"]):
            pass
    assert "squared_gradient" not in E.METHODS and E.METHODS.is_builtin("gradient")
