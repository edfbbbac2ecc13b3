"""Detector scores for manipulated inputs and manipulated models (chapter 05); higher = more suspicious.

Inputs:
``noise_instability``        1 − mean Spearman ρ between an interpreter's map at x and at x + η, over
                             random draws η ~ N(0, σ²): an input pushed to where the map is fragile
                             shows it under small random noise too
``interpreter_disagreement`` 1 − Spearman ρ between two interpreters' maps of the same image: an attack
                             aimed at one interpreter moves it away from the others
Models:
``reference_disagreement``   1 − Spearman ρ between a model's map and a trusted reference model's map
                             of the same clean image and class (Heo et al.'s manipulations keep the
                             predictions but move the maps on every input)

Score them with :func:`xaifool.detection.roc`. Each function is batched and cached.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from . import explain as E
from . import metrics as M
from .cache import cached_call
from .config import get_config
from .models import device_of
from .validate import check_images, check_int, check_labels, check_module, check_positive

__all__ = ["noise_instability", "interpreter_disagreement", "reference_disagreement"]


def _noise_instability(model, x, target, method, sigma, draws, seed, options):
    dev = device_of(model)
    xd = x.to(dev)
    with torch.no_grad():
        label = model(xd).argmax(1) if target is None else target.to(dev)
    h = E.explain(model, xd, label, method, **options).cpu()
    g = torch.Generator().manual_seed(seed)
    rho = []
    for _ in range(draws):
        noisy = (x + sigma * torch.randn(x.shape, generator=g)).clamp(0, 1)
        rho.append(M.spearman(h, E.explain(model, noisy.to(dev), label, method, **options).cpu()))
    return (1 - torch.stack(rho).mean(0)).double()


def noise_instability(model: nn.Module, x: torch.Tensor, method: str = "gradient", *, target=None,
                      sigma: float = 8 / 255, draws: int = 4, seed: int | None = None,
                      options: dict | None = None) -> torch.Tensor:
    """Per image 1 − mean Spearman ρ between ``method``'s map at x and at ``draws`` noisy copies (cached).

    model: network on images in [0, 1]; x: (B, C, H, W) images in [0, 1]; target: (B,) classes
           (default: the predicted ones, at x); sigma: noise std (> 0); returns (B,) float64 in [0, 2]
    """
    model = check_module(model)
    x = check_images(x).cpu()
    target = None if target is None else check_labels(target, x.shape[0], "target").cpu()
    E.check_methods(method)
    args = (model, x, target, method, check_positive(sigma, "sigma"), check_int(draws, "draws", 1),
            get_config().seed if seed is None else int(seed), dict(options or {}))
    return cached_call("noise-instability", _noise_instability, *args) if E.METHODS.is_builtin(method) \
        else _noise_instability(*args)


def _disagreement(model_a, model_b, x, target, a, b, options):
    dev_a, dev_b = device_of(model_a), device_of(model_b)
    with torch.no_grad():
        label = model_a(x.to(dev_a)).argmax(1).cpu() if target is None else target
    ha = E.explain(model_a, x.to(dev_a), label.to(dev_a), a, **options.get(a, {})).cpu()
    hb = E.explain(model_b, x.to(dev_b), label.to(dev_b), b, **options.get(b, {})).cpu()
    return (1 - M.spearman(ha, hb)).double()


def interpreter_disagreement(model: nn.Module, x: torch.Tensor, a: str = "gradient", b: str = "smoothgrad", *,
                             target=None, options: dict | None = None) -> torch.Tensor:
    """Per image 1 − Spearman ρ between interpreters ``a`` and ``b`` on the same image and class (cached).

    options: {method: {option: value}}; returns (B,) float64 in [0, 2]
    """
    model = check_module(model)
    x = check_images(x).cpu()
    target = None if target is None else check_labels(target, x.shape[0], "target").cpu()
    E.check_methods([a, b])
    args = (model, model, x, target, a, b, dict(options or {}))
    if E.METHODS.is_builtin(a) and E.METHODS.is_builtin(b):
        return cached_call("interpreter-disagreement", _disagreement, *args)
    return _disagreement(*args)


def reference_disagreement(model: nn.Module, reference: nn.Module, x: torch.Tensor, method: str = "gradcam", *,
                           target=None, options: dict | None = None) -> torch.Tensor:
    """Per image 1 − Spearman ρ between ``model``'s and the trusted ``reference``'s maps of the same class
    (default: the reference's prediction) on clean images (cached). returns (B,) float64 in [0, 2]"""
    model, reference = check_module(model), check_module(reference, "reference")
    x = check_images(x).cpu()
    target = None if target is None else check_labels(target, x.shape[0], "target").cpu()
    E.check_methods(method)
    args = (reference, model, x, target, method, method, {method: dict(options or {})})
    if E.METHODS.is_builtin(method):
        return cached_call("reference-disagreement", _disagreement, *args)
    return _disagreement(*args)
