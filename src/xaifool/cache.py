"""Content-keyed on-disk cache for expensive artefacts (trained models, attack results).

``cached(name, settings, compute)`` returns ``compute()``'s value, stored at
``<cache_dir>/<name>/<key>.pt`` where ``key`` hashes ``name``, the JSON of ``settings`` and
the source code of the package (every ``.py`` file of ``xaifool``), so a change to the code
that computes an artefact can never be answered with a stale one. Writes go to a temporary file in the same folder and are moved into
place with :func:`os.replace`, so a crash never leaves a half-written entry. Entries are
read with ``torch.load(weights_only=True)``: values must be tensors, numbers, strings,
lists/tuples/dicts of those (a ``state_dict`` qualifies).
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import torch

from . import __version__
from .config import get_config

__all__ = ["code_fingerprint", "cache_key", "cache_path", "cached", "atomic_save"]


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    if isinstance(obj, torch.Tensor):
        # Tensors are keyed by content, so equal data gives equal keys.
        t = obj.detach().cpu().contiguous()
        return f"tensor:{t.dtype}{tuple(t.shape)}:" + hashlib.sha256(t.numpy().tobytes()).hexdigest()
    if isinstance(obj, Path):
        return str(obj)
    raise ValueError(f"settings contain a value of type {type(obj).__name__}; accepted: "
                     "str, int, float, bool, None, list, tuple, dict, Path, torch.Tensor")


@lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """sha256 over the package's Python sources (path and content), computed once per process."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256(__version__.encode())
    for p in sorted(root.rglob("*.py")):
        h.update(str(p.relative_to(root)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def cache_key(name: str, settings: dict) -> str:
    """Hex digest identifying ``(name, settings, package code)``."""
    if not isinstance(name, str) or not name or "/" in name:
        raise ValueError(f"name must be a non-empty string without '/', got {name!r}")
    if not isinstance(settings, dict):
        raise ValueError(f"settings must be a dict, got {type(settings).__name__}")
    blob = json.dumps({"name": name, "settings": _jsonable(settings), "code": code_fingerprint()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def cache_path(name: str, settings: dict, cache_dir: Path | None = None) -> Path:
    root = Path(cache_dir) if cache_dir is not None else get_config().cache_dir
    return root / name / f"{cache_key(name, settings)}.pt"


def atomic_save(obj: Any, path: Path) -> Path:
    """``torch.save`` to ``path`` through a temporary file and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def cached(name: str, settings: dict, compute: Callable[[], Any], *, cache_dir: Path | None = None,
           refresh: bool = False) -> Any:
    """Load ``name``/``settings`` from the cache, or run ``compute()`` and store its value.

    ``refresh=True`` recomputes and overwrites. Set ``XAIFOOL_NO_CACHE=1`` to bypass reads.
    """
    path = cache_path(name, settings, cache_dir)
    if path.exists() and not refresh and os.environ.get("XAIFOOL_NO_CACHE") != "1":
        return torch.load(path, map_location="cpu", weights_only=True)
    value = compute()
    atomic_save(value, path)
    return value
