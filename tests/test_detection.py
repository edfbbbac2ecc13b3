"""Tests for xaifool.detection: the ROC against scikit-learn and the Mann–Whitney formula, the rates and
thresholds against the ROC, and the bootstrap intervals against the normal theory of a mean."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch

from xaifool import detection as D

sk_metrics = pytest.importorskip("sklearn.metrics")


def _tied_scores(seed: int = 0):
    """30 clean and 40 manipulated integer-rounded normal scores (many ties, within and across groups)."""
    rng = np.random.default_rng(seed)
    return np.round(rng.normal(0.0, 2.0, 30)), np.round(rng.normal(1.0, 2.0, 40))


def _mann_whitney(clean, manip) -> float:
    diff = np.asarray(manip)[:, None] - np.asarray(clean)[None, :]
    return float(np.mean(diff > 0) + 0.5 * np.mean(diff == 0))


def _spearman(a, b) -> float:
    return float(scipy.stats.spearmanr(a, b).statistic)


# ----------------------------------------------------------------------------------------------- ROC
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_roc_matches_scikit_learn_with_ties(seed):
    clean, manip = _tied_scores(seed)
    assert len(np.unique(clean)) < len(clean) and np.intersect1d(clean, manip).size > 0   # ties of both kinds
    y = np.r_[np.zeros(len(clean)), np.ones(len(manip))]
    s = np.r_[clean, manip]
    fpr, tpr, thr = sk_metrics.roc_curve(y, s, drop_intermediate=False)
    got = D.roc(clean, manip)
    np.testing.assert_array_equal(got.false_alarm, fpr)
    np.testing.assert_array_equal(got.detection, tpr)
    assert got.thresholds[0] == math.inf
    np.testing.assert_array_equal(got.thresholds[1:], thr[1:])   # sklearn's first is inf or max + 1 by version
    assert abs(got.auc - sk_metrics.roc_auc_score(y, s)) < 1e-12
    assert abs(got.auc - _mann_whitney(clean, manip)) < 1e-12


def test_roc_accepts_lists_and_tensors_and_is_read_only():
    clean, manip = _tied_scores()
    a = D.roc(clean, manip)
    b = D.roc(torch.tensor(clean, requires_grad=True), list(manip))
    for f in ("false_alarm", "detection", "thresholds"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
        with pytest.raises(ValueError):
            getattr(a, f)[0] = 0.5
    assert a.auc == b.auc
    with pytest.raises(AttributeError):
        a.auc = 0.0


def test_roc_extremes():
    perfect = D.roc([0.0, 1.0], [2.0, 3.0])
    assert perfect.auc == 1.0 and perfect.detection[2] == 1.0 and perfect.false_alarm[2] == 0.0
    assert D.roc([2.0, 3.0], [0.0, 1.0]).auc == 0.0
    same = D.roc([1.0, 1.0], [1.0])
    assert same.auc == 0.5 and list(same.false_alarm) == [0, 1] and list(same.detection) == [0, 1]


# ------------------------------------------------------------------------------- rates and thresholds
def test_rates_at_every_threshold_are_the_roc_points():
    clean, manip = _tied_scores()
    r = D.roc(clean, manip)
    for t, fa, det in zip(r.thresholds, r.false_alarm, r.detection):
        assert D.rates_at(clean, manip, t) == (det, fa)
    assert D.rates_at(clean, manip, -math.inf) == (1.0, 1.0)
    assert D.rates_at(clean, manip, r.thresholds[-1] - 0.5) == (1.0, 1.0)


@pytest.mark.parametrize("bound", [0.0, 0.05, 0.1, 1 / 3, 0.5, 0.9, 0.99])
def test_threshold_for_false_alarm_is_the_smallest_within_the_bound(bound):
    clean, manip = _tied_scores()
    t = D.threshold_for_false_alarm(clean, bound)
    assert t == math.inf or t in clean
    assert D.rates_at(clean, manip, t)[1] <= bound
    smaller = [c for c in np.unique(clean) if c < t]
    assert all(D.rates_at(clean, manip, c)[1] > bound for c in smaller)
    top = clean.max()                           # +inf only when even the largest clean score alarms too often
    assert (t == math.inf) == (np.mean(clean >= top) > bound)


def test_threshold_for_false_alarm_on_distinct_scores():
    clean = np.arange(10.0)        # FA(t = k) = (10 - k) / 10
    assert D.threshold_for_false_alarm(clean, 0.1) == 9.0
    assert D.threshold_for_false_alarm(clean, 0.25) == 8.0
    assert D.threshold_for_false_alarm(clean, 0.0) == math.inf
    assert D.threshold_for_false_alarm(clean, 0.95) == 1.0


# ---------------------------------------------------------------------------------------- bootstrap
def test_bootstrap_is_deterministic_for_a_seed():
    rng = np.random.default_rng(0)
    v = rng.normal(size=50)
    a = D.bootstrap_ci(np.mean, v, seed=3)
    assert a == D.bootstrap_ci(np.mean, v, seed=3)
    assert a != D.bootstrap_ci(np.mean, v, seed=4)
    assert a[0] == np.mean(v)


def test_mean_interval_is_close_to_the_normal_theory():
    rng = np.random.default_rng(1)
    sigma = 3.0
    v = rng.normal(5.0, sigma, 2000)
    est, low, high = D.mean_ci(v)
    half = 1.96 * sigma / math.sqrt(len(v))
    assert low < est < high and est == np.mean(v)
    assert abs((high - low) / 2 - half) < 0.2 * half
    assert abs((low + high) / 2 - est) < 0.2 * half
    generic = D.bootstrap_ci(np.mean, v)
    assert np.allclose(generic, (est, low, high), rtol=0, atol=1e-12)
    narrow = D.mean_ci(v, level=0.5)
    assert low < narrow[1] < narrow[2] < high


def test_spearman_ci_is_the_generic_bootstrap_of_scipy_spearman():
    rng = np.random.default_rng(2)
    a = np.round(rng.normal(size=40))            # ties
    b = a + rng.normal(size=40)
    got = D.spearman_ci(a, b, n_boot=500, seed=7)
    ref = D.bootstrap_ci(_spearman, a, b, n_boot=500, seed=7)
    assert got[0] == _spearman(a, b)
    assert np.allclose(got, ref, rtol=0, atol=1e-12)
    assert -1 <= got[1] <= got[0] <= got[2] <= 1


def test_every_interval_contains_its_estimate():
    """A skewed statistic whose percentile interval excludes the estimate: widened to contain it."""
    v = np.arange(20.0)

    def distinct_share(x):
        return len(np.unique(x)) / len(x)      # 1 on the data, about 0.64 on a resample: all below

    est, low, high = D.bootstrap_ci(distinct_share, v, n_boot=400)
    assert est == 1.0 and low < 0.8 and high == est          # the raw upper quantile was below 1
    for seed in range(5):
        rng = np.random.default_rng(seed)
        x = rng.exponential(size=15) ** 3
        for stat in (np.median, np.max, np.std):
            e, lo, hi = D.bootstrap_ci(stat, x, seed=seed)
            assert lo <= e <= hi


def test_bootstrap_drops_nonfinite_resamples_and_gives_up_below_half():
    a = np.r_[np.zeros(9), 1.0]      # a resample misses the 1 (a constant: spearman nan) with p = 0.9^10 ≈ 35 %
    b = np.arange(10.0)
    with np.errstate(all="ignore"), pytest.warns(scipy.stats.ConstantInputWarning):
        est, low, high = D.bootstrap_ci(_spearman, a, b, n_boot=400)
    assert math.isfinite(low) and math.isfinite(high) and low <= est <= high
    assert np.allclose(D.spearman_ci(a, b, n_boot=400), (est, low, high), rtol=0, atol=1e-12)
    v = np.r_[1.0, np.zeros(9)]      # finite only when a resample starts with the 1: p = 10 %
    est, low, high = D.bootstrap_ci(lambda x: np.mean(x) if x[0] == 1.0 else math.nan, v, n_boot=200)
    assert est == 0.1 and math.isnan(low) and math.isnan(high)
    assert all(math.isnan(r) for r in D.spearman_ci(np.ones(5), np.arange(5.0), n_boot=100))


def test_bootstrap_resamples_rows_together():
    """Paired resampling: the correlation of a sample with itself is 1 on every resample."""
    x = np.random.default_rng(3).normal(size=30)
    assert D.bootstrap_ci(lambda a, b: np.corrcoef(a, b)[0, 1], x, x.copy(), n_boot=200) == pytest.approx((1, 1, 1))


# ------------------------------------------------------------------------------------------- errors
def test_errors_name_the_argument():
    clean, manip = _tied_scores()
    with pytest.raises(ValueError, match="^scores_clean .*non-empty"):
        D.roc([], manip)
    with pytest.raises(ValueError, match="^scores_manipulated .*finite"):
        D.roc(clean, np.r_[manip, np.nan])
    with pytest.raises(ValueError, match="^scores_manipulated .*finite"):
        D.rates_at(clean, np.r_[manip, np.inf], 0.0)
    with pytest.raises(ValueError, match="^scores_clean .*1-D"):
        D.roc(clean.reshape(5, 6), manip)
    with pytest.raises(ValueError, match="^scores_clean .*1-D"):
        D.roc(["a", "b"], manip)
    with pytest.raises(ValueError, match="^threshold "):
        D.rates_at(clean, manip, math.nan)
    with pytest.raises(ValueError, match="^max_false_alarm "):
        D.threshold_for_false_alarm(clean, 1.0)
    with pytest.raises(ValueError, match="^max_false_alarm "):
        D.threshold_for_false_alarm(clean, -0.1)
    with pytest.raises(ValueError, match="^level "):
        D.bootstrap_ci(np.mean, clean, level=1)
    with pytest.raises(ValueError, match="^level "):
        D.mean_ci(clean, level=0.0)
    with pytest.raises(ValueError, match="^n_boot "):
        D.bootstrap_ci(np.mean, clean, n_boot=99)
    with pytest.raises(ValueError, match="^seed "):
        D.mean_ci(clean, seed=-1)
    with pytest.raises(ValueError, match="^samples .*same length"):
        D.bootstrap_ci(_spearman, clean, manip)
    with pytest.raises(ValueError, match=r"^samples\[1\] .*at least 2"):
        D.bootstrap_ci(_spearman, clean, manip[:1])
    with pytest.raises(ValueError, match="^samples "):
        D.bootstrap_ci(np.mean)
    with pytest.raises(ValueError, match="^statistic "):
        D.bootstrap_ci("mean", clean)
    with pytest.raises(ValueError, match="^statistic .*one number"):
        D.bootstrap_ci(lambda x: x, clean)
    with pytest.raises(ValueError, match="^statistic .*one number"):
        D.bootstrap_ci(lambda x: "high", clean)
    with pytest.raises(ValueError, match="^a and b .*same length"):
        D.spearman_ci(clean, manip)
    with pytest.raises(ValueError, match="^b .*finite"):
        D.spearman_ci(clean, np.r_[clean[:-1], np.nan])
    with pytest.raises(ValueError, match="^values .*at least 2"):
        D.mean_ci([1.0])
    with pytest.raises(ValueError, match="^values .*non-empty|^values .*at least 2"):
        D.mean_ci([])
