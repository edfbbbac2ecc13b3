"""The scaffolding experiment: the scaffold built, explained on test rows under every detector threshold,
and measured (rank of the sensitive feature, fidelity, the trade-off)."""
from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import torch

from ...cache import cached
from ...config import get_config
from ...data import TabularDataset
from ...validate import check_int
from .config import DETECTOR_REAL_QUANTILE, ScaffoldConfig, TRADEOFF_THRESHOLDS, check_dataset, check_explainer, scaffold_config
from .classifiers import ScaffoldedClassifier, scaffold_models
from .data import prepare_dataset
from .explainers import centres, explain_outputs, make_background
from .detectors import REHEARSAL_PROBES, collect_queries, rehearsal_seed, row_keys, train_detector, train_perturbation_detector


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
    f, psi = scaffold_models(ds, config)
    k = options.pop("n_background", None) or config.n_centres or cfg.profile.shap_background
    bg = options.pop("background_data", None)
    if bg is None and explainer == "kernel_shap":
        bg = make_background(ds, config.background, k, seed)
    if config.detector == "perturbations":
        det = train_perturbation_detector(ds, explainer, config, background=bg, seed=seed)
    else:
        n_rows = cfg.profile.scaffold_detector_rows if n_rows is None else n_rows
        n_rows = check_int(n_rows, "n_rows", 1, len(ds.X_train))
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
        conf = replace(conf, n_centres=check_int(n_background, "n_background", 1))
    cfg = get_config()
    P = cfg.profile
    seed = cfg.seed if seed is None else int(seed)
    n_jobs = check_int(n_jobs, "n_jobs", 1)
    if n_samples is None:
        n_samples = P.lime_samples if explainer == "lime" else P.shap_samples
    elif not (n_samples == "auto" and explainer == "kernel_shap"):
        n_samples = check_int(n_samples, "n_samples", 2)
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
        n_exp = check_int(n_exp, "n_explain", 1, len(ds.X_test))
        t0 = time.perf_counter()
        opts = {"n_samples": n_samples} if conf.detector == "queries" else {}
        # KernelSHAP's background, computed once for the detector, the rehearsal and the audit
        bg = make_background(ds, conf.background, k, seed) if explainer == "kernel_shap" else None
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
        bg_keys = row_keys(centres(bg)) if explainer == "kernel_shap" else set()
        routes = _Routes(adv, thresholds, t_op, adv.detector.fake_keys | row_keys(rows) | bg_keys)
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

    return cached("slack-scaffold", settings, compute, depends=(__name__,))


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
