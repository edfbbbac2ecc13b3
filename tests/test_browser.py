"""The built book read in headless Chromium (xaifool.book.browser): the whole book passes, and the
check itself finds each kind of fault in a page made to have it."""
import json
import os
import shutil
from pathlib import Path

import pytest

from xaifool.book import browser
from xaifool.book.build import pages
from xaifool.book.pagefix import unique_scripts

ROOT = Path(__file__).resolve().parents[1]


def _need_browser():
    missing = browser.browser_available()
    if missing:
        if os.environ.get("XAIFOOL_REQUIRE_BROWSER"):     # CI installs it (.ci/run): never skip there
            pytest.fail(f"XAIFOOL_REQUIRE_BROWSER is set but {missing} is missing")
        pytest.skip(f"no browser for the browser check ({missing}); Debian: apt-get install chromium "
                    "chromium-driver")


def _page(body, head=""):
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><link rel='icon' href='data:,'>"
            f"<style>main {{ width: 690px }} "
            f"img {{ max-width: 100% }}</style>{head}</head><body><main>{body}</main></body></html>")


def test_broken_links_finds_missing_files_and_anchors(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "index.html").write_text(_page(
        '<a href="sub/a.html#here">ok</a> <a href="sub/a.html#gone">bad anchor</a> <a href="nope.html">bad file</a>'
        ' <a href="https://example.org/x">external</a> <a href="#top">self</a> <p id="top"></p>'))
    (tmp_path / "sub" / "a.html").write_text(_page('<h1 id="here">A</h1><a href="../index.html#top">back</a>'))
    assert browser.broken_links(tmp_path) == {"index.html": ["nope.html", "sub/a.html#gone"]}


def test_unique_scripts_keeps_the_first_of_identical_entries():
    class Script(str):
        def __new__(cls, filename, **attributes):
            s = super().__new__(cls, filename or "")
            s.filename, s.attributes = filename, attributes
            return s

    a, b = Script(None, body="const X = 1"), Script("x.js", **{"async": "async"})
    again = Script("", body="const X = 1")      # Sphinx gives inline scripts None or "" as file name
    other = Script(None, body="const Y = 2")
    assert unique_scripts([a, b, again, other, Script("x.js", **{"async": "async"})]) == [a, b, other]


@pytest.mark.slow
def test_the_check_finds_every_kind_of_fault(tmp_path):
    """A page with a console error, a missing image, raw TeX, a traceback in an output and a figure
    drawn too wide: each is reported; a clean page is not; a book without search reports it."""
    _need_browser()
    from PIL import Image

    Image.new("RGB", (3000, 100), "white").save(tmp_path / "wide.png")
    Image.new("RGB", (300, 100), "white").save(tmp_path / "small.png")
    (tmp_path / "index.html").write_text(_page('<p>fine</p><figure><img src="small.png"></figure>'))
    (tmp_path / "bad.html").write_text(_page(
        '<p>The loss $L(x)$ is raw.</p>'
        '<div class="cell_output"><pre>Traceback (most recent call last):\n  boom</pre></div>'
        '<figure><img src="wide.png"></figure><figure><img src="missing.png"></figure>'
        '<script>undefinedFunction()</script>'))
    report = browser.check_book(tmp_path, screenshots={"bad.html": "bad.png"}, screenshot_dir=tmp_path / "shots")
    assert "index.html" not in report["problems"]
    bad = " | ".join(report["problems"]["bad.html"])
    for fault in ("console:", "image not loaded: missing.png", "raw TeX: $L(x)$", "traceback or warning",
                  "figure shown at"):
        assert fault in bad, (fault, bad)
    assert "search.html" in report["problems"]
    assert (tmp_path / "shots" / "bad.png").stat().st_size > 0
    with pytest.raises(ValueError, match="html_dir"):
        browser.check_book(tmp_path / "shots")


@pytest.mark.slow
def test_every_executed_page_offers_md_and_ipynb_and_no_dead_repository_button(built_book):
    from xaifool.book.launch import settings

    res, out = built_book
    html = out / "_build" / "html"
    for doc in pages():
        page = (html / f"{doc}.html").read_text()
        assert f"_sources/{doc}.md" in page and f"_sources/{doc}.ipynb" in page, doc
        assert (html / "_sources" / f"{doc}.ipynb").is_file(), doc
        if not settings()["repository"]:
            assert "mybinder.org" not in page and "colab.research.google.com" not in page, doc


@pytest.mark.slow
def test_the_built_book_passes_the_browser_check(built_book):
    """Every page of the built book in headless Chromium at 1280 px: no console error, every image
    loaded, no raw TeX, no traceback or warning in an output, no figure below 60 % of its natural
    width, every internal link and anchor resolving, and the search page finding a chapter's term.
    Screenshots of the intro and one chapter are written next to the build."""
    _need_browser()
    res, out = built_book
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    html = out / "_build" / "html"
    shots = out / "_build" / "screenshots"
    report = browser.check_book(html, search_term="Dombrowski", screenshot_dir=shots,
                                screenshots={"book/intro.html": "intro.png",
                                             "notebooks/02a_input_manipulation.html": "02a_input_manipulation.png"})
    assert report["problems"] == {}, json.dumps(report["problems"], indent=1)[:6000]
    assert report["pages"] >= len(pages()) and report["search_hits"] > 0
    assert len(report["screenshots"]) == 2 and all(Path(s).stat().st_size > 0 for s in report["screenshots"])
    if os.environ.get("XAIFOOL_KEEP_SCREENSHOTS"):     # e.g. CI artefacts
        shutil.copytree(shots, os.environ["XAIFOOL_KEEP_SCREENSHOTS"], dirs_exist_ok=True)
