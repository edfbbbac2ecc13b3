"""The data page's table (``book/data.md``): every file of the data registry, where this build found
it, and where it comes from — the origin as a short link (the repository), so the table fits the page."""
from __future__ import annotations

import re
from html import escape
from urllib.parse import urlsplit

__all__ = ["origin_link", "data_files"]


def origin_link(url: str | None, hint: str | None = None) -> str:
    """HTML for a file's origin: ``url`` as a link whose text names the site and repository
    (``github.com/owner/repo``), else the first clause of the ``hint`` (how a derived file is
    made), short: no asides in parentheses, commit hashes cut to 7 digits, repositories linked."""
    if url:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"url must be an http(s) address, got {url!r}")
        path = [p for p in parts.path.split("/") if p]
        host = parts.netloc.replace("raw.githubusercontent.com", "github.com")
        text = "/".join([host] + path[:2])
        return f'<a href="{escape(url, quote=True)}">{escape(text)}</a>'
    if not hint:
        return "–"
    # the hint's first clause, without asides in parentheses or instructions after "; ", a
    # commit hash cut to 7 digits, and a repository it names as a link
    text = re.sub(r"\s*\([^()]*\)", "", hint).split("; ")[0]
    text = re.sub(r"\b([0-9a-f]{7})[0-9a-f]{33}\b", r"\1", text)
    return re.sub(r"github\.com/[\w.-]+/[\w-]+(?:\.[\w-]+)*",
                  lambda m: f'<a href="https://{m.group(0)}">{m.group(0)}</a>', escape(text))


def data_files():
    """A styled table (pandas Styler): one row per registered file, with its checksum's first 8
    hex digits, its origin (:func:`origin_link`) and where this build found it ("found")."""
    import pandas as pd

    from .. import data
    from ..config import get_config

    dirs = [str(d) for d in get_config().data_dirs]
    rows = []
    for name, entry in data.REGISTRY.items():
        try:
            path = str(data.fetch(name, download=False))
            where = "mirror" if any(path.startswith(d) for d in dirs) else "download cache"
        except data.DataFileError:
            where = "not yet (made or downloaded on first use)"
        rows.append({"file": name, "sha256 (start)": entry.sha256[0][:8],
                     "origin": origin_link(entry.url, entry.hint), "found": where})
    n = len(data.imagenet_index())
    rows.append({"file": f"imagenet-samples/*.JPEG ({n} files)", "sha256 (start)": "per file",
                 "origin": origin_link("https://github.com/EliSchwartz/imagenet-sample-images")
                 + " (mirror: resized to a short side of 256)",
                 "found": "mirror" if dirs else "downloaded on use"})
    frame = pd.DataFrame(rows)
    return (frame.style.hide(axis="index")
            .set_table_styles([{"selector": "td", "props": "font-size: 0.85em"}])
            .set_properties(subset=["origin"], **{"overflow-wrap": "anywhere"}))
