"""Transferability of input manipulations (chapter 04): does an input crafted against one
interpreter, one image or one network also move another? The attacks it reads are cached
(:func:`xaifool.attacks.input.cached_attack`), and so are the maps of :func:`to_interpreters` on request."""
from __future__ import annotations

import torch
import torch.nn as nn

from .. import explain as E
from .. import metrics as M
from ..cache import cached_call
from ..models import device_of
from ..validate import check_int
from .input import AttackResult
from .objectives import default_k

__all__ = ["to_interpreters", "moved_maps", "to_inputs", "to_models"]


def to_interpreters(model: nn.Module, result: AttackResult, methods, *, k: int | None = None,
                    options: dict | None = None, cache: bool = False) -> dict[str, dict[str, torch.Tensor]]:
    """Transferability: how much an attack on ``result.method`` moves *other* interpreters.

    Explains ``result.label`` at ``result.x`` and ``result.x_adv`` with every interpreter in
    ``methods`` (any image method of :data:`xaifool.explain.METHODS`, LRP included), batched,
    on the original ``model``; returns {method: {"topk", "spearman": (B,)}}.
    methods: one name or a sequence of names; options: {method: {option: value}} per-interpreter options.
    cache:   take each method's numbers from the on-disk cache when the same network, images and
             settings were measured before (interpreters registered at run time are never cached)
    """
    options = options or {}
    methods = E.check_methods(methods)
    k = int(result.settings.get("k") or default_k(result.x.shape[-2:])) if k is None else int(k)
    out = {}
    for m in methods:
        args = (model, result.x, result.x_adv, result.label, m, k, options.get(m, {}))
        out[m] = cached_call("transfer-interpreters", moved_maps, *args) if cache and E.METHODS.is_builtin(m) \
            else moved_maps(*args)
    return out


def moved_maps(model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, label: torch.Tensor, method: str, k: int,
               options: dict) -> dict[str, torch.Tensor]:
    """Top-k intersection and Spearman ρ between ``method``'s maps of ``label`` at ``x`` and at ``x_adv``, (B,) each."""
    dev = device_of(model)
    label = label.to(dev)
    # x and x_adv in two calls of the same shape, so that SmoothGrad draws the same noise for both
    a = E.explain(model, x.to(dev), label, method, **options).detach().cpu()
    b = E.explain(model, x_adv.to(dev), label, method, **options).detach().cpu()
    return {"topk": M.topk_intersection(a, b, k), "spearman": M.spearman(a, b)}


def _moved(model, x, x_new, method, k, options) -> dict[str, torch.Tensor]:
    """Explain ``model``'s prediction at ``x`` (at ``x`` and ``x_new``): top-k, ρ and label kept, (B,) each."""
    dev = device_of(model)
    with torch.no_grad():
        pred = model(x.to(dev)).argmax(1)
        pred_new = model(x_new.to(dev)).argmax(1)
    a = E.explain(model, x.to(dev), pred, method, **options).detach().cpu()
    b = E.explain(model, x_new.to(dev), pred, method, **options).detach().cpu()
    return {"topk": M.topk_intersection(a, b, k), "spearman": M.spearman(a, b), "label_kept": (pred == pred_new).cpu()}


def to_inputs(model: nn.Module, result: AttackResult, *, shift: int = 1, k: int | None = None,
                       options: dict | None = None) -> dict[str, torch.Tensor]:
    """Transfer across inputs: the perturbation found for image i applied to image j = (i + shift) mod B.

    Image j becomes ``clip(x_j + δ_i, 0, 1)`` with ``δ_i = result.x_adv[i] − result.x[i]``, so the
    budget ‖·‖∞ ≤ ε still holds; both are explained with ``result.method`` on ``model``, for the
    class ``model`` predicts at ``x_j``. ``shift=0`` gives every image its own perturbation back.
    shift:   int in 0..B−1; k: top-k size (default: the attack's); options: interpreter options
    returns: {"topk", "spearman", "label_kept"}: (B,) each, indexed by the image j that received a
             foreign perturbation
    """
    if not isinstance(result, AttackResult):
        raise ValueError(f"result must be an AttackResult, got {type(result).__name__}")
    b = len(result)
    shift = check_int(shift, "shift", 0, b - 1)
    k = int(result.settings.get("k") or default_k(result.x.shape[-2:])) if k is None else check_int(k, "k", 1)
    delta = (result.x_adv - result.x).roll(shift, 0)  # row j holds δ_{j − shift}
    return _moved(model, result.x, (result.x + delta).clamp(0, 1), result.method, k, dict(options or {}))


def to_models(result: AttackResult, models: dict, *, k: int | None = None,
                       options: dict | None = None) -> dict[str, dict[str, torch.Tensor]]:
    """Transfer across models: the manipulated inputs of ``result``, crafted on one network,
    explained by others (e.g. deeper ResNets trained on the same data) with ``result.method``.

    models:  {name: network}; each explains the class it predicts itself at ``result.x``
    returns: {name: {"topk", "spearman", "label_kept"}}: (B,) each
    """
    if not isinstance(result, AttackResult):
        raise ValueError(f"result must be an AttackResult, got {type(result).__name__}")
    if not isinstance(models, dict) or not models or not all(isinstance(m, nn.Module) for m in models.values()):
        raise ValueError("models must be a non-empty dict {name: torch.nn.Module}")
    k = int(result.settings.get("k") or default_k(result.x.shape[-2:])) if k is None else check_int(k, "k", 1)
    return {name: _moved(m, result.x, result.x_adv, result.method, k, dict(options or {})) for name, m in models.items()}
