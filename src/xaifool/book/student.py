"""The student edition of the book (``make book-student``): a copy of the book's source with every
exercise solution removed, built like the book itself.

Two kinds of solution are removed from every Markdown page:

- a solution directive, ``:::{solution} label`` … ``:::`` (any number of colons ≥ 3, matched by count);
- a gated solution, from the fence that opens ``{solution-start}`` to the one that closes
  ``{solution-end}``, with the code cells between them (they are not executed in the student build).

sphinx-exercise's own ``hide_solutions`` option is not used: its HTML writer fails on gated
solutions (``solution_end_node``), which the chapters use for solutions that run code.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

__all__ = ["strip_solutions", "student_source", "exercises", "executed_solutions", "SKIP"]

#: Folders of the repository that are not part of the book's source.
SKIP = (".git", ".venv", ".cache", "_build", "_build-student", ".pytest_cache", "benchmarks", "tests", "src")

_COLON_OPEN = re.compile(r"^(?P<fence>:{3,})\{solution\}")
_GATED_OPEN = re.compile(r"^(?P<fence>`{3,}|:{3,})\{solution-start\}")
_GATED_CLOSE = re.compile(r"^(`{3,}|:{3,})\{solution-end\}")
_EXERCISE = re.compile(r"^(?P<fence>`{3,}|:{3,})\{exercise(?:-start)?\}")
_LABEL = re.compile(r"^:label:\s*(?P<label>\S+)")
_SOLUTION_OF = re.compile(r"^(?:`{3,}|:{3,})\{solution(?:-start)?\}\s*(?P<label>\S+)")


def exercises(text: str) -> dict[str, int]:
    """The exercises of a MyST page, in order: label → number of solutions that name it (solution
    directives and gated solutions). An exercise without a ``:label:`` is a ``ValueError`` (no
    solution could name it)."""
    lines = text.splitlines()
    out: dict[str, int] = {}
    for i, line in enumerate(lines):
        if _EXERCISE.match(line):
            label = next((m["label"] for ln in lines[i + 1:i + 6] if (m := _LABEL.match(ln.strip()))), None)
            if label is None:
                raise ValueError(f"text: the exercise at line {i + 1} has no :label: option")
            out[label] = 0
    for line in lines:
        m = _SOLUTION_OF.match(line)
        if m and m["label"] in out:
            out[m["label"]] += 1
    return out


def executed_solutions(text: str) -> list[str]:
    """Labels of the gated solutions of a MyST page that hold at least one code cell (the build
    executes them, so a solution that stops working fails the build)."""
    out, label = [], None
    for line in text.splitlines():
        m = _SOLUTION_OF.match(line)
        if m and "solution-start" in line:
            label = m["label"]
        elif _GATED_CLOSE.match(line):
            label = None
        elif label and re.match(r"^(`{3,}|:{3,})\{code-cell\}", line) and label not in out:
            out.append(label)
    return out


def strip_solutions(text: str) -> str:
    """``text`` (a MyST page) without its solution directives and gated solutions."""
    lines = text.splitlines(keepends=True)
    out, i = [], 0
    while i < len(lines):
        line = lines[i]
        m = _COLON_OPEN.match(line)
        if m:
            fence = m["fence"]
            i += 1
            while i < len(lines) and lines[i].rstrip() != fence:
                i += 1
            i += 1                                   # the closing fence
            continue
        m = _GATED_OPEN.match(line)
        if m:
            while i < len(lines) and not _GATED_CLOSE.match(lines[i]):
                i += 1
            fence = _GATED_CLOSE.match(lines[i])[1] if i < len(lines) else ""
            i += 1                                   # the line that opens solution-end
            while i < len(lines) and lines[i].rstrip() != fence:
                i += 1
            i += 1                                   # its closing fence
            continue
        out.append(line)
        i += 1
    return "".join(out)


def student_source(root: Path | str, dest: Path | str) -> Path:
    """Copy the book's source at ``root`` to ``dest`` (emptied first), without the folders of :data:`SKIP`,
    with every Markdown page's solutions removed. Returns ``dest``."""
    root, dest = Path(root).resolve(), Path(dest).resolve()
    if not (root / "_toc.yml").is_file():
        raise ValueError(f"root {str(root)!r} holds no _toc.yml")
    if dest == root or root in dest.parents and dest.parts[len(root.parts)] not in SKIP:
        raise ValueError(f"dest must lie outside the book's source (or in one of {SKIP}), got {str(dest)!r}")
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(root, dest, ignore=lambda d, names: [n for n in names if Path(d) == root and n in SKIP])
    for page in dest.rglob("*.md"):
        page.write_text(strip_solutions(page.read_text(encoding="utf8")), encoding="utf8")
    return dest
