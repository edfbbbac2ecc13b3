"""A Sphinx extension that mends the rendered pages where the tool chain itself trips a browser.

jupyter-book 1.x makes sphinx-thebe add its configuration script to every page twice (the event that
adds it fires twice in a build), so each page declared ``const THEBE_JS_URL`` twice, a console error
(``SyntaxError: Identifier 'THEBE_JS_URL' has already been declared``) found by the browser check
(:mod:`xaifool.book.browser`). :func:`unique_scripts` keeps the first of identical script entries.
"""
from __future__ import annotations

__all__ = ["unique_scripts", "setup"]


def _key(script) -> tuple:
    attrs = getattr(script, "attributes", None) or {}
    name = getattr(script, "filename", str(script)) or ""      # an inline script: None or "" (both occur)
    return (str(name), tuple(sorted((k, str(v)) for k, v in attrs.items())))


def unique_scripts(scripts: list) -> list:
    """``scripts`` (a page's script entries) with repeats of an identical entry (same file or same
    inline body, same attributes; an inline script's file name may be None or "") removed, the order kept."""
    seen, out = set(), []
    for s in scripts:
        k = _key(s)
        if k not in seen:
            seen.add(k)
            out.append(s)
    return out


def _mend(app, pagename, templatename, context, doctree):
    if "script_files" in context:
        context["script_files"] = unique_scripts(context["script_files"])


def setup(app):
    app.connect("html-page-context", _mend, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
