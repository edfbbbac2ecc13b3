"""The seminar plan's numbers (``book/seminar.md``): which chapters each of the six sessions reads and
runs, and how long they take to execute — on a laptop-class CPU from the recorded book builds
(``benchmarks/results/book-times-cpu.json``, :func:`xaifool.book.performance.load_book_times`) and at
paper scale on a GPU from the recorded full-profile runs (``benchmarks/results/full``,
:func:`xaifool.book.full_results.status`). Nothing is typed: a chapter that no record holds says so.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Session", "SESSIONS", "chapter_times", "session_times", "minutes", "cpu_machine"]


@dataclass(frozen=True)
class Session:
    """One 90-minute session: its title and the pages it reads (document names, in reading order)."""
    title: str
    pages: tuple[str, ...]


#: The six sessions, in the order of the review.
SESSIONS: tuple[Session, ...] = (
    Session("Interpreters", ("notebooks/01_interpreters",)),
    Session("Manipulating the input", ("notebooks/02_manipulation_levels", "notebooks/02a_input_manipulation")),
    Session("Manipulating the model", ("notebooks/02b_model_manipulation", "notebooks/03_targets")),
    Session("Measuring a manipulation, and why it works",
            ("notebooks/04_evaluation", "notebooks/05_explaining_manipulations")),
    Session("Checking explanations", ("notebooks/06_sanity_checks", "notebooks/07_benchmarking")),
    Session("Tabular data, and what to conclude", ("notebooks/08_experiments", "book/discussion")),
)


def minutes(seconds: float | None) -> str:
    """A duration for a reader: "0.4 min", "12 min"; "not recorded yet" for None or NaN."""
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "not recorded yet"
    if seconds < 0:
        raise ValueError(f"seconds must be non-negative, got {seconds!r}")
    m = seconds / 60
    return f"{m:.1f} min" if m < 10 else f"{m:.0f} min"


def _gpu_text(row: dict | None) -> str:
    if row is None or not row.get("recorded"):
        return "not recorded yet"
    text = f"{minutes(row['seconds'])} on {row['device_name']}"
    if not row["complete"]:
        rest = row["seconds"] * row["total"] / row["done"] if row["done"] else float("nan")
        text += (f" for {row['summary']} (partial; all {row['total']} at that rate: about {minutes(rest)})"
                 if row["done"] else f" (partial: none of {row['total']} {row['unit']} yet)")
    if "cpu" in row["device_name"].lower() or "epyc" in row["device_name"].lower() \
            or "xeon" in row["device_name"].lower():
        text += " (run on the CPU: the chapter needs no GPU)"
    return text


def chapter_times(results_dir: Path | str | None = None) -> dict[str, dict]:
    """Page → ``{"cpu_cold": s or None, "cpu_warm": s or None, "gpu_full": text}`` for every page the
    sessions read: seconds of the recorded cold build (empty artefact cache) and warm build (filled
    cache) on the recorded CPU, and the recorded full-profile run's time as text."""
    from . import full_results
    from .performance import load_book_times

    rec = load_book_times(results_dir)
    builds = rec["builds"] if rec else {}
    per = {name: {p["page"]: p["seconds"] for p in b["pages"]} for name, b in builds.items()}
    full_dir = Path(results_dir) / "full" if results_dir is not None else None
    gpu = {r["chapter"]: r for r in full_results.status(full_dir)}
    out = {}
    for s in SESSIONS:
        for page in s.pages:
            stem = page.split("/")[-1]
            out[page] = {"cpu_cold": per.get("cold", {}).get(page), "cpu_warm": per.get("warm", {}).get(page),
                         "gpu_full": _gpu_text(gpu.get(stem)) if stem in full_results.CHAPTERS else
                         "not among the paper-scale runs"}
    return out


def session_times(results_dir: Path | str | None = None, titles: dict | None = None):
    """The seminar's table: one row per (session, page) with the recorded times as text, the pages
    named by ``titles`` (page → title; default the document name)."""
    import pandas as pd

    times = chapter_times(results_dir)
    rows = []
    for i, s in enumerate(SESSIONS, 1):
        for page in s.pages:
            t = times[page]
            rows.append({"session": f"{i}. {s.title}", "chapter": (titles or {}).get(page, page),
                         "laptop CPU, empty cache": minutes(t["cpu_cold"]),
                         "laptop CPU, filled cache": minutes(t["cpu_warm"]),
                         "GPU, paper scale (full profile)": t["gpu_full"]})
    return pd.DataFrame(rows)


def cpu_machine(results_dir: Path | str | None = None) -> str:
    """What the recorded CPU builds ran on, for the page's prose ("2 cores, torch 2.x, 2026-12-05")."""
    from .performance import load_book_times

    rec = load_book_times(results_dir)
    if not rec:
        return "no build recorded yet"
    cold = rec["builds"].get("cold") or next(iter(rec["builds"].values()))
    return f"{rec['cpu_count']} CPU cores, recorded {cold['time'][:10]} at commit {cold['commit'][:7]}"
