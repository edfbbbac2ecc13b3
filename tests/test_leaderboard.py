"""The robustness leaderboard builds from fixture outcomes without running an attack; its cells state n,
its intervals contain their estimates, its columns follow the attack registries, and bad queries fail
with a ValueError naming the argument."""
import math
import re

import numpy as np
import pytest
import torch

from xaifool import leaderboard as L
from xaifool.attacks.input import DOMBROWSKI_KINDS, GRID_ATTACKS
from xaifool.book.sortable import board_html


def _fixture(seed=0):
    rng = np.random.default_rng(seed)
    out = {}
    for i, m in enumerate(("gradient", "gradcam", "lrp", "smoothgrad")):
        out[m, "input_topk"] = L.Outcome(rng.random(16) < 0.2 * (i + 1), "direct")
        out[m, "model_location"] = (L.Outcome(rng.random(32) < 0.5, "transfer", source="gradcam") if m != "gradcam"
                                    else L.Outcome(rng.random(32) < 0.9, "direct"))
        out[m, "max_sensitivity"] = L.Outcome(rng.random(16) * (i + 1), "estimate")
        out[m, "cost"] = L.Outcome(np.array([0.001 * (i + 1)]), "timed", n=16)
    out["lrp", "sanity"] = L.Outcome(rng.random(8), "verdict", verdict="fails")
    return out


def test_builds_from_fixtures_every_cell_states_n_and_intervals_contain_estimates(monkeypatch):
    import xaifool.attacks.input as A
    monkeypatch.setattr(A, "_iterative", lambda *a, **k: pytest.fail("the leaderboard ran an attack"))
    outcomes = _fixture()
    st = L.standings(outcomes)
    assert st.interpreters == ("gradient", "gradcam", "lrp", "smoothgrad")
    for i in st.interpreters:
        for c in st.columns:
            cell = st.cells[i][c]
            text = cell.text()
            if (i, c) not in outcomes:
                assert cell.empty and "not run" in text
                continue
            assert re.search(rf"n={cell.n}\b", text) and cell.n == len(outcomes[i, c].values) or c == "cost"
            if not math.isnan(cell.low):
                assert cell.low <= cell.estimate <= cell.high
            # the estimate is the mean of the raw values on the column's scale
            assert cell.estimate == pytest.approx(outcomes[i, c].values.mean() * L.COLUMNS[c].scale)
    assert st.cells["gradient"]["cost"].n == 16
    assert "via Grad-CAM" in st.cells["lrp"]["model_location"].text(label={"gradcam": "Grad-CAM"}.get)
    assert st.cells["lrp"]["sanity"].text().startswith("fails")


def test_csv_and_html_carry_every_cell():
    st = L.standings(_fixture())
    long = st.long()
    assert len(long) == len(st.interpreters) * len(st.columns)
    html = board_html(st)
    assert html.count("<tr>") + html.count("<tr ") >= len(st.interpreters) + 2
    assert 'download="leaderboard.csv"' in html and "data:text/csv;base64," in html
    assert html.count("data-sort=") >= len(st.interpreters) * len(st.columns)


def test_rank_correlation_matches_scipy_and_interval_contains_it():
    from scipy.stats import spearmanr

    st = L.standings(_fixture(), columns=("input_topk", "model_location", "max_sensitivity"))
    r = st.robustness_vs_attacks("max_sensitivity")
    est = st.estimates()
    adv = est[["input_topk", "model_location"]].mean(axis=1)
    assert r["rho"] == pytest.approx(spearmanr(est["max_sensitivity"], adv).statistic)
    assert r["n"] == 4 and r["low"] <= r["rho"] <= r["high"]


def test_attack_columns_follow_the_registries():
    for a in GRID_ATTACKS + DOMBROWSKI_KINDS:
        assert f"input_{a}" in L.COLUMNS
    from xaifool.attacks.heo import MODEL_ATTACKS
    for a in MODEL_ATTACKS:
        assert f"model_{a}" in L.COLUMNS
    with L.COLUMNS.registered(L.Column("toy_metric", "toy", "natural robustness", "score")):
        st = L.standings({("gradient", "toy_metric"): L.Outcome(np.ones(3), "estimate")})
        assert st.columns == ("toy_metric",)
    assert "toy_metric" not in L.COLUMNS


def test_bad_queries_name_the_argument():
    outcomes = _fixture()
    with pytest.raises(ValueError, match="interpreters"):
        L.standings(outcomes, interpreters=("gradient", "no_such_interpreter"))
    with pytest.raises(ValueError, match="columns"):
        L.standings(outcomes, columns=("input_topk", "no_such_attack"))
    with pytest.raises(ValueError, match="outcomes"):
        L.standings({})
    with pytest.raises(ValueError, match="natural"):
        L.standings(outcomes).robustness_vs_attacks("input_topk")
    with pytest.raises(ValueError, match="why"):
        L.Outcome(None, "direct")
    with pytest.raises(ValueError, match="values"):
        L.Outcome(np.array([np.nan]), "direct")
    with pytest.raises(ValueError, match="source"):
        L.Outcome(np.ones(2), "transfer")
    with pytest.raises(ValueError, match="how"):
        L.Outcome(np.ones(2), "guessed")


def test_noise_scores_are_quantus_own():
    """The natural-robustness column is computed by Quantus: Max-Sensitivity of the gradient equals
    the largest ‖Δh‖/‖h‖ over Quantus' own uniform draws (reproduced here with the same seed)."""
    import quantus
    from xaifool import stability as S
    from xaifool import explain as E

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(4 * 8 * 8, 3)).eval()
    x = torch.rand(3, 3, 8, 8)
    y = net(x).argmax(1)
    ours = S.noise_scores(net, x, y, "gradient", "max_sensitivity", scale=0.05, nr_samples=3, seed=1)
    np.random.seed(1)
    torch.manual_seed(1)
    m = quantus.MaxSensitivity(nr_samples=3, lower_bound=0.05, disable_warnings=True, normalise=False, abs=False,
                               return_nan_when_prediction_changes=False)
    ref = m(model=net, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=None, device="cpu", batch_size=3,
            explain_func=lambda model, inputs, targets, **kw: E.explain(
                model, torch.as_tensor(inputs), torch.as_tensor(targets), "gradient").numpy()[:, None],
            channel_first=True)
    assert np.allclose(ours.numpy(), np.asarray(ref), rtol=1e-5)
    assert (ours >= 0).all()
    with pytest.raises(ValueError, match="metric"):
        S.noise_scores(net, x, y, "gradient", "avg_sensitivity")
    with pytest.raises(ValueError, match="scale"):
        S.noise_scores(net, x, y, "gradient", "max_sensitivity", scale=0)
