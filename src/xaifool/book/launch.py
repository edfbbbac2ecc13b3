"""Launch buttons and downloads of the built book, from one setting.

The setting is the public repository the book is published from, ``[tool.xaifool.book] repository``
in ``pyproject.toml`` (a ``https://github.com/<owner>/<name>`` address, or empty). From it:

- :func:`configure` fills the Jupyter Book configuration that ``python -m xaifool book`` generates:
  with a repository, the repository and issues buttons and a Binder button; without one, none of
  them (no button points to a repository that does not exist). ``_config.yml`` itself holds none,
  so a plain ``jupyter-book build`` shows none either.
- the Sphinx extension in this module (``xaifool.book.launch``, listed in ``_config.yml``) gives every
  executed page an ``.ipynb`` download next to the ``.md`` one: the executed notebook with an
  install cell first, so that it runs outside a copy of the repository (Colab, a fresh kernel)
  (myst-nb's notebook of the page: its cells as written, without outputs).
  With a repository, the page's Colab button opens that very notebook, as published with the HTML
  on the ``pages_branch`` (``gh-pages`` unless set) — Colab opens ``.ipynb`` files from GitHub, not
  MyST Markdown.
"""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path

from ..config import REPO_ROOT

__all__ = ["settings", "configure", "install_cell", "colab_url", "setup"]

_GITHUB = re.compile(r"^https://github\.com/(?P<owner>[A-Za-z0-9][A-Za-z0-9_.-]*)/(?P<name>[A-Za-z0-9_.-]+?)/?$")
_BRANCH = re.compile(r"^[A-Za-z0-9._/-]+$")
#: the first cell of every downloaded notebook carries this tag (and the tests look for it)
INSTALL_TAG = "xaifool-install"


def settings(pyproject: Path | str | None = None) -> dict:
    """``{"repository": str, "pages_branch": str}`` from ``[tool.xaifool.book]`` of ``pyproject``
    (default: the repository's), checked: ``repository`` is empty or ``https://github.com/<owner>/<name>``."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    path = Path(pyproject) if pyproject is not None else REPO_ROOT / "pyproject.toml"
    table = tomllib.loads(path.read_text("utf8")).get("tool", {}).get("xaifool", {}).get("book", {})
    unknown = set(table) - {"repository", "pages_branch"}
    if unknown:
        raise ValueError(f"[tool.xaifool.book] has unknown keys {sorted(unknown)}; accepted: repository, pages_branch")
    repo = str(table.get("repository", "") or "").strip()
    branch = str(table.get("pages_branch", "gh-pages") or "gh-pages").strip()
    if repo and not _GITHUB.match(repo):
        raise ValueError(f"repository must be empty or 'https://github.com/<owner>/<name>', got {repo!r}")
    if not _BRANCH.match(branch):
        raise ValueError(f"pages_branch must be a git branch name, got {branch!r}")
    return {"repository": repo.rstrip("/"), "pages_branch": branch}


def configure(cfg: dict, repository: str, pages_branch: str = "gh-pages") -> dict:
    """A copy of the Jupyter Book configuration ``cfg`` with the repository, launch and download
    settings that ``repository`` implies (see the module's text)."""
    if repository and not _GITHUB.match(repository):
        raise ValueError(f"repository must be empty or 'https://github.com/<owner>/<name>', got {repository!r}")
    cfg = copy.deepcopy(cfg)
    html = cfg.setdefault("html", {})
    conf = cfg.setdefault("sphinx", {}).setdefault("config", {})
    conf["xaifool_repository"] = repository
    conf["xaifool_pages_branch"] = pages_branch
    if repository:
        cfg["repository"] = {"url": repository, "path_to_book": ".", "branch": "main"}
        cfg["launch_buttons"] = {"notebook_interface": "jupyterlab", "binderhub_url": "https://mybinder.org",
                                 "colab_url": "https://colab.research.google.com"}
        html.update(use_repository_button=True, use_issues_button=True)
    else:
        cfg.pop("repository", None)
        cfg.pop("launch_buttons", None)
        html.update(use_repository_button=False, use_issues_button=False, use_edit_page_button=False)
    return cfg


def install_cell(repository: str) -> str:
    """Source of the first cell of a downloaded notebook: installs the book's package when it is
    missing (Colab, a fresh kernel), does nothing inside a set-up copy of the repository."""
    if repository:
        how = ('subprocess.check_call([sys.executable, "-m", "pip", "install", "-q",\n'
               f'                           "xaifool[book] @ git+{repository}"])')
    else:
        how = ('raise ModuleNotFoundError("this chapter needs the book\'s package: clone the book\'s "\n'
               '                              "repository and run `make install` (or pip install -e .)")')
    return ("# Set-up: installs the book's package where it is missing (Colab, a fresh kernel);\n"
            "# inside a copy of the repository set up with `make install` it does nothing.\n"
            "import importlib.util\nimport subprocess\nimport sys\n\n"
            f'if importlib.util.find_spec("xaifool") is None:\n    {how}')


def colab_url(repository: str, pages_branch: str, pagename: str) -> str:
    """The Colab address of a page's downloadable notebook, as published on ``pages_branch``."""
    m = _GITHUB.match(repository or "")
    if not m:
        raise ValueError(f"repository must be 'https://github.com/<owner>/<name>', got {repository!r}")
    return (f"https://colab.research.google.com/github/{m['owner']}/{m['name']}/blob/{pages_branch}/"
            f"_sources/{pagename}.ipynb")


# --- the Sphinx extension ------------------------------------------------------------------------

def _executed(app, pagename: str) -> Path | None:
    path = Path(app.outdir).parent / "jupyter_execute" / f"{pagename}.ipynb"
    return path if path.is_file() else None


def _announce(app, pagename, templatename, context, doctree):
    """Before the theme makes its buttons: executed pages have an ``.ipynb`` download."""
    if _executed(app, pagename):
        context["ipynb_source"] = f"{pagename}.ipynb"


def _write(app, pagename, templatename, context, doctree):
    """After the theme: write the downloadable notebook (myst-nb's notebook of the page plus the install cell) (over the theme's copy, if it made one) and
    point the Colab button at it."""
    src = _executed(app, pagename)
    if src is None:
        return
    nb = json.loads(src.read_text("utf8"))
    repo = app.config.xaifool_repository
    cell = {"cell_type": "code", "execution_count": None, "id": "xaifool-install",
            "metadata": {"tags": [INSTALL_TAG]}, "outputs": [], "source": install_cell(repo)}
    nb["cells"] = [cell] + [c for c in nb["cells"] if INSTALL_TAG not in c.get("metadata", {}).get("tags", [])]
    nb.setdefault("metadata", {})["kernelspec"] = {"display_name": "Python 3", "language": "python",
                                                   "name": "python3"}
    out = Path(app.outdir) / "_sources" / f"{pagename}.ipynb"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(nb, indent=1, ensure_ascii=False), "utf8")
    if repo:
        for group in context.get("header_buttons", []):
            for button in group.get("buttons", []) if group.get("label") == "launch-buttons" else []:
                if button.get("text") == "Colab":
                    button["url"] = colab_url(repo, app.config.xaifool_pages_branch, pagename)


def setup(app):
    app.add_config_value("xaifool_repository", "", "html")
    app.add_config_value("xaifool_pages_branch", "gh-pages", "html")
    app.connect("html-page-context", _announce, priority=499)
    app.connect("html-page-context", _write, priority=502)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
