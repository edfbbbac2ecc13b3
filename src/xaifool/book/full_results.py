"""Paper-scale results without the book tool chain: ``python -m xaifool full-results [--only CHAPTER]``.

A GPU lent for a few minutes cannot build the book (no jupyter-book there, no internet, a small
working tree), so the computations behind each chapter's "paper vs this book" table run here on
their own, through :mod:`xaifool.book.experiments` — the functions the chapters call — in the active
profile (``XAIFOOL_PROFILE=full`` on the GPU), and write one small JSON record per chapter:

``benchmarks/results/full/<chapter>.json``::

    {"schema": "xaifool.full-results/1", "chapter": "02a_input_manipulation", "profile": "full",
     "device": "cuda", "device_name": "NVIDIA H100 80GB HBM3", "date": "2026-…Z", "commit": "…",
     "command": "…", "torch": "2.11.0", "seconds": 123.4, "complete": true,
     "settings": {profile sizes used}, "numbers": {the chapter's headline numbers}}

The book reads these records (:func:`load`) and shows them next to the numbers of its own build,
labelled as a recorded full-profile run. Needs torch, torchvision, the few libraries the
computation uses (zennit for LRP; lime and shap for the tabular chapter) and the data files
(``XAIFOOL_DATA``).
"""
from __future__ import annotations

import functools
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from ..config import REPO_ROOT, device_name, get_config

__all__ = ["CHAPTERS", "SCHEMA", "RESULTS_DIR", "run", "record", "commit", "check_record", "load", "write", "progress", "status",
           "status_text", "part_seconds", "Chapter", "GpuBusy", "run_parts", "merge_numbers", "sweep_run_name"]

SCHEMA = "xaifool.full-results/1"
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results" / "full"

_REQUIRED = {"schema": str, "chapter": str, "profile": str, "device": str, "device_name": str, "date": str,
             "commit": str, "command": str, "torch": str, "seconds": (int, float), "complete": bool,
             "settings": dict, "numbers": dict}


#: The order in which the input chapter's parts run in a full-results run: what a short GPU visit
#: should record first (the cheap interpreters' grid, Dombrowski on the gradient, ImageNet), and
#: last the parts that cost 16 to 64 backward passes per step (SmoothGrad, IG) or 1500 LRP steps.
_EXPENSIVE = ("grid/smoothgrad/", "grid/integrated_gradients/", "target_lrp")


def _input_order(names) -> list[str]:
    first = [n for n in names if n.startswith("grid/") and not n.startswith(_EXPENSIVE)]
    middle = [n for n in ("target_gradient", "imagenet_gradient", "region", "imagenet_lrp") if n in names]
    last = [n for n in names if n not in first and n not in middle]
    return first + middle + sorted(last, key=lambda n: n == "target_lrp")


def _worker_init(threads: int) -> None:
    """A part worker: its share of the CPU threads (one process per part keeps the GPU busy; on a CPU the
    processes share the cores)."""
    torch.set_num_threads(max(1, int(threads)))


def _timed(work, key):
    t0 = time.perf_counter()
    value = work(key)
    return value, time.perf_counter() - t0


class GpuBusy:
    """Samples how busy the GPU is (``torch.cuda.utilization()``: the share of the last sample period in
    which a kernel ran; ``nvidia-smi`` where torch cannot ask) once a second in a thread, until ``stop()``."""

    def __init__(self, period: float = 1.0, read=None):
        import threading

        self.samples: list[float] = []
        self._read = read or _gpu_utilisation
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, args=(float(period),), daemon=True)
        self._thread.start()

    def _loop(self, period):
        while not self._stop.wait(period):
            value = self._read()
            if value is not None:
                self.samples.append(float(value))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def summary(self) -> dict:
        """``{"mean": percent, "samples": n}`` (mean None before the first sample)."""
        n = len(self.samples)
        return {"mean": sum(self.samples) / n if n else None, "samples": n}


def _gpu_utilisation():
    try:
        return torch.cuda.utilization()
    except Exception:   # pynvml missing: ask nvidia-smi
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True, timeout=5).stdout.split()
            return float(out[0]) if out else None
        except (OSError, subprocess.SubprocessError, ValueError):
            return None


def run_parts(keys, work, jobs: int, on_result) -> None:
    """``work(key)`` for every key of ``keys``, one after the other here (``jobs`` = 1) or in ``jobs`` spawned
    processes at once (parts of a chapter are independent: each is seeded by its own settings and cached, so
    its numbers do not depend on the process that computed it); ``on_result(key, value, seconds)`` runs here,
    as each part finishes. ``work`` must be a module-level function (it is pickled)."""
    keys = list(keys)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a positive number of processes, got {jobs!r}")
    if jobs == 1 or len(keys) <= 1:
        for key in keys:
            on_result(key, *_timed(work, key))
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    threads = max(1, torch.get_num_threads() // jobs)   # the processes share the CPU cores (and feed the one GPU)
    error = None
    with ProcessPoolExecutor(min(jobs, len(keys)), mp_context=mp.get_context("spawn"), initializer=_worker_init,
                             initargs=(threads,)) as pool:
        futures = {pool.submit(_timed, work, key): key for key in keys}
        for f in as_completed(futures):
            if f.cancelled():
                continue
            try:
                value, seconds = f.result()
            except Exception as err:   # a failed part: start no other, record those already running, then raise
                if error is None:
                    error = err
                    for g in futures:
                        g.cancel()
                continue
            on_result(futures[f], value, seconds)
    if error is not None:
        raise error


def merge_numbers(out: dict, part: dict) -> dict:
    """Merge one part's numbers into a chapter's (in place): nested dicts merged key by key, the
    ``seconds`` of attack families added up."""
    for key, value in part.items():
        if key == "seconds" and isinstance(value, dict):
            seconds = out.setdefault("seconds", {})
            for k, v in value.items():
                seconds[k] = seconds.get(k, 0.0) + v
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            merge_numbers(out[key], value)
        else:
            out[key] = value
    return out


def _active(P) -> None:
    """The part runners read the active profile (a part worker has no other): ``P`` must be it."""
    if P != get_config().profile:
        raise ValueError(f"P must be the active profile (XAIFOOL_PROFILE={get_config().profile.name}); the parts of a "
                         f"full-results run read it, also in their worker processes; got profile {P.name!r}")


@functools.lru_cache(maxsize=1)
def _input_setup_and_parts(profile):
    from . import experiments as X

    P = profile
    s = X.input_setup(P)
    return s, X.input_parts(P, s)


def _input_part(name: str) -> dict:
    """The numbers of chapter 02a's part ``name`` alone (run in a part worker, or here)."""
    from . import experiments as X

    s, parts = _input_setup_and_parts(get_config().profile)
    return X.add_part_numbers({}, name, parts[name](), s.k)


def _input_chapter(P, partial, jobs=1, done=None):
    """Chapter 02a's numbers part by part (:func:`xaifool.book.experiments.input_parts`), in ``jobs`` processes,
    each merged into the record as it finishes; ``done`` (a resumed record's numbers) names in ``parts``
    those already recorded, which are skipped."""
    import copy

    from . import experiments as X

    _active(P)
    s, parts = _input_setup_and_parts(P)
    order = _input_order(list(parts))
    out = copy.deepcopy(done) if done else {}
    out.update(k=int(s.k), fsr_tau=X.FSR_TAU, n_images=len(s.x), n_pool=s.n_pool)
    out.setdefault("seconds", {"grid": 0.0})
    finished = set(out.get("parts", []))

    def on_result(name, numbers, seconds):
        merge_numbers(out, numbers)
        out.setdefault("part_seconds", {})[name] = seconds
        finished.add(name)
        out["parts"] = [n for n in order if n in finished] + sorted(finished - set(order))
        if len(finished & set(order)) < len(order):
            partial(out)

    run_parts([n for n in order if n not in finished], _input_part, jobs, on_result)
    return out


def _unseen(P) -> dict:
    """The interpreters chapter 02b's fine-tuned models are also explained by (their fine-tuning never saw them)."""
    return {"smoothgrad": {"n_samples": P.smoothgrad_samples}, "integrated_gradients": {"n_steps": P.ig_steps}}


def _model_part(key: tuple[str, str, str]) -> dict:
    """Chapter 02b's row of one manipulated model, ``key = (base_key, attack, interpreter)`` (run in a part
    worker, or here)."""
    from .. import zoo
    from ..attacks import heo as MM

    P = get_config().profile
    base_key, pair = key[0], (key[1], key[2])
    test = zoo.heldout_data(base_key)
    g = MM.run_grid(base_key, [pair], x_test=test.x, y_test=test.y, progress=False)
    r, model = g["results"][pair], g["models"][pair]
    row = {"fsr": r.fsr, "fsr_unmodified": g["unmodified"][pair].fsr, "accuracy": r.accuracy,
           "accuracy_adv": r.accuracy_adv, "lam": model.manipulation["settings"]["lam"],
           "finetune_seconds": model.manipulation["history"]["seconds"][0], "n_test": len(test)}
    if base_key == "cifar_resnet20" and pair[0] in MM.passive_attacks():
        some = slice(0, P.heo_n_transfer)
        others = _unseen(P)
        t = MM.evaluate_interpreters(zoo.base_model(base_key), model, test.x[some], test.y[some], pair[0],
                                     list(others), options=others, cache=True)
        row["transfer"] = {m: t[m].fsr for m in others}
        row["n_transfer"] = len(test.x[some])
    return row


def _model_chapter(P, partial, jobs=1, done=None):
    """Chapter 02b's numbers, one manipulated model a part, in ``jobs`` processes; ``done`` (a resumed record's
    numbers) holds models already recorded, which are skipped. On CIFAR-10 each passively manipulated model
    is also explained by SmoothGrad and Integrated Gradients, which its fine-tuning never saw
    (``evaluate_interpreters``: their FSR, on the chapter's first ``heo_n_transfer`` held-out images)."""
    import copy

    _active(P)
    out: dict = copy.deepcopy(done) if done else {}
    n_pairs = len(P.heo_grid) + len(P.heo_imagenet_grid)
    keys = [(base_key, *pair) for base_key, grid in (("cifar_resnet20", P.heo_grid), ("mobilenet_v2", P.heo_imagenet_grid))
            for pair in grid if "/".join(pair) not in out.get(base_key, {})]

    def on_result(key, row, seconds):
        row["seconds"] = seconds
        out.setdefault(key[0], {})["/".join(key[1:])] = row
        if _models_done(out) < n_pairs:
            partial(out)

    run_parts(keys, _model_part, jobs, on_result)
    return out


def sweep_run_name(lam: float, lr: float) -> str:
    """How a run of the matched-accuracy sweep is named in its record."""
    return f"lam={lam:g},lr={lr:g}"


def _sweep_part(key: tuple) -> dict:
    """One run of the matched-accuracy sweep, ``key = (attack, interpreter, λ, learning rate)`` on the ResNet-20."""
    from ..attacks import heo as MM

    row = MM.sweep("cifar_resnet20", key[0], key[1], [key[2]], [key[3]])[0]
    return {k: row[k] for k in ("lam", "lr", "fsr", "accuracy", "accuracy_adv", "drop")}


def _sweep_chapter(P, partial, jobs=1, done=None):
    """Heo's claim at matched accuracy: every pair of ``heo_sweep_pairs`` fine-tuned at every λ of
    ``heo_sweep_lams`` and learning rate of ``heo_sweep_lrs`` (one run a part, in ``jobs`` processes);
    ``done`` (a resumed record's numbers) holds runs already recorded, which are skipped."""
    import copy

    _active(P)
    out: dict = copy.deepcopy(done) if done else {}
    keys = [(a, m, lam, lr) for a, m in P.heo_sweep_pairs for lr in P.heo_sweep_lrs for lam in P.heo_sweep_lams
            if sweep_run_name(lam, lr) not in out.get(f"{a}/{m}", {})]
    total = len(P.heo_sweep_pairs) * len(P.heo_sweep_lams) * len(P.heo_sweep_lrs)

    def on_result(key, row, seconds):
        out.setdefault(f"{key[0]}/{key[1]}", {})[sweep_run_name(key[2], key[3])] = {**row, "seconds": seconds}
        if _models_done(out) < total:
            partial(out)

    run_parts(keys, _sweep_part, jobs, on_result)
    return out


def _sweep_progress(n, settings, complete):
    total = len(settings.get("heo_sweep_pairs", ())) * len(settings.get("heo_sweep_lams", ())) * \
        len(settings.get("heo_sweep_lrs", ()))
    return _models_done(n), total


def _sanity_chapter(P, partial, jobs=1, done=None):
    """Chapter 06's verdicts per network; ``done`` (a resumed record's numbers) holds networks already
    recorded, which are skipped."""
    from . import experiments as X

    out: dict = dict(done or {})
    keys = ("mobilenet_v2", "cifar_resnet20")
    for base_key in keys:
        if base_key in out:
            continue
        t0 = time.perf_counter()
        result, x = X.sanity_test(base_key, P)
        out[base_key] = {"n_images": len(x), "n_steps": len(result["layers"]), "methods": X.verdict_numbers(result),
                         "seconds": time.perf_counter() - t0}
        if any(k not in out for k in keys):
            partial(out)
    return out


def _tabular_chapter(P, partial, jobs=1, done=None):
    """Chapter 08's numbers (``done`` is not used: its parts are cached artefacts of this machine)."""
    from . import experiments as X

    def on_done(numbers):   # the last part's numbers are written once, as the complete record
        done, total = _tabular_progress(numbers)
        if done < total:
            partial(numbers)

    return X.tabular_numbers(on_done=on_done, n_jobs=jobs)


def _finite_or_none(obj):
    """``obj`` with every NaN / infinite number replaced by None (a record holds finite numbers only)."""
    if isinstance(obj, dict):
        return {k: _finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_or_none(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _explaining_chapter(P, partial, jobs=1, done=None):
    """Chapter 05's numbers part by part (curvature, defences, input detectors, model detectors);
    ``done`` (a resumed record's numbers) holds the parts already recorded, which are skipped."""
    from . import experiments as X
    from . import explaining as EX

    _active(P)
    out: dict = dict(done or {})
    setup = X.input_setup(P)

    def curvature():
        c = EX.curvature_study(P, setup)
        return {"n": int(len(c["table"])), "n_moved": c["n_moved"], "rho_eig": list(c["rho_eig"]),
                "rho_dir": list(c["rho_dir"]), "beta": c["beta"]}

    def defences():
        d = EX.defence_tables(P, setup)
        frame = lambda t, key: {str(r[key]): {m: float(v) for m, v in r.items() if m != key} for r in t.to_dict("records")}
        return {"beta": frame(d["beta"], "beta"), "sigma": frame(d["sigma"], "sigma"), "n": int(P.defence_n)}

    def inputs():
        return {name: {"auc_attack": s["roc_attack"].auc, "auc_noise": s["roc_noise"].auc, "n": int(len(s["clean"]))}
                for name, s in EX.input_detectors(P, setup).items()}

    def models():
        m = EX.model_detectors(P)
        return {f"{a}/{meth}": {"auc": r.auc, "n": int(m["n"])} for (a, meth), r in m["roc"].items()}

    parts = {"curvature": curvature, "defences": defences, "input_detectors": inputs, "model_detectors": models}
    for name, fn in parts.items():
        if name in out:
            continue
        t0 = time.perf_counter()
        out[name] = _finite_or_none({**fn(), "seconds": time.perf_counter() - t0})
        if any(k not in out for k in parts):
            partial(out)
    return out


def _benchmark_chapter(P, partial, jobs=1, done=None):
    """Chapter 07's leaderboard: every cell's estimate, interval, n and how it was obtained, and the
    rank correlations between the noise scores and the attacks (one part: it reads the other chapters'
    cached results, computing what is missing)."""
    from ..leaderboard import column_names, standings
    from . import board

    _active(P)
    t0 = time.perf_counter()
    st = standings(board.all_outcomes(P), board.interpreters())
    cells = {i: {c: {"estimate": v.estimate, "low": v.low, "high": v.high, "n": v.n, "how": v.how,
                     "source": v.source or "", "verdict": v.verdict or "", "why": v.why or ""}
                 for c, v in st.cells[i].items()} for i in st.interpreters}
    rho = {n: {k: v for k, v in st.robustness_vs_attacks(n).items() if k != "interpreters"}
           for n in column_names("natural robustness")}
    return _finite_or_none({"cells": cells, "rho": rho, "seconds": time.perf_counter() - t0})


@dataclass(frozen=True)
class Chapter:
    """One chapter's full-results entry.

    name:         the notebook stem (the record's ``chapter``)
    title:        how tables name it
    runner:       ``(profile, partial, jobs=1, done=None) → numbers``: computes the chapter's numbers part by part,
                  calls ``partial(numbers)`` after each unfinished part, skips the parts ``done`` (a resumed
                  record's numbers) holds; ``jobs``: processes for CPU-bound explainers (LIME, KernelSHAP),
                  the numbers do not depend on it
    settings:     the profile fields the numbers depend on (stored in the record; ``--resume`` needs them equal)
    progress:     ``(numbers, settings, complete) → (parts done, parts in all)``
    unit:         what a part is, in words
    part_seconds: ``numbers → {part: seconds}`` for the timed parts a record holds
    """

    name: str
    title: str
    runner: Callable
    settings: tuple[str, ...]
    progress: Callable
    unit: str
    part_seconds: Callable = lambda numbers: {}


def _input_progress(n, settings, complete):
    from .experiments import input_part_names

    names = input_part_names()
    # names a record holds that are parts no longer (e.g. after a change of the ε grid) do not count
    done = len(set(n["parts"]) & set(names)) if "parts" in n else (len(names) if complete else 0)
    return done, len(names)


def _model_progress(n, settings, complete):
    return _models_done(n), len(settings.get("heo_grid", ())) + len(settings.get("heo_imagenet_grid", ()))


def _sanity_progress(n, settings, complete):
    return sum(k in n for k in ("mobilenet_v2", "cifar_resnet20")), 2


def _tabular_record_progress(n, settings, complete):
    return _tabular_progress(n)


#: Every chapter with a full-results record, in the order ``full-results`` runs them.
CHAPTERS: dict[str, Chapter] = {c.name: c for c in [
    Chapter("02a_input_manipulation", "Input manipulation (02a)", _input_chapter, (
        "attack_n_cifar", "attack_n_imagenet", "attack_iters", "attack_iters_imagenet", "dombrowski_iters",
        "attack_batch_size", "attack_ig_steps", "attack_smoothgrad_samples"), _input_progress, "attacks",
        lambda n: {k: float(v) for k, v in n.get("part_seconds", {}).items()}),
    Chapter("02b_model_manipulation", "Model manipulation (02b)", _model_chapter, (
        "heo_n_train", "heo_epochs", "heo_batch_size", "heo_n_test", "heo_n_imagenet", "heo_epochs_imagenet",
        "heo_batch_size_imagenet", "heo_grid", "heo_imagenet_grid"), _model_progress, "models",
        lambda n: {f"{net}: {pair}": float(row["seconds"]) for net, models in n.items() if isinstance(models, dict)
                   for pair, row in models.items() if isinstance(row, dict) and "seconds" in row}),
    Chapter("02b_matched_accuracy", "Model manipulation at matched accuracy (02b)", _sweep_chapter, (
        "heo_n_train", "heo_epochs", "heo_batch_size", "heo_n_test", "heo_sweep_pairs", "heo_sweep_lams",
        "heo_sweep_lrs", "heo_max_drop"), _sweep_progress, "runs",
        lambda n: {f"{pair}: {run}": float(row["seconds"]) for pair, runs in n.items() if isinstance(runs, dict)
                   for run, row in runs.items() if isinstance(row, dict) and "seconds" in row}),
    Chapter("06_sanity_checks", "Sanity checks (06)", _sanity_chapter,
            ("sanity_n_imagenet", "sanity_n_cifar", "sanity_samples"), _sanity_progress, "networks",
            lambda n: {net: float(v["seconds"]) for net, v in n.items() if isinstance(v, dict) and "seconds" in v}),
    Chapter("05_explaining_manipulations", "Explaining and uncovering (05)", _explaining_chapter, (
        "attack_n_cifar", "attack_iters", "dombrowski_iters", "attack_batch_size", "attack_smoothgrad_samples",
        "curvature_iters", "defence_betas", "defence_sigmas", "defence_n", "defence_target_iters", "detector_draws",
        "smoothgrad_samples",
        "heo_grid", "heo_n_test", "heo_n_transfer"),
        lambda n, settings, complete: (sum(k in n for k in ("curvature", "defences", "input_detectors",
                                                             "model_detectors")), 4), "parts",
        lambda n: {k: float(v["seconds"]) for k, v in n.items() if isinstance(v, dict) and "seconds" in v}),
    Chapter("07_benchmarking", "Robustness leaderboard (07)", _benchmark_chapter, (
        "attack_n_cifar", "attack_iters", "dombrowski_iters", "attack_batch_size", "attack_ig_steps",
        "attack_smoothgrad_samples", "heo_grid", "heo_n_test", "heo_n_transfer", "noise_samples", "noise_n",
        "sanity_n_cifar", "sanity_samples", "smoothgrad_samples", "ig_steps"),
        lambda n, settings, complete: (int("cells" in n), 1), "leaderboard"),
    Chapter("08_experiments", "Experiments, tabular (08)", _tabular_chapter, (
        "n_tabular_explain", "lime_samples", "shap_samples", "shap_background", "scaffold_detector_rows",
        "concealment_epochs", "tabular_epochs", "scaffold_detector_max_rows", "scaffold_explain_share"),
        _tabular_record_progress, "experiments"),
]}


def commit() -> str:
    env = os.environ.get("XAIFOOL_COMMIT")
    if env:
        return env
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                              check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def record(chapter: str, numbers: dict, *, seconds: float, complete: bool = True, command: str = "",
           run: dict | None = None) -> dict:
    """A full-results record of ``numbers`` for ``chapter`` with the run's context (see the module doc);
    ``run``: how this run went (``jobs``: part processes; on a GPU ``gpu_busy``: the share of time the
    GPU was busy, sampled while it ran), stored as the record's ``run``."""
    if chapter not in CHAPTERS:
        raise ValueError(f"chapter must be one of {sorted(CHAPTERS)}, got {chapter!r}")
    cfg = get_config()
    fields = CHAPTERS[chapter].settings
    rec = {
        "schema": SCHEMA, "chapter": chapter, "profile": cfg.profile.name, "device": cfg.device.type,
        "device_name": device_name(cfg.device), "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": commit(), "command": command or " ".join(["python -m xaifool"] + sys.argv[1:]),
        "torch": torch.__version__, "seconds": float(seconds), "complete": bool(complete),
        "settings": {f: getattr(cfg.profile, f) for f in fields}, "numbers": numbers,
    }
    if run:
        rec["run"] = run
    check_record(rec)
    return rec


def _finite_numbers(obj, path="numbers"):
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, str):
                raise ValueError(f"record: {path} has a non-string key {k!r}")
            _finite_numbers(v, f"{path}.{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _finite_numbers(v, f"{path}[{i}]")
    elif isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return
    elif isinstance(obj, (int, float)):
        if obj != obj or obj in (float("inf"), float("-inf")):
            raise ValueError(f"record: {path} is not a finite number ({obj})")
    else:
        raise ValueError(f"record: {path} holds a {type(obj).__name__}; accepted: numbers, strings, lists, dicts")


def check_record(rec) -> dict:
    """Validate a full-results record against the schema; raise ``ValueError`` naming what is wrong."""
    if not isinstance(rec, dict):
        raise ValueError(f"record must be a dict, got {type(rec).__name__}")
    missing = sorted(set(_REQUIRED) - set(rec))
    if missing:
        raise ValueError(f"record lacks the field(s) {missing}; required: {sorted(_REQUIRED)}")
    for name, typ in _REQUIRED.items():
        if not isinstance(rec[name], typ) or (typ is not bool and isinstance(rec[name], bool)):
            raise ValueError(f"record: {name} must be {typ}, got {type(rec[name]).__name__}")
    if rec["schema"] != SCHEMA:
        raise ValueError(f"record: schema must be {SCHEMA!r}, got {rec['schema']!r}")
    if rec["chapter"] not in CHAPTERS:
        raise ValueError(f"record: chapter must be one of {sorted(CHAPTERS)}, got {rec['chapter']!r}")
    from ..config import PROFILES

    if rec["profile"] not in PROFILES:
        raise ValueError(f"record: profile must be one of {PROFILES}, got {rec['profile']!r}")
    if rec["seconds"] < 0:
        raise ValueError(f"record: seconds must be >= 0, got {rec['seconds']}")
    if "run" in rec:
        if not isinstance(rec["run"], dict):
            raise ValueError(f"record: run must be a dict, got {type(rec['run']).__name__}")
        _finite_numbers(rec["run"], "run")
    _finite_numbers(rec["numbers"])
    _finite_numbers(rec["settings"], "settings")
    return rec


def write(rec: dict, out_dir: Path | None = None) -> Path:
    """Write ``rec`` (validated) to ``<out_dir>/<chapter>.json`` atomically."""
    check_record(rec)
    from ..cache import atomic_write_text

    out_dir = Path(out_dir) if out_dir is not None else RESULTS_DIR
    return atomic_write_text(out_dir / f"{rec['chapter']}.json", json.dumps(rec, indent=1, sort_keys=True) + "\n")


def load(chapter: str, results_dir: Path | None = None, *, profile: str | None = "full") -> dict | None:
    """The recorded run of ``chapter`` in ``profile`` (validated; ``None``: whichever profile it ran in),
    or None if none was recorded."""
    if chapter not in CHAPTERS:
        raise ValueError(f"chapter must be one of {sorted(CHAPTERS)}, got {chapter!r}")
    path = (Path(results_dir) if results_dir is not None else RESULTS_DIR) / f"{chapter}.json"
    if not path.is_file():
        return None
    rec = check_record(json.loads(path.read_text()))
    return rec if profile is None or rec["profile"] == profile else None


def progress(rec: dict) -> tuple[int, int, str]:
    """(parts done, parts in all, what a part is) of a record, by its chapter's entry: chapter 02a's attacks
    (:func:`xaifool.book.experiments.input_part_names`), 02b's manipulated models (its settings' grids),
    06's networks, 08's experiments (scaffold per data set and explainer under two settings, then
    the concealment per data set), counted in what the record holds (a complete record of chapter
    02a written before its parts were listed counts as all done)."""
    check_record(rec)
    entry = CHAPTERS[rec["chapter"]]
    done, total = entry.progress(rec["numbers"], rec["settings"], rec["complete"])
    return min(done, total), total, entry.unit


def part_seconds(rec: dict) -> dict[str, float]:
    """The seconds of each timed part a record holds, by part name: chapter 02a's attacks (its
    ``part_seconds``), 02b's models (``"<network>: <attack>/<interpreter>"``), 06's networks; empty
    for chapter 08 and for records written before parts were timed."""
    return CHAPTERS[rec["chapter"]].part_seconds(rec["numbers"])


def _models_done(n: dict) -> int:
    """Manipulated models chapter 02b's numbers hold (one dict of rows per base network)."""
    return sum(len(v) for v in n.values() if isinstance(v, dict))


def _tabular_progress(n: dict) -> tuple[int, int]:
    """(experiments done, in all) of chapter 08's numbers: Slack's scaffold per data set and explainer
    under the book's and Slack's settings, then Dimanov's concealment per data set."""
    from ..attacks.scaffold import SCAFFOLD_EXPLAINERS

    names = ("compas", "german", "adult")
    total = 2 * len(names) * len(SCAFFOLD_EXPLAINERS) + len(names)
    done = sum(len(n.get(key, {}).get(d, {})) for key in ("slack", "slack_settings") for d in names) \
        + len(n.get("dimanov", {}))
    return done, total


def status(results_dir: Path | None = None, *, profile: str | None = "full") -> list[dict]:
    """One row per chapter of :data:`CHAPTERS` about its recorded run in ``profile`` (``None``: in
    any): ``chapter``, ``recorded`` (False where there is none) and, where there is, ``profile``,
    ``device_name``, ``date``,
    ``commit`` (7 characters), ``seconds`` (on the device, all visits together), ``done``, ``total``,
    ``unit`` (:func:`progress`), ``complete``, ``summary`` ("complete" or "N of M <unit>"), ``per_minute``
    (parts done per minute on the device, all visits together), ``jobs`` (part processes of the last
    visit) and ``gpu_busy`` (its mean GPU utilisation in percent, None where it was not sampled)."""
    rows = []
    for chapter in CHAPTERS:
        rec = load(chapter, results_dir, profile=profile)
        if rec is None:
            rows.append({"chapter": chapter, "recorded": False})
            continue
        done, total, unit = progress(rec)
        rows.append({"chapter": chapter, "recorded": True, "profile": rec["profile"], "device_name": rec["device_name"],
                     "date": rec["date"][:10], "commit": rec["commit"][:7], "seconds": rec["seconds"], "done": done,
                     "total": total, "unit": unit, "complete": rec["complete"],
                     "summary": "complete" if rec["complete"] else f"{done} of {total} {unit}",
                     "per_minute": 60.0 * done / rec["seconds"] if rec["seconds"] > 0 else float("nan"),
                     "jobs": rec.get("run", {}).get("jobs", 1),
                     "gpu_busy": rec.get("run", {}).get("gpu_busy", {}).get("mean")})
    return rows


def status_text(rows: list[dict]) -> str:
    """:func:`status` as the lines ``python -m xaifool full-results --status`` prints."""
    lines = []
    for r in rows:
        if not r["recorded"]:
            lines.append(f"{r['chapter']:24s} no run recorded")
            continue
        what = r["summary"]
        lines.append(f"{r['chapter']:24s} {r['profile']:6s} {what:22s} {r['seconds']:8.1f} s  {r['device_name']}, "
                     f"{r['date']}, {r['commit']}")
    return "\n".join(lines)


def run(only=None, out_dir: Path | None = None, command: str = "", log=print, jobs: int = 1,
        resume: bool = False) -> list[Path]:
    """Compute and write the record of every chapter in ``only`` (default: all), in the active profile;
    ``jobs`` processes explain the tabular chapter's rows (each row seeded by its index: the numbers
    do not depend on it). ``resume``: start from the chapter's record in ``out_dir`` where it is an
    unfinished run of the same profile and settings, skip the parts it holds and add this run's
    seconds to its own (a GPU lent for minutes at a time records a long chapter over several visits;
    each part is seeded by its own settings, so the numbers do not depend on where a visit stopped)."""
    chapters = list(CHAPTERS) if not only else list(only)
    bad = [c for c in chapters if c not in CHAPTERS]
    if bad:
        raise ValueError(f"only must name chapters among {sorted(CHAPTERS)}, got {bad}")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a positive number of processes, got {jobs!r}")
    P = get_config().profile
    written = []
    for chapter in chapters:
        fn, fields = CHAPTERS[chapter].runner, CHAPTERS[chapter].settings
        done, before = None, 0.0
        if resume:
            prior = load(chapter, out_dir, profile=P.name)
            settings = json.loads(json.dumps({f: getattr(P, f) for f in fields}))
            if prior is not None and not prior["complete"] and prior["settings"] == settings:
                done, before = prior["numbers"], prior["seconds"]
                log(f"   resuming {chapter} from its record ({before:.0f} s so far)")
            elif prior is not None and prior["complete"]:
                log(f"   {chapter}: its record is complete; nothing to resume")
                continue
        t0 = time.perf_counter()
        log(f"== {chapter} ({P.name} profile, {get_config().device}, {jobs} part process(es))")
        sampler = GpuBusy() if get_config().device.type == "cuda" else None

        def context(sampler=sampler):
            return {"jobs": jobs, **({"gpu_busy": sampler.summary()} if sampler is not None else {})}

        def partial(numbers, chapter=chapter, t0=t0, before=before):
            write(record(chapter, json.loads(json.dumps(numbers)), seconds=before + time.perf_counter() - t0,
                         complete=False, command=command, run=context()), out_dir)

        try:
            numbers = fn(P, partial, jobs=jobs, done=done)
        finally:
            if sampler is not None:
                sampler.stop()
        path = write(record(chapter, numbers, seconds=before + time.perf_counter() - t0, command=command,
                            run=context()), out_dir)
        log(f"   {time.perf_counter() - t0:.1f} s -> {path}")
        written.append(path)
    return written
