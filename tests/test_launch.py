"""Launch buttons and downloads from one setting (``[tool.xaifool.book] repository``): none while no
repository is configured, Binder and Colab when one is, Colab opening an ``.ipynb`` with an install
cell, and an ``.ipynb`` and ``.md`` download on every executed page."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from xaifool.book import launch

ROOT = Path(__file__).resolve().parents[1]
REPO = "https://github.com/someone/some-book"


def _pyproject(tmp_path, body):
    p = tmp_path / "pyproject.toml"
    p.write_text(body)
    return p


def test_settings_of_this_repository_are_valid():
    s = launch.settings()
    assert set(s) == {"repository", "pages_branch"}
    assert s["repository"] == "" or s["repository"].startswith("https://github.com/")


@pytest.mark.parametrize("body, want", [
    ("", {"repository": "", "pages_branch": "gh-pages"}),
    ("[tool.xaifool.book]\nrepository = ''\n", {"repository": "", "pages_branch": "gh-pages"}),
    (f"[tool.xaifool.book]\nrepository = '{REPO}/'\npages_branch = 'site'\n", {"repository": REPO,
                                                                              "pages_branch": "site"}),
])
def test_settings_read_the_one_setting(tmp_path, body, want):
    assert launch.settings(_pyproject(tmp_path, body)) == want


@pytest.mark.parametrize("body, name", [
    ("[tool.xaifool.book]\nrepository = 'github.com/a/b'\n", "repository"),
    ("[tool.xaifool.book]\nrepository = 'https://gitlab.com/a/b'\n", "repository"),
    ("[tool.xaifool.book]\npages_branch = 'a b'\n", "pages_branch"),
    ("[tool.xaifool.book]\nrepo = 'x'\n", "unknown keys"),
])
def test_bad_settings_name_the_key(tmp_path, body, name):
    with pytest.raises(ValueError, match=name):
        launch.settings(_pyproject(tmp_path, body))


def test_configure_without_a_repository_leaves_every_repository_button_out():
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert "repository" not in cfg and "launch_buttons" not in cfg     # a plain jupyter-book build: none
    cfg["launch_buttons"] = {"colab_url": "https://colab.research.google.com"}
    cfg["repository"] = {"url": REPO}
    out = launch.configure(cfg, "")
    assert "repository" not in out and "launch_buttons" not in out
    assert out["html"]["use_repository_button"] is False and out["html"]["use_issues_button"] is False
    assert out["sphinx"]["config"]["xaifool_repository"] == ""
    assert cfg["repository"] == {"url": REPO}                              # the input is not changed


def test_configure_with_a_repository_turns_the_buttons_on():
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    out = launch.configure(cfg, REPO, "gh-pages")
    assert out["repository"]["url"] == REPO
    assert out["launch_buttons"]["binderhub_url"] and out["launch_buttons"]["colab_url"]
    assert out["html"]["use_repository_button"] is True
    with pytest.raises(ValueError, match="repository"):
        launch.configure(cfg, "https://example.org/x")


@pytest.mark.parametrize("repo", ["", REPO])
def test_install_cell_is_python_and_installs_only_where_missing(repo):
    src = launch.install_cell(repo)
    compile(src, "<install>", "exec")
    assert 'find_spec("xaifool") is None' in src
    assert (f"git+{REPO}" in src) == bool(repo)


def test_colab_url_opens_the_published_notebook():
    assert launch.colab_url(REPO, "gh-pages", "notebooks/01_interpreters") == (
        "https://colab.research.google.com/github/someone/some-book/blob/gh-pages/_sources/notebooks/"
        "01_interpreters.ipynb")
    with pytest.raises(ValueError, match="repository"):
        launch.colab_url("", "gh-pages", "x")


@pytest.mark.slow
@pytest.mark.parametrize("repo", ["", REPO])
def test_built_pages_offer_md_and_ipynb_downloads_and_buttons_follow_the_setting(tmp_path, repo):
    from test_book import ENV, _tiny_book

    src = tmp_path / "src"
    _tiny_book(src, ["print('page zero')"])
    (src / "pyproject.toml").write_text(f"[tool.xaifool.book]\nrepository = '{repo}'\n")
    out = tmp_path / "out"
    res = subprocess.run([sys.executable, "-m", "xaifool", "book", str(src), "--path-output", str(out)],
                         capture_output=True, text=True, env=ENV, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    html_dir = out / "_build" / "html"
    page = (html_dir / "notebooks" / "p0.html").read_text()
    assert "_sources/notebooks/p0.md" in page and "_sources/notebooks/p0.ipynb" in page
    nb = json.loads((html_dir / "_sources" / "notebooks" / "p0.ipynb").read_text())
    first = nb["cells"][0]
    assert launch.INSTALL_TAG in first["metadata"]["tags"] and "find_spec" in "".join(first["source"])
    assert ["".join(c["source"]) for c in nb["cells"][1:] if c["cell_type"] == "code"] == ["print('page zero')"]
    colab = re.findall(r'href="(https://colab[^"]+)"', page)
    if repo:
        assert colab == [launch.colab_url(REPO, "gh-pages", "notebooks/p0")]
        assert "mybinder.org" in page and REPO in page
    else:
        assert not colab and "mybinder" not in page and "github.com" not in page
