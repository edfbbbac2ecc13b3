"""The registries' common part: a dict of entries, keyed by an attribute of each entry, with the one way
to add an entry (``register``), remove it (``unregister``), add some for a ``with`` block (``registered``)
and look one up with a clear error (``entry``). The interpreters, the model attacks and the base models
are such registries."""
from __future__ import annotations

import contextlib

from .validate import check_choice

__all__ = ["Registry"]


class Registry(dict):
    """``{key: entry}`` of one kind of entry (``entry_type``), keyed by the entry's ``key`` attribute."""

    def __init__(self, kind: str, entry_type: type, entries=(), *, key: str = "name"):
        super().__init__()
        self.kind, self.entry_type, self.key = kind, entry_type, key
        for e in entries:
            self.register(e)
        self._builtin = dict(self)   # the entries the package defines (their code is in every cache key)

    def register(self, entry, *, replace: bool = False):
        """Add ``entry`` (``replace=True`` to overwrite an entry of the same key); returns it."""
        if not isinstance(entry, self.entry_type):
            raise ValueError(f"entry must be a {self.entry_type.__name__}, got {type(entry).__name__}")
        name = getattr(entry, self.key)
        if name in self and not replace:
            raise ValueError(f"entry: a {self.kind} named {name!r} is registered already (replace=True to overwrite)")
        self[name] = entry
        return entry

    def unregister(self, name):
        """Remove the entry ``name`` and return it."""
        return self.pop(check_choice(name, "name", tuple(self)))

    @contextlib.contextmanager
    def registered(self, *entries):
        """The ``entries`` registered inside the block, removed after it."""
        added = []
        try:
            for e in entries:
                added.append(getattr(self.register(e), self.key))
            yield entries
        finally:
            for name in added:
                self.pop(name, None)

    def is_builtin(self, name) -> bool:
        """Is ``name`` one of the package's own entries, unchanged? An artefact computed with any other
        entry (registered at run time, or replacing one) must not be cached: the cache keys hold the
        package's code, not a caller's."""
        return name in self._builtin and self.get(name) is self._builtin[name]

    def entry(self, name, argument: str):
        """The entry ``name``; a ValueError naming ``argument`` and the registered keys otherwise."""
        return self[check_choice(name, argument, tuple(self))]
