"""Building the book with its pages executed in parallel: ``python -m xaifool book`` (``make book``).

Jupyter Book 1.x executes the pages one after the other, each kernel using every core. On a
small machine that wastes most of it: on 2 CPU cores an attack step runs only 1.3–1.45× faster
with two threads than with one, and imports, plotting and the scikit-learn parts run on one core
anyway. This module executes the pages first, several at a time with fewer threads each, stores
each executed notebook in a fresh jupyter-cache, and then lets ``jupyter-book build`` render the
book from that cache (``execute_notebooks: cache`` in a generated copy of ``_config.yml``), so
that myst-nb executes nothing itself. The cache is removed before every build: every output
still comes from the code of this build, as with ``execute_notebooks: force``.

Chapters that reuse another chapter's cached artefacts (a manipulated model, an attack grid) wait
for it (:data:`NEEDS`), so that nothing is computed twice; among the pages that are ready, the one
with the longest remaining chain of work starts first, estimated from the last recorded build
(``benchmarks/results/book-times-cpu.json``).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..config import REPO_ROOT

#: page → pages whose cached artefacts it reuses (it starts only after they have finished).
NEEDS = {
    "notebooks/03_targets": ("notebooks/02b_model_manipulation",),
    "notebooks/04_evaluation": ("notebooks/02a_input_manipulation", "notebooks/02b_model_manipulation"),
    "notebooks/06_sanity_checks": ("notebooks/02b_model_manipulation",),
    "notebooks/05_explaining_manipulations": ("notebooks/02a_input_manipulation", "notebooks/06_sanity_checks",
                                              "notebooks/08_experiments"),
    "notebooks/07_benchmarking": ("notebooks/02a_input_manipulation", "notebooks/02b_model_manipulation",
                                  "notebooks/06_sanity_checks"),
    "book/discussion": ("notebooks/05_explaining_manipulations", "notebooks/06_sanity_checks",
                        "notebooks/07_benchmarking", "notebooks/08_experiments"),
}

#: Name of the execution summary written next to the build (read by :func:`xaifool.book.performance.book_times`).
PLAN_FILE = ".exec-plan.json"


def _toc_files(entry) -> list[str]:
    out = []
    if isinstance(entry, dict):
        for key in ("root", "file"):
            if key in entry:
                out.append(str(entry[key]))
        for key in ("parts", "chapters", "sections"):
            for sub in entry.get(key, []) or []:
                out.extend(_toc_files(sub))
    elif isinstance(entry, list):
        for sub in entry:
            out.extend(_toc_files(sub))
    return out


def pages(root: Path | str = REPO_ROOT) -> list[str]:
    """The pages of the book at ``root`` that are notebooks (MyST Markdown with a ``kernelspec``),
    as document names (``notebooks/01_interpreters``), in table-of-contents order."""
    import yaml
    from myst_nb.core.read import is_myst_markdown_notebook

    root = Path(root)
    toc = root / "_toc.yml"
    if not toc.is_file():
        raise ValueError(f"root {str(root)!r} holds no _toc.yml")
    out = []
    for doc in _toc_files(yaml.safe_load(toc.read_text())):
        doc = doc[:-3] if doc.endswith(".md") else doc
        path = root / f"{doc}.md"
        if path.is_file() and is_myst_markdown_notebook(path.read_text("utf8")) and doc not in out:
            out.append(doc)
    return out


def _check_graph(docs, costs, needs) -> dict:
    docs = list(docs)
    if len(set(docs)) != len(docs):
        raise ValueError(f"docs must be distinct, got {docs}")
    bad = [d for d in docs if not (costs.get(d, 1.0) >= 0)]
    if bad:
        raise ValueError(f"costs must be non-negative seconds; bad for {bad}")
    # a need outside the book being built is ignored (a reduced book, a test book)
    deps = {d: tuple(n for n in needs.get(d, ()) if n in docs) for d in docs}
    done, visiting = set(), set()

    def visit(d):
        if d in done:
            return
        if d in visiting:
            raise ValueError(f"needs must not form a cycle; {d!r} depends on itself")
        visiting.add(d)
        for n in deps[d]:
            visit(n)
        visiting.discard(d)
        done.add(d)

    for d in docs:
        visit(d)
    return deps


def priorities(docs, costs: dict, needs: dict = NEEDS) -> dict[str, float]:
    """Each page's longest chain of work: its own estimated seconds plus the longest chain of the
    pages that wait for it (list scheduling starts the page with the largest value first)."""
    deps = _check_graph(docs, costs, needs)
    waiting = {d: [e for e in docs if d in deps[e]] for d in docs}
    memo: dict[str, float] = {}

    def chain(d):
        if d not in memo:
            memo[d] = float(costs.get(d, 1.0)) + max((chain(e) for e in waiting[d]), default=0.0)
        return memo[d]

    return {d: chain(d) for d in docs}


def next_ready(pending, finished, docs, costs, needs: dict = NEEDS) -> str | None:
    """The page to start next: among the pending pages whose needs have all finished, the one with
    the longest chain (ties: table-of-contents order); None while every pending page waits."""
    deps = _check_graph(docs, costs, needs)
    prio = priorities(docs, costs, needs)
    ready = [d for d in docs if d in pending and all(n in finished for n in deps[d])]
    return max(ready, key=lambda d: (prio[d], -docs.index(d))) if ready else None


def simulate(docs, costs: dict, workers: int, needs: dict = NEEDS) -> dict[str, tuple[float, float]]:
    """(start, end) of every page when ``workers`` run the pages with the given durations — the
    schedule :func:`execute` follows when the estimates are right."""
    if not (isinstance(workers, int) and workers >= 1):
        raise ValueError(f"workers must be a positive int, got {workers!r}")
    docs = list(docs)
    pending, finished, running, out, now = set(docs), set(), {}, {}, 0.0
    while pending or running:
        while len(running) < workers and (d := next_ready(pending, finished, docs, costs, needs)):
            pending.discard(d)
            running[d] = now + float(costs.get(d, 1.0))
            out[d] = (now, running[d])
        d = min(running, key=running.get)
        now = running.pop(d)
        finished.add(d)
    return out


def estimated_costs(docs, results_dir: Path | str | None = None) -> dict[str, float]:
    """Seconds per page of the last recorded cold build (1 s for pages it does not list)."""
    from .performance import load_book_times

    try:
        rec = load_book_times(results_dir)
    except ValueError:
        rec = None
    seen = {}
    if rec:
        build = rec["builds"].get("cold") or next(iter(rec["builds"].values()))
        seen = {p["page"]: float(p["seconds"]) for p in build["pages"]}
    return {d: seen.get(d, 1.0) for d in docs}


def _read(path: Path, root: Path):
    """The notebook as myst-nb reads the page inside Sphinx (same cells, so the same cache hash; a
    page that did not match would simply be executed again by myst-nb)."""
    import yaml
    from myst_nb.core.read import read_myst_markdown_notebook
    from myst_parser.config.main import MdParserConfig

    cfg = yaml.safe_load((root / "_config.yml").read_text()) if (root / "_config.yml").is_file() else {}
    ext = (cfg.get("parse") or {}).get("myst_enable_extensions") or []
    return read_myst_markdown_notebook(path.read_text("utf8"), MdParserConfig(enable_extensions=set(ext)),
                                       add_source_map=True, path=str(path))


def _cell_times(nb) -> list[dict]:
    """Seconds of each executed code cell, taken out of the cells' metadata (where nbclient records
    them) so that the notebook keeps the hash jupyter-cache matches it by (all cell metadata)."""
    from datetime import datetime

    def stamp(s):
        return datetime.fromisoformat(s.replace("Z", "+00:00"))

    out = []
    for i, cell in enumerate(nb.cells):
        ex = cell.get("metadata", {}).pop("execution", None) or {}
        start, end = ex.get("iopub.execute_input"), ex.get("shell.execute_reply")
        if cell.get("cell_type") == "code" and start and end:
            lines = [ln for ln in "".join(cell.get("source", "")).splitlines()
                     if ln.strip() and not ln.lstrip().startswith(("#", ":"))]
            out.append({"cell": i, "seconds": round((stamp(end) - stamp(start)).total_seconds(), 2),
                        "source": lines[0][:100] if lines else ""})
    return out


def _execute_one(path: str, root: str, timeout: int):
    """Worker: execute one page in its own folder; (notebook, seconds, traceback or None, cell times)."""
    from jupyter_cache.executors.utils import single_nb_execution
    from traitlets.config import Config

    p = Path(path)
    nb = _read(p, Path(root))
    # Kernels talk over Unix sockets in a folder of their own: TCP ports picked by two kernels
    # starting at the same moment can collide ("Address already in use", the kernel dies).
    with tempfile.TemporaryDirectory(prefix="xk") as sockets:
        cfg = Config({"KernelManager": {"transport": "ipc", "ip": str(Path(sockets) / "k")}})
        res = single_nb_execution(nb, cwd=str(p.parent), timeout=timeout, allow_errors=False,
                                  meta_override=True, record_timing=True, config=cfg)
    return res.nb, res.time, res.exc_string, _cell_times(res.nb)


def execute(root: Path | str, cache_dir: Path | str, *, workers: int, threads: int, timeout: int = 900,
            docs: list[str] | None = None, costs: dict | None = None, log=print) -> dict:
    """Execute the book's notebook pages, ``workers`` at a time with ``threads`` threads each, into a
    fresh jupyter-cache at ``cache_dir``. Returns the plan record (workers, threads, wall seconds,
    start/end/seconds per page, failed pages with their tracebacks). A failing page stops new
    pages from starting."""
    from jupyter_cache import get_cache

    for name, v in (("workers", workers), ("threads", threads), ("timeout", timeout)):
        if not (isinstance(v, int) and v >= 1):
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    root = Path(root).resolve()
    docs = pages(root) if docs is None else list(docs)
    costs = estimated_costs(docs) if costs is None else costs
    cache_dir = Path(cache_dir)
    shutil.rmtree(cache_dir, ignore_errors=True)      # never reuse outputs of an earlier build
    cache = get_cache(str(cache_dir))
    # kernels inherit the environment of the worker processes: threads per page
    saved = {var: os.environ.get(var) for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    os.environ.update({var: str(threads) for var in saved})
    try:
        return _run_pages(root, docs, costs, cache, workers, threads, timeout, log)
    finally:
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value


def _run_pages(root, docs, costs, cache, workers, threads, timeout, log) -> dict:
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    from jupyter_cache.base import CacheBundleIn

    rec = {"workers": workers, "threads": threads, "pages": [], "failed": {}}
    pending, finished, running = set(docs), set(), {}
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
        while pending or running:
            while not rec["failed"] and len(running) < workers and \
                    (d := next_ready(pending, finished, docs, costs)):
                pending.discard(d)
                log(f"[book] start {d}")
                fut = pool.submit(_execute_one, str(root / f"{d}.md"), str(root), timeout)
                running[fut] = (d, time.perf_counter() - t0)
            if not running:
                break
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for fut in done:
                d, start = running.pop(fut)
                end = time.perf_counter() - t0
                try:
                    nb, seconds, err, cells = fut.result()
                except Exception as exc:  # the worker itself failed (kernel did not start, …)
                    nb, seconds, err, cells = None, end - start, f"{type(exc).__name__}: {exc}", []
                finished.add(d)
                rec["pages"].append({"page": d, "start": round(start, 1), "end": round(end, 1),
                                     "seconds": round(seconds, 1), "cells": cells})
                if err:
                    rec["failed"][d] = err
                    log(f"[book] FAILED {d} after {seconds:.0f} s\n{err}")
                    continue
                cache.cache_notebook_bundle(CacheBundleIn(nb, str(root / f"{d}.md"),
                                                          data={"execution_seconds": seconds}),
                                            check_validity=False, overwrite=True)
                log(f"[book] done  {d} in {seconds:.0f} s")
    rec["wall_s"] = round(time.perf_counter() - t0, 1)
    rec["skipped"] = sorted(pending)
    return rec


def default_workers(device: str) -> int:
    """Pages at a time: one on a GPU (the chapters would share its memory), else up to 4 but at
    most the number of cores."""
    if device.startswith("cuda"):
        return 1
    return max(1, min(4, os.cpu_count() or 1))


def build(root: Path | str = REPO_ROOT, path_output: Path | str | None = None, *, workers: int | None = None,
          timeout: int | None = None, log=print) -> int:
    """Execute the pages in parallel (:func:`execute`), then render the book with ``jupyter-book
    build`` from their cache. Returns the exit status (non-zero when a page or the build failed)."""
    import yaml

    from ..config import get_config

    root = Path(root).resolve()
    out = Path(path_output).resolve() if path_output is not None else root
    build_dir = out / "_build"
    build_dir.mkdir(parents=True, exist_ok=True)
    cfg = yaml.safe_load((root / "_config.yml").read_text())
    workers = workers if workers is not None else default_workers(str(get_config().device))
    threads = max(1, (os.cpu_count() or 1) // workers)
    timeout = timeout if timeout is not None else int((cfg.get("execute") or {}).get("timeout", 900))
    cache_dir = build_dir / ".jupyter_cache_book"
    log(f"[book] executing the pages, {workers} at a time with {threads} thread(s) each")
    rec = execute(root, cache_dir, workers=workers, threads=threads, timeout=timeout, log=log)
    from ..cache import atomic_write_text

    atomic_write_text(build_dir / PLAN_FILE, json.dumps(rec, indent=1))
    if rec["failed"]:
        log(f"[book] {len(rec['failed'])} page(s) failed: {sorted(rec['failed'])}; not rendering")
        return 1
    log(f"[book] executed {len(rec['pages'])} pages in {rec['wall_s']:.0f} s "
        f"(sum of page times {sum(p['seconds'] for p in rec['pages']):.0f} s)")
    from .launch import configure, settings

    own = root / "pyproject.toml"      # the book's own setting (a copy of the book carries it)
    cfg = configure(cfg, **settings(own if own.is_file() else None))
    cfg.setdefault("execute", {})
    cfg["execute"]["execute_notebooks"] = "cache"
    cfg["execute"]["cache"] = str(cache_dir)
    cfg_file = build_dir / "_config.build.yml"
    cfg_file.write_text(yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False))
    jb = Path(sys.executable).with_name("jupyter-book")
    t0 = time.perf_counter()
    rc = subprocess.run([str(jb), "build", str(root), "--all", "--path-output", str(out), "--config", str(cfg_file),
                         "-W", "-n", "--keep-going"]).returncode
    if rc == 0:   # the rendering's time, for the whole build's (exec-times --record keeps it)
        rec["render_s"] = round(time.perf_counter() - t0, 1)
        atomic_write_text(build_dir / PLAN_FILE, json.dumps(rec, indent=1))
    return rc
