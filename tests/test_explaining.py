"""Chapter 05's library: the defence sweeps and the detector scores keep their promises on a small network."""
import math

import pandas as pd
import pytest
import torch
import torch.nn as nn

from xaifool import defences as D
from xaifool import uncover as U
from xaifool.book.explaining import halving_point


def _net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, 4)).eval()


@pytest.fixture(autouse=True)
def _no_cache(monkeypatch):
    monkeypatch.setenv("XAIFOOL_NO_CACHE", "1")


def test_beta_sweep_keeps_the_budget_and_trades_robustness_for_faithfulness():
    net, x = _net(), torch.rand(4, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    out = D.beta_sweep(net, x, (0.3, 100.0), n_iter=3, target_iters=3, curvature_iters=5, k=6)
    assert set(out) == {0.3, 100.0, "relu"}
    for row in out.values():
        assert set(row) == set(D.DEFENCE_MEASURES)
        assert all(v.shape == (4,) for v in row.values())
        assert ((row["topk_after"] >= 0) & (row["topk_after"] <= 1)).all()
    # a nearly-ReLU network explains almost like the ReLU network; a very smooth one does not
    assert out[100.0]["faithfulness"].mean() > 0.9
    assert out[100.0]["faithfulness"].mean() > out[0.3]["faithfulness"].mean()
    assert torch.allclose(out["relu"]["faithfulness"], torch.ones(4, dtype=torch.float64))
    # Softplus(β)'s curvature grows with β
    assert out[100.0]["curvature"].mean() > out[0.3]["curvature"].mean()


def test_sweeps_refuse_bad_settings():
    net, x = _net(), torch.rand(2, 3, 8, 8)
    with pytest.raises(ValueError, match="betas"):
        D.beta_sweep(net, x, (1.0, 0.0))
    with pytest.raises(ValueError, match="betas"):
        D.beta_sweep(net, x, ())
    with pytest.raises(ValueError, match="sigmas"):
        D.sigma_sweep(net, x, (-0.1,))
    with pytest.raises(ValueError, match="n_iter"):
        D.sigma_sweep(net, x, (0.1,), n_iter=0)


def test_detector_scores_are_zero_without_a_difference_and_grow_with_noise():
    net, x = _net(), torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(U.reference_disagreement(net, net, x, "gradient"), torch.zeros(4, dtype=torch.float64),
                          atol=1e-6)
    assert torch.allclose(U.interpreter_disagreement(net, x, "gradient", "gradient"),
                          torch.zeros(4, dtype=torch.float64), atol=1e-6)
    small = U.noise_instability(net, x, sigma=1e-6, draws=2)
    large = U.noise_instability(net, x, sigma=0.5, draws=2)
    assert (small >= -1e-9).all() and (large <= 2).all()
    assert small.mean() < large.mean()
    other = _net(seed=5)
    assert U.reference_disagreement(other, net, x, "gradient").mean() > 0.1


def test_detectors_refuse_bad_arguments():
    net, x = _net(), torch.rand(2, 3, 8, 8)
    with pytest.raises(ValueError, match="sigma"):
        U.noise_instability(net, x, sigma=0)
    with pytest.raises(ValueError, match="draws"):
        U.noise_instability(net, x, draws=0)
    with pytest.raises(ValueError, match="method"):
        U.reference_disagreement(net, net, x, "no_such_interpreter")
    with pytest.raises(ValueError, match="reference"):
        U.reference_disagreement(net, "not a model", x)


def test_halving_point_interpolates_in_log_beta():
    t = pd.DataFrame({"beta": [100.0, 10.0, 1.0, "relu"], "topk_after": [0.2, 0.4, 0.8, 0.1]})
    # undefended effect 0.9 → half 0.45; effects 0.8 (β=100), 0.6 (β=10), 0.2 (β=1): crosses between 10 and 1
    b = halving_point(t, 0.9, column="topk_after")
    w = (0.6 - 0.45) / (0.6 - 0.2)
    assert b == pytest.approx(math.exp(math.log(10) + w * (math.log(1) - math.log(10))))
    assert 1 < b < 10
    assert math.isnan(halving_point(t, 0.1, column="topk_after"))       # half of 0.1 is reached by no swept β


def test_an_attack_on_a_smoothed_network_differentiates_it_as_it_is():
    """A β-smoothing defence is attacked through its own Softplus(β) network (no second smoothing): the
    attack keeps ‖δ‖∞ ≤ ε and the label, and the surrogate keeps the defence's β."""
    from xaifool.attacks.input import ghorbani_attack, surrogate_network
    from xaifool.models import smooth

    net, x = _net(), torch.rand(3, 3, 12, 12, generator=torch.Generator().manual_seed(3))
    defended = smooth(net, 2.0)
    surrogate = surrogate_network(defended, "gradient", 2.0)
    assert {m.beta for m in surrogate.modules() if isinstance(m, nn.Softplus)} == {2.0}
    assert not any(isinstance(m, nn.ReLU) for m in surrogate.modules())
    r = ghorbani_attack(defended, x, "gradient", "topk", epsilon=4 / 255, n_iter=3, k=6, beta=2.0)
    assert (r.x_adv - r.x).abs().max() <= 4 / 255 + 1e-6
    assert r.label_kept.all()
