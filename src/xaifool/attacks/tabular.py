"""Attacks on tabular explanations by scaffolding (Slack et al. 2020), an input-distribution attack.

Dimanov et al.'s (2020) concealment changes the *model*; it lives in
:mod:`xaifool.attacks.concealment`, next to Heo et al.'s model manipulations.

**Scaffolding** (:func:`scaffold_experiment`). A *biased* classifier ``f`` decides by the
sensitive attribute alone; an *innocuous* classifier ``ψ`` decides by a synthetic random 0/1
column (``unrelated_1``, appended to the data as Slack et al. did); an out-of-distribution
*detector* (a random forest) is trained to tell real rows from the points that LIME and
KernelSHAP query; the *scaffolded* classifier answers with ``f`` on rows the detector calls
real and with ``ψ`` on everything else. The explainers under attack are the real ``lime``
(``LimeTabularExplainer``) and ``shap`` (``KernelExplainer``) packages, configured as in
:mod:`xaifool.explain` (LIME: ``discretize_continuous=False``, the 0/1 columns declared
categorical, ``num_samples = profile.lime_samples``; KernelSHAP: ``shap.kmeans`` summary of
``profile.shap_background`` training rows, ``nsamples = profile.shap_samples``). They call a
NumPy ``predict_proba`` (the scaffold is not a torch model); every call is batched — LIME and
KernelSHAP pass all perturbations of one row in a single call.

The detector is trained on the points the explainers *actually* query: the explainers are run
on training rows with a recording ``predict_proba`` (:func:`collect_queries`), so its training
data is exactly LIME's / KernelSHAP's sampling distribution (LIME: continuous columns drawn
from N(mean, std) of the training data, 0/1 columns from their training frequencies;
KernelSHAP: coalitions mixing the row with k-means background centres). Its held-out accuracy
is measured on the queries made while explaining *test* rows and on real test rows.

Bad input raises ``ValueError`` naming the argument and the accepted values.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from numbers import Real

import numpy as np
import torch

from ..cache import cached
from ..config import get_config, one_thread
from ..data import TABULAR_DATASETS, TabularDataset, load_tabular
from ..explain import import_quietly

__all__ = [
    "SCAFFOLD_EXPLAINERS", "check_dataset", "check_explainer", "dataset_card", "reference_accuracy", "with_unrelated",
    "BiasedClassifier", "InnocuousClassifier", "ScaffoldedClassifier", "explain_proba", "background_summary", "collect_queries",
    "OffGridDetector", "train_detector", "build_scaffold", "sensitive_rank", "rank_shares", "flip_rate", "scaffold_experiment",
    "rank_share_figure",
]

#: Explainers the scaffolding attack targets (``"shap"`` is accepted as an alias of ``"kernel_shap"``).
SCAFFOLD_EXPLAINERS = ("lime", "kernel_shap")
UNRELATED = "unrelated_1"
#: The detector's threshold is the out-of-bag P(real) quantile that keeps ≥ 1 − this of real rows.
DETECTOR_REAL_QUANTILE = 0.03


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


def with_unrelated(ds: TabularDataset, seed: int | None = None) -> TabularDataset:
    """``ds`` with a synthetic random 0/1 column ``unrelated_1`` appended (Slack et al.'s ψ feature).

    The column is drawn independently of everything else (seeded), so it is uncorrelated with
    the sensitive attribute and the label by construction.
    """
    rng = np.random.default_rng(get_config().seed if seed is None else int(seed))
    col = lambda n: rng.integers(0, 2, size=(n, 1)).astype(np.float32)  # noqa: E731
    return replace(ds, X_train=np.hstack([ds.X_train, col(len(ds.X_train))]),
                   X_test=np.hstack([ds.X_test, col(len(ds.X_test))]),
                   feature_names=(*ds.feature_names, UNRELATED),
                   categorical=(*ds.categorical, ds.n_features))


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
    """``f``: class 1 iff the sensitive 0/1 feature is 1 (COMPAS: recidivism for African-Americans;
    German: good customer for men; Adult: >50K for men)."""

    sensitive_index: int

    def predict(self, X) -> np.ndarray:
        return (np.asarray(X)[:, self.sensitive_index] > 0.5).astype(int)

    def predict_proba(self, X) -> np.ndarray:
        return _one_hot(self.predict(X))


@dataclass
class InnocuousClassifier:
    """``ψ``: class 1 iff the unrelated random column is 1."""

    unrelated_index: int

    def predict(self, X) -> np.ndarray:
        return (np.asarray(X)[:, self.unrelated_index] > 0.5).astype(int)

    def predict_proba(self, X) -> np.ndarray:
        return _one_hot(self.predict(X))


class ScaffoldedClassifier:
    """Answers with ``biased`` where ``detector`` says "real row", with ``innocuous`` elsewhere.

    ``record=True`` keeps every queried batch in ``self.queries`` (to measure the detector on
    the points an explainer actually asked about).
    """

    def __init__(self, biased, innocuous, detector, record: bool = False):
        self.biased, self.innocuous, self.detector = biased, innocuous, detector
        self.record = record
        self.queries: list[np.ndarray] = []
        self.calls = 0

    def is_real(self, X) -> np.ndarray:
        threshold = getattr(self.detector, "threshold_", 0.5)
        return self.detector.predict_proba(np.asarray(X, dtype=np.float32))[:, 1] >= threshold

    def predict(self, X) -> np.ndarray:
        X = np.asarray(X)
        self.calls += 1
        if self.record:
            self.queries.append(X.astype(np.float32).copy())
        return np.where(self.is_real(X), self.biased.predict(X), self.innocuous.predict(X))

    def predict_proba(self, X) -> np.ndarray:
        return _one_hot(self.predict(X))


# --------------------------------------------------------------------------------------
# The explainers under attack
# --------------------------------------------------------------------------------------

def explain_proba(predict_proba, rows: np.ndarray, ds: TabularDataset, explainer: str, *,
                  n_samples: int | None = None, n_background: int | None = None, background: str = "kmeans",
                  seed: int | None = None) -> np.ndarray:
    """Attributions (n, d) for class 1 of a NumPy ``predict_proba`` with the real lime / shap packages.

    explainer:  ``"lime"`` or ``"kernel_shap"`` (configured as in :mod:`xaifool.explain`)
    background: KernelSHAP only — ``"kmeans"`` (``shap.kmeans`` centres, the default of the book and
                of Slack et al.) or ``"rows"`` (that many real training rows drawn at random: an
                in-distribution background, used to uncover the scaffold)
    Each row's perturbations reach ``predict_proba`` in one batched call. Class 1 only: the
    classifiers here output two probabilities summing to one, so class 0 has the negated
    attributions and the same ranking.
    """
    explainer = check_explainer(explainer)
    if background not in ("kmeans", "rows"):
        raise ValueError(f"background must be 'kmeans' or 'rows', got {background!r}")
    P = get_config().profile
    seed = get_config().seed if seed is None else int(seed)
    rows = np.asarray(rows, dtype=np.float64)
    bg = ds.X_train.astype(np.float64)
    d = bg.shape[1]
    if rows.ndim != 2 or rows.shape[1] != d:
        raise ValueError(f"rows must have shape (n, {d}), got {rows.shape}")
    out = np.zeros(rows.shape)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if explainer == "lime":
        LimeTabularExplainer = import_quietly("lime.lime_tabular").LimeTabularExplainer
        n = P.lime_samples if n_samples is None else int(n_samples)
        lime = LimeTabularExplainer(bg, feature_names=list(ds.feature_names), categorical_features=list(ds.categorical),
                                    discretize_continuous=False, random_state=seed)
        for i, r in enumerate(rows):
            exp = lime.explain_instance(r, predict_proba, labels=(1,), num_features=d, num_samples=n)
            for j, w in exp.as_map()[1]:
                out[i, j] = w
        return out
    shap = import_quietly("shap")
    n = P.shap_samples if n_samples is None else int(n_samples)
    k = P.shap_background if n_background is None else int(n_background)
    if background == "kmeans":
        summary = shap.kmeans(bg, k) if len(bg) > k else bg
    else:
        summary = bg[np.random.default_rng(seed).choice(len(bg), size=min(k, len(bg)), replace=False)]
    np.random.seed(seed)
    ke = shap.KernelExplainer(lambda a: predict_proba(a)[:, 1], summary)
    for i, r in enumerate(rows):  # one row at a time: each row's coalitions go to the model in one call
        np.random.seed(seed + i)
        out[i] = np.asarray(ke.shap_values(r[None], nsamples=n, silent=True)).reshape(-1)
    return out


def background_summary(ds: TabularDataset, k: int | None = None) -> np.ndarray:
    """The ``shap.kmeans`` summary KernelSHAP uses as background here: (k, d) centres, each value
    rounded by shap to the nearest value of that column in the data."""
    shap = import_quietly("shap")
    k = get_config().profile.shap_background if k is None else int(k)
    np.random.seed(get_config().seed)
    return np.asarray(shap.kmeans(ds.X_train.astype(np.float64), k).data)


class _Recorder:
    """A ``predict_proba`` that answers like ``model`` and keeps every batch it is asked about."""

    def __init__(self, model):
        self.model, self.batches = model, []

    def __call__(self, X):
        X = np.asarray(X)
        self.batches.append(X.astype(np.float32).copy())
        return self.model.predict_proba(X)


def collect_queries(ds: TabularDataset, explainer: str, rows: np.ndarray, *, seed: int | None = None,
                    **options) -> np.ndarray:
    """Every point the explainer queries while explaining ``rows`` (answered by ``f``), stacked (m, d).

    The explained rows themselves are removed (LIME's first sample is the row; KernelSHAP
    evaluates the row alone once): they are real, not perturbations.
    """
    rec = _Recorder(BiasedClassifier(ds.sensitive_index))
    explain_proba(rec, rows, ds, explainer, seed=seed, **options)
    return _drop_rows(np.concatenate(rec.batches), rows)


def _drop_rows(Q: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``Q`` without the rows that equal one of ``rows`` exactly (compared as float32)."""
    Q = np.ascontiguousarray(Q, dtype=np.float32)
    keys = {r.tobytes() for r in np.ascontiguousarray(rows, dtype=np.float32)}
    keep = np.fromiter((q.tobytes() not in keys for q in Q), dtype=bool, count=len(Q))
    return Q[keep]


class OffGridDetector:
    """Out-of-distribution detector: a random forest on each value and its distance to the grid.

    Real rows take values from a grid (integer ages and counts, 0/1 indicators); LIME's
    Gaussian samples and KernelSHAP's k-means centres fall between the grid points. Besides
    the raw row, the forest therefore sees, per column, the distance to the nearest value that
    column takes in the training data (in units of the column's standard deviation).
    ``predict_proba(X)[:, 1]`` is P(real); ``threshold_`` is the decision threshold.
    """

    def __init__(self, X_train: np.ndarray):
        X = np.asarray(X_train, dtype=np.float32)
        self.grid = [np.unique(X[:, j]) for j in range(X.shape[1])]
        self.scale = np.maximum(X.std(0), 1e-6)
        self.forest = None
        self.threshold_ = 0.5

    def features(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        dist = np.empty_like(X)
        for j, g in enumerate(self.grid):
            pos = np.clip(np.searchsorted(g, X[:, j]), 1, max(len(g) - 1, 1))
            lo, hi = g[pos - 1], g[np.minimum(pos, len(g) - 1)]
            dist[:, j] = np.minimum(np.abs(X[:, j] - lo), np.abs(X[:, j] - hi)) / self.scale[j]
        return np.hstack([X, dist])

    def predict_proba(self, X) -> np.ndarray:
        return self.forest.predict_proba(self.features(X))


def train_detector(X_real: np.ndarray, X_fake: np.ndarray, *, seed: int | None = None, max_rows: int = 20000,
                   n_estimators: int = 100, real_quantile: float = DETECTOR_REAL_QUANTILE) -> OffGridDetector:
    """:class:`OffGridDetector` labelling real rows 1 and explainer queries 0 (balanced by subsampling).

    The grid is learnt from all of ``X_real``. The decision threshold on P(real) is the
    smaller of 0.5 and the ``real_quantile`` quantile of the out-of-bag P(real) of the real
    rows, so that at least about ``1 − real_quantile`` of real rows are called real: the
    attacker's first goal is to behave like ``f`` on real data.
    """
    from sklearn.ensemble import RandomForestClassifier

    if not 0.0 <= real_quantile < 0.5:
        raise ValueError(f"real_quantile must be in [0, 0.5), got {real_quantile}")
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
    det.threshold_ = float(min(0.5, np.nanquantile(oob, real_quantile)))
    det.forest.set_params(n_jobs=1)  # predictions on a few thousand rows: threads cost more than they save
    return det


def build_scaffold(ds: TabularDataset, explainer: str, *, n_rows: int | None = None, seed: int | None = None,
                   **options) -> ScaffoldedClassifier:
    """Slack et al.'s adversarial classifier for ``ds`` (which must carry the ``unrelated_1`` column).

    n_rows: training rows whose explainer queries train the detector (default
            ``profile.scaffold_detector_rows``); real examples are drawn from all training rows
            (subsampled to as many as there are queries, see :func:`train_detector`).
    """
    explainer = check_explainer(explainer)
    if UNRELATED not in ds.feature_names:
        raise ValueError(f"ds must carry the {UNRELATED!r} column: pass with_unrelated(ds)")
    cfg = get_config()
    seed = cfg.seed if seed is None else int(seed)
    n_rows = cfg.profile.scaffold_detector_rows if n_rows is None else int(n_rows)
    if not 1 <= n_rows <= len(ds.X_train):
        raise ValueError(f"n_rows must be in 1..{len(ds.X_train)}, got {n_rows}")
    rng = np.random.default_rng(seed + 1)
    rows = ds.X_train[rng.choice(len(ds.X_train), n_rows, replace=False)]
    # The adversary rehearses the explainer with a different seed from the auditor's.
    fake = collect_queries(ds, explainer, rows, seed=seed + 1, **options)
    det = train_detector(ds.X_train, fake, seed=seed)
    return ScaffoldedClassifier(BiasedClassifier(ds.sensitive_index),
                                InnocuousClassifier(ds.feature_names.index(UNRELATED)), det)


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


def scaffold_experiment(name: str, explainer: str, *, sensitive: str | None = None, n_explain: int | None = None,
                        n_rows: int | None = None, n_samples: int | None = None, n_background: int | None = None,
                        seed: int | None = None) -> dict:
    """Slack et al.'s attack on one data set and one explainer; cached.

    ``sensitive`` picks the 0/1 column ``f`` decides by (default: the data set's sensitive attribute).

    Returns a dict with the attributions of ``f`` and of the scaffold on ``n_explain`` test
    rows (``attr_f``, ``attr_scaffold``, (n, d+1) tensors), rank shares of the sensitive
    feature (``ranks_f``, ``ranks_scaffold``: 1st/2nd/3rd) and of ``unrelated_1``
    (``ranks_unrelated``), ``fidelity`` (agreement of scaffold and ``f`` on all real test rows),
    the detector's held-out accuracy on real test rows (``detector_real``) and on the queries
    of the explained rows (``detector_fake``), ``calls_per_row`` (model calls per explained row
    while explaining the scaffold: 1 for LIME; 2 for KernelSHAP, the row alone and then all its
    coalitions, plus one call on the background when the explainer is set up), and two
    uncovering checks: ``flip_f`` /
    ``flip_scaffold`` (flip test on real test rows) and, for KernelSHAP, the ranks with an
    in-distribution background of real rows (``ranks_scaffold_rows``, ``ranks_f_rows``).
    """
    check_dataset(name)
    explainer = check_explainer(explainer)
    cfg = get_config()
    P = cfg.profile
    seed = cfg.seed if seed is None else int(seed)
    n_explain = P.n_tabular_explain if n_explain is None else int(n_explain)
    n_rows = P.scaffold_detector_rows if n_rows is None else int(n_rows)
    n_samples = (P.lime_samples if explainer == "lime" else P.shap_samples) if n_samples is None else int(n_samples)
    n_background = P.shap_background if n_background is None else int(n_background)
    options = dict(n_samples=n_samples, n_background=n_background)
    ds0 = load_tabular(name)
    ds0 = replace(ds0, sensitive=ds0.feature_names[_sensitive_index(ds0, sensitive)])
    settings = dict(name=name, sensitive=ds0.sensitive, explainer=explainer, n_explain=n_explain, n_rows=n_rows,
                    seed=seed, **options)

    def compute():
        ds = with_unrelated(ds0, seed=seed)
        s, u = ds.sensitive_index, ds.feature_names.index(UNRELATED)
        if not 1 <= n_explain <= len(ds.X_test):
            raise ValueError(f"n_explain must be in 1..{len(ds.X_test)}, got {n_explain}")
        f = BiasedClassifier(s)
        adv = build_scaffold(ds, explainer, n_rows=n_rows, seed=seed, **options)
        rows = ds.X_test[np.random.default_rng(seed + 2).choice(len(ds.X_test), n_explain, replace=False)]
        attr_f = explain_proba(f.predict_proba, rows, ds, explainer, seed=seed, **options)
        adv.record, adv.calls = True, 0
        attr_a = explain_proba(adv.predict_proba, rows, ds, explainer, seed=seed, **options)
        adv.record, calls = False, adv.calls
        queries = _drop_rows(np.concatenate(adv.queries), rows)
        out = {
            "features": list(ds.feature_names), "sensitive": ds.sensitive,
            "attr_f": torch.as_tensor(attr_f, dtype=torch.float32),
            "attr_scaffold": torch.as_tensor(attr_a, dtype=torch.float32),
            "ranks_f": rank_shares(attr_f, s), "ranks_scaffold": rank_shares(attr_a, s),
            "ranks_unrelated": rank_shares(attr_a, u),
            "fidelity": float((adv.predict(ds.X_test) == f.predict(ds.X_test)).mean()),
            "detector_real": float(adv.is_real(ds.X_test).mean()),
            "detector_fake": float(1.0 - adv.is_real(queries).mean()),
            "n_queries": int(len(queries)), "calls_per_row": float(calls) / n_explain,
            "f_agree_queries": float((adv.predict(queries) == f.predict(queries)).mean()),
            "flip_f": flip_rate(f.predict, ds.X_test, s), "flip_scaffold": flip_rate(adv.predict, ds.X_test, s),
        }
        if explainer == "kernel_shap":
            a_f = explain_proba(f.predict_proba, rows, ds, explainer, seed=seed, background="rows", **options)
            a_a = explain_proba(adv.predict_proba, rows, ds, explainer, seed=seed, background="rows", **options)
            out.update(ranks_f_rows=rank_shares(a_f, s), ranks_scaffold_rows=rank_shares(a_a, s))
        return out

    return cached("slack-scaffold", settings, compute)


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
    and the share in which ``unrelated_1`` does for the scaffold.
    """
    import matplotlib.pyplot as plt

    from ..plot import METHOD_LABELS

    names = list(dict.fromkeys(k[0] for k in results))
    expl = list(dict.fromkeys(k[1] for k in results))
    fig, axes = plt.subplots(len(names), len(expl), figsize=(3.3 * len(expl), 2.0 * len(names) + 0.6),
                             squeeze=False, sharey=True)
    bars = [("ranks_f", "sensitive feature, biased f", "#d55e00"),
            ("ranks_scaffold", "sensitive feature, scaffolded", "#0072b2"),
            ("ranks_unrelated", "unrelated_1, scaffolded", "#999999")]
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
            for sp in ("top", "right"):
                ax.spines[sp].set_visible(False)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, frameon=False, fontsize=8)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig
