"""The whole book builds in the quick profile, executing every chapter; a failing cell fails it —
both through ``python -m xaifool book`` (``make book``: pages executed in parallel, then rendered
from their cache) and through plain ``jupyter-book build``."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from xaifool.book import build as bookrun

ROOT = Path(__file__).resolve().parents[1]
JB = Path(sys.executable).with_name("jupyter-book")


ENV = {**os.environ, "XAIFOOL_PROFILE": "quick", "XAIFOOL_DEVICE": "cpu"}


def _xaifool_book(out, root=ROOT):
    return subprocess.run([sys.executable, "-m", "xaifool", "book", str(root), "--path-output", str(out)],
                          capture_output=True, text=True, env=ENV, timeout=2400)


def _build(tmp_path, config_changes=None, root=ROOT):
    cfg = yaml.safe_load((root / "_config.yml").read_text())
    cfg["execute"]["execute_notebooks"] = "force"  # always execute, never reuse a cache
    cfg["execute"].pop("cache", None)
    for k, v in (config_changes or {}).items():
        cfg[k] = v
    cfg_file = tmp_path / "_config.yml"
    cfg_file.write_text(yaml.safe_dump(cfg))
    return subprocess.run([str(JB), "build", str(root), "--path-output", str(tmp_path), "--config", str(cfg_file),
                           "-W", "-n", "--keep-going"], capture_output=True, text=True, env=ENV, timeout=2400)


@pytest.mark.slow
def test_book_builds_and_executes_every_chapter(built_book):
    res, tmp_path = built_book
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    # every notebook page was executed before rendering, and myst-nb used those outputs
    plan = json.loads((tmp_path / "_build" / ".exec-plan.json").read_text())
    assert not plan["failed"] and not plan["skipped"]
    assert {p["page"] for p in plan["pages"]} == set(bookrun.pages())
    assert "Executing notebook" not in res.stdout + res.stderr
    html = tmp_path / "_build" / "html"
    assert (html / "index.html").is_file()
    page = (html / "notebooks" / "01_interpreters.html").read_text()
    assert "Definition 1" in page and "Exercise" in page
    # numbers in the prose were glued from executed cells (no leftover roles or errors)
    assert "{glue" not in page and "Traceback" not in page
    bib = (html / "book" / "bibliography.html").read_text()
    assert "Ghorbani" in bib and "Dombrowski" in bib


def _tiny_book(src, cells):
    """A book of one notebook page per entry of ``cells`` (its code), with the repository's config."""
    (src / "notebooks").mkdir(parents=True)
    shutil.copy(ROOT / "_config.yml", src / "_config.yml")
    (src / "book").mkdir()
    shutil.copy(ROOT / "book" / "references.bib", src / "book" / "references.bib")
    shutil.copytree(ROOT / "book" / "_static", src / "book" / "_static")   # the config's html_static_path
    head = (ROOT / "notebooks" / "01_interpreters.md").read_text().split("---", 2)[1]
    names = [f"p{i}" for i in range(len(cells))]
    for name, code in zip(names, cells):
        (src / "notebooks" / f"{name}.md").write_text(
            f"---{head}---\n# Page {name}\n\n```{{code-cell}} ipython3\n:tags: [hide-input]\n{code}\n```\n")
    toc = f"format: jb-book\nroot: notebooks/{names[0]}\n"
    if names[1:]:
        toc += "chapters:\n" + "".join(f"  - file: notebooks/{n}\n" for n in names[1:])
    (src / "_toc.yml").write_text(toc)


@pytest.mark.slow
def test_xaifool_book_renders_the_pages_it_executed(tmp_path):
    """Pages executed side by side are rendered from their cache, not executed again by myst-nb
    (jupyter-cache matches a notebook by its cells, metadata included), with their cell times kept."""
    code = ("import os, time\ntime.sleep(1)\nprint('threads', os.environ.get('OMP_NUM_THREADS'), 'page', {i})\n"
            "from ipykernel.kernelapp import IPKernelApp\nprint('transport', IPKernelApp.instance().transport)")
    _tiny_book(tmp_path / "src", [code.format(i=i) for i in range(3)])
    res = _xaifool_book(tmp_path / "out", root=tmp_path / "src")
    log = res.stdout + res.stderr
    assert res.returncode == 0, log[-4000:]
    assert log.count("Using cached notebook") == 3 and "Executing notebook" not in log
    plan = json.loads((tmp_path / "out" / "_build" / ".exec-plan.json").read_text())
    threads = plan["threads"]
    for i in range(3):
        html = (tmp_path / "out" / "_build" / "html" / "notebooks" / f"p{i}.html").read_text()
        assert f"threads {threads} page {i}" in html
        # Unix sockets: no TCP port two kernels starting together could both pick
        assert "transport ipc" in html
    cells = {p["page"]: p["cells"] for p in plan["pages"]}
    assert all(len(c) == 1 and c[0]["seconds"] >= 1.0 and c[0]["source"].startswith("import os") for c in cells.values())
    assert plan["render_s"] > 0          # the rendering is timed too (the whole build = pages + rendering)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["xaifool book", "jupyter-book"])
def test_failing_cell_fails_the_build(tmp_path, how):
    """A raising cell fails the build (not a warning): ``xaifool book`` stops before rendering, and
    for plain jupyter-book nb_execution_raise_on_error turns it into a build error."""
    src = tmp_path / "src"
    _tiny_book(src, ["raise RuntimeError('boom')"])
    (tmp_path / "out").mkdir()
    res = _xaifool_book(tmp_path / "out", root=src) if how == "xaifool book" else _build(tmp_path / "out", root=src)
    assert res.returncode != 0
    assert "boom" in res.stdout + res.stderr


_SOLUTIONS = """
:::{exercise}
:label: ex-tiny

EXERCISE-TEXT: what does the cell print?
:::

:::{solution} ex-tiny
:class: dropdown

PLAIN-SOLUTION-TEXT
:::

::::{solution} ex-tiny
A FOUR-COLON-SOLUTION with a nested block:
:::{note}
NESTED-SOLUTION-NOTE
:::
::::

:::{exercise}
:label: ex-tiny-code

EXERCISE-TWO
:::

```{solution-start} ex-tiny-code
:class: dropdown
```

GATED-SOLUTION-TEXT

```{code-cell} ipython3
print("GATED-" + "SOLUTION-OUTPUT")
```

```{solution-end}
```

AFTER-THE-SOLUTIONS
"""


def test_strip_solutions_keeps_everything_but_the_solutions():
    from xaifool.book.student import strip_solutions

    out = strip_solutions("# Page\n" + _SOLUTIONS)
    assert "EXERCISE-TEXT" in out and "EXERCISE-TWO" in out and "AFTER-THE-SOLUTIONS" in out
    for secret in ("PLAIN-SOLUTION", "FOUR-COLON", "NESTED-SOLUTION", "GATED-SOLUTION", "solution-end"):
        assert secret not in out, secret
    assert strip_solutions("no solutions here\n") == "no solutions here\n"


@pytest.mark.slow
def test_student_build_leaves_every_solution_out(tmp_path):
    """``python -m xaifool book --student`` (``make book-student``): the exercises are there, no solution
    text or solution output is, plain and gated (``solution-start`` … ``solution-end``) solutions alike."""
    src = tmp_path / "src"
    _tiny_book(src, ["print('page one')"])
    page = src / "notebooks" / "p0.md"
    page.write_text(page.read_text() + _SOLUTIONS)
    out = tmp_path / "out"
    res = subprocess.run([sys.executable, "-m", "xaifool", "book", str(src), "--path-output", str(out), "--student"],
                         capture_output=True, text=True, env=ENV, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    html = "".join(p.read_text() for p in (out / "_build" / "html").rglob("*.html"))
    assert "EXERCISE-TEXT" in html and "EXERCISE-TWO" in html and "AFTER-THE-SOLUTIONS" in html
    for secret in ("PLAIN-SOLUTION-TEXT", "FOUR-COLON-SOLUTION", "GATED-SOLUTION-TEXT", "GATED-SOLUTION-OUTPUT"):
        assert secret not in html, secret
