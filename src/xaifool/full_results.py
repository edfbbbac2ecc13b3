"""Paper-scale results without the book tool chain: ``python -m xaifool full-results [--only CHAPTER]``.

A GPU lent for a few minutes cannot build the book (no jupyter-book there, no internet, a small
working tree), so the computations behind each chapter's "paper vs this book" table run here on
their own, through :mod:`xaifool.experiments` — the functions the chapters call — in the active
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

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from .config import REPO_ROOT, device_name, get_config

__all__ = ["CHAPTERS", "SCHEMA", "RESULTS_DIR", "run", "record", "check_record", "load", "write", "progress", "status",
           "status_text", "part_seconds"]

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


def _input_chapter(P, partial, jobs=1, done=None):
    """Chapter 02a's numbers part by part (:func:`xaifool.experiments.input_parts`), each merged into
    the record as it finishes; ``done`` (a resumed record's numbers) names in ``parts`` those already
    recorded, which are skipped."""
    import copy

    from . import experiments as X

    s = X.input_setup(P)
    parts = X.input_parts(P, s)
    out = copy.deepcopy(done) if done else {}
    out.update(k=int(s.k), fsr_tau=X.FSR_TAU, n_images=len(s.x), n_pool=s.n_pool)
    finished = list(out.get("parts", []))
    for name in _input_order(list(parts)):
        if name in finished:
            continue
        t0 = time.perf_counter()
        X.add_part_numbers(out, name, parts[name](), s.k)
        out.setdefault("part_seconds", {})[name] = time.perf_counter() - t0
        finished.append(name)
        out["parts"] = finished
        if len(finished) < len(parts):
            partial(out)
    return out


def _model_chapter(P, partial, jobs=1, done=None):
    """Chapter 02b's numbers, one manipulated model at a time; ``done`` (a resumed record's numbers)
    holds models already recorded, which are skipped. On CIFAR-10 each passively manipulated model is
    also explained by SmoothGrad and Integrated Gradients, which its fine-tuning never saw
    (``transfer``: their FSR, on the chapter's first ``heo_n_transfer`` held-out images)."""
    import copy

    from .attacks import model as MM

    out: dict = copy.deepcopy(done) if done else {}
    others = {"smoothgrad": {"n_samples": P.smoothgrad_samples}, "integrated_gradients": {"n_steps": P.ig_steps}}
    n_pairs = len(P.heo_grid) + len(P.heo_imagenet_grid)
    for base_key, grid in (("cifar_resnet20", P.heo_grid), ("mobilenet_v2", P.heo_imagenet_grid)):
        test = MM.heldout_data(base_key)
        for pair in grid:
            if "/".join(pair) in out.get(base_key, {}):
                continue
            t0 = time.perf_counter()
            g = MM.run_grid(base_key, [pair], x_test=test.x, y_test=test.y, progress=False)
            r, model = g["results"][pair], g["models"][pair]
            row = {"fsr": r.fsr, "fsr_unmodified": g["unmodified"][pair].fsr, "accuracy": r.accuracy,
                   "accuracy_adv": r.accuracy_adv, "lam": model.manipulation["settings"]["lam"],
                   "finetune_seconds": model.manipulation["history"]["seconds"][0], "n_test": len(test)}
            if base_key == "cifar_resnet20" and pair[0] in MM.PASSIVE_ATTACKS:
                some = slice(0, P.heo_n_transfer)
                t = MM.transfer(MM.base_model(base_key), model, test.x[some], test.y[some], pair[0], list(others),
                                options=others, cache=True)
                row["transfer"] = {m: t[m].fsr for m in others}
                row["n_transfer"] = len(test.x[some])
            row["seconds"] = time.perf_counter() - t0
            out.setdefault(base_key, {})["/".join(pair)] = row
            if _models_done(out) < n_pairs:
                partial(out)
    return out


def _sanity_chapter(P, partial, jobs=1, done=None):
    """Chapter 06's verdicts per network; ``done`` (a resumed record's numbers) holds networks already
    recorded, which are skipped."""
    from . import sanity as S

    out: dict = dict(done or {})
    keys = ("mobilenet_v2", "cifar_resnet20")
    for base_key in keys:
        if base_key in out:
            continue
        t0 = time.perf_counter()
        result, x = S.chapter_test(base_key, P)
        out[base_key] = {"n_images": len(x), "n_steps": len(result["layers"]), "methods": S.verdict_numbers(result),
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


#: chapter (notebook stem) → (function(profile, partial, jobs) → numbers, the profile fields it depends on);
#: ``jobs``: processes for CPU-bound explainers (LIME, KernelSHAP), the numbers do not depend on it
CHAPTERS = {
    "02a_input_manipulation": (_input_chapter, (
        "attack_n_cifar", "attack_n_imagenet", "attack_iters", "attack_iters_imagenet", "dombrowski_iters",
        "attack_batch_size", "attack_ig_steps", "attack_smoothgrad_samples")),
    "02b_model_manipulation": (_model_chapter, (
        "heo_n_train", "heo_epochs", "heo_batch_size", "heo_n_test", "heo_n_imagenet", "heo_epochs_imagenet",
        "heo_batch_size_imagenet", "heo_grid", "heo_imagenet_grid")),
    "06_sanity_checks": (_sanity_chapter, ("sanity_n_imagenet", "sanity_n_cifar", "sanity_samples")),
    "08_experiments": (_tabular_chapter, (
        "n_tabular_explain", "lime_samples", "shap_samples", "shap_background", "scaffold_detector_rows",
        "concealment_epochs", "tabular_epochs", "scaffold_detector_max_rows", "scaffold_explain_share")),
}


def _commit() -> str:
    env = os.environ.get("XAIFOOL_COMMIT")
    if env:
        return env
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                              check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def record(chapter: str, numbers: dict, *, seconds: float, complete: bool = True, command: str = "") -> dict:
    """A full-results record of ``numbers`` for ``chapter`` with the run's context (see the module doc)."""
    if chapter not in CHAPTERS:
        raise ValueError(f"chapter must be one of {sorted(CHAPTERS)}, got {chapter!r}")
    cfg = get_config()
    fields = CHAPTERS[chapter][1]
    rec = {
        "schema": SCHEMA, "chapter": chapter, "profile": cfg.profile.name, "device": cfg.device.type,
        "device_name": device_name(cfg.device), "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": _commit(), "command": command or " ".join(["python -m xaifool"] + sys.argv[1:]),
        "torch": torch.__version__, "seconds": float(seconds), "complete": bool(complete),
        "settings": {f: getattr(cfg.profile, f) for f in fields}, "numbers": numbers,
    }
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
    from .config import PROFILES

    if rec["profile"] not in PROFILES:
        raise ValueError(f"record: profile must be one of {PROFILES}, got {rec['profile']!r}")
    if rec["seconds"] < 0:
        raise ValueError(f"record: seconds must be >= 0, got {rec['seconds']}")
    _finite_numbers(rec["numbers"])
    _finite_numbers(rec["settings"], "settings")
    return rec


def write(rec: dict, out_dir: Path | None = None) -> Path:
    """Write ``rec`` (validated) to ``<out_dir>/<chapter>.json`` atomically."""
    check_record(rec)
    from .cache import atomic_write_text

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
    """(parts done, parts in all, what a part is) of a record: chapter 02a's attacks
    (:func:`xaifool.experiments.input_part_names`), 02b's manipulated models (its settings' grids),
    06's networks, 08's experiments (scaffold per data set and explainer under two settings, then
    the concealment per data set), counted in what the record holds (a complete record of chapter
    02a written before its parts were listed counts as all done)."""
    check_record(rec)
    n, chapter = rec["numbers"], rec["chapter"]
    if chapter == "02a_input_manipulation":
        from .experiments import input_part_names

        names = input_part_names()
        total, unit = len(names), "attacks"
        # names a record holds that are parts no longer (e.g. after a change of the ε grid) do not count
        done = len(set(n["parts"]) & set(names)) if "parts" in n else (total if rec["complete"] else 0)
    elif chapter == "02b_model_manipulation":
        s = rec["settings"]
        total = len(s.get("heo_grid", ())) + len(s.get("heo_imagenet_grid", ()))
        unit, done = "models", _models_done(n)
    elif chapter == "06_sanity_checks":
        total, unit, done = 2, "networks", sum(k in n for k in ("mobilenet_v2", "cifar_resnet20"))
    else:
        done, total = _tabular_progress(n)
        unit = "experiments"
    return min(done, total), total, unit


def part_seconds(rec: dict) -> dict[str, float]:
    """The seconds of each timed part a record holds, by part name: chapter 02a's attacks (its
    ``part_seconds``), 02b's models (``"<network>: <attack>/<interpreter>"``), 06's networks; empty
    for chapter 08 and for records written before parts were timed."""
    n, chapter = rec["numbers"], rec["chapter"]
    if chapter == "02a_input_manipulation":
        return {k: float(v) for k, v in n.get("part_seconds", {}).items()}
    if chapter == "02b_model_manipulation":
        return {f"{net}: {pair}": float(row["seconds"]) for net, models in n.items() if isinstance(models, dict)
                for pair, row in models.items() if isinstance(row, dict) and "seconds" in row}
    if chapter == "06_sanity_checks":
        return {net: float(v["seconds"]) for net, v in n.items() if isinstance(v, dict) and "seconds" in v}
    return {}


def _models_done(n: dict) -> int:
    """Manipulated models chapter 02b's numbers hold (one dict of rows per base network)."""
    return sum(len(v) for v in n.values() if isinstance(v, dict))


def _tabular_progress(n: dict) -> tuple[int, int]:
    """(experiments done, in all) of chapter 08's numbers: Slack's scaffold per data set and explainer
    under the book's and Slack's settings, then Dimanov's concealment per data set."""
    from .attacks.tabular import SCAFFOLD_EXPLAINERS

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
    ``unit`` (:func:`progress`), ``complete`` and ``summary`` ("complete" or "N of M <unit>")."""
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
                     "summary": "complete" if rec["complete"] else f"{done} of {total} {unit}"})
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
        fn, fields = CHAPTERS[chapter]
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
        log(f"== {chapter} ({P.name} profile, {get_config().device})")

        def partial(numbers, chapter=chapter, t0=t0, before=before):
            write(record(chapter, json.loads(json.dumps(numbers)), seconds=before + time.perf_counter() - t0,
                         complete=False, command=command), out_dir)

        numbers = fn(P, partial, jobs=jobs, done=done)
        path = write(record(chapter, numbers, seconds=before + time.perf_counter() - t0, command=command), out_dir)
        log(f"   {time.perf_counter() - t0:.1f} s -> {path}")
        written.append(path)
    return written
