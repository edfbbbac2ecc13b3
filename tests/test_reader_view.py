"""The reader's view of every executed page: the code cells a reader sees (not removed or folded by
a cell tag) hold no glue bookkeeping and no line that would scroll sideways."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted(p.relative_to(ROOT).as_posix() for p in [*ROOT.glob("notebooks/*.md"), *ROOT.glob("book/*.md")]
               if "```{code-cell}" in p.read_text("utf8"))
#: code lines longer than this scroll sideways in the content column at 1280 px
MAX_LINE = 80
FOLDED = ("remove-cell", "remove-input", "hide-input", "hide-cell")


def visible_code(text: str):
    """(line number, line) of every code line a reader sees without unfolding anything."""
    for m in re.finditer(r"```\{code-cell\}[^\n]*\n(.*?)```", text, re.S):
        tags = re.search(r"^:tags:\s*\[(.*)\]", m.group(1), re.M)
        if tags and any(t in tags.group(1) for t in FOLDED):
            continue
        first = text[:m.start(1)].count("\n") + 1
        for i, line in enumerate(m.group(1).splitlines()):
            if not line.startswith(":tags:"):
                yield first + i, line


def test_visible_code_finds_only_unfolded_lines():
    page = ("```{code-cell} ipython3\nx = 1\n```\n\n```{code-cell} ipython3\n:tags: [remove-cell]\n"
            "glue('x', x)\n```\n\n```{code-cell} ipython3\n:tags: [hide-input]\ny = 2\n```\n")
    assert list(visible_code(page)) == [(2, "x = 1")]


def test_there_are_pages_to_check():
    assert len(PAGES) >= 10 and "notebooks/02a_input_manipulation.md" in PAGES


@pytest.mark.parametrize("page", PAGES)
def test_visible_code_has_no_plumbing_and_no_long_lines(page):
    lines = list(visible_code((ROOT / page).read_text("utf8")))
    if page.startswith("notebooks/"):    # a chapter shows the calls a re-executor needs
        assert lines, f"{page}: no visible code"
    long = [(n, len(l)) for n, l in lines if len(l) > MAX_LINE]
    assert not long, f"{page}: visible lines over {MAX_LINE} characters (line, length): {long}"
    glue = [n for n, l in lines if re.search(r"\bglue\(", l)]
    assert not glue, f"{page}: glue bookkeeping in view at lines {glue}: tag the cell remove-cell"
