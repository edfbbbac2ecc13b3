"""Attacks on tabular explanations by scaffolding (Slack et al. 2020), an input-distribution attack.

Dimanov et al.'s (2020) concealment changes the *model*; it lives in
:mod:`xaifool.attacks.concealment`, next to Heo et al.'s model manipulations.

**Scaffolding** (:func:`scaffold_experiment`). A *biased* classifier ``f`` decides by the
sensitive attribute alone; an *innocuous* classifier ``ψ`` decides by one or two decoy columns
(synthetic random 0/1 columns ``unrelated_1``, ``unrelated_2`` appended to the data as Slack et
al. did, or a real feature); an out-of-distribution *detector* (a random forest) is trained to
tell real rows from explainer probes; the *scaffolded* classifier answers with ``f`` on rows
whose detector score P(real) reaches a threshold and with ``ψ`` on everything else. The
explainers under attack are the real ``lime`` (``LimeTabularExplainer``) and ``shap``
(``KernelExplainer``) packages, through the book's one tabular path
(:func:`xaifool.explain.lime_table`, :func:`xaifool.explain.kernel_shap_table`: row ``i`` seeded
with ``seed + i``). They call a NumPy function, and every call is batched: LIME passes all
perturbations of one row in one call, KernelSHAP the row alone and then all its coalitions.

**Two configurations** (:func:`scaffold_config`), run by the same code, every choice an
explicit field of :class:`ScaffoldConfig`:

* ``"book"`` — the book's stricter attacker: the detector (:class:`OffGridDetector`) is trained
  on the points LIME / KernelSHAP *actually* query while explaining training rows
  (:func:`collect_queries`), and its threshold keeps ≥ 97 % of real rows with ``f``; KernelSHAP's
  background is ``shap.kmeans`` on raw units; the 0/1 columns stay single columns.
* ``"slack"`` — the settings of Slack et al.'s released scripts (``compas_experiment.py``,
  ``german_experiment.py``, ``adversarial_models.py`` in dylan-slack/Fooling-LIME-SHAP): a
  random forest on the raw features trained on *their* synthetic perturbations (LIME: Gaussian
  noise of 0.3 standard deviations on the numerical columns, 30 copies; KernelSHAP: 10 copies of
  the data against rows with features substituted from the background centres), P(real) ≥ 0.5;
  background: ``shap.kmeans`` with 10 centres on *standardised* features (German:
  scikit-learn ``KMeans`` centres, unrounded, equal weights); COMPAS's sex and charge degree
  one-hot encoded as pairs of columns; ``f`` and ``ψ`` test their features against the training
  mean (Slack's models compare standardised features with 0); German's ψ tests
  ``LoanRateAsPercentOfIncome`` (as Slack's German script does).

The attack's trade-off is measured, not assumed: every run explains, on the same perturbations,
the scaffold at every threshold of :data:`TRADEOFF_THRESHOLDS` (threshold 0: everything to
``f``; beyond 1: everything to ``ψ``), giving fidelity (agreement with ``f`` on real test rows)
against fooling (share of explanations ranking the sensitive feature first) —
:func:`tradeoff_figure`.

Bad input raises ``ValueError`` naming the argument and the accepted values.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass, fields, replace
from numbers import Integral, Real

import numpy as np
import torch

from ..cache import cached
from ..config import get_config, one_thread
from ..data import TABULAR_DATASETS, TabularDataset, load_tabular
from ..explain import import_quietly, kernel_shap_table, lime_table

__all__ = [
    "SCAFFOLD_EXPLAINERS", "SCAFFOLD_CONFIGS", "BACKGROUNDS", "DETECTORS", "RULES", "TRADEOFF_THRESHOLDS",
    "ScaffoldConfig", "scaffold_config", "check_dataset", "check_explainer", "dataset_card", "reference_accuracy",
    "with_unrelated", "with_pairs", "prepare_dataset",
    "BiasedClassifier", "InnocuousClassifier", "ScaffoldedClassifier", "explain_proba", "explain_outputs",
    "background_summary", "collect_queries", "probe_keys", "REHEARSAL_PROBES", "OffGridDetector", "ForestDetector", "train_detector",
    "train_perturbation_detector", "forest_proba", "build_scaffold", "sensitive_rank", "rank_shares", "flip_rate",
    "scaffold_experiment", "tradeoff_points", "rank_share_figure", "tradeoff_figure",
]

#: Explainers the scaffolding attack targets (``"shap"`` is accepted as an alias of ``"kernel_shap"``).
SCAFFOLD_EXPLAINERS = ("lime", "kernel_shap")
UNRELATED = "unrelated_1"
#: The book's detector threshold is the out-of-bag P(real) quantile that keeps ≥ 1 − this of real rows.
DETECTOR_REAL_QUANTILE = 0.03
#: Named configurations of the scaffolding experiment (:func:`scaffold_config`).
SCAFFOLD_CONFIGS = ("book", "slack")
#: KernelSHAP backgrounds: shap.kmeans on raw units / on standardised features (centres rounded to data
#: values), scikit-learn KMeans on standardised features (unrounded, equal weights), real rows.
BACKGROUNDS = ("kmeans", "kmeans_std", "kmeans_unrounded", "rows")
#: Detectors: trained on the explainer's recorded queries (book) / on Slack et al.'s synthetic perturbations.
DETECTORS = ("queries", "perturbations")
#: How f and ψ test a feature: x > 0.5 (0/1 columns) or x > its training mean (Slack's rule).
RULES = ("half", "mean")
#: Detector thresholds swept by every run (the trade-off curve); inf (everything to ψ) is added.
TRADEOFF_THRESHOLDS = tuple(float(t) for t in np.round(np.linspace(0.0, 1.0, 21), 2))


# --------------------------------------------------------------------------------------
# Configurations
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ScaffoldConfig:
    """Every choice of a scaffolding experiment (sizes come from the profile).

    name:               label ("book", "slack", or anything for a modified copy)
    background:         KernelSHAP background, one of :data:`BACKGROUNDS`
    n_centres:          background centres (None: ``profile.shap_background``); also the number of
                        real rows of the uncovering background
    detector:           one of :data:`DETECTORS`
    threshold:          P(real) at or above which a row goes to f, in [0, 1]; None: the book's rule
                        (out-of-bag quantile keeping ≥ 97 % of real rows, at most 0.5)
    pairs:              0/1 columns encoded as two columns (``c``, ``not_c``), as Slack one-hot encoded
                        COMPAS's sex and charge degree
    rule:               how f and ψ test their features, one of :data:`RULES`
    decoys:             ψ's features: ``unrelated_k`` (appended random 0/1 columns) or real columns;
                        two or more: ψ is their XOR (Slack's two-decoy model)
    lime_around_instance: LIME samples around the row (Slack's COMPAS one-decoy script) instead of
                        around the training mean
    lime_multiplier, shap_multiplier, n_substitutions: Slack's detector training set — copies of
                        the data per LIME noise draw (30), copies of the real rows for KernelSHAP
                        (10) and substituted rows (COMPAS 20,000, German 50,000)
    detector_max_rows:  cap on the detector's training rows (uniform subsample; None: no cap)
    """

    name: str = "book"
    background: str = "kmeans"
    n_centres: int | None = None
    detector: str = "queries"
    threshold: float | None = None
    pairs: tuple = ()
    rule: str = "half"
    decoys: tuple = (UNRELATED,)
    lime_around_instance: bool = False
    lime_multiplier: int = 30
    shap_multiplier: int = 10
    n_substitutions: int = 20000
    detector_max_rows: int | None = None

    def __post_init__(self):
        _check_choice("background", self.background, BACKGROUNDS)
        _check_choice("detector", self.detector, DETECTORS)
        _check_choice("rule", self.rule, RULES)
        if self.threshold is not None and (isinstance(self.threshold, bool) or not isinstance(self.threshold, Real)
                                           or not 0.0 <= float(self.threshold) <= 1.0):
            raise ValueError(f"threshold must be a number in [0, 1] or None (the book's rule), got {self.threshold!r}")
        if self.n_centres is not None:
            _check_int("n_centres", self.n_centres, 1)
        for arg in ("lime_multiplier", "shap_multiplier", "n_substitutions"):
            _check_int(arg, getattr(self, arg), 1)
        if self.detector_max_rows is not None:
            _check_int("detector_max_rows", self.detector_max_rows, 100)
        if not isinstance(self.decoys, (tuple, list)) or not self.decoys or \
                not all(isinstance(c, str) for c in self.decoys):
            raise ValueError(f"decoys must be a non-empty tuple of column names, got {self.decoys!r}")
        if not isinstance(self.pairs, (tuple, list)) or not all(isinstance(c, str) for c in self.pairs):
            raise ValueError(f"pairs must be a tuple of 0/1 column names, got {self.pairs!r}")
        object.__setattr__(self, "decoys", tuple(self.decoys))
        object.__setattr__(self, "pairs", tuple(self.pairs))
        if self.threshold is not None:
            object.__setattr__(self, "threshold", float(self.threshold))

    def as_dict(self) -> dict:
        return asdict(self)


def _check_choice(arg: str, value, accepted) -> None:
    if value not in accepted:
        raise ValueError(f"{arg} must be one of {tuple(accepted)}, got {value!r}")


def _check_int(arg: str, value, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < lo or (hi is not None and value > hi):
        rng = f"an int >= {lo}" if hi is None else f"an int in {lo}..{hi}"
        raise ValueError(f"{arg} must be {rng}, got {value!r}")
    return int(value)


def _slack_settings(name: str) -> dict:
    """Slack et al.'s choices for data set ``name`` (their scripts; Adult by analogy with COMPAS). The
    detector's training rows are capped at ``profile.scaffold_detector_max_rows`` (full profile: no cap)."""
    base = dict(name="slack", background="kmeans_std", n_centres=10, detector="perturbations", threshold=0.5,
                rule="mean", lime_multiplier=30, shap_multiplier=10, n_substitutions=20000,
                detector_max_rows=getattr(get_config().profile, "scaffold_detector_max_rows", None))
    if name == "compas":
        # compas_experiment.py: pd.get_dummies of sex and c_charge_degree; LIME sample_around_instance=True
        return base | dict(pairs=("felony_charge", "male"), lime_around_instance=True)
    if name == "german":
        # german_experiment.py: KMeans(n_clusters=10, random_state=0) centres, unrounded; ψ: loan rate vs
        # its mean; 5e4 substitutions
        return base | dict(background="kmeans_unrounded", decoys=("LoanRateAsPercentOfIncome",),
                           n_substitutions=50000)
    return base


def scaffold_config(config: str | ScaffoldConfig = "book", name: str = "compas", **overrides) -> ScaffoldConfig:
    """The named configuration ``config`` (one of :data:`SCAFFOLD_CONFIGS`) for data set ``name``,
    with ``overrides`` (fields of :class:`ScaffoldConfig`) applied.

    ``"book"``: the book's own attacker (see the module doc). ``"slack"``: Slack et al.'s released
    settings for that data set. A ``ScaffoldConfig`` is returned with the overrides applied.
    """
    check_dataset(name)
    known = {f.name for f in fields(ScaffoldConfig)}
    bad = sorted(set(overrides) - known)
    if bad:
        raise ValueError(f"config key(s) {bad} unknown; accepted keys: {sorted(known)}")
    if isinstance(config, ScaffoldConfig):
        return replace(config, **overrides)
    _check_choice("config", config, SCAFFOLD_CONFIGS)
    base = {} if config == "book" else _slack_settings(name)
    return ScaffoldConfig(**(base | overrides))


# --------------------------------------------------------------------------------------
# Validation and data
# --------------------------------------------------------------------------------------

def check_dataset(name: str) -> str:
    if name not in TABULAR_DATASETS:
        raise ValueError(f"name must be one of {TABULAR_DATASETS}, got {name!r}")
    return name


def check_explainer(explainer: str) -> str:
    if explainer == "shap":
        return "kernel_shap"
    if explainer not in SCAFFOLD_EXPLAINERS:
        raise ValueError(f"explainer must be one of {SCAFFOLD_EXPLAINERS} (or 'shap'), got {explainer!r}")
    return explainer


def _sensitive_index(ds: TabularDataset, sensitive: str | None) -> int:
    name = ds.sensitive if sensitive is None else sensitive
    binary = [ds.feature_names[i] for i in ds.categorical]
    if name not in binary:
        raise ValueError(f"sensitive must be a 0/1 column of {ds.name!r}; accepted: {binary}, got {name!r}")
    return ds.feature_names.index(name)


def dataset_card(ds: TabularDataset) -> dict:
    """Rows, features, split sizes and base rates of class 1 by sensitive group (whole filtered set)."""
    s = ds.sensitive_index
    X = np.concatenate([ds.X_train, ds.X_test])
    y = np.concatenate([ds.y_train, ds.y_test])
    g = X[:, s] > 0.5
    return {
        "data set": ds.name, "rows": int(len(y)), "features": int(ds.n_features),
        "sensitive": ds.sensitive, "share sensitive = 1": float(g.mean()),
        "positive class": ds.class_names[1],
        "base rate (sensitive = 0)": float(y[~g].mean()), "base rate (sensitive = 1)": float(y[g].mean()),
        "train rows": int(len(ds.y_train)), "test rows": int(len(ds.y_test)),
    }


def with_unrelated(ds: TabularDataset, seed: int | None = None, n: int = 1) -> TabularDataset:
    """``ds`` with ``n`` synthetic random 0/1 columns ``unrelated_1`` … appended (Slack et al.'s decoys).

    The columns are drawn independently of everything else (seeded; ``unrelated_1`` does not
    depend on ``n``), so they are uncorrelated with the sensitive attribute and the label by
    construction.
    """
    _check_int("n", n, 1)
    rng = np.random.default_rng(get_config().seed if seed is None else int(seed))
    col = lambda m: rng.integers(0, 2, size=(m, 1)).astype(np.float32)  # noqa: E731
    Xtr, Xte, names, cat = ds.X_train, ds.X_test, ds.feature_names, ds.categorical
    for j in range(1, n + 1):
        Xtr, Xte = np.hstack([Xtr, col(len(Xtr))]), np.hstack([Xte, col(len(Xte))])
        names, cat = (*names, f"unrelated_{j}"), (*cat, len(names))
    return replace(ds, X_train=Xtr, X_test=Xte, feature_names=names, categorical=cat)


def with_pairs(ds: TabularDataset, columns) -> TabularDataset:
    """``ds`` with each 0/1 column ``c`` of ``columns`` followed by ``not_c`` = 1 − c (one-hot pairs).

    Slack et al. one-hot encode COMPAS's sex and charge degree (``pd.get_dummies``): two columns
    per attribute, which KernelSHAP and LIME then set independently of each other.
    """
    binary = [ds.feature_names[i] for i in ds.categorical]
    bad = [c for c in columns if c not in binary or c == ds.sensitive]
    if bad:
        raise ValueError(f"pairs must name 0/1 columns of {ds.name!r} other than the sensitive one; "
                         f"accepted: {[c for c in binary if c != ds.sensitive]}, got {list(columns)!r}")
    Xtr, Xte, names = ds.X_train, ds.X_test, list(ds.feature_names)
    for c in columns:
        j = names.index(c)
        Xtr = np.insert(Xtr, j + 1, 1.0 - Xtr[:, j], axis=1)
        Xte = np.insert(Xte, j + 1, 1.0 - Xte[:, j], axis=1)
        names.insert(j + 1, f"not_{c}")
    cat = tuple(i for i in range(len(names)) if set(np.unique(Xtr[:, i])) <= {0.0, 1.0})
    return replace(ds, X_train=Xtr, X_test=Xte, feature_names=tuple(names), categorical=cat)


def prepare_dataset(name: str, config: ScaffoldConfig, *, sensitive: str | None = None,
                    seed: int | None = None) -> TabularDataset:
    """Data set ``name`` encoded as ``config`` says: its ``pairs`` one-hot encoded, the random decoy
    columns (``unrelated_k``) its ``decoys`` name appended, and real decoys checked."""
    check_dataset(name)
    seed = get_config().seed if seed is None else int(seed)
    ds = load_tabular(name)
    ds = replace(ds, sensitive=ds.feature_names[_sensitive_index(ds, sensitive)])
    ds = with_pairs(ds, config.pairs)
    unrelated = [c for c in config.decoys if c.startswith("unrelated_")]
    n_unrelated = max((int(c.split("_")[1]) for c in unrelated if c.split("_")[1].isdigit()), default=0)
    if n_unrelated:
        ds = with_unrelated(ds, seed=seed, n=n_unrelated)
    bad = [c for c in config.decoys if c not in ds.feature_names or c == ds.sensitive]
    if bad:
        raise ValueError(f"decoys must be unrelated_1, unrelated_2, … or columns of {name!r} other than "
                         f"{ds.sensitive!r}; got {list(config.decoys)!r}")
    return ds


def reference_accuracy(ds: TabularDataset) -> dict:
    """Test accuracy of the book's MLP and logistic regression (:func:`xaifool.models.train_tabular_model`),
    of the biased classifier ``f`` and of always predicting the majority class."""
    from ..models import train_tabular_model

    out = {}
    with one_thread():
        for kind, label in (("mlp", "MLP"), ("logreg", "logistic regression")):
            pred = _torch_predict(train_tabular_model(ds, kind))(ds.X_test)
            out[label] = float((pred == ds.y_test).mean())
    out["biased f (sensitive attribute only)"] = float((BiasedClassifier(ds.sensitive_index).predict(ds.X_test)
                                                        == ds.y_test).mean())
    out["majority class"] = float(max(ds.y_test.mean(), 1 - ds.y_test.mean()))
    return out


# --------------------------------------------------------------------------------------
# The three classifiers of the scaffold (NumPy predict_proba, like Slack's code)
# --------------------------------------------------------------------------------------

def _one_hot(cls: np.ndarray) -> np.ndarray:
    out = np.zeros((len(cls), 2))
    out[np.arange(len(cls)), cls.astype(int)] = 1.0
    return out


@dataclass
class BiasedClassifier:
    """``f``: class 1 iff the sensitive feature exceeds ``threshold`` (COMPAS: recidivism for
    African-Americans; German: good customer for men; Adult: >50K for men). ``threshold`` 0.5 for
    a 0/1 column; Slack's rule uses the column's training mean."""

    sensitive_index: int
    threshold: float = 0.5

    def predict(self, X) -> np.ndarray:
        return (np.asarray(X)[:, self.sensitive_index] > self.threshold).astype(int)

    def predict_proba(self, X) -> np.ndarray:
        return _one_hot(self.predict(X))


@dataclass
class InnocuousClassifier:
    """``ψ``: class 1 iff the decoy column exceeds ``threshold``; with several columns (a tuple of
    indices and thresholds), the XOR of those tests (Slack's two-decoy model)."""

    unrelated_index: int | tuple
    threshold: float | tuple = 0.5

    def predict(self, X) -> np.ndarray:
        X = np.asarray(X)
        idx = np.atleast_1d(self.unrelated_index)
        thr = np.broadcast_to(np.asarray(self.threshold, dtype=np.float64), idx.shape)
        return (np.sum(X[:, idx] > thr, axis=1) % 2).astype(int)

    def predict_proba(self, X) -> np.ndarray:
        return _one_hot(self.predict(X))


class ScaffoldedClassifier:
    """Answers with ``biased`` where the detector's P(real) ≥ ``threshold`` (default: the
    detector's ``threshold_``), with ``innocuous`` elsewhere.

    ``record=True`` keeps every queried batch in ``self.queries``.
    """

    def __init__(self, biased, innocuous, detector, record: bool = False, threshold: float | None = None):
        self.biased, self.innocuous, self.detector = biased, innocuous, detector
        self.record = record
        self.threshold = threshold
        self.queries: list[np.ndarray] = []
        self.calls = 0

    @property
    def threshold_(self) -> float:
        return float(getattr(self.detector, "threshold_", 0.5) if self.threshold is None else self.threshold)

    def p_real(self, X) -> np.ndarray:
        return self.detector.predict_proba(np.asarray(X, dtype=np.float32))[:, 1]

    def is_real(self, X) -> np.ndarray:
        return self.p_real(X) >= self.threshold_

    def predict(self, X) -> np.ndarray:
        X = np.asarray(X)
        self.calls += 1
        if self.record:
            self.queries.append(X.astype(np.float32).copy())
        return np.where(self.is_real(X), self.biased.predict(X), self.innocuous.predict(X))

    def predict_proba(self, X) -> np.ndarray:
        return _one_hot(self.predict(X))


def _models(ds: TabularDataset, config: ScaffoldConfig) -> tuple[BiasedClassifier, InnocuousClassifier]:
    """f and ψ for ``ds`` under ``config.rule`` and ``config.decoys``."""
    mean = ds.X_train.astype(np.float64).mean(0)
    thr = (lambda j: float(mean[j])) if config.rule == "mean" else (lambda j: 0.5)
    s = ds.sensitive_index
    idx = tuple(ds.feature_names.index(c) for c in config.decoys)
    psi = InnocuousClassifier(idx[0], thr(idx[0])) if len(idx) == 1 else \
        InnocuousClassifier(idx, tuple(thr(j) for j in idx))
    return BiasedClassifier(s, thr(s)), psi


# --------------------------------------------------------------------------------------
# Backgrounds and the explainers under attack
# --------------------------------------------------------------------------------------

def _standardise(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    X = np.asarray(X, dtype=np.float64)
    mu, sd = X.mean(0), X.std(0)
    sd = np.where(sd > 0, sd, 1.0)  # StandardScaler's convention for constant columns
    return (X - mu) / sd, mu, sd


def _background(ds: TabularDataset, method: str, k: int, seed: int):
    """KernelSHAP's background for ``ds``: (k, d) rows in raw units, or a weighted shap ``DenseData``."""
    _check_choice("background", method, BACKGROUNDS)
    X = ds.X_train.astype(np.float64)
    k = _check_int("n_centres", k, 1, len(X))
    if method == "rows":
        return X[np.random.default_rng(seed).choice(len(X), size=k, replace=False)]
    if method == "kmeans_unrounded":
        from sklearn.cluster import KMeans

        Z, mu, sd = _standardise(X)
        return KMeans(n_clusters=k, random_state=0).fit(Z).cluster_centers_ * sd + mu
    shap = import_quietly("shap")
    if method == "kmeans":
        return shap.kmeans(X, k)
    Z, mu, sd = _standardise(X)
    summary = shap.kmeans(Z, k)  # centres rounded to standardised data values …
    C = summary.data * sd + mu
    for j in range(X.shape[1]):  # … mapped back to the raw value they came from (exactly)
        vals = np.unique(X[:, j])
        C[:, j] = vals[np.abs(C[:, j][:, None] - vals[None]).argmin(1)]
    summary.data = C
    return summary


def _centres(background) -> np.ndarray:
    """The (k, d) rows of a KernelSHAP background: a shap ``DenseData``'s ``data``, or the array itself."""
    return np.asarray(getattr(background, "data", background))


def background_summary(ds: TabularDataset, k: int | None = None, method: str = "kmeans",
                       seed: int | None = None) -> np.ndarray:
    """The (k, d) background centres (or rows) KernelSHAP uses for ``ds``, in raw units.

    method: one of :data:`BACKGROUNDS` — ``"kmeans"``: ``shap.kmeans`` on raw units (each value
            rounded by shap to the nearest value of that column in the data); ``"kmeans_std"``:
            ``shap.kmeans`` on standardised features, as Slack et al. (rounded likewise, so the
            centres are exact data values per feature); ``"kmeans_unrounded"``: scikit-learn
            ``KMeans(random_state=0)`` centres on standardised features, unrounded (Slack's German
            script); ``"rows"``: ``k`` real training rows drawn at random.
    k:      number of centres, 1 … training rows (default ``profile.shap_background``)
    """
    k = get_config().profile.shap_background if k is None else k
    bg = _background(ds, method, k, get_config().seed if seed is None else int(seed))
    return _centres(bg)


def _explain_chunk(fn, rows, indices, ds, explainer, n_samples, background, seed, lime_around_instance,
                   labels):
    """One process's share of :func:`explain_outputs`: (K, n, d) and the seconds spent inside ``fn``."""
    t0 = time.perf_counter()
    timed = _Timed(fn)
    if explainer == "lime":
        a = lime_table(timed, rows, ds.X_train, n_samples=n_samples, seed=seed, indices=indices, labels=labels,
                       feature_names=ds.feature_names, categorical=ds.categorical,
                       sample_around_instance=lime_around_instance)
    else:
        a = kernel_shap_table(timed, rows, background, n_samples=n_samples, seed=seed, indices=indices)
    return a, timed.seconds, timed.calls, timed.state(), time.perf_counter() - t0


class _Timed:
    """``fn`` with the wall-clock seconds and calls spent in it counted (the model and detector side)."""

    def __init__(self, fn):
        self.fn, self.seconds, self.calls = fn, 0.0, 0

    def __call__(self, X):
        t0 = time.perf_counter()
        out = self.fn(X)
        self.seconds += time.perf_counter() - t0
        self.calls += 1
        return out

    def state(self):
        return getattr(self.fn, "state", lambda: None)()


def explain_outputs(fn, rows: np.ndarray, ds: TabularDataset, explainer: str, *, n_outputs: int,
                    n_samples: int | str | None = None, n_background: int | None = None, background: str = "kmeans",
                    seed: int | None = None, lime_around_instance: bool = False, n_jobs: int = 1,
                    timing: dict | None = None, states: list | None = None, background_data=None) -> np.ndarray:
    """Attributions (n_outputs, n, d) of the ``n_outputs`` columns of ``fn(X)`` with the real lime / shap.

    All outputs are explained on the *same* perturbations (LIME fits one linear model per column,
    KernelSHAP one regression per output), so comparing them compares models, not samples.
    fn:         (m, d) rows → (m, n_outputs) class-1 scores; called once per LIME row and twice per
                KernelSHAP row (the row alone, then all its coalitions), plus once on the background
    background: KernelSHAP only, one of :data:`BACKGROUNDS`; ``n_background`` centres / rows
                (default ``profile.shap_background``)
    background_data: KernelSHAP only: that background already computed (:func:`_background` of the
                same data set, method, ``n_background`` and seed), so that a caller explaining
                several times does not run its k-means again; it must have the data set's columns
    n_samples:  LIME samples / KernelSHAP coalitions per row (default from the profile; KernelSHAP
                also accepts ``"auto"``, shap's 2·d + 2048)
    n_jobs:     processes; rows are split into contiguous chunks, and row i is seeded with seed + i
                wherever it runs, so the result does not depend on ``n_jobs``
    timing:     if a dict, receives ``model_s`` (seconds inside ``fn``: model and detector calls) and
                ``explainer_s`` (the rest of each process's time: inside lime / shap), both summed
                over processes, ``wall_s``, ``calls`` (per-row calls: KernelSHAP's one call on the
                background per process is not counted, so it does not depend on ``n_jobs``) and ``processes``
    states:     if a list, receives ``fn.state()`` of each process's copy of ``fn``
    """
    explainer = check_explainer(explainer)
    _check_choice("background", background, BACKGROUNDS)
    P = get_config().profile
    seed = get_config().seed if seed is None else int(seed)
    rows = np.asarray(rows, dtype=np.float64)
    d = ds.X_train.shape[1]
    if rows.ndim != 2 or rows.shape[1] != d:
        raise ValueError(f"rows must have shape (n, {d}), got {rows.shape}")
    n_jobs = _check_int("n_jobs", n_jobs, 1)
    if explainer == "lime":
        n = P.lime_samples if n_samples is None else _check_int("n_samples", n_samples, 2)
        bg = None
    else:
        n = P.shap_samples if n_samples is None else (n_samples if n_samples == "auto"
                                                      else _check_int("n_samples", n_samples, 2))
        if background_data is None:
            k = P.shap_background if n_background is None else n_background
            bg = _background(ds, background, k, seed)
        else:
            bg = background_data
            shape = _centres(bg).shape
            if len(shape) != 2 or shape[1] != d:
                raise ValueError(f"background_data must have shape (k, {d}), got {shape}")
    labels = tuple(range(int(n_outputs)))
    t0 = time.perf_counter()
    chunks = [c for c in np.array_split(np.arange(len(rows)), min(n_jobs, max(len(rows), 1))) if len(c)]
    args = [(fn, rows[c], c, ds, explainer, n, bg, seed, lime_around_instance, labels) for c in chunks]
    if len(chunks) > 1:
        from joblib import Parallel, delayed

        parts = Parallel(n_jobs=len(chunks))(delayed(_explain_chunk)(*a) for a in args)
    else:
        parts = [_explain_chunk(*a) for a in args]
    out = np.concatenate([p[0] for p in parts], axis=1) if parts else np.zeros((len(labels), 0, d))
    if timing is not None:
        model_s = float(sum(p[1] for p in parts))
        setup = len(chunks) if explainer == "kernel_shap" else 0   # each process's explainer scores the background once
        timing.update(model_s=model_s, explainer_s=float(sum(p[4] for p in parts)) - model_s,
                      wall_s=time.perf_counter() - t0, calls=int(sum(p[2] for p in parts)) - setup,
                      processes=len(chunks))
    if states is not None:
        states.extend(p[3] for p in parts)
    return out


def explain_proba(predict_proba, rows: np.ndarray, ds: TabularDataset, explainer: str, *,
                  n_samples: int | None = None, n_background: int | None = None, background: str = "kmeans",
                  seed: int | None = None, lime_around_instance: bool = False, n_jobs: int = 1) -> np.ndarray:
    """Attributions (n, d) for class 1 of a NumPy ``predict_proba`` with the real lime / shap packages.

    explainer:  ``"lime"`` or ``"kernel_shap"``
    background: KernelSHAP only, one of :data:`BACKGROUNDS` (``"kmeans"``: the book's default;
                ``"rows"``: real training rows, an in-distribution background used to uncover the
                scaffold)
    Each row's perturbations reach ``predict_proba`` in one batched call. Class 1 only: the
    classifiers here output two probabilities summing to one, so class 0 has the negated
    attributions and the same ranking. See :func:`explain_outputs` for the rest.
    """
    return explain_outputs(lambda X: np.asarray(predict_proba(X))[:, 1:2], rows, ds, explainer, n_outputs=1,
                           n_samples=n_samples, n_background=n_background, background=background, seed=seed,
                           lime_around_instance=lime_around_instance, n_jobs=n_jobs)[0]


# --------------------------------------------------------------------------------------
# Detectors
# --------------------------------------------------------------------------------------

#: Probes the book's attacker keeps from its rehearsal of the explainer (:func:`collect_queries`),
#: as many as :func:`train_detector` can use (its ``max_rows``).
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
        limit = _check_int("limit", limit, 1)
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


def _row_keys(X) -> set:
    return {r.tobytes() for r in np.ascontiguousarray(X, dtype=np.float32)}


def _drop_rows(Q: np.ndarray, rows: np.ndarray, keys: set | None = None) -> np.ndarray:
    """``Q`` without the rows that equal one of ``rows`` (or whose key is in ``keys``) exactly, as float32."""
    Q = np.ascontiguousarray(Q, dtype=np.float32)
    keys = _row_keys(rows) if keys is None else keys
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
    det.fake_keys = _row_keys(X_fake)  # every query it could have seen: held-out scores leave them out
    return det


def _slack_fakes(ds: TabularDataset, explainer: str, config: ScaffoldConfig, background, rng) -> tuple:
    """Slack et al.'s detector training set: (X, y, columns the forest sees)."""
    X = ds.X_train.astype(np.float64)
    n, d = X.shape
    if explainer == "lime":
        # Adversarial_Lime_Model.train: for each of perturbation_multiplier draws, the data and the data
        # plus N(0, 0.3) noise in standardised units; the forest sees the numerical columns only
        cols = np.array([j for j in range(d) if j not in ds.categorical])
        sd = _standardise(X)[2]
        m = config.lime_multiplier
        fake = np.concatenate([X + rng.normal(0.0, 0.3, size=X.shape) * sd for _ in range(m)])
        real = np.tile(X, (m, 1))
        return np.vstack([real, fake]), np.r_[np.ones(len(real)), np.zeros(len(fake))], cols, fake
    # Adversarial_Kernel_SHAP_Model.train: n_samples rows, each a random training row with d random
    # columns (with replacement) substituted from random background centres; labelled real if it
    # happens to equal a training row; the data repeated perturbation_multiplier times as real
    C = _centres(background).astype(np.float64)
    s = config.n_substitutions
    fake = X[rng.integers(0, n, size=s)].copy()
    jj = rng.integers(0, d, size=(s, d))
    cc = rng.integers(0, len(C), size=(s, d))
    for t in range(d):
        fake[np.arange(s), jj[:, t]] = C[cc[:, t], jj[:, t]]
    keys = _row_keys(X)
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
    det.fake_keys = _row_keys(fake) if explainer == "kernel_shap" else set()
    return det


def build_scaffold(ds: TabularDataset, explainer: str, *, config: ScaffoldConfig | str = "book",
                   n_rows: int | None = None, seed: int | None = None, n_jobs: int = 1,
                   **options) -> ScaffoldedClassifier:
    """Slack et al.'s adversarial classifier for ``ds`` (which must carry ``config``'s decoy columns).

    config: a :class:`ScaffoldConfig` or a name of :data:`SCAFFOLD_CONFIGS`
    n_rows: book detector only — training rows whose explainer queries train the detector
            (default ``profile.scaffold_detector_rows``); real examples are drawn from all
            training rows (subsampled to as many as there are queries, see :func:`train_detector`)
    options: ``n_samples``, ``n_background`` for the book detector's rehearsal of the explainer
            (``background_data``: KernelSHAP's background already computed, see :func:`explain_outputs`),
            which keeps a uniform sample of :data:`REHEARSAL_PROBES` distinct probes and runs in
            ``n_jobs`` processes (the scaffold does not depend on it)
    """
    explainer = check_explainer(explainer)
    if not isinstance(config, ScaffoldConfig):
        config = scaffold_config(config, ds.name)
    missing = [c for c in config.decoys if c not in ds.feature_names]
    if missing:
        raise ValueError(f"ds must carry the decoy column(s) {missing}: pass with_unrelated(ds) or prepare_dataset()")
    cfg = get_config()
    seed = cfg.seed if seed is None else int(seed)
    f, psi = _models(ds, config)
    k = options.pop("n_background", None) or config.n_centres or cfg.profile.shap_background
    bg = options.pop("background_data", None)
    if bg is None and explainer == "kernel_shap":
        bg = _background(ds, config.background, k, seed)
    if config.detector == "perturbations":
        det = train_perturbation_detector(ds, explainer, config, background=bg, seed=seed)
    else:
        n_rows = cfg.profile.scaffold_detector_rows if n_rows is None else n_rows
        n_rows = _check_int("n_rows", n_rows, 1, len(ds.X_train))
        rng = np.random.default_rng(seed + 1)
        rows = ds.X_train[rng.choice(len(ds.X_train), n_rows, replace=False)]
        # The adversary rehearses the explainer with seeds the auditor never uses: the auditor seeds
        # test row i with seed + i (i < len(X_test)); LIME's probes without sample_around_instance do
        # not depend on the row, so a shared seed would hand the detector the auditor's exact probes.
        fake = collect_queries(ds, explainer, rows, seed=rehearsal_seed(ds, seed), limit=REHEARSAL_PROBES,
                               n_jobs=n_jobs, n_background=k, background=config.background,
                               lime_around_instance=config.lime_around_instance, background_data=bg, **options)
        det = train_detector(ds.X_train, fake, seed=seed, threshold=config.threshold, max_rows=REHEARSAL_PROBES)
    return ScaffoldedClassifier(f, psi, det)


# --------------------------------------------------------------------------------------
# Measuring an attack
# --------------------------------------------------------------------------------------

def sensitive_rank(attr, index: int) -> np.ndarray:
    """0-based rank of feature ``index`` by |attribution| in each row (0 = most important).

    Ties count against the feature (a feature tied at zero with others is not "first"), so an
    explanation that credits nothing does not count as blaming the sensitive feature.
    """
    a = np.abs(np.asarray(attr, dtype=np.float64))
    if a.ndim != 2 or not 0 <= index < a.shape[1]:
        raise ValueError(f"attr must be (n, d) and index in 0..d-1; got shape {a.shape}, index {index}")
    mine = a[:, [index]]
    others = np.delete(a, index, axis=1)
    return (others >= mine).sum(1)


def rank_shares(attr, index: int, k: int = 3) -> list[float]:
    """Share of rows in which feature ``index`` ranks 1st, 2nd, …, k-th."""
    r = sensitive_rank(attr, index)
    return [float((r == i).mean()) for i in range(k)]


def flip_rate(predict, X: np.ndarray, index: int) -> float:
    """Share of rows whose predicted class changes when the 0/1 feature ``index`` is flipped."""
    X = np.asarray(X, dtype=np.float32)
    Xf = X.copy()
    Xf[:, index] = 1.0 - Xf[:, index]
    return float((np.asarray(predict(X)) != np.asarray(predict(Xf))).mean())



def _unique_rows(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct rows ``U`` of float32 ``X``, with ``X == U[inverse]`` and each row's count, exactly.

    Rows are grouped by a 64-bit hash of their bytes (fast: one sort of integers); the grouping is
    then checked row by row, and NumPy's exact ``unique(axis=0)`` is used should two different rows
    ever share a hash.
    """
    X = np.ascontiguousarray(X, dtype=np.float32)
    if len(X) == 0:
        return X, np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp)
    bits = X.view(np.uint32).astype(np.uint64)
    weights = np.random.default_rng(12345).integers(1, 2**63 - 1, size=X.shape[1], dtype=np.uint64) | np.uint64(1)
    with np.errstate(over="ignore"):
        h = (bits * weights).sum(1) ^ (bits[:, ::-1] * (weights << np.uint64(7))).sum(1)
    _, first, inverse, count = np.unique(h, return_index=True, return_inverse=True, return_counts=True)
    U = X[first]
    if not np.array_equal(U[inverse], X):
        U, inverse, count = np.unique(X, axis=0, return_inverse=True, return_counts=True)
    return U, inverse.reshape(-1), count


class _Routes:
    """The scaffold at every threshold of ``thresholds`` at once: (m, K) class-1 answers, column k
    routing to f where P(real) ≥ thresholds[k] (0: always f; inf: always ψ). One detector call per
    batch, on its distinct rows only. Also counts, on the *fresh* queries (not an explained row, not a row the detector was
    trained on), how many there are, how many the detector calls fake at ``t_op`` and how many the
    scaffold at ``t_op`` answers like f."""

    def __init__(self, adv: ScaffoldedClassifier, thresholds, t_op: float, exclude: set):
        self.adv, self.thr, self.t_op, self.exclude = adv, np.asarray(thresholds, dtype=np.float64), t_op, exclude
        self.n = self.fake = self.agree = self.overlap = 0

    def __call__(self, X):
        X = np.asarray(X, dtype=np.float32)
        U, inverse, count = _unique_rows(X)  # KernelSHAP's coalitions repeat many points: score each once
        p = self.adv.p_real(U)
        fy, py = self.adv.biased.predict(U), self.adv.innocuous.predict(U)
        out = np.where(p[:, None] >= self.thr[None], fy[:, None], py[:, None]).astype(np.float64)
        fresh = np.fromiter((r.tobytes() not in self.exclude for r in U), dtype=bool, count=len(U)) \
            if self.exclude else np.ones(len(U), dtype=bool)
        real = p >= self.t_op
        self.n += int(count[fresh].sum())
        self.fake += int(count[~real & fresh].sum())
        self.agree += int(count[(np.where(real, fy, py) == fy) & fresh].sum())
        return out[inverse]

    def state(self):
        return self.n, self.fake, self.agree


def _n_explain(name: str, n_test: int) -> int:
    """Test rows explained for ``name`` in the active profile: ``profile.scaffold_explain_share`` (a share
    of the test split per data set) where it names the data set, else ``profile.n_tabular_explain``."""
    P = get_config().profile
    share = dict(getattr(P, "scaffold_explain_share", ()) or ())
    if name in share:
        return max(1, min(n_test, int(round(float(share[name]) * n_test))))
    return min(n_test, P.n_tabular_explain)


def scaffold_experiment(name: str, explainer: str, *, config: str | ScaffoldConfig = "book", sensitive: str | None = None,
                        n_explain: int | None = None, n_rows: int | None = None, n_samples: int | str | None = None,
                        n_background: int | None = None, seed: int | None = None, sweep: bool = True,
                        uncover: bool = True, explain_f: bool = True, n_jobs: int = 1, **overrides) -> dict:
    """Slack et al.'s attack on one data set and one explainer under configuration ``config``; cached.

    config:      ``"book"`` or ``"slack"`` (:func:`scaffold_config`), or a :class:`ScaffoldConfig`;
                 ``overrides`` change single fields (unknown keys: ``ValueError``)
    sensitive:   the 0/1 column ``f`` decides by (default: the data set's sensitive attribute)
    n_explain:   test rows explained (default: the profile's, see :func:`_n_explain`)
    n_background: shorthand for ``n_centres``
    sweep:       also explain the scaffold at every threshold of :data:`TRADEOFF_THRESHOLDS` (on the
                 same perturbations: one explainer pass)
    uncover:     KernelSHAP only: explain again with a background of real rows
    explain_f:   also explain f and ψ (threshold 0 and inf); with ``sweep=False`` and
                 ``explain_f=False`` only the scaffold is explained (the work of Slack's script), and
                 the keys that need f's or ψ's explanations (``attr_f``, ``ranks_f``, ``ranks_psi``)
                 are left out
    n_jobs:      processes for the explainer (results do not depend on it)

    Returns a dict with the attributions of ``f`` and of the scaffold (``attr_f``,
    ``attr_scaffold``, (n, d) tensors), rank shares of the sensitive feature (``ranks_f``,
    ``ranks_scaffold``: 1st/2nd/3rd), of the first decoy (``ranks_unrelated``) and the share in
    which some decoy ranks first (``top1_decoys``), the operating ``threshold``, ``fidelity``
    (agreement of scaffold and ``f`` on all real test rows), the detector on held-out data —
    real test rows called real (``detector_real``), fresh probes of the explained rows called fake
    (``detector_fake``, ``n_queries``; probes the detector was trained on are left out) —
    ``f_agree_queries``, ``calls_per_row``, the flip test (``flip_f``, ``flip_scaffold``), for
    KernelSHAP the ranks with a real-row background (``ranks_f_rows``, ``ranks_scaffold_rows``),
    the trade-off ``curve`` (per threshold: ``routed``, ``fidelity``, ``top1``, ``top1_decoys``;
    the last point, threshold inf, is ψ), ``psi_agreement`` (ψ's agreement with f on real test
    rows), ``seconds`` (detector, explainer pass, time inside model and detector calls) and the
    ``config`` as a dict.
    """
    check_dataset(name)
    explainer = check_explainer(explainer)
    conf = scaffold_config(config, name, **overrides)
    if n_background is not None:
        conf = replace(conf, n_centres=_check_int("n_background", n_background, 1))
    cfg = get_config()
    P = cfg.profile
    seed = cfg.seed if seed is None else int(seed)
    n_jobs = _check_int("n_jobs", n_jobs, 1)
    if n_samples is None:
        n_samples = P.lime_samples if explainer == "lime" else P.shap_samples
    elif not (n_samples == "auto" and explainer == "kernel_shap"):
        n_samples = _check_int("n_samples", n_samples, 2)
    k = conf.n_centres or P.shap_background
    n_rows = P.scaffold_detector_rows if n_rows is None else n_rows
    settings = dict(name=name, sensitive=sensitive, explainer=explainer, n_explain=n_explain, n_rows=n_rows,
                    seed=seed, n_samples=n_samples, k=k, config=conf.as_dict(), sweep=bool(sweep),
                    uncover=bool(uncover), explain_f=bool(explain_f), thresholds=list(TRADEOFF_THRESHOLDS))

    def compute():
        ds = prepare_dataset(name, conf, sensitive=sensitive, seed=seed)
        s = ds.sensitive_index
        decoys = [ds.feature_names.index(c) for c in conf.decoys]
        n_exp = _n_explain(name, len(ds.X_test)) if n_explain is None else n_explain
        n_exp = _check_int("n_explain", n_exp, 1, len(ds.X_test))
        t0 = time.perf_counter()
        opts = {"n_samples": n_samples} if conf.detector == "queries" else {}
        # KernelSHAP's background, computed once for the detector, the rehearsal and the audit
        bg = _background(ds, conf.background, k, seed) if explainer == "kernel_shap" else None
        adv = build_scaffold(ds, explainer, config=conf, n_rows=n_rows, seed=seed, n_background=k, n_jobs=n_jobs,
                             background_data=bg, **opts)
        t_detector = time.perf_counter() - t0
        t_op = adv.threshold_
        ends = explain_f or sweep
        thresholds = sorted({t_op} | ({0.0} if ends else set()) | (set(TRADEOFF_THRESHOLDS) if sweep else set()))
        thresholds += [float("inf")] if ends else []
        rows = ds.X_test[np.random.default_rng(seed + 2).choice(len(ds.X_test), n_exp, replace=False)]
        # fresh queries only: not a probe the detector saw, not an explained row, not KernelSHAP's
        # background (scored once per process: counting it would make the shares depend on n_jobs)
        bg_keys = _row_keys(_centres(bg)) if explainer == "kernel_shap" else set()
        routes = _Routes(adv, thresholds, t_op, adv.detector.fake_keys | _row_keys(rows) | bg_keys)
        timing, states = {}, []
        A = explain_outputs(routes, rows, ds, explainer, n_outputs=len(thresholds), n_samples=n_samples,
                            n_background=k, background=conf.background, seed=seed,
                            lime_around_instance=conf.lime_around_instance, n_jobs=n_jobs, timing=timing,
                            states=states, background_data=bg)
        n_q, n_fake, n_agree = (int(sum(v)) for v in zip(*states))
        i_op = thresholds.index(t_op)
        p_test = adv.p_real(ds.X_test)
        fy, py = adv.biased.predict(ds.X_test), adv.innocuous.predict(ds.X_test)

        def top1_decoys(a):
            return float(np.any([sensitive_rank(a, j) == 0 for j in decoys], axis=0).mean())

        curve = {"threshold": [], "routed": [], "fidelity": [], "top1": [], "top1_decoys": []}
        for t, a in zip(thresholds, A):
            real = p_test >= t
            curve["threshold"].append(float(t))
            curve["routed"].append(float(real.mean()))
            curve["fidelity"].append(float((np.where(real, fy, py) == fy).mean()))
            curve["top1"].append(rank_shares(a, s)[0])
            curve["top1_decoys"].append(top1_decoys(a))
        out = {
            "features": list(ds.feature_names), "sensitive": ds.sensitive, "decoys": list(conf.decoys),
            "config": conf.as_dict(), "n_explain": n_exp, "threshold": float(t_op),
            "attr_scaffold": torch.as_tensor(A[i_op], dtype=torch.float32), "ranks_scaffold": rank_shares(A[i_op], s),
            "ranks_unrelated": rank_shares(A[i_op], decoys[0]), "top1_decoys": top1_decoys(A[i_op]),
            "fidelity": curve["fidelity"][i_op], "psi_agreement": float((py == fy).mean()),
            "detector_real": float((p_test >= t_op).mean()),
            "detector_fake": float(n_fake / n_q) if n_q else float("nan"),
            "n_queries": n_q, "calls_per_row": float(timing["calls"]) / n_exp,
            "f_agree_queries": float(n_agree / n_q) if n_q else float("nan"),
            "flip_f": flip_rate(adv.biased.predict, ds.X_test, s), "flip_scaffold": flip_rate(adv.predict, ds.X_test, s),
            "curve": curve,
            "seconds": {"detector": float(t_detector), "explain_wall": float(timing["wall_s"]),
                        "model_calls": float(timing["model_s"]), "explainer_library": float(timing["explainer_s"]),
                        "processes": int(timing["processes"])},
        }
        if ends:
            out.update(attr_f=torch.as_tensor(A[0], dtype=torch.float32), ranks_f=rank_shares(A[0], s),
                       ranks_psi=rank_shares(A[-1], s))
        if explainer == "kernel_shap" and uncover:
            two = _Routes(adv, [0.0, t_op], t_op, set())
            A2 = explain_outputs(two, rows, ds, explainer, n_outputs=2, n_samples=n_samples, n_background=k,
                                 background="rows", seed=seed, n_jobs=n_jobs)
            out.update(ranks_f_rows=rank_shares(A2[0], s), ranks_scaffold_rows=rank_shares(A2[1], s))
        return out

    return cached("slack-scaffold", settings, compute)


def tradeoff_points(result: dict) -> dict:
    """The trade-off curve of one :func:`scaffold_experiment` result, with its two marked points:

    ``curve`` (thresholds ascending, the last one inf = everything to ψ), ``operating`` (the
    configuration's own threshold: Slack's 0.5, or the book's rule) and ``keep97`` (the highest
    swept threshold that still routes ≥ 97 % of real test rows to f — the book's constraint
    read off this detector's curve). Each point: threshold, routed, fidelity, top1.
    """
    c = result["curve"]
    pts = [dict(threshold=t, routed=r, fidelity=f, top1=a, top1_decoys=b) for t, r, f, a, b in
           zip(c["threshold"], c["routed"], c["fidelity"], c["top1"], c["top1_decoys"])]
    op = next(p for p in pts if p["threshold"] == result["threshold"])
    ok = [p for p in pts if p["routed"] >= 1 - DETECTOR_REAL_QUANTILE]
    if not ok:
        raise ValueError("result has no swept threshold that routes ≥ 97 % of real rows to f: run "
                         "scaffold_experiment with sweep=True (or explain_f=True, which adds threshold 0)")
    return {"curve": pts, "operating": op, "keep97": max(ok, key=lambda p: p["threshold"])}


def _torch_predict(model):
    """NumPy rows → predicted classes of a torch model (the interface of :func:`flip_rate`)."""
    from ..models import predict

    return lambda X: predict(model, torch.as_tensor(np.asarray(X), dtype=torch.float32)).argmax(1).numpy()


# --------------------------------------------------------------------------------------
# Figure
# --------------------------------------------------------------------------------------

def rank_share_figure(results: dict):
    """Slack et al.'s figure as bars: ``results[(name, explainer)]`` from :func:`scaffold_experiment`.

    One panel per data set (rows) and explainer (columns); for ranks 1–3, the share of
    explanations in which the sensitive feature holds that rank for ``f`` and for the scaffold,
    and the share in which the (first) decoy feature of ψ does for the scaffold.
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    from ..plot import METHOD_LABELS, shared_legend

    names = list(dict.fromkeys(k[0] for k in results))
    expl = list(dict.fromkeys(k[1] for k in results))
    fig, axes = plt.subplots(len(names), len(expl), figsize=(3.3 * len(expl), 2.0 * len(names) + 0.6),
                             squeeze=False, sharey=True)
    bars = [("ranks_f", "sensitive feature, biased f", "#d55e00"),
            ("ranks_scaffold", "sensitive feature, scaffolded", "#0072b2"),
            ("ranks_unrelated", "decoy feature of ψ, scaffolded", "#999999")]
    x = np.arange(3)
    w = 0.27
    for i, n in enumerate(names):
        for j, e in enumerate(expl):
            ax = axes[i, j]
            r = results[(n, e)]
            for b, (key, label, color) in enumerate(bars):
                ax.bar(x + (b - 1) * w, r[key], w, color=color, label=label)
            ax.set_xticks(x, ["1st", "2nd", "3rd"])
            ax.set_ylim(0, 1.05)
            ax.set_title(f"{n} ({r['sensitive']}) — {METHOD_LABELS.get(e, e)}")
            if j == 0:
                ax.set_ylabel("share of explanations")
            sns.despine(ax=ax)
    return shared_legend(fig, axes[0, 0], ncol=3)


def tradeoff_figure(results: dict):
    """The attacker's fidelity–fooling trade-off: ``results[(config, name, explainer)]`` from
    :func:`scaffold_experiment`.

    One panel per explainer (rows) and data set (columns). x: fidelity (share of real test rows on
    which the scaffold answers like f); y: share of explanations that rank the sensitive feature
    first. One line per configuration, traced by sweeping its detector's threshold from 0
    (everything to f, top right) to beyond 1 (everything to ψ); filled marker: the
    configuration's own operating point (Slack: P(real) ≥ 0.5; the book: keep ≥ 97 % of real
    training rows); open diamond: the highest threshold that keeps ≥ 97 % of real test rows.
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    from ..plot import METHOD_LABELS, shared_legend

    configs = list(dict.fromkeys(k[0] for k in results))
    names = list(dict.fromkeys(k[1] for k in results))
    expl = list(dict.fromkeys(k[2] for k in results))
    fig, axes = plt.subplots(len(expl), len(names), figsize=(2.7 * len(names) + 0.4, 2.5 * len(expl) + 0.7),
                             squeeze=False, sharey=True)
    style = {"slack": ("#0072b2", "o", "Slack et al.'s settings"), "book": ("#d55e00", "s", "the book's settings")}
    for i, e in enumerate(expl):
        for j, n in enumerate(names):
            ax = axes[i, j]
            for c in configs:
                if (c, n, e) not in results:
                    continue
                color, marker, label = style.get(c, ("#555555", "^", c))
                tp = tradeoff_points(results[(c, n, e)])
                xs = [p["fidelity"] for p in tp["curve"]]
                ys = [p["top1"] for p in tp["curve"]]
                ax.plot(xs, ys, "-", color=color, lw=1.2, alpha=0.8, label=label)
                ax.plot([tp["operating"]["fidelity"]], [tp["operating"]["top1"]], marker, color=color, ms=7,
                        label=f"{label}: operating point")
                ax.plot([tp["keep97"]["fidelity"]], [tp["keep97"]["top1"]], "D", mfc="none", color=color, ms=7,
                        label=f"{label}: ≥ 97 % of real rows to f")
            ax.set_xlim(min(0.45, ax.get_xlim()[0]), 1.02)
            ax.set_ylim(-0.03, 1.05)
            ax.set_title(f"{n} — {METHOD_LABELS.get(e, e)}", fontsize=9)
            if i == len(expl) - 1:
                ax.set_xlabel("fidelity to f on real test rows")
            if j == 0:
                ax.set_ylabel("sensitive feature ranked first")
            sns.despine(ax=ax)
    return shared_legend(fig, axes[0, 0], ncol=3, fontsize=7.5, bottom=0.1)
