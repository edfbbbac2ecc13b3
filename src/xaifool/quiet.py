"""Importing the libraries that warn at import time (shap, lime, captum's internals) quietly."""
from __future__ import annotations

import importlib
import warnings

__all__ = ["import_quietly"]


def import_quietly(name: str):
    """Import ``name`` (``shap``, ``lime.lime_image``, …) without its import-time warnings (tqdm's IProgress notice)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return importlib.import_module(name)
