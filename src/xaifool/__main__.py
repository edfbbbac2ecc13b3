"""Command line: ``python -m xaifool {book,fetch,run,bench,full-results,exec-times,info}``.

book            build the book: execute its pages several at a time, then render them with
                jupyter-book (``make book``)
fetch           verify (and download where needed) every data file the book uses
run NOTEBOOK    execute one chapter (jupytext MyST markdown) and save the executed .ipynb
bench           run the benchmarks in benchmarks/ and write JSON under benchmarks/results/
full-results    compute each chapter's "paper vs this book" numbers in the active profile without
                the book tool chain (XAIFOOL_PROFILE=full on a GPU) and write
                benchmarks/results/full/<chapter>.json
exec-times      print how long each page took to execute in the last book build (``make book``
                prints it after building)
info            print the profile, device and directories in use
"""
from __future__ import annotations

import argparse
import runpy
import sys
import time
from pathlib import Path

from .config import REPO_ROOT, describe, get_config


def _fetch(args) -> int:
    from tqdm import tqdm

    from .data import REGISTRY, DataFileError, imagenet_index, fetch

    names = [n for n in REGISTRY if not n.startswith("mobilenet_quantized")] + list(imagenet_index().file)
    failed = []
    for name in tqdm(names, desc="verifying data files"):
        try:
            fetch(name)
        except DataFileError as err:
            failed.append(str(err).splitlines()[0])
    for line in failed:
        print(line, file=sys.stderr)
    print(f"{len(names) - len(failed)}/{len(names)} files verified")
    return 1 if failed else 0


def chapter_path(notebook: str | None, root: Path = REPO_ROOT) -> Path:
    """The page ``notebook`` names (``make chapter NB=...``), checked: it must be one of the book's
    notebook pages. Anything else is a ``SystemExit`` whose message names ``NB`` and the pages."""
    from .book.build import pages

    docs = pages(root)
    accepted = ", ".join(f"{d}.md" for d in docs)
    if not notebook or not str(notebook).strip():
        raise SystemExit(f"NB (the chapter to run) is empty; accepted values: {accepted}")
    path = Path(notebook)
    full = path if path.is_absolute() else Path.cwd() / path
    if not full.is_file():
        raise SystemExit(f"NB={notebook!r}: no such file; accepted values: {accepted}")
    try:
        doc = full.resolve().relative_to(Path(root).resolve()).with_suffix("").as_posix()
    except ValueError:
        doc = None
    if doc not in docs:
        raise SystemExit(f"NB={notebook!r} is not a chapter of the book (a notebook page listed in _toc.yml); "
                         f"accepted values: {accepted}")
    return full


def _run(args) -> int:
    import jupytext
    import nbformat
    from nbclient import NotebookClient

    path = chapter_path(args.notebook)
    print(describe())
    nb = jupytext.read(path)
    out_dir = Path(args.output or REPO_ROOT / "_build" / "chapters")
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / (path.stem + ".ipynb")
    t0 = time.perf_counter()
    client = NotebookClient(nb, timeout=args.timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent.resolve())}})
    try:
        client.execute()
    finally:
        nbformat.write(nb, out)
    print(f"executed {path} in {time.perf_counter() - t0:.1f} s -> {out}")
    return 0


#: Benchmarks that ``bench`` without names leaves out (``python -m xaifool bench install`` runs it).
OPT_IN_BENCHMARKS = ("install",)


def _bench(args) -> int:
    bench_dir = REPO_ROOT / "benchmarks"
    scripts = sorted(p for p in bench_dir.glob("*.py") if not p.name.startswith("_"))
    if args.only:
        scripts = [p for p in scripts if p.stem in args.only]
    else:   # run only when named: a fresh installation needs the network and ~7 GB of disk
        scripts = [p for p in scripts if p.stem not in OPT_IN_BENCHMARKS]
    if not scripts:
        print("no benchmarks found", file=sys.stderr)
        return 1
    for p in scripts:
        print(f"== {p.name}")
        runpy.run_path(str(p), run_name="__main__")
    return 0


def _full_results(args) -> int:
    from .book.full_results import run, status, status_text

    if args.status:
        print(status_text(status(args.out, profile=None)))
        return 0
    print(describe())
    t0 = time.perf_counter()
    paths = run(args.only or None, out_dir=args.out, command=args.command or "", jobs=args.jobs, resume=args.resume)
    print(f"full-results: {len(paths)} chapter(s) in {time.perf_counter() - t0:.1f} s")
    return 0


def _exec_times(args) -> int:
    from .book.performance import book_plan, book_times

    try:
        rows = book_times(args.build_dir)
        plan = book_plan(args.build_dir)
    except ValueError as err:
        print(err, file=sys.stderr)
        return 1
    width = max([len(r["page"]) for r in rows] + [len("page")])
    print(f"{'page':{width}s}  seconds  executed")
    for r in rows:
        print(f"{r['page']:{width}s}  {r['seconds']:7.1f}  {'yes' if r['succeeded'] else 'FAILED'}")
    print(f"{'total':{width}s}  {sum(r['seconds'] for r in rows):7.1f}  ({describe()})")
    if plan is not None:
        print(f"{'wall clock':{width}s}  {plan['wall_s']:7.1f}  ({plan['workers']} pages at a time, "
              f"{plan['threads']} thread(s) each)")
        if plan.get("render_s") is not None:
            print(f"{'rendering':{width}s}  {plan['render_s']:7.1f}  (jupyter-book build from the executed pages)")
    if args.cells:
        from .book.performance import slowest_cells

        try:
            cells = slowest_cells(args.build_dir, args.cells)
        except ValueError as err:
            print(err, file=sys.stderr)
            return 1
        if cells:
            print(f"\nslowest cells:\n{'seconds':>8s}  page, cell: first line")
            for c in cells:
                print(f"{c['seconds']:8.1f}  {c['page']}, cell {c['cell']}: {c['source'][:70]}")
    if args.record:
        import subprocess

        from .book.performance import record_book_times

        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                                text=True).stdout.strip()
        try:
            rec = record_book_times(args.build_dir, args.record, profile=get_config().profile.name, commit=commit,
                                    note=args.note or "")
        except ValueError as err:
            print(err, file=sys.stderr)
            return 1
        print(f"recorded as the {args.record} build ({rec['builds'][args.record]['total_s']:.0f} s) in "
              "benchmarks/results/book-times-cpu.json")
    return 0


def _book(args) -> int:
    from .book.build import build

    try:
        root = args.root or REPO_ROOT
        if args.student:   # a copy of the source without solutions, built next to its output
            from pathlib import Path

            from .book.student import student_source

            out = Path(args.path_output or Path(root) / "_build-student")
            root = student_source(root, out / "source")
            return build(root, out, workers=args.workers, timeout=args.timeout)
        return build(root, args.path_output, workers=args.workers, timeout=args.timeout)
    except ValueError as err:
        print(err, file=sys.stderr)
        return 2


def _glue(args) -> int:
    from .book import glue

    try:
        if args.action == "save":
            values = glue.save(args.first, args.second)
            print(f"{sum(map(len, values.values()))} glued values of {len(values)} pages written to {args.second}")
            return 0
        import json
        from pathlib import Path

        rows = glue.diff(json.loads(Path(args.first).read_text("utf8")), json.loads(Path(args.second).read_text("utf8")),
                         ignore=args.ignore)
    except ValueError as err:
        print(err, file=sys.stderr)
        return 2
    print(glue.diff_text(rows))
    return 1 if rows else 0


def _info(args) -> int:
    cfg = get_config()
    print(describe())
    print(f"cache: {cfg.cache_dir}")
    print("data mirrors: " + (", ".join(map(str, cfg.data_dirs)) or "(none; files are downloaded)"))
    print(f"profile sizes: {cfg.profile}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xaifool", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    k = sub.add_parser("book", help="build the book (pages executed in parallel, then rendered)")
    k.add_argument("root", nargs="?", help="the book's folder (default: this repository)")
    k.add_argument("--path-output", help="where _build/ goes (default: the book's folder)")
    k.add_argument("--workers", type=int, help="pages executed at a time (default: 1 on a GPU, else min(4, cores))")
    k.add_argument("--timeout", type=int, help="per-cell timeout in seconds (default: _config.yml's)")
    k.add_argument("--student", action="store_true", help="the student edition: a copy of the source without the "
                   "exercises' solutions, built under --path-output (default: <book>/_build-student)")
    k.set_defaults(fn=_book)
    sub.add_parser("fetch", help="verify / download every data file").set_defaults(fn=_fetch)
    r = sub.add_parser("run", help="execute one chapter")
    r.add_argument("notebook", nargs="?", help="the chapter, e.g. notebooks/01_interpreters.md")
    r.add_argument("--output", help="folder for the executed .ipynb (default _build/chapters)")
    r.add_argument("--timeout", type=int, default=1800, help="per-cell timeout in seconds")
    r.set_defaults(fn=_run)
    b = sub.add_parser("bench", help="run the benchmarks")
    b.add_argument("only", nargs="*", help="benchmark names (file stems) to run; default all but "
                   + ", ".join(OPT_IN_BENCHMARKS))
    b.set_defaults(fn=_bench)
    f = sub.add_parser("full-results", help="paper-scale numbers of each chapter as JSON (no book tool chain)")
    f.add_argument("--only", nargs="*", help="chapters (notebook stems) to run; default all")
    f.add_argument("--out", help="folder for the JSON records (default benchmarks/results/full)")
    f.add_argument("--command", help="the command line to record (default: this one)")
    f.add_argument("--jobs", type=int, default=1, help="parts computed at once, each in a process of its own: the "
                   "attacks of 02a and the models of 02b (on one GPU), the explained rows of 08; the numbers do not "
                   "depend on it")
    f.add_argument("--resume", action="store_true", help="continue each chapter's unfinished record in --out "
                   "(same profile and settings), skipping the parts it holds")
    f.add_argument("--status", action="store_true", help="only print what the records in --out hold (per chapter: "
                   "profile, parts done, seconds, device) and exit")
    f.set_defaults(fn=_full_results)
    t = sub.add_parser("exec-times", help="seconds per page of the last book build")
    t.add_argument("build_dir", nargs="?", help="the build folder (default <repo>/_build)")
    t.add_argument("--record", choices=("cold", "warm"),
                   help="store the times as this build in benchmarks/results/book-times-cpu.json")
    t.add_argument("--note", help="a note stored with the record (e.g. how the build was run)")
    t.add_argument("--cells", type=int, default=0, metavar="N",
                   help="also list the N slowest code cells (builds of `python -m xaifool book`)")
    t.set_defaults(fn=_exec_times)
    g = sub.add_parser("glue", help="save a build's glued values (save BUILD OUT.json) or list the differences "
                       "between two saves (diff BEFORE.json AFTER.json)")
    g.add_argument("action", choices=("save", "diff"))
    g.add_argument("first", help="save: the book's folder (or its _build); diff: the earlier save")
    g.add_argument("second", help="save: the JSON file to write; diff: the later save")
    g.add_argument("--ignore", help="diff: a regular expression of glue names to leave out (e.g. timings)")
    g.set_defaults(fn=_glue)
    sub.add_parser("info", help="profile, device, directories").set_defaults(fn=_info)
    args = parser.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
