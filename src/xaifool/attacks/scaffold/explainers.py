"""The explainers under attack, wrapped: KernelSHAP's backgrounds, and LIME / KernelSHAP run on NumPy
functions through the book's one tabular path (row ``i`` seeded with ``seed + i``)."""
from __future__ import annotations

import time

import numpy as np

from ...config import get_config
from ...data import TabularDataset
from ...explain import import_quietly, kernel_shap_table, lime_table
from ...validate import check_choice, check_int
from .config import BACKGROUNDS, check_explainer


def standardise(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    X = np.asarray(X, dtype=np.float64)
    mu, sd = X.mean(0), X.std(0)
    sd = np.where(sd > 0, sd, 1.0)  # StandardScaler's convention for constant columns
    return (X - mu) / sd, mu, sd


def make_background(ds: TabularDataset, method: str, k: int, seed: int):
    """KernelSHAP's background for ``ds``: (k, d) rows in raw units, or a weighted shap ``DenseData``."""
    check_choice(method, "background", BACKGROUNDS)
    X = ds.X_train.astype(np.float64)
    k = check_int(k, "n_centres", 1, len(X))
    if method == "rows":
        return X[np.random.default_rng(seed).choice(len(X), size=k, replace=False)]
    if method == "kmeans_unrounded":
        from sklearn.cluster import KMeans

        Z, mu, sd = standardise(X)
        return KMeans(n_clusters=k, random_state=0).fit(Z).cluster_centers_ * sd + mu
    shap = import_quietly("shap")
    if method == "kmeans":
        return shap.kmeans(X, k)
    Z, mu, sd = standardise(X)
    summary = shap.kmeans(Z, k)  # centres rounded to standardised data values …
    C = summary.data * sd + mu
    for j in range(X.shape[1]):  # … mapped back to the raw value they came from (exactly)
        vals = np.unique(X[:, j])
        C[:, j] = vals[np.abs(C[:, j][:, None] - vals[None]).argmin(1)]
    summary.data = C
    return summary


def centres(background) -> np.ndarray:
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
    bg = make_background(ds, method, k, get_config().seed if seed is None else int(seed))
    return centres(bg)


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
    background_data: KernelSHAP only: that background already computed (:func:`make_background` of the
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
    check_choice(background, "background", BACKGROUNDS)
    P = get_config().profile
    seed = get_config().seed if seed is None else int(seed)
    rows = np.asarray(rows, dtype=np.float64)
    d = ds.X_train.shape[1]
    if rows.ndim != 2 or rows.shape[1] != d:
        raise ValueError(f"rows must have shape (n, {d}), got {rows.shape}")
    n_jobs = check_int(n_jobs, "n_jobs", 1)
    if explainer == "lime":
        n = P.lime_samples if n_samples is None else check_int(n_samples, "n_samples", 2)
        bg = None
    else:
        n = P.shap_samples if n_samples is None else (n_samples if n_samples == "auto"
                                                      else check_int(n_samples, "n_samples", 2))
        if background_data is None:
            k = P.shap_background if n_background is None else n_background
            bg = make_background(ds, background, k, seed)
        else:
            bg = background_data
            shape = centres(bg).shape
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
