"""Exercises of the seminar edition: every chapter has 3–5 exercises, each with one solution, every
notebook chapter has at least one solution that runs code in the build, and the student edition's
source holds no solution at all."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

from xaifool.book import build as bookrun
from xaifool.book.student import executed_solutions, exercises, strip_solutions, student_source

ROOT = Path(__file__).resolve().parents[1]
#: the chapters: every notebook under notebooks/ and the discussion
CHAPTERS = [f"notebooks/{p.stem}" for p in sorted((ROOT / "notebooks").glob("*.md"))] + ["book/discussion"]


def test_the_chapters_are_pages_of_the_book():
    assert set(CHAPTERS) <= set(bookrun.pages())


@pytest.mark.parametrize("doc", CHAPTERS)
def test_every_chapter_has_three_to_five_exercises_each_with_one_solution(doc):
    ex = exercises((ROOT / f"{doc}.md").read_text("utf8"))
    assert 3 <= len(ex) <= 5, f"{doc}: {len(ex)} exercises ({list(ex)})"
    assert all(n == 1 for n in ex.values()), f"{doc}: solutions per exercise {ex}"


@pytest.mark.parametrize("doc", [d for d in CHAPTERS if d.startswith("notebooks/")])
def test_every_notebook_chapter_executes_a_coding_solution(doc):
    text = (ROOT / f"{doc}.md").read_text("utf8")
    assert executed_solutions(text), f"{doc}: no gated solution with a code cell"
    assert set(executed_solutions(text)) <= set(exercises(text))



@pytest.mark.parametrize("doc", CHAPTERS)
def test_no_chapter_code_runs_after_the_exercises(doc):
    """The student edition drops the solutions: a chapter cell after them could depend on what a
    solution computed and run in the full build only. The exercises close each chapter."""
    text = strip_solutions((ROOT / f"{doc}.md").read_text("utf8"))
    rest = text[text.index("## Exercises"):] if "## Exercises" in text else ""
    assert rest, f"{doc}: no '## Exercises' section"
    assert "```{code-cell}" not in rest, f"{doc}: a code cell after '## Exercises' outside a solution"


@pytest.mark.parametrize("doc", CHAPTERS)
def test_every_coding_solution_runs_in_the_build(doc):
    """A plain ``{solution}`` block is text only: code shown there would never run and could rot.
    Coding solutions are gated (``solution-start`` … ``solution-end``) around executed cells."""
    text = (ROOT / f"{doc}.md").read_text("utf8")
    plain = [m.group(2) for m in re.finditer(r"^(:{3,})\{solution\}[^\n]*\n(.*?)^\1[ \t]*$", text, re.S | re.M)]
    assert plain or executed_solutions(text), f"{doc}: no solutions found"
    shown = [b.split("\n", 3)[2] for b in plain if "```" in b]
    assert not shown, f"{doc}: code in a solution that is not executed: {shown}"

def test_exercise_parsing_on_a_known_page():
    page = """
:::{exercise}
:label: ex-a

A?
:::

:::{solution} ex-a
:class: dropdown

yes
:::

::::{exercise}
:label: ex-b
B?
::::

```{solution-start} ex-b
```

```{code-cell} ipython3
1 + 1
```

```{solution-end}
```

:::{exercise}
:label: ex-c
C, unanswered
:::
"""
    assert exercises(page) == {"ex-a": 1, "ex-b": 1, "ex-c": 0}
    assert executed_solutions(page) == ["ex-b"]
    assert exercises(strip_solutions(page)) == {"ex-a": 0, "ex-b": 0, "ex-c": 0}
    with pytest.raises(ValueError, match="text"):
        exercises(":::{exercise}\nno label\n:::\n")


def test_the_student_source_keeps_every_exercise_and_no_solution(tmp_path):
    dest = student_source(ROOT, tmp_path / "student")
    for doc in CHAPTERS:
        full, student = ((r / f"{doc}.md").read_text("utf8") for r in (ROOT, dest))
        assert list(exercises(student)) == list(exercises(full)), doc
        assert all(n == 0 for n in exercises(student).values()), doc
        assert "{solution" not in student, doc


@pytest.mark.parametrize("nb, says", [("", "is empty"), ("notebooks/no_such_chapter.md", "no such file"),
                                      ("README.md", "is not a chapter"), ("book/glossary.md", "is not a chapter")])
def test_run_rejects_what_is_not_a_chapter(nb, says):
    """``make chapter NB=...`` with a missing or non-chapter file: a clear message, a non-zero exit."""
    res = subprocess.run([sys.executable, "-m", "xaifool", "run", nb], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode != 0
    assert says in res.stderr and "NB" in res.stderr and "notebooks/01_interpreters.md" in res.stderr
    assert "Traceback" not in res.stderr
