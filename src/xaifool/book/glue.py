"""The glued values of a built book, saved and compared: what ``{glue}`` put into the prose, figures and
tables of each executed page. A refactoring that must not change the book's numbers saves them
before and after and lists every difference (``python -m xaifool glue save|diff``)."""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

__all__ = ["glue_values", "save", "diff", "diff_text"]

_PREFIX = "application/papermill.record/"


def _value(data: dict) -> str:
    """One glued output as text: its plain-text or Markdown form, or the sha256 of an image."""
    for mime in ("text/plain", "text/markdown", "text/html"):
        if _PREFIX + mime in data and mime != "text/html":
            return "".join(data[_PREFIX + mime])
    for mime in ("image/png", "image/svg+xml", "image/jpeg"):
        if _PREFIX + mime in data:
            blob = "".join(data[_PREFIX + mime]).encode()
            return f"{mime} sha256:{hashlib.sha256(blob).hexdigest()[:16]}"
    if _PREFIX + "text/html" in data:
        return "".join(data[_PREFIX + "text/html"])
    return json.dumps(sorted(data))


def _executed(build: Path) -> dict[str, dict]:
    """{page stem: executed notebook} from the build's jupyter-cache (``python -m xaifool book`` keeps
    every executed page there; myst-nb's own ``jupyter_execute`` copies hold no glue records)."""
    for sub in ("_build/.jupyter_cache_book", ".jupyter_cache_book"):
        folder = build / sub
        if (folder / "global.db").is_file():
            from jupyter_cache import get_cache

            cache = get_cache(str(folder))
            return {Path(r.uri).stem: cache.get_cache_bundle(r.pk).nb for r in cache.list_cache_records()}
    return {}


def glue_values(build) -> dict[str, dict[str, str]]:
    """``{page: {glue name: value}}`` from the executed notebooks of the book built at ``build`` (the
    book's folder or its ``_build``)."""
    build = Path(build)
    books = _executed(build)
    if not books:
        raise ValueError(f"build {str(build)!r} holds no executed pages (looked for _build/.jupyter_cache_book, "
                         "written by `python -m xaifool book`)")
    out: dict[str, dict[str, str]] = {}
    for page, nb in sorted(books.items()):
        values = {}
        for cell in nb.get("cells", []):
            for o in cell.get("outputs", []):
                name = o.get("metadata", {}).get("scrapbook", {}).get("name")
                if name:
                    values[name] = _value(o.get("data", {}))
        out[page] = values
    return out


def save(build, path) -> dict:
    """Write :func:`glue_values` of ``build`` to ``path`` (JSON) and return them."""
    values = glue_values(build)
    Path(path).write_text(json.dumps(values, indent=1, sort_keys=True, ensure_ascii=False) + "\n", "utf8")
    return values


def diff(before: dict, after: dict, ignore: str | None = None) -> list[tuple[str, str, str | None, str | None]]:
    """Every (page, name, value before, value after) that differs, a glue missing on one side included
    (its value None). ``ignore``: a regular expression of names left out (e.g. timings)."""
    skip = re.compile(ignore) if ignore else None
    rows = []
    for page in sorted(set(before) | set(after)):
        a, b = before.get(page, {}), after.get(page, {})
        for name in sorted(set(a) | set(b)):
            if skip and skip.search(name):
                continue
            if a.get(name) != b.get(name):
                rows.append((page, name, a.get(name), b.get(name)))
    return rows


def diff_text(rows, limit: int = 200) -> str:
    """The rows of :func:`diff`, one line each (values cut to ``limit`` characters)."""
    cut = lambda v: "(missing)" if v is None else (v if len(v) <= limit else v[:limit] + "…")
    lines = [f"{page}  {name}:  {cut(a)}  →  {cut(b)}" for page, name, a, b in rows]
    return "\n".join(lines + [f"{len(rows)} glued value(s) differ"])
