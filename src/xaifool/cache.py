"""Content-keyed on-disk cache for expensive artefacts (trained models, attack results).

``cached(name, settings, compute, depends=...)`` returns ``compute()``'s value, stored at
``<cache_dir>/<name>/<key>.pt`` where ``key`` hashes ``name``, the JSON of ``settings`` and the
source code the artefact depends on: the package version, the installed versions of the libraries
that compute (:data:`LIBRARIES`: an upgraded ``shap`` or ``torch`` may change a result, so it is
never answered with an artefact of the old one) and the ``.py`` files of the modules
named in ``depends`` *and of every package module they import*, found by reading their
``import`` statements with :mod:`ast` (function-level imports included), so a change to the code
that computes an artefact can never be answered with a stale one, while an edit elsewhere (a
figure in ``plot.py``, a chapter's helper) keeps a fine-tuned model that took a GPU hour.

``depends`` defaults to every module except the presentation-only ones
(:data:`PRESENTATION_MODULES`: ``plot``, ``__main__``, ``attacks.summary`` and the book layer
``xaifool.book``), which the import walk never enters either:
they draw and print but compute nothing that is cached. Callers pass narrower roots, e.g.
``depends=("xaifool.models", "xaifool.data", "xaifool.training")`` for a trained tabular model.

Writes go to a temporary file in the same folder and are moved into place with
:func:`os.replace`, so a crash never leaves a half-written entry. Entries are read with
``torch.load(weights_only=True)``: values must be tensors, numbers, strings, lists/tuples/dicts
of those (a ``state_dict`` qualifies).
"""
from __future__ import annotations

import ast
import hashlib
import json
import os
import tempfile
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import torch

from . import __version__
from .config import get_config
from .validate import one_or_many

__all__ = ["PRESENTATION_MODULES", "PRESENTATION_PACKAGES", "is_presentation", "package_modules", "default_depends", "dependency_closure", "code_fingerprint",
           "clear_fingerprints", "cache_key", "cache_path", "cached", "atomic_save", "atomic_write_text",
           "module_digest", "cached_call", "LIBRARIES", "library_versions"]


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


_PLAIN = (int, float, str, bool, type(None))


def _plain(value) -> bool:
    return isinstance(value, _PLAIN) or (isinstance(value, (tuple, list)) and all(_plain(v) for v in value))


def module_digest(module: torch.nn.Module) -> str:
    """sha256 of what a network computes with: every submodule's class, train/eval mode,
    ``extra_repr()`` (strides, padding, eps, …), plain public attributes (e.g. a Softplus β changed
    in place, the Grad-CAM layer's name) and number of hooks; every parameter and buffer, persistent
    or not (name, dtype, shape, strides and values). Two networks with equal digests give the same
    outputs on the same device; changing one weight or setting changes it."""
    if not isinstance(module, torch.nn.Module):
        raise ValueError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    h = hashlib.sha256()

    def tensor(name, t):
        t = t.detach()
        h.update(f"{name}:{t.dtype}{tuple(t.shape)}{tuple(t.stride())};".encode())
        h.update(t.cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())

    for name, sub in module.named_modules():
        attrs = sorted((k, repr(v)) for k, v in vars(sub).items() if not k.startswith("_") and _plain(v))
        hooks = [len(getattr(sub, a, {})) for a in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks",
                                                      "_backward_pre_hooks")]
        h.update(f"{name}:{type(sub).__qualname__}:{sub.training}:{sub.extra_repr()}:{attrs}:{hooks};".encode())
        for b in sorted(getattr(sub, "_non_persistent_buffers_set", ())):
            if sub._buffers.get(b) is not None:
                tensor(f"{name}.{b} (not persistent)", sub._buffers[b])
    for name, t in module.state_dict().items():
        tensor(name, t)
    return h.hexdigest()


#: Modules that only draw or print: no cached value is computed by them, so the automatic
#: closure of ``depends`` never walks into them (name one explicitly to depend on it).
PRESENTATION_MODULES = ("xaifool.plot", "xaifool.__main__", "xaifool.attacks.summary")
#: Packages whose every module is presentation: the book layer (chapter setups, tables, prose) calls
#: cached computations and is never called by them.
PRESENTATION_PACKAGES = ("xaifool.book",)


def is_presentation(module: str) -> bool:
    """Is ``module`` (a dotted name) one that only draws, tabulates or writes prose (no cached value depends on it)?"""
    return module in PRESENTATION_MODULES or any(module == p or module.startswith(p + ".") for p in PRESENTATION_PACKAGES)

_PACKAGE = __name__.rpartition(".")[0]  # "xaifool"
_ROOT = Path(__file__).resolve().parent


def _read_source(relpath: str) -> bytes:
    """The bytes of the package file ``relpath`` (``"attacks/input.py"``); tests swap this out."""
    return (_ROOT / relpath).read_bytes()


@lru_cache(maxsize=1)
def package_modules() -> dict[str, str]:
    """Every module of the package: dotted name → source path relative to the package folder."""
    out = {}
    for p in sorted(_ROOT.rglob("*.py")):
        rel = p.relative_to(_ROOT)
        parts = rel.with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join((_PACKAGE, *parts))] = rel.as_posix()
    return out


@lru_cache(maxsize=1)
def _sources() -> dict[str, bytes]:
    """Every package file's bytes, read together once per process (a snapshot of the code in use)."""
    return {rel: _read_source(rel) for rel in package_modules().values()}


@lru_cache(maxsize=None)
def _direct_imports(module: str) -> frozenset[str]:
    """Modules of the package that ``module`` imports anywhere in its source (function bodies too).

    Parsed with :mod:`ast`, so nothing is imported; a file that does not parse (mid-edit) is
    taken to import every module but the presentation ones. Importing
    ``a.b.c`` runs ``a`` and ``a.b`` as well, so parent packages count too.
    """
    modules = package_modules()
    rel = modules[module]
    try:
        tree = ast.parse(_sources()[rel], filename=rel)
    except (SyntaxError, ValueError):  # a file mid-edit: assume it may import anything that computes
        return frozenset(m for m in modules if m != module and not is_presentation(m))
    package = module if rel.endswith("__init__.py") else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                base = ".".join(base + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # ``from . import explain``
    found.add(module.rpartition(".")[0])  # importing a module runs its parent packages
    out = set()
    for name in found:
        parts = name.split(".")
        out.update(p for p in (".".join(parts[:i]) for i in range(1, len(parts) + 1)) if p in modules)
    out.discard(module)
    return frozenset(out)


def _resolve(depends) -> tuple[str, ...]:
    """Full module names of ``depends`` (names, short names such as ``"models"``, or module objects)."""
    modules = package_modules()
    items = one_or_many(depends, "depends", (str, ModuleType),
                        f"None or module names / modules of {_PACKAGE} (None: every non-presentation module)")
    names, unknown = [], []
    for item in items:
        name = item.__name__ if isinstance(item, ModuleType) else item
        if isinstance(name, str) and name not in modules and f"{_PACKAGE}.{name}" in modules:
            name = f"{_PACKAGE}.{name}"
        (names if isinstance(name, str) and name in modules else unknown).append(name)
    if unknown:
        raise ValueError(f"depends names unknown module(s) {unknown}; accepted: modules of {_PACKAGE}: "
                         f"{sorted(modules)}")
    return tuple(sorted(set(names)))


def default_depends() -> tuple[str, ...]:
    """Every module of the package except :data:`PRESENTATION_MODULES`: an artefact that does not say
    what it depends on is keyed by all the code that could compute it."""
    return tuple(m for m in package_modules() if not is_presentation(m))


def dependency_closure(depends=None) -> tuple[str, ...]:
    """``depends`` (default :func:`default_depends`) plus every package module they import, transitively.

    The walk follows ``import`` statements anywhere in a module's source (function-level imports
    included) but does not enter :data:`PRESENTATION_MODULES` unless they are named in ``depends``.
    """
    roots = _resolve(default_depends() if depends is None else depends)
    return _closure(roots)


@lru_cache(maxsize=None)
def _closure(roots: tuple[str, ...]) -> tuple[str, ...]:
    seen, todo = set(roots), list(roots)
    while todo:
        for dep in _direct_imports(todo.pop()):
            if dep not in seen and not is_presentation(dep):
                seen.add(dep)
                todo.append(dep)
    return tuple(sorted(seen))


def code_fingerprint(depends=None) -> str:
    """sha256 over the package version, :func:`library_versions` and the sources of
    :func:`dependency_closure` ``(depends)``.

    Files are taken in sorted order, each as its path relative to the package and its bytes.
    The package's sources are read once per process, all together (restart the kernel after
    editing the package, or call :func:`clear_fingerprints`).
    """
    return _fingerprint(dependency_closure(depends))


#: Distributions whose installed version is part of every key: the libraries that compute the
#: book's artefacts (a missing one counts as "absent").
LIBRARIES = ("torch", "torchvision", "numpy", "scipy", "scikit-learn", "scikit-image", "captum", "zennit",
             "shap", "lime")


@lru_cache(maxsize=None)
def library_versions() -> tuple[tuple[str, str], ...]:
    """((distribution, installed version), …) of :data:`LIBRARIES`, read from the installed metadata."""
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for name in LIBRARIES:
        if name == "torch":   # with its build (e.g. +cu130, +cpu), which the metadata leaves out
            out.append((name, torch.__version__))
            continue
        try:
            out.append((name, version(name)))
        except PackageNotFoundError:
            out.append((name, "absent"))
    return tuple(out)


@lru_cache(maxsize=None)
def _fingerprint(closure: tuple[str, ...]) -> str:
    modules = package_modules()
    h = hashlib.sha256(__version__.encode())
    h.update(json.dumps(library_versions()).encode())
    sources = _sources()
    for rel in sorted(modules[m] for m in closure):
        for part in (rel.encode(), sources[rel]):
            h.update(len(part).to_bytes(8, "little"))
            h.update(part)
    return h.hexdigest()


def clear_fingerprints() -> None:
    """Forget the sources read so far (they are read once per process otherwise)."""
    for f in (package_modules, _sources, _direct_imports, _closure, _fingerprint, library_versions):
        f.cache_clear()


def cache_key(name: str, settings: dict, depends=None) -> str:
    """Hex digest identifying ``(name, settings, source of the modules in depends' closure)``."""
    if not isinstance(name, str) or not name or "/" in name:
        raise ValueError(f"name must be a non-empty string without '/', got {name!r}")
    if not isinstance(settings, dict):
        raise ValueError(f"settings must be a dict, got {type(settings).__name__}")
    blob = json.dumps({"name": name, "settings": _jsonable(settings), "code": code_fingerprint(depends)},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def cache_path(name: str, settings: dict, cache_dir: Path | None = None, depends=None) -> Path:
    root = Path(cache_dir) if cache_dir is not None else get_config().cache_dir
    return root / name / f"{cache_key(name, settings, depends)}.pt"


def _atomic_write(path: Path, write: Callable) -> Path:
    """Call ``write(binary file)`` on a temporary file next to ``path``, then rename it into place:
    a crash leaves either the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_save(obj: Any, path: Path) -> Path:
    """``torch.save`` to ``path`` through a temporary file and an atomic rename."""
    return _atomic_write(path, lambda fh: torch.save(obj, fh))


def atomic_write_text(path: Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file and an atomic rename (JSON records)."""
    return _atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))


def cached(name: str, settings: dict, compute: Callable[[], Any], *, depends=None,
           cache_dir: Path | None = None, refresh: bool = False) -> Any:
    """Load ``name``/``settings`` from the cache, or run ``compute()`` and store its value.

    depends: the modules whose source the value depends on (names such as
             ``"xaifool.attacks.input"`` or module objects); the modules they import are added
             (:func:`dependency_closure`). Default: every module but :data:`PRESENTATION_MODULES`.
    ``refresh=True`` recomputes and overwrites. ``XAIFOOL_NO_CACHE=1`` recomputes and leaves the
    cache alone — neither read nor written (the tests set it: a value they compute, e.g. with
    another thread count, must not replace the one the book computed under the same key).
    """
    path = cache_path(name, settings, cache_dir, depends)
    if os.environ.get("XAIFOOL_NO_CACHE") == "1":
        return compute()
    if path.exists() and not refresh:
        return torch.load(path, map_location="cpu", weights_only=True)
    value = compute()
    atomic_save(value, path)
    return value


def _call_settings(value: Any) -> Any:
    """An argument as cache settings: networks by :func:`module_digest` and device, containers item by item."""
    if isinstance(value, torch.nn.Module):
        p = next(iter(value.parameters()), None)
        return {"network": module_digest(value), "device": str(p.device) if p is not None else "cpu"}
    if isinstance(value, dict):
        return {str(k): _call_settings(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_call_settings(v) for v in value]
    return value


def cached_call(name: str, fn: Callable, *args, depends=None, encode: Callable | None = None,
                decode: Callable | None = None, **kwargs) -> Any:
    """``fn(*args, **kwargs)`` through :func:`cached`, keyed by everything the call can depend on:
    the function's name, the arguments (networks by :func:`module_digest`, tensors by value), the
    active profile (functions read their defaults from it: sizes, seed) and the device, and the
    source of ``depends`` (default: ``fn``'s module and what it imports).

    encode / decode: turn the value into something ``torch.load(weights_only=True)`` reads (dicts,
    lists, tensors, numbers, strings) and back; default: stored as it is.
    """
    if not callable(fn):
        raise ValueError(f"fn must be callable, got {type(fn).__name__}")
    cfg = get_config()
    settings = {"function": f"{fn.__module__}.{fn.__qualname__}", "args": _call_settings(args),
                "kwargs": _call_settings(kwargs), "profile": asdict(cfg.profile), "device": str(cfg.device)}
    value = cached(name, settings, lambda: (encode or (lambda v: v))(fn(*args, **kwargs)),
                   depends=(fn.__module__,) if depends is None else depends)
    return decode(value) if decode is not None else value
