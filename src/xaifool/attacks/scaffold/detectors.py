"""The out-of-distribution detectors of the scaffold: the book's (trained on the probes the explainer
actually makes, rehearsed with seeds no auditor uses) and Slack et al.'s (trained on their synthetic
perturbations)."""
from __future__ import annotations

import warnings

import numpy as np

from ...config import get_config
from ...data import TabularDataset
from ...validate import check_int
from .config import DETECTOR_REAL_QUANTILE, ScaffoldConfig, check_explainer
from .classifiers import BiasedClassifier
from .explainers import centres, explain_outputs, standardise


REHEARSAL_PROBES = 20000

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser, element-wise on uint64 (wrapping arithmetic)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def probe_keys(X: np.ndarray, seed: int) -> np.ndarray:
    """A pseudo-random uint64 per row of ``X`` that depends only on the row's float32 values and
    ``seed``: keeping the rows with the smallest keys draws a uniform sample of the distinct rows
    that does not depend on the order or the grouping in which they were seen."""
    U = np.ascontiguousarray(X, dtype=np.float32).reshape(len(X), -1).view(np.uint32).astype(np.uint64)
    with np.errstate(over="ignore"):
        h = _mix64(np.full(len(U), np.uint64(int(seed) % 2**64) ^ _GOLDEN, dtype=np.uint64))
        for j in range(U.shape[1]):
            h = _mix64(h ^ (U[:, j] + _GOLDEN))
    return h


def _smallest_keys(rows: np.ndarray, keys: np.ndarray, limit: int | None):
    """The distinct rows with the ``limit`` smallest keys (all distinct rows if None), by key."""
    keys, first = np.unique(keys, return_index=True)   # sorted; one row per key
    rows = rows[first]
    return (rows, keys) if limit is None else (rows[:limit], keys[:limit])


class _Recorder:
    """``model``'s class-1 probability (an (m, 1) column) that keeps the points it is asked about:
    every batch (``limit=None``), or the distinct points with the ``limit`` smallest
    :func:`probe_keys` — a uniform sample in bounded memory, the same whichever process saw which
    rows. ``state()`` returns what it kept (it travels back from worker processes)."""

    def __init__(self, model, limit: int | None = None, seed: int = 0):
        self.model, self.limit, self.seed, self.batches = model, limit, int(seed), []
        self.rows, self.keys = None, None

    def __call__(self, X):
        X = np.asarray(X)
        Xf = np.ascontiguousarray(X, dtype=np.float32).copy()
        if self.limit is None:
            self.batches.append(Xf)
        else:
            k = probe_keys(Xf, self.seed)
            if self.rows is not None:
                Xf, k = np.concatenate([self.rows, Xf]), np.concatenate([self.keys, k])
            self.rows, self.keys = _smallest_keys(Xf, k, self.limit)
        return np.asarray(self.model.predict_proba(X))[:, 1:2]

    def state(self):
        return self.batches if self.limit is None else [(self.rows, self.keys)]


def rehearsal_seed(ds: TabularDataset, seed: int) -> int:
    """The first seed of the attacker's rehearsal of the explainer (:func:`build_scaffold`): past every
    seed an auditor uses on ``ds`` (test row ``i`` is explained with ``seed + i``), so that no probe
    of the rehearsal is one of the auditor's."""
    return int(seed) + len(ds.X_test)


def collect_queries(ds: TabularDataset, explainer: str, rows: np.ndarray, *, seed: int | None = None,
                    limit: int | None = None, n_jobs: int = 1, **options) -> np.ndarray:
    """The points the explainer queries while explaining ``rows`` (answered by ``f``), stacked (m, d).

    limit:   None: every query, in the order they were made; else a uniform sample of at most
             ``limit`` distinct queries (smallest :func:`probe_keys`, keyed with ``seed``), kept in
             bounded memory — KernelSHAP's rehearsal on the full profile makes tens of millions
    n_jobs:  processes (each explains a share of ``rows``; the result does not depend on it)

    The explained rows themselves are removed (LIME's first sample is the row; KernelSHAP
    evaluates the row alone once): they are real, not perturbations. ``options`` go to
    :func:`explain_outputs` (LIME / KernelSHAP settings).
    """
    seed = get_config().seed if seed is None else int(seed)
    if limit is not None:
        limit = check_int(limit, "limit", 1)
    rec = _Recorder(BiasedClassifier(ds.sensitive_index), limit=limit, seed=seed)
    states: list = []
    explain_outputs(rec, rows, ds, explainer, n_outputs=1, seed=seed,
                    n_jobs=n_jobs, states=states, **options)
    if limit is None:
        Q = np.concatenate([b for batches in states for b in batches])
    else:
        parts = [part for st in states for part in st if part[0] is not None]
        Q = _smallest_keys(np.concatenate([r for r, _ in parts]), np.concatenate([k for _, k in parts]), limit)[0]
    return _drop_rows(Q, rows)


def row_keys(X) -> set:
    return {r.tobytes() for r in np.ascontiguousarray(X, dtype=np.float32)}


def _drop_rows(Q: np.ndarray, rows: np.ndarray, keys: set | None = None) -> np.ndarray:
    """``Q`` without the rows that equal one of ``rows`` (or whose key is in ``keys``) exactly, as float32."""
    Q = np.ascontiguousarray(Q, dtype=np.float32)
    keys = row_keys(rows) if keys is None else keys
    keep = np.fromiter((q.tobytes() not in keys for q in Q), dtype=bool, count=len(Q))
    return Q[keep]


def forest_proba(forest, X) -> np.ndarray:
    """``forest.predict_proba(X)`` of a fitted scikit-learn ``RandomForestClassifier``, bit for bit,
    without its per-tree dispatch (joblib and configuration contexts cost more than the trees
    themselves on a few thousand rows): each tree's normalised leaf values, summed in the forest's
    order and divided by the number of trees, as scikit-learn does."""
    X = np.ascontiguousarray(X, dtype=np.float32)
    n_classes = forest.n_classes_
    out = np.zeros((len(X), n_classes), dtype=np.float64)
    for tree in forest.estimators_:
        proba = tree.tree_.predict(X)[:, :n_classes]
        normalizer = proba.sum(axis=1)[:, np.newaxis]
        normalizer[normalizer == 0.0] = 1.0
        out += proba / normalizer
    out /= len(forest.estimators_)
    return out


class OffGridDetector:
    """The book's out-of-distribution detector: a random forest on each value and its distance to the grid.

    Real rows take values from a grid (integer ages and counts, 0/1 indicators); LIME's
    Gaussian samples and KernelSHAP's k-means centres fall between the grid points. Besides
    the raw row, the forest therefore sees, per column, the distance to the nearest value that
    column takes in the training data (in units of the column's standard deviation).
    ``predict_proba(X)[:, 1]`` is P(real); ``threshold_`` is the decision threshold;
    ``fake_keys`` the fake rows it was trained on (held-out scores leave them out).
    """

    def __init__(self, X_train: np.ndarray):
        X = np.asarray(X_train, dtype=np.float32)
        self.grid = [np.unique(X[:, j]) for j in range(X.shape[1])]
        self.scale = np.maximum(X.std(0), 1e-6)
        self.forest = None
        self.threshold_ = 0.5
        self.fake_keys: set = set()

    def features(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        dist = np.empty_like(X)
        for j, g in enumerate(self.grid):
            pos = np.clip(np.searchsorted(g, X[:, j]), 1, max(len(g) - 1, 1))
            lo, hi = g[pos - 1], g[np.minimum(pos, len(g) - 1)]
            dist[:, j] = np.minimum(np.abs(X[:, j] - lo), np.abs(X[:, j] - hi)) / self.scale[j]
        return np.hstack([X, dist])

    def predict_proba(self, X) -> np.ndarray:
        return forest_proba(self.forest, self.features(X))


class ForestDetector:
    """Slack et al.'s detector: a random forest on the raw values of ``columns``; P(real) = column 1."""

    def __init__(self, forest, columns, threshold: float = 0.5):
        self.forest, self.columns, self.threshold_ = forest, np.asarray(columns), float(threshold)
        self.fake_keys: set = set()

    def predict_proba(self, X) -> np.ndarray:
        return forest_proba(self.forest, np.asarray(X, dtype=np.float32)[:, self.columns])


def train_detector(X_real: np.ndarray, X_fake: np.ndarray, *, seed: int | None = None, max_rows: int = 20000,
                   n_estimators: int = 100, real_quantile: float = DETECTOR_REAL_QUANTILE,
                   threshold: float | None = None) -> OffGridDetector:
    """The book's :class:`OffGridDetector`: real rows labelled 1, explainer queries 0 (balanced by subsampling).

    The grid is learnt from all of ``X_real``. The decision threshold on P(real) is ``threshold``
    if given, else the smaller of 0.5 and the ``real_quantile`` quantile of the out-of-bag P(real)
    of the real rows (an observed score: at least ``1 − real_quantile`` of the real rows with a score
    reach it, ties with the threshold included), so that real rows are called real:
    the attacker's first goal is to behave like ``f`` on real data.
    """
    from sklearn.ensemble import RandomForestClassifier

    if not 0.0 <= real_quantile < 0.5:
        raise ValueError(f"real_quantile must be in [0, 0.5), got {real_quantile}")
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1] or None, got {threshold}")
    seed = get_config().seed if seed is None else int(seed)
    rng = np.random.default_rng(seed)
    n = min(len(X_real), len(X_fake), max_rows)
    if n < 10:
        raise ValueError(f"X_real and X_fake need at least 10 rows each, got {len(X_real)} and {len(X_fake)}")
    R = X_real[rng.choice(len(X_real), n, replace=False)]
    Q = X_fake[rng.choice(len(X_fake), n, replace=False)]
    det = OffGridDetector(X_real)
    det.forest = RandomForestClassifier(n_estimators=n_estimators, min_samples_leaf=2, oob_score=True,
                                        random_state=seed, n_jobs=-1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a row never out of bag gives NaN OOB scores (and a warning)
        det.forest.fit(det.features(np.vstack([R, Q])), np.r_[np.ones(n), np.zeros(n)].astype(int))
    oob = det.forest.oob_decision_function_[:n, 1]
    # method="lower": an observed score, so that at least 1 − real_quantile of the rows reach it
    det.threshold_ = (float(min(0.5, np.nanquantile(oob, real_quantile, method="lower"))) if threshold is None
                      else float(threshold))
    det.forest.set_params(n_jobs=1)  # predictions on a few thousand rows: threads cost more than they save
    det.fake_keys = row_keys(X_fake)  # every query it could have seen: held-out scores leave them out
    return det


def _slack_fakes(ds: TabularDataset, explainer: str, config: ScaffoldConfig, background, rng) -> tuple:
    """Slack et al.'s detector training set: (X, y, columns the forest sees)."""
    X = ds.X_train.astype(np.float64)
    n, d = X.shape
    if explainer == "lime":
        # Adversarial_Lime_Model.train: for each of perturbation_multiplier draws, the data and the data
        # plus N(0, 0.3) noise in standardised units; the forest sees the numerical columns only
        cols = np.array([j for j in range(d) if j not in ds.categorical])
        sd = standardise(X)[2]
        m = config.lime_multiplier
        fake = np.concatenate([X + rng.normal(0.0, 0.3, size=X.shape) * sd for _ in range(m)])
        real = np.tile(X, (m, 1))
        return np.vstack([real, fake]), np.r_[np.ones(len(real)), np.zeros(len(fake))], cols, fake
    # Adversarial_Kernel_SHAP_Model.train: n_samples rows, each a random training row with d random
    # columns (with replacement) substituted from random background centres; labelled real if it
    # happens to equal a training row; the data repeated perturbation_multiplier times as real
    C = centres(background).astype(np.float64)
    s = config.n_substitutions
    fake = X[rng.integers(0, n, size=s)].copy()
    jj = rng.integers(0, d, size=(s, d))
    cc = rng.integers(0, len(C), size=(s, d))
    for t in range(d):
        fake[np.arange(s), jj[:, t]] = C[cc[:, t], jj[:, t]]
    keys = row_keys(X)
    y_fake = np.fromiter((r.tobytes() in keys for r in np.ascontiguousarray(fake, dtype=np.float32)), dtype=float,
                         count=s)
    real = np.repeat(X, config.shap_multiplier, axis=0)
    return np.vstack([real, fake]), np.r_[np.ones(len(real)), y_fake], np.arange(d), fake[y_fake == 0]


def train_perturbation_detector(ds: TabularDataset, explainer: str, config: ScaffoldConfig, *, background=None,
                                seed: int | None = None, n_estimators: int = 100) -> ForestDetector:
    """Slack et al.'s :class:`ForestDetector` for ``explainer``: trained on 80 % of their synthetic set
    (:func:`_slack_fakes`; the other 20 % is their held-out split), threshold ``config.threshold``
    (Slack: 0.5). ``config.detector_max_rows`` caps the training rows (uniform subsample)."""
    from sklearn.ensemble import RandomForestClassifier

    explainer = check_explainer(explainer)
    seed = get_config().seed if seed is None else int(seed)
    rng = np.random.default_rng(seed)
    X, y, cols, fake = _slack_fakes(ds, explainer, config, background, rng)
    train = rng.permutation(len(X))[: int(round(0.8 * len(X)))]
    if config.detector_max_rows is not None and len(train) > config.detector_max_rows:
        train = train[: config.detector_max_rows]
    forest = RandomForestClassifier(n_estimators=n_estimators, random_state=seed, n_jobs=-1)
    forest.fit(X[train][:, cols].astype(np.float32), y[train].astype(int))
    forest.set_params(n_jobs=1)
    det = ForestDetector(forest, cols, 0.5 if config.threshold is None else config.threshold)
    # KernelSHAP's probes can repeat a substituted row exactly; LIME's never repeat Gaussian noise
    det.fake_keys = row_keys(fake) if explainer == "kernel_shap" else set()
    return det
