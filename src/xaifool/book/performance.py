"""Benchmark records (``benchmarks/results/attacks-<device>.json``) read and tabulated for the
Performance page: validation of a record, and the tables and curves the page shows.

``load(results_dir)``       every valid record, CPU first (``XAIFOOL_BENCH_RESULTS`` overrides the folder)
``check(record)``           schema check; ``ValueError`` naming what is wrong
``machines(records)``       one row per record: device, threads, torch, time, complete?
``throughput(records)``     batched vs per-image loop, per device and model
``hardware(records)``       the step against the device: counted FLOPs, best throughput, achieved
                            FLOP/s, fraction of the matrix-product peak
``variants(records)``       the same step under backend variants, with the difference of the iterates
``scaling(records)``        throughput (and memory) against the batch size
``growth(records)``         throughput, FLOPs and memory against image size and depth
``book_times(build_dir)``   seconds each page took to execute in the last book build
``book_plan(build_dir)``    how many pages ran at a time in that build, and its wall-clock seconds
``slowest_cells(build_dir)`` the cells that took longest in that build (where to look for speed)
``record_book_times(…)``    store them as the ``cold`` or ``warm`` build of ``book-times-<device>.json``
``book_times_table(rec)``   seconds per page, cold and warm, from that record
``record_install(…)``       store the time a fresh installation took (``benchmarks/install.py``)
``book_sentence(rec)``      the Performance page's verdict on the cold build against the 15-minute goal
``full_profile(dir)``       the recorded full-profile runs, a row per chapter (done, device, seconds)
``full_profile_parts(dir)`` where those runs spent their seconds, part by part
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..config import REPO_ROOT

__all__ = ["RESULTS_DIR", "page_label", "load", "load_tabular", "check", "machines", "throughput", "hardware", "variants", "scaling", "levels_off_phrase", "growth",
           "check_sanity", "load_sanity", "sanity", "book_times", "book_plan", "slowest_cells", "BOOK_BUILDS",
           "record_book_times", "load_book_times", "book_times_table", "record_install", "book_sentence",
           "GOAL_MINUTES", "full_profile", "full_profile_parts", "full_profile_sentence"]

RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
_REQUIRED = {"benchmark": str, "device": str, "device_name": str, "threads": int, "torch": str, "time": str,
             "runs": list}
_RUN_REQUIRED = ("model", "batch", "size", "batched", "loop", "ratio")


def _check_fields(rec, required: dict, benchmark: str, what: str = "record") -> dict:
    """The checks every benchmark record shares: a dict holding each ``required`` field with its
    type, and the ``benchmark`` name; ``ValueError`` naming the field."""
    if not isinstance(rec, dict):
        raise ValueError(f"{what} must be a dict, got {type(rec).__name__}")
    for name, typ in required.items():
        if name not in rec:
            raise ValueError(f"{what} lacks {name!r}; required: {sorted(required)}")
        if not isinstance(rec[name], typ) or isinstance(rec[name], bool):
            kinds = " or ".join(t.__name__ for t in (typ if isinstance(typ, tuple) else (typ,)))
            raise ValueError(f"{what}: {name} must be {kinds}, got {type(rec[name]).__name__}")
    if rec["benchmark"] != benchmark:
        raise ValueError(f"{what}: benchmark must be {benchmark!r}, got {rec['benchmark']!r}")
    return rec


def _folder(results_dir) -> Path:
    """The folder records are read from: ``results_dir``, else ``$XAIFOOL_BENCH_RESULTS``, else :data:`RESULTS_DIR`."""
    return Path(results_dir or os.environ.get("XAIFOOL_BENCH_RESULTS") or RESULTS_DIR)


def _load(pattern: str, check_one, results_dir) -> list[dict]:
    """Every record matching ``pattern`` in the results folder (``XAIFOOL_BENCH_RESULTS`` overrides it),
    validated by ``check_one``, CPU records first."""
    folder = _folder(results_dir)
    recs = [check_one(json.loads(p.read_text())) | {"file": p.name} for p in sorted(folder.glob(pattern))]
    return sorted(recs, key=lambda r: (r["device"] != "cpu", r["device"]))


def check(rec) -> dict:
    """Validate one benchmark record (the fields the page reads); raise ``ValueError`` naming the field."""
    _check_fields(rec, _REQUIRED, "attacks")
    for i, run in enumerate(rec["runs"]):
        missing = [k for k in _RUN_REQUIRED if k not in run]
        if missing:
            raise ValueError(f"record: runs[{i}] lacks {missing}")
        for tag in ("batched", "loop"):
            v = run[tag].get("img_iter_per_s") if isinstance(run[tag], dict) else None
            if not isinstance(v, (int, float)) or not v > 0:
                raise ValueError(f"record: runs[{i}].{tag}.img_iter_per_s must be a number > 0, got {v!r}")
        for row in run.get("batch_scaling", []):
            if not {"batch", "img_iter_per_s"} <= set(row):
                raise ValueError(f"record: runs[{i}].batch_scaling rows need 'batch' and 'img_iter_per_s'")
    return rec


def load(results_dir: Path | str | None = None) -> list[dict]:
    """Every ``attacks-*.json`` record in ``results_dir`` (validated), CPU records first."""
    return _load("attacks-*.json", check, results_dir)


def load_tabular(results_dir: Path | str | None = None) -> dict | None:
    """The tabular benchmark's record (``tabular-cpu.json``: the book's run of Slack et al.'s
    configuration against Slack's own script), or None where none was recorded."""
    folder = _folder(results_dir)
    path = folder / "tabular-cpu.json"
    if not path.is_file():
        return None
    rec = json.loads(path.read_text())
    for key in ("reference", "book", "speedup"):
        if key not in rec:
            raise ValueError(f"record {path.name} lacks {key!r}")
    return rec


def _dev(rec) -> str:
    return rec["device"].split(":")[0]


def machines(records):
    import pandas as pd

    return pd.DataFrame([{
        "file": r["file"], "device": r["device"], "name": r["device_name"], "threads": r["threads"],
        "torch": r["torch"], "measured (UTC)": r["time"],
        "complete": "yes" if r.get("complete", True) else "no (stopped at its time limit)",
    } for r in records])


def throughput(records):
    import pandas as pd

    return pd.DataFrame([{
        "device": _dev(r), "model": run["model"], "image size": f"{run['size']} px", "batch": run["batch"],
        "batched img·it/s": run["batched"]["img_iter_per_s"], "loop img·it/s": run["loop"]["img_iter_per_s"],
        "ratio": run["ratio"],
    } for r in records for run in r["runs"]])


def hardware(records):
    """Per device and model: FLOPs of one step, best measured throughput (over batch sizes), the
    FLOP/s that implies, and its fraction of the fp32 (and, on a GPU, TF32) matrix-product peak."""
    import pandas as pd

    rows = []
    for r in records:
        peaks = r.get("matmul_peak_flops") or {}
        for run in r["runs"]:
            if "step_gflop_per_image" not in run or "fp32" not in peaks:
                continue
            sweep = run.get("batch_scaling") or []
            best = max([run["batched"]["img_iter_per_s"]] + [s["img_iter_per_s"] for s in sweep])
            best_batch = max(sweep, key=lambda s: s["img_iter_per_s"])["batch"] if sweep else run["batch"]
            achieved = run["step_gflop_per_image"] * 1e9 * best
            rows.append({
                "device": _dev(r), "model": run["model"], "GFLOP per image and step": run["step_gflop_per_image"],
                "best img·it/s": best, "at batch": best_batch, "achieved TFLOP/s": achieved / 1e12,
                "fp32 peak TFLOP/s": peaks["fp32"] / 1e12, "% of fp32 peak": 100 * achieved / peaks["fp32"],
                "% of TF32 peak": 100 * achieved / peaks["tf32"] if "tf32" in peaks else float("nan"),
            })
    return pd.DataFrame(rows)


def share_text(share: float) -> str:
    """A share (0–1) as a percentage a reader can tell from zero: "0 %" only for exactly 0, "< 0.1 %"
    below a thousandth, else one decimal ("0.3 %", "71.0 %"); "–" for a missing value."""
    if share is None or share != share:
        return "–"
    if not 0 <= share <= 1:
        raise ValueError(f"share must lie in [0, 1], got {share!r}")
    if share == 0:
        return "0 %"
    return "< 0.1 %" if share < 0.001 else f"{100 * share:.1f} %"


#: Reader labels of the benchmark's model, network and device keys (tables and legends).
MODEL_LABELS = {"resnet20": "ResNet-20", "cifar_resnet20": "ResNet-20 (CIFAR-10)",
                "mobilenet_v2": "MobileNetV2"}
DEVICE_LABELS = {"cpu": "CPU", "cuda": "GPU"}


def sci_text(x: float) -> str:
    """A small positive number as a reader writes it: "7 × 10⁻⁸" (one significant digit), "0" for
    exactly 0, "–" for a missing value; numbers from 0.01 up with two significant digits."""
    if x is None or x != x:
        return "–"
    if x == 0:
        return "0"
    if abs(x) >= 0.01:
        return f"{x:.2g}"
    mant, exp = f"{x:.0e}".split("e")
    sup = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
    return f"{mant} × 10{str(int(exp)).translate(sup)}"


def part_label(name: str) -> str:
    """A full-profile part's name (:func:`full_profile_parts`) in reader labels:
    "grid cells, grad_x_input" → "grid cells, Gradient × Input", "target_lrp" → "target-map attack,
    LRP", "cifar_resnet20: topk/gradcam" → "ResNet-20 (CIFAR-10): top-k × Grad-CAM"."""
    from ..explain.registry import label
    from ..leaderboard import attack_label

    if name.startswith("grid cells, "):
        return "grid cells, " + label(name.split(", ", 1)[1])
    if ": " in name and "/" in name:
        net, rest = name.split(": ", 1)
        attack, method = rest.split("/", 1)
        return f"{MODEL_LABELS.get(net, net)}: {attack_label(attack)} × {label(method)}"
    for prefix, what in (("target_", "target-map attack"), ("imagenet_", "ImageNet attacks")):
        if name.startswith(prefix):
            return f"{what}, {label(name[len(prefix):])}"
    return {"region": "region attack, Gradient"}.get(name, MODEL_LABELS.get(name, name))


def for_reader(frame):
    """A copy of a benchmark table with reader labels in place of keys: the ``device``, ``model``,
    ``interpreter`` and ``part`` columns where present (the page glues from the keyed frame)."""
    from ..explain.registry import label

    out = frame.copy()
    maps = {"device": lambda d: DEVICE_LABELS.get(d, d), "model": lambda m: MODEL_LABELS.get(m, m),
            "interpreter": label, "part": part_label}
    for col, f in maps.items():
        if col in out.columns:
            out[col] = out[col].map(f)
    return out


def variants(records):
    import pandas as pd

    rows = []
    for r in records:
        for run in r["runs"]:
            base = None
            for v in run.get("variants", []):
                if "img_iter_per_s" not in v:   # a variant the backend refused (its "error" says why)
                    continue
                base = base or v["img_iter_per_s"]
                rows.append({"device": _dev(r), "model": run["model"], "variant": v["variant"],
                             "img·it/s": v["img_iter_per_s"], "× plain fp32": v["img_iter_per_s"] / base,
                             f"max |Δx_adv| / α after {v['n_steps']} steps": v["max_abs_diff_x_adv"] / v["alpha"],
                             "share of pixels differing": v.get("fraction_differing", float("nan"))})
    return pd.DataFrame(rows)


def refused_variants(records):
    """The variants a backend refused (a benchmark row with an ``error`` instead of a speed): one row per
    device, variant and error, naming the models it was refused for and the PyTorch version."""
    import pandas as pd

    rows: dict = {}
    for r in records:
        for run in r["runs"]:
            for v in run.get("variants", []):
                if "error" in v:
                    key = (_dev(r), v["variant"], v["error"])
                    rows.setdefault(key, {"device": key[0], "device_name": r["device_name"], "torch": r["torch"],
                                          "variant": key[1], "error": key[2], "models": []})["models"].append(run["model"])
    return pd.DataFrame(list(rows.values()), columns=["device", "device_name", "torch", "variant", "error", "models"])


def refused_sentence(records, names=None) -> str:
    """:func:`refused_variants` as a sentence for the page ("" when no backend refused a variant)."""
    names = names or {}

    def quoted(error):   # one line without backticks, so that it stays one code span in one paragraph
        return "`" + " ".join(error.split()).replace("`", "'") + "`"

    return "; ".join(
        f"*{r.variant}* on the {r.device_name} ({', '.join(names.get(m, m) for m in r.models)}; PyTorch {r.torch}): "
        f"{quoted(r.error)}" for r in refused_variants(records).itertuples())


def scaling(records):
    """Long table: device, model, batch, img·it/s, relative to batch 1, peak memory (MiB, GPU only)."""
    import pandas as pd

    rows = []
    for r in records:
        for run in r["runs"]:
            sweep = run.get("batch_scaling") or []
            one = next((s["img_iter_per_s"] for s in sweep if s["batch"] == 1), None)
            for s in sweep:
                mem = s.get("peak_memory_bytes")
                rows.append({"device": _dev(r), "threads": r["threads"], "model": run["model"], "size": run["size"],
                             "batch": s["batch"], "img_iter_per_s": s["img_iter_per_s"],
                             "relative": s["img_iter_per_s"] / one if one else float("nan"),
                             "memory_mib": mem / 2 ** 20 if mem else float("nan")})
    return pd.DataFrame(rows, columns=["device", "threads", "model", "size", "batch", "img_iter_per_s", "relative",
                                       "memory_mib"])


def levels_off_phrase(rows, subject: str) -> str:
    """Where throughput stops growing with the batch, as a sentence about ``subject``: ``rows`` are the
    :func:`scaling` rows of one device and model. The knee is the smallest batch within 10 % of the best
    throughput; when that is the largest batch measured, the throughput is still rising."""
    if not len(rows):
        return ""
    rows = rows.sort_values("batch")
    best = float(rows.img_iter_per_s.max())
    knee = int(rows.batch[rows.img_iter_per_s >= 0.9 * best].min())
    largest = int(rows.batch.iloc[-1])
    if knee == largest:
        return (f"{subject} is still rising at the largest batch measured ({largest} images, "
                f"{best:.0f} images × iterations per second).")
    return (f"{subject} levels off from a batch of about {knee} images on, near {best:.0f} images × iterations "
            "per second.")


def growth(records):
    import pandas as pd

    rows = [{"device": _dev(r), **g} for r in records for g in r.get("growth") or []]
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------
# Sanity checks: the cascading test against Quantus and against its compute bound
# --------------------------------------------------------------------------------------

_SANITY_REQUIRED = {"benchmark": str, "device": str, "device_name": str, "threads": int, "torch": str, "time": str,
                    "n_images": int, "n_layers_model": int, "runs": list}


def check_sanity(rec) -> dict:
    """Validate a ``sanity-<device>.json`` record; ``ValueError`` naming the field."""
    _check_fields(rec, _SANITY_REQUIRED, "sanity", "sanity record")
    for run in rec["runs"]:
        for key in ("method", "n_layers", "bound_s", "book_s"):
            if key not in run:
                raise ValueError(f"sanity record: a run lacks {key!r}")
    return rec


def load_sanity(results_dir: Path | str | None = None) -> list[dict]:
    """Every ``sanity-*.json`` record (validated), CPU first."""
    return _load("sanity-*.json", check_sanity, results_dir)


def sanity(records):
    """One row per (device, interpreter): seconds of Quantus' MPRT, of the book's cascading test and of
    its compute bound, with the ratios and the largest difference of the two implementations' similarities."""
    import pandas as pd

    rows = []
    for r in records:
        for run in r["runs"]:
            q = run.get("quantus_s")
            rows.append({"device": _dev(r), "threads": r["threads"], "interpreter": run["method"],
                         "images": r["n_images"], "layers": run["n_layers"], "Quantus MPRT (s)": q,
                         "book (s)": run["book_s"], "compute bound (s)": run["bound_s"],
                         "Quantus / book": q / run["book_s"] if q else float("nan"),
                         "book / bound": run["book_s"] / run["bound_s"],
                         "max |Δ similarity|": run.get("max_similarity_difference", float("nan"))})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------
# The book's own time
# --------------------------------------------------------------------------------------

def book_times(build_dir: Path | str | None = None) -> list[dict]:
    """Seconds each page took to execute in the last ``jupyter-book build`` of ``build_dir``
    (default ``<repo>/_build``), in the order the pages were executed: one dict per page with
    ``page``, ``seconds`` and ``succeeded``. Read from the execution data myst-nb keeps in Sphinx's
    environment (``.doctrees/environment.pickle``), the same numbers as the Performance page's
    table. ``ValueError`` when the folder holds no build."""
    import pickle

    build = Path(build_dir) if build_dir is not None else REPO_ROOT / "_build"
    env_file = build / ".doctrees" / "environment.pickle"
    if not env_file.is_file():
        raise ValueError(f"build_dir {str(build)!r} holds no book build ({env_file.name} not found under "
                         ".doctrees); run `make book` first, or pass the folder given to --path-output + /_build")
    with env_file.open("rb") as fh:
        env = pickle.load(fh)
    rows = [{"page": page, "seconds": float(d["runtime"]), "succeeded": bool(d.get("succeeded")),
             "mtime": float(d.get("mtime") or 0.0)}
            for page, meta in getattr(env, "nb_metadata", {}).items()
            if (d := meta.get("exec_data")) and d.get("runtime") is not None]
    rows.sort(key=lambda r: r.pop("mtime"))
    return rows


def book_plan(build_dir: Path | str | None = None) -> dict | None:
    """How ``python -m xaifool book`` executed the pages of the build in ``build_dir``: ``workers``,
    ``threads`` per page and ``wall_s``, the wall-clock seconds of executing them all (with several
    pages at a time this, not the sum of the page times, is what the build took). None for a build
    made by plain ``jupyter-book build``, which executes one page after the other."""
    build = Path(build_dir) if build_dir is not None else REPO_ROOT / "_build"
    path = build / ".exec-plan.json"
    if not path.is_file():
        return None
    plan = json.loads(path.read_text())
    _check_fields({"benchmark": "plan", **plan},
                  {"workers": int, "threads": int, "wall_s": (int, float), "pages": list}, "plan", f"{path}")
    return plan


def slowest_cells(build_dir: Path | str | None = None, n: int = 10) -> list[dict]:
    """The ``n`` code cells that took longest in the build in ``build_dir``, slowest first: ``page``,
    ``cell`` (its index among the page's cells), ``seconds`` and ``source`` (its first line that is
    neither a comment nor a cell option). Read from the execution summary of ``python -m xaifool
    book`` (:func:`book_plan`); a build of plain ``jupyter-book build`` has none (``ValueError``)."""
    if not (isinstance(n, int) and not isinstance(n, bool) and n >= 1):
        raise ValueError(f"n must be a positive int, got {n!r}")
    plan = book_plan(build_dir)
    if plan is None:
        raise ValueError(f"build_dir {str(build_dir)!r} holds no execution summary (.exec-plan.json); "
                         "cell times come from builds of `python -m xaifool book` (make book)")
    rows = [{"page": p["page"], **c} for p in plan["pages"] for c in p.get("cells", [])]
    return sorted(rows, key=lambda r: -r["seconds"])[:n]


#: The two builds the book-times record keeps: ``cold`` (empty artefact cache: every attack run and
#: every model trained, as on a fresh clone or in CI) and ``warm`` (the cache of an earlier build).
BOOK_BUILDS = ("cold", "warm")


def _book_record(path) -> tuple[Path, dict]:
    """The book-times record at ``path`` (default ``book-times-cpu.json``), or a new one, with this
    machine's description (what its builds and installation were measured on)."""
    import platform

    import torch

    path = Path(path) if path is not None else _folder(None) / "book-times-cpu.json"
    rec = json.loads(path.read_text()) if path.is_file() else {"benchmark": "book-times", "builds": {}}
    rec.update(device="cpu", device_name=platform.processor() or platform.machine(), threads=torch.get_num_threads(),
               cpu_count=os.cpu_count(), torch=torch.__version__)
    return path, rec


def record_book_times(build_dir: Path | str | None, build: str, *, profile: str, path: Path | str | None = None,
                      commit: str = "", note: str = "") -> dict:
    """Store the page times of the build in ``build_dir`` (:func:`book_times`) as the ``build``
    (one of :data:`BOOK_BUILDS`) entry of ``benchmarks/results/book-times-cpu.json`` (or ``path``),
    keeping the other entry; written atomically. Only a build in which every page succeeded is
    recorded. Returns the record."""
    from datetime import datetime, timezone

    from ..cache import atomic_write_text

    if build not in BOOK_BUILDS:
        raise ValueError(f"build must be one of {BOOK_BUILDS}, got {build!r}")
    rows = book_times(build_dir)
    if not rows:
        raise ValueError(f"build_dir {str(build_dir)!r} holds a build in which no page was executed; nothing to record")
    failed = [r["page"] for r in rows if not r["succeeded"]]
    if failed:
        raise ValueError(f"build_dir holds a build in which {failed} failed; only a complete build is recorded")
    path, rec = _book_record(path)
    rec["builds"][build] = {
        "profile": profile, "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "commit": commit,
        "note": note, "pages": [{"page": r["page"], "seconds": round(r["seconds"], 1)} for r in rows],
        "total_s": round(sum(r["seconds"] for r in rows), 1)}
    plan = book_plan(build_dir)
    if plan is not None:
        rec["builds"][build].update(wall_s=plan["wall_s"], workers=plan["workers"], threads_per_page=plan["threads"])
        if plan.get("render_s") is not None:
            rec["builds"][build]["render_s"] = plan["render_s"]
    atomic_write_text(path, json.dumps(rec, indent=1))
    return rec


def record_install(seconds: float, *, command: str, packages: int, path: Path | str | None = None,
                   commit: str = "", note: str = "") -> dict:
    """Store the seconds a fresh installation took (an empty virtual environment, pip's cache off:
    ``benchmarks/install.py``) as the ``install`` entry of ``book-times-cpu.json`` (or ``path``),
    keeping the recorded builds; written atomically. Returns the record."""
    from datetime import datetime, timezone

    from ..cache import atomic_write_text

    if not isinstance(seconds, (int, float)) or not seconds > 0:
        raise ValueError(f"seconds must be a positive number, got {seconds!r}")
    if not isinstance(packages, int) or packages < 1:
        raise ValueError(f"packages must be the number of packages installed (≥ 1), got {packages!r}")
    path, rec = _book_record(path)
    rec["install"] = {"seconds": round(float(seconds), 1), "time": datetime.now(timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ"), "commit": commit, "command": command, "packages": packages, "note": note}
    atomic_write_text(path, json.dumps(rec, indent=1))
    return rec


def load_book_times(results_dir: Path | str | None = None) -> dict | None:
    """The book-times record (``book-times-cpu.json``), or None where none was recorded."""
    folder = _folder(results_dir)
    path = folder / "book-times-cpu.json"
    if not path.is_file():
        return None
    rec = _check_fields(json.loads(path.read_text()), _BOOK_REQUIRED, "book-times", f"record {path.name}")
    if not set(rec["builds"]) <= set(BOOK_BUILDS):
        raise ValueError(f"record {path.name}: builds must be among {BOOK_BUILDS}, got {sorted(rec['builds'])}")
    for name, b in rec["builds"].items():
        _check_fields({"benchmark": "build", **b} if isinstance(b, dict) else b, _BUILD_REQUIRED, "build",
                      f"record {path.name}: builds.{name}")
    if "install" in rec:
        _check_fields({"benchmark": "install", **rec["install"]} if isinstance(rec["install"], dict) else
                      rec["install"], _INSTALL_REQUIRED, "install", f"record {path.name}: install")
    return rec


_BOOK_REQUIRED = {"benchmark": str, "threads": int, "cpu_count": int, "builds": dict}
_BUILD_REQUIRED = {"profile": str, "time": str, "commit": str, "pages": list, "total_s": (int, float)}
_INSTALL_REQUIRED = {"seconds": (int, float), "time": str, "commit": str, "command": str, "packages": int}
#: The book's goal for a first build on a fresh 2-core machine, installation included (minutes).
GOAL_MINUTES = 15


def page_label(page: str) -> str:
    """A page of the book as a reader names it: "notebooks/02a_input_manipulation" → "02a Input
    manipulation", "book/data" → "Data"; a name without words after its number stays as it is."""
    stem = page.rsplit("/", 1)[-1]
    number, _, words = stem.partition("_") if stem[:1].isdigit() else ("", "", stem)
    words = words.replace("_", " ")
    words = words[:1].upper() + words[1:]
    return " ".join(w for w in (number, words) if w)


def book_times_table(rec: dict):
    """Seconds per page (rows, in execution order) for each recorded build (columns), with a total row
    and, for builds that executed several pages at a time, a row with the wall-clock seconds."""
    import pandas as pd

    cols = {name: {p["page"]: p["seconds"] for p in b["pages"]} for name, b in rec["builds"].items()}
    order = list(dict.fromkeys(p for c in cols.values() for p in c))
    frame = pd.DataFrame({f"{name} (s)": [c.get(p, float("nan")) for p in order] for name, c in cols.items()},
                         index=pd.Index([page_label(p) for p in order], name="page"))
    frame.loc["total"] = frame.sum()
    builds = rec["builds"].values()
    at_a_time = ", ".join(sorted({f"{b['workers']} pages at a time" for b in builds if b.get("wall_s") is not None}))
    for key, label in (("wall_s", f"wall clock, {at_a_time}"), ("render_s", "rendering the HTML")):
        values = [b.get(key) for b in builds]
        if any(v is not None for v in values):
            frame.loc[label] = [float("nan") if v is None else v for v in values]
    return frame


def book_sentence(rec: dict | None) -> str:
    """The Performance page's verdict on the recorded cold build (Markdown): how long its pages
    took, where the time went, and — with the rendering and a recorded fresh installation added
    where they were measured — how the whole first build compares with :data:`GOAL_MINUTES`."""
    if rec is None:
        return "No build has been recorded yet."
    cold = rec["builds"].get("cold")
    if not cold:
        return "No cold build has been recorded yet."
    pages = cold.get("wall_s", cold["total_s"])
    parallel = "wall_s" in cold
    how = (f"{cold['workers']} pages at a time with {cold['threads_per_page']} thread"
           f"{'s' if cold['threads_per_page'] > 1 else ''} each" if parallel else
           f"one page at a time with {rec['threads']} thread{'s' if rec['threads'] != 1 else ''}")
    heavy = sorted(cold["pages"], key=lambda p: -p["seconds"])[:3]
    top = ", ".join(f"{page_label(p['page'])} {p['seconds'] / 60:.1f} min" for p in heavy)
    text = (f"The recorded cold build ({cold['profile']} profile, commit `{cold['commit'] or '?'}`, "
            f"{cold['time'][:10]}, {rec['cpu_count']} cores, {how}) executed its pages in {pages / 60:.1f} minutes"
            + (f" of wall-clock time (the page times add up to {cold['total_s'] / 60:.1f} minutes)" if parallel else "")
            + f"; most of it goes to {top}.")
    parts = [("executing the pages", pages)]
    if cold.get("render_s") is not None:
        parts.append(("rendering the HTML", cold["render_s"]))
    install = rec.get("install")
    if install:
        parts.append((f"installing the packages into an empty environment (measured {install['time'][:10]})",
                      install["seconds"]))
    total = sum(s for _, s in parts) / 60
    if cold["profile"] != "quick":
        return text + f" The goal of {GOAL_MINUTES} minutes is set for the quick profile only."
    measured = "; ".join(f"{what} {s / 60:.1f} min" for what, s in parts)
    missing = " and ".join(what for what, key in (("the rendering", cold.get("render_s")),
                                                   ("the installation", install)) if key is None)
    if not missing:
        verdict = (f"{GOAL_MINUTES - total:.1f} minutes within" if total <= GOAL_MINUTES else
                   f"{total - GOAL_MINUTES:.1f} minutes over")
        return (text + f" A first build on a fresh machine adds up to {total:.1f} minutes ({measured}) — {verdict} "
                f"the book's goal of {GOAL_MINUTES} minutes.")
    if total <= GOAL_MINUTES:
        return (text + f" What is timed of a first build on a fresh machine ({measured}) leaves "
                f"{GOAL_MINUTES - total:.1f} minutes of the book's goal of {GOAL_MINUTES} minutes for what is not "
                f"timed here: {missing}.")
    return (text + f" What is timed of a first build on a fresh machine ({measured}) is already "
            f"{total - GOAL_MINUTES:.1f} minutes over the book's goal of {GOAL_MINUTES} minutes, without {missing}.")


def full_profile(results_dir: Path | str | None = None):
    """The recorded full-profile runs (``<results_dir>/full``, default ``benchmarks/results/full``;
    :func:`xaifool.book.full_results.status`) as a table: one row per chapter, with the device, the date, what
    the record holds (complete, or N of M parts), the seconds it took on the device and the parts it finished
    per minute, all visits together, and for its last visit the part processes and how busy the GPU was
    (sampled; "–" where the record predates the sampling)."""
    import pandas as pd

    from .full_results import CHAPTERS, status

    rows = []
    for r in status(_folder(results_dir) / "full"):
        title = CHAPTERS[r["chapter"]].title
        if not r["recorded"]:
            rows.append({"chapter": title, "device": "–", "date": "–", "recorded": "no run yet",
                         "seconds": float("nan"), "parts per minute": float("nan"), "part processes": "–",
                         "GPU busy (%)": float("nan")})
            continue
        busy = r["gpu_busy"]
        rows.append({"chapter": title, "device": r["device_name"], "date": r["date"], "recorded": r["summary"],
                     "seconds": float(r["seconds"]), "parts per minute": float(r["per_minute"]),
                     "part processes": str(r["jobs"]), "GPU busy (%)": float("nan") if busy is None else float(busy)})
    return pd.DataFrame(rows)


def _part_family(chapter: str, name: str) -> str:
    """The row a part's seconds are added to: 02a's grid cells by interpreter, everything else as named."""
    if chapter == "02a_input_manipulation" and name.startswith("grid/"):
        return f"grid cells, {name.split('/')[1]}"
    return name


def full_profile_parts(results_dir: Path | str | None = None):
    """Where the recorded full-profile runs spent their seconds: rows (chapter, part, parts, seconds)
    — chapter 02a's attacks (its grid cells summed per interpreter), 02b's models, 06's networks —
    for the parts whose seconds a record holds (records written before parts were timed hold none),
    and per such chapter a row with the rest of its seconds (set-up, parts of earlier visits)."""
    import pandas as pd

    from .full_results import CHAPTERS, load, part_seconds

    rows = []
    for chapter in CHAPTERS:
        rec = load(chapter, _folder(results_dir) / "full")
        if rec is None:
            continue
        title = CHAPTERS[chapter].title
        families: dict = {}
        for name, s in part_seconds(rec).items():
            fam = families.setdefault(_part_family(chapter, name), [0, 0.0])
            fam[0] += 1
            fam[1] += s
        rows += [{"chapter": title, "part": fam, "parts": k, "seconds": s} for fam, (k, s) in families.items()]
        if families:   # set-up (loading models and data) and parts of visits before the parts were timed
            rest = rec["seconds"] - sum(s for _, s in families.values())
            rows.append({"chapter": title, "part": "not in a timed part (set-up, earlier visits)",
                         "parts": float("nan"), "seconds": max(rest, 0.0)})
    return pd.DataFrame(rows, columns=["chapter", "part", "parts", "seconds"])


def full_profile_sentence(frame) -> str:
    """What :func:`full_profile`'s table says, in a sentence (Markdown): which chapters are recorded
    complete, on which devices and in how many seconds, and which are unfinished or missing."""
    done = frame[frame.recorded == "complete"]
    part = frame[(frame.recorded != "complete") & (frame.recorded != "no run yet")]
    none = frame[frame.recorded == "no run yet"]
    text = []
    if len(done):
        text.append(f"Complete full-profile records: {len(done)} of {len(frame)} chapters — "
                    + "; ".join(f"{r.chapter}, {r.seconds:.0f} s on the {r.device}" for r in done.itertuples()))
    else:
        text.append(f"None of the {len(frame)} chapters has a complete full-profile record yet")
    if len(part):
        text.append("unfinished: " + "; ".join(f"{r.chapter}, {r.recorded} in {r.seconds:.0f} s on the {r.device}"
                                               for r in part.itertuples()))
    if len(none):
        text.append("no run recorded: " + "; ".join(none.chapter))
    return "; ".join(text) + "."
