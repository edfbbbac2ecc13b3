r"""Scoring a detector of manipulations, and percentile-bootstrap intervals for the book's numbers.

A detector gives every input (an image, a model) a score, higher meaning more suspicious, and flags
it when ``score >= threshold``. On ``n₀`` clean and ``n₁`` manipulated inputs:

* detection rate (true-positive rate) :math:`\mathrm{TPR}(t) = \#\{s^{\mathrm{man}} \ge t\} / n_1`,
* false-alarm rate (false-positive rate) :math:`\mathrm{FPR}(t) = \#\{s^{\mathrm{clean}} \ge t\} / n_0`.

:func:`roc` traces both over every distinct score (as scikit-learn's
``roc_curve(y, s, drop_intermediate=False)``: one point per distinct threshold, from (0, 0) at
:math:`t = +\infty`) and its area by the trapezoid rule, which equals the Mann–Whitney probability

.. math:: \mathrm{AUC} = P(s^{\mathrm{man}} > s^{\mathrm{clean}}) + \tfrac12 P(s^{\mathrm{man}} = s^{\mathrm{clean}}).

:func:`bootstrap_ci` is the percentile bootstrap (Efron & Tibshirani 1993) with paired resampling;
:func:`spearman_ci` and :func:`mean_ci` are it for a rank correlation and a mean (vectorised, and
equal to calling :func:`bootstrap_ci` with the same seed). Every interval contains its estimate (see
:func:`bootstrap_ci`). Everything is numpy / scipy on the CPU and deterministic for a seed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real

import numpy as np
import scipy.stats
import torch

from .validate import check_fraction, check_int

__all__ = ["Roc", "roc", "rates_at", "threshold_for_false_alarm", "bootstrap_ci", "spearman_ci", "mean_ci"]

#: Most resampled values (rows × samples) held in memory at once by the vectorised intervals.
_CHUNK_VALUES = 1 << 22


# --------------------------------------------------------------------------------------------- checks
def _as_vector(values, name: str, *, finite: bool = True, min_len: int = 1) -> np.ndarray:
    """``values`` (array-like or tensor) as a 1-D float64 array of at least ``min_len`` (finite) entries."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a 1-D array of numbers, got {type(values).__name__}") from None
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of numbers, got an array of shape {arr.shape}")
    if len(arr) < min_len:
        what = "non-empty" if min_len == 1 else f"of at least {min_len} entries"
        raise ValueError(f"{name} must be {what}, got {len(arr)} entries")
    if finite and not np.isfinite(arr).all():
        raise ValueError(f"{name} must hold finite numbers only, got {int((~np.isfinite(arr)).sum())} "
                         f"NaN or infinite entries")
    return arr


def _check_threshold(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or math.isnan(float(value)):
        raise ValueError(f"{name} must be a real number (±inf allowed, not NaN), got {value!r}")
    return float(value)


def _count_at_least(sorted_scores: np.ndarray, thresholds) -> np.ndarray:
    """How many of ``sorted_scores`` (ascending) are >= each threshold."""
    return len(sorted_scores) - np.searchsorted(sorted_scores, thresholds, side="left")


# ------------------------------------------------------------------------------------------------ ROC
@dataclass(frozen=True, eq=False)
class Roc:
    """A ROC curve: one point per distinct threshold, in increasing order of both rates.

    Attributes:
        false_alarm: (m,) read-only float64 array, false-alarm rates in [0, 1], non-decreasing, from 0.
        detection: (m,) read-only float64 array, detection rates in [0, 1], non-decreasing, from 0.
        thresholds: (m,) read-only float64 array, decreasing: +inf, then every distinct score.
        auc: float in [0, 1], the area under the curve (trapezoid rule).
    """
    false_alarm: np.ndarray
    detection: np.ndarray
    thresholds: np.ndarray
    auc: float


def _trapezoid(y: np.ndarray, x: np.ndarray) -> float:
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1])) / 2)


def roc(scores_clean, scores_manipulated) -> Roc:
    """The ROC curve and AUC of the rule ``score >= threshold`` (higher score = more suspicious).

    Points as scikit-learn's ``roc_curve(y, s, drop_intermediate=False)`` (``y = 1`` for manipulated):
    the first at threshold +inf is (0, 0), then one per distinct score, in decreasing order; tied
    scores of both groups enter at the same point (a diagonal step, half of which counts towards
    the AUC).

    Args:
        scores_clean: (n₀,) array-like or tensor of finite floats, the scores of clean inputs, n₀ >= 1.
        scores_manipulated: (n₁,) array-like or tensor of finite floats, the scores of manipulated inputs, n₁ >= 1.

    Returns:
        :class:`Roc` with ``false_alarm``, ``detection``, ``thresholds`` ((m,) arrays, m = distinct scores + 1)
        and ``auc`` in [0, 1].
    """
    clean = np.sort(_as_vector(scores_clean, "scores_clean"))
    manip = np.sort(_as_vector(scores_manipulated, "scores_manipulated"))
    thresholds = np.concatenate([[np.inf], np.unique(np.concatenate([clean, manip]))[::-1]])
    fpr = _count_at_least(clean, thresholds) / len(clean)
    tpr = _count_at_least(manip, thresholds) / len(manip)
    for a in (fpr, tpr, thresholds):
        a.setflags(write=False)
    return Roc(false_alarm=fpr, detection=tpr, thresholds=thresholds, auc=_trapezoid(tpr, fpr))


def rates_at(scores_clean, scores_manipulated, threshold: float) -> tuple[float, float]:
    """(detection rate, false-alarm rate) of the rule ``score >= threshold``.

    Args:
        scores_clean: (n₀,) array-like or tensor of finite floats, n₀ >= 1.
        scores_manipulated: (n₁,) array-like or tensor of finite floats, n₁ >= 1.
        threshold: real number (±inf allowed, not NaN).

    Returns:
        (detection, false_alarm), two floats in [0, 1].
    """
    clean = np.sort(_as_vector(scores_clean, "scores_clean"))
    manip = np.sort(_as_vector(scores_manipulated, "scores_manipulated"))
    t = _check_threshold(threshold, "threshold")
    return float(_count_at_least(manip, t) / len(manip)), float(_count_at_least(clean, t) / len(clean))


def threshold_for_false_alarm(scores_clean, max_false_alarm: float) -> float:
    """The smallest threshold among the clean scores and +inf whose false-alarm rate is <= ``max_false_alarm``.

    The false-alarm rate is that of :func:`rates_at` (``#{clean >= t} / n₀``, compared as the same
    float), so ``rates_at(clean, manip, t)[1] <= max_false_alarm`` holds for the returned ``t``. +inf
    (flag nothing) is returned when every clean score would be flagged too often, e.g. for
    ``max_false_alarm = 0``.

    Args:
        scores_clean: (n₀,) array-like or tensor of finite floats, n₀ >= 1.
        max_false_alarm: float in [0, 1), the largest false-alarm rate accepted.

    Returns:
        float: one of the clean scores, or +inf.
    """
    clean = np.sort(_as_vector(scores_clean, "scores_clean"))
    bound = check_fraction(max_false_alarm, "max_false_alarm", open_low=False)
    candidates = np.unique(clean)   # ascending: the false-alarm rate decreases along it
    ok = np.flatnonzero(_count_at_least(clean, candidates) / len(clean) <= bound)
    return float(candidates[ok[0]]) if len(ok) else math.inf


# ------------------------------------------------------------------------------------------ bootstrap
def _check_bootstrap(n_boot, level, seed) -> tuple[int, float, int]:
    return check_int(n_boot, "n_boot", 100), check_fraction(level, "level"), check_int(seed, "seed", 0)


def _indices(n_rows: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n_rows) row indices drawn with replacement, the same for every bootstrap function."""
    return np.random.default_rng(seed).integers(0, n_rows, size=(n_boot, n_rows))


def _interval(estimate: float, boots: np.ndarray, level: float) -> tuple[float, float, float]:
    """Percentile interval of the finite ``boots``, widened to contain a finite ``estimate``."""
    finite = boots[np.isfinite(boots)]
    if len(finite) < len(boots) / 2:
        return estimate, math.nan, math.nan
    alpha = 1 - level
    low, high = (float(q) for q in np.quantile(finite, [alpha / 2, 1 - alpha / 2]))
    if math.isfinite(estimate):
        low, high = min(low, estimate), max(high, estimate)
    return estimate, low, high


def _scalar(value, what: str) -> float:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"statistic must return one number, got {type(value).__name__} {what}") from None
    if arr.size != 1:
        raise ValueError(f"statistic must return one number, got an array of shape {arr.shape} {what}")
    return float(arr.reshape(()))


def bootstrap_ci(statistic, *samples, n_boot: int = 2000, level: float = 0.95,
                 seed: int = 0) -> tuple[float, float, float]:
    """Percentile-bootstrap interval of ``statistic(*samples)``, resampling the rows of all samples together.

    Each of ``n_boot`` resamples draws ``n`` row indices with replacement (numpy ``default_rng(seed)``)
    and applies the same indices to every sample (paired data stay paired). Resamples on which the
    statistic is not finite (e.g. a correlation of a constant resample) are dropped; if fewer than half
    are finite the interval is (nan, nan). The interval is the ``(1 - level) / 2`` and
    ``(1 + level) / 2`` quantiles of the rest, widened where needed to contain a finite estimate: a
    percentile interval can exclude its point estimate for a skewed statistic, and the book states
    every interval with its estimate inside.

    Args:
        statistic: callable taking one 1-D array per sample and returning one number (nan allowed).
        *samples: one or more 1-D array-likes or tensors of equal length n >= 2 (the rows).
        n_boot: int >= 100, the number of resamples.
        level: float in (0, 1), the confidence level.
        seed: int >= 0, seed of the resampling.

    Returns:
        (estimate, low, high): the statistic on the original data and the interval, floats with
        low <= estimate <= high when the estimate is finite (low, high nan when too few resamples are finite).
    """
    if not callable(statistic):
        raise ValueError(f"statistic must be a callable returning one number, got {type(statistic).__name__}")
    if not samples:
        raise ValueError("samples must be one or more 1-D arrays, got none")
    n_boot, level, seed = _check_bootstrap(n_boot, level, seed)
    arrays = []
    for i, s in enumerate(samples):
        if isinstance(s, torch.Tensor):
            s = s.detach().cpu().numpy()
        a = np.asarray(s)
        if a.ndim != 1 or len(a) < 2:
            raise ValueError(f"samples[{i}] must be a 1-D array of at least 2 rows, got shape {a.shape}")
        arrays.append(a)
    if len({len(a) for a in arrays}) > 1:
        raise ValueError(f"samples must all have the same length (paired rows), got lengths {[len(a) for a in arrays]}")
    estimate = _scalar(statistic(*arrays), "on the data")
    boots = np.array([_scalar(statistic(*(a[idx] for a in arrays)), "on a resample")
                      for idx in _indices(len(arrays[0]), n_boot, seed)])
    return _interval(estimate, boots, level)


def _row_pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row pair of (m, n) arrays; nan where a row is constant."""
    xc = x - x.mean(axis=1, keepdims=True)
    yc = y - y.mean(axis=1, keepdims=True)
    den = np.sqrt((xc * xc).sum(axis=1) * (yc * yc).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(den > 0, (xc * yc).sum(axis=1) / np.where(den > 0, den, 1.0), np.nan)
    return np.clip(r, -1.0, 1.0)


def _resampled(stat_rows, arrays, n_boot: int, seed: int) -> np.ndarray:
    """``stat_rows`` ((m, n) arrays, one per sample → (m,)) over the resamples of :func:`bootstrap_ci`, in chunks."""
    idx = _indices(len(arrays[0]), n_boot, seed)
    step = max(1, _CHUNK_VALUES // len(arrays[0]))
    return np.concatenate([stat_rows(*(a[idx[i:i + step]] for a in arrays)) for i in range(0, n_boot, step)])


def spearman_ci(a, b, *, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """Spearman rank correlation of paired values with its percentile-bootstrap interval.

    The estimate is ``scipy.stats.spearmanr(a, b)``; the resamples are those of :func:`bootstrap_ci`
    with the same ``seed`` (ranks with ties averaged, computed for all resamples at once), so the
    result equals ``bootstrap_ci(spearman, a, b, ...)`` up to rounding. Constant resamples are dropped;
    rho is nan if ``a`` or ``b`` is constant.

    Args:
        a: (n,) array-like or tensor of finite floats, n >= 2.
        b: (n,) array-like or tensor of finite floats, paired with ``a``.
        n_boot: int >= 100, the number of resamples.
        level: float in (0, 1), the confidence level.
        seed: int >= 0, seed of the resampling.

    Returns:
        (rho, low, high): floats in [-1, 1] (or nan), low <= rho <= high when rho is finite.
    """
    x = _as_vector(a, "a", min_len=2)
    y = _as_vector(b, "b", min_len=2)
    if len(x) != len(y):
        raise ValueError(f"a and b must have the same length (paired values), got {len(x)} and {len(y)}")
    n_boot, level, seed = _check_bootstrap(n_boot, level, seed)
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan, math.nan, math.nan   # no rank correlation of a constant, on the data or any resample
    rho = float(scipy.stats.spearmanr(x, y).statistic)

    def rows(xs, ys):
        return _row_pearson(scipy.stats.rankdata(xs, axis=1), scipy.stats.rankdata(ys, axis=1))

    return _interval(rho, _resampled(rows, (x, y), n_boot, seed), level)


def mean_ci(values, *, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """The mean with its percentile-bootstrap interval (the resamples of :func:`bootstrap_ci` for ``seed``).

    At least 2 values are required: one value has no spread to resample.

    Args:
        values: (n,) array-like or tensor of finite floats, n >= 2.
        n_boot: int >= 100, the number of resamples.
        level: float in (0, 1), the confidence level.
        seed: int >= 0, seed of the resampling.

    Returns:
        (mean, low, high): floats with low <= mean <= high.
    """
    v = _as_vector(values, "values", min_len=2)
    n_boot, level, seed = _check_bootstrap(n_boot, level, seed)
    return _interval(float(np.mean(v)), _resampled(lambda r: r.mean(axis=1), (v,), n_boot, seed), level)
