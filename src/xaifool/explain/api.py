"""The explain API: :func:`explain` (checked, eval mode), :func:`heatmap` (the loops' path),
:func:`attribute` (raw), :func:`postprocess` and :func:`explain_many`, over the registry of
:mod:`xaifool.explain.registry`. See the package docstring for the post-processing."""
from __future__ import annotations

import contextlib
import functools
import inspect

import torch
import torch.nn as nn

from .registry import METHODS, Interpreter, interpreter, names

__all__ = ["explain", "heatmap", "heatmap_and_logits", "attribute", "postprocess", "explain_many", "eval_mode", "method_options",
           "CONTEXT_OPTIONS", "REDUCTIONS", "NORMALIZATIONS"]

#: Data-set context that every method accepts; methods that do not need it ignore it, so one
#: call site can loop over all methods of a table.
CONTEXT_OPTIONS = frozenset({"background", "feature_names", "categorical"})
REDUCTIONS = ("abs_sum", "sum")
NORMALIZATIONS = ("sum", "max", None)


def _check_call(method, x, create_graph) -> Interpreter:
    """The checks that need no forward pass: method name, x's type and shape, modality, create_graph."""
    interpreter(method)
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise ValueError("x must be a floating-point torch.Tensor of shape (B, C, H, W) or (B, d)")
    if x.dim() not in (2, 4) or x.shape[0] == 0:
        raise ValueError(f"x must have shape (B, C, H, W) for images or (B, d) for tables, got {tuple(x.shape)}")
    modality = "image" if x.dim() == 4 else "table"
    if modality not in METHODS[method].modalities:
        raise ValueError(f"method {method!r} does not apply to {modality}s; accepted for {modality}s: "
                         f"{names(modality=modality)}")
    if create_graph and not METHODS[method].differentiable:
        raise ValueError(f"create_graph=True needs a differentiable method; method {method!r} is not. "
                         f"Differentiable methods: {names(differentiable=True)}")
    return METHODS[method]


def _check_postprocess(reduce, normalize) -> None:
    if reduce not in REDUCTIONS:
        raise ValueError(f"reduce must be one of {REDUCTIONS}, got {reduce!r}")
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")


@functools.lru_cache(maxsize=None)
def _accepted_options(fn) -> frozenset:
    return frozenset(inspect.signature(fn).parameters) - {"model", "x", "target", "create_graph"}


def method_options(method: str, options: dict) -> dict:
    """``options`` reduced to those ``method`` takes; a ValueError for any option no method takes."""
    accepted = _accepted_options(interpreter(method).fn)
    unknown = sorted(set(options) - accepted - CONTEXT_OPTIONS)
    if unknown:
        raise ValueError(f"option(s) {unknown} are not accepted by method {method!r}; accepted: "
                         f"{sorted(accepted)} (and {sorted(CONTEXT_OPTIONS)}, which every method takes)")
    return {k: v for k, v in options.items() if k in accepted}


@contextlib.contextmanager
def eval_mode(model: nn.Module):
    """Every module of ``model`` in eval mode inside the block, each ``training`` flag restored after."""
    modes = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        yield model
    finally:
        for m, mode in modes:
            m.training = mode


def _validate(model, x, target, method, create_graph):
    """explain()'s checks: those of :func:`_check_call`, then one no-grad forward pass (call it with
    the model in eval mode, see :func:`eval_mode`) for the output shape and the target classes."""
    _check_call(method, x, create_graph)
    dev = next(model.parameters()).device
    x = x.to(dev)
    with torch.no_grad():
        logits = model(x)
    if logits.dim() != 2 or logits.shape[0] != x.shape[0]:
        raise ValueError(f"model must map (B, ...) to logits (B, K); got output shape {tuple(logits.shape)}")
    k = logits.shape[1]
    if target is None:
        t = logits.argmax(1)
    else:
        t = torch.as_tensor(target, dtype=torch.long, device=dev).reshape(-1)
        if t.numel() == 1:
            t = t.expand(x.shape[0])
        if t.numel() != x.shape[0]:
            raise ValueError(f"target must be an int or have one entry per sample ({x.shape[0]}), got {t.numel()}")
        if (t < 0).any() or (t >= k).any():
            raise ValueError(f"target must be a class index in 0..{k - 1}, got {t.tolist()}")
    return x, t.contiguous()


def _attribution(model, x, target, method, create_graph, options):
    """The raw attribution, by the entry's implementation for ``create_graph`` (LRP with a graph: the
    functional :func:`xaifool.explain.lrp_functional.relevance`)."""
    return METHODS[method].implementation(create_graph)(model, x, target, create_graph=create_graph, **options)


def postprocess(a: torch.Tensor, image_shape=None, reduce: str = "abs_sum", normalize: str | None = "sum"):
    """Channel reduction and normalisation shared by every method (see module docstring).

    a: (B, C, H, W) or (B, d) raw attribution → (B, H, W) or (B, d) heatmap
    """
    _check_postprocess(reduce, normalize)
    if a.dim() == 4:
        h = a.abs().sum(1) if reduce == "abs_sum" else a.sum(1)
    else:
        h = a.abs() if reduce == "abs_sum" else a
    if normalize is not None:
        dims = tuple(range(1, h.dim()))
        scale = h.abs().sum(dims, keepdim=True) if normalize == "sum" else h.abs().amax(dims, keepdim=True)
        h = h / scale.clamp_min(1e-12)
    return h


def heatmap(model: nn.Module, x: torch.Tensor, target: torch.Tensor, method: str, *, create_graph: bool = False,
            reduce: str = "abs_sum", normalize: str | None = "sum", **options) -> torch.Tensor:
    """Heatmaps without a validation forward pass: the path attacks, fine-tuning and sanity checks call.

    model:        nn.Module mapping x to logits (B, K), used in the mode it is in (train mode: batch
                  statistics, and the method's own forward passes update batch-norm running stats)
    x:            (B, C, H, W) images or (B, d) table rows, on the model's device
    target:       (B,) long tensor of class indices in 0..K−1 (not range-checked here)
    method:       a registered interpreter (:data:`xaifool.explain.registry.METHODS`)
    create_graph: keep the graph: the map is differentiable w.r.t. ``x`` and the model's parameters
                  (differentiable interpreters; LRP then runs :func:`xaifool.explain.lrp_functional.relevance`)
    reduce, normalize: post-processing, see the module docstring (the same as :func:`explain`)
    options:      method options (n_samples, n_steps, baseline, layer, composite, epsilon, seed, …)
    returns:      (B, H, W) for images, (B, d) for tables; detached unless ``create_graph``
    """
    _check_call(method, x, create_graph)
    if not isinstance(target, torch.Tensor) or target.dtype != torch.long or tuple(target.shape) != (x.shape[0],):
        got = (f"{target.dtype} tensor of shape {tuple(target.shape)}" if isinstance(target, torch.Tensor)
               else type(target).__name__)
        raise ValueError(f"target must be a torch.long tensor of shape ({x.shape[0]},) (one class per sample; "
                         f"explain() also takes None or an int), got {got}")
    _check_postprocess(reduce, normalize)
    a = _attribution(model, x, target, method, create_graph, method_options(method, options))
    if not create_graph:
        a = a.detach()
    return postprocess(a, reduce=reduce, normalize=normalize)


def attribute(model: nn.Module, x: torch.Tensor, target=None, method: str = "gradient", *,
              create_graph: bool = False, **options) -> torch.Tensor:
    """Raw attribution of ``method`` before post-processing: same shape as ``x``
    (Grad-CAM and superpixel methods: (B, 1, H, W)). Validated and run in eval mode like :func:`explain`."""
    with eval_mode(model):
        x, t = _validate(model, x, target, method, create_graph)
        return _attribution(model, x, t, method, create_graph, method_options(method, options))


def explain(model: nn.Module, x: torch.Tensor, target=None, method: str = "gradient", *,
            create_graph: bool = False, reduce: str = "abs_sum", normalize: str | None = "sum",
            **options) -> torch.Tensor:
    """Heatmaps of ``model`` at ``x`` for class ``target``, with every argument checked.

    The model runs in eval mode for the call (each module's ``training`` flag is restored after), so
    batch-norm statistics never move; loops that need no checks call :func:`heatmap`.

    model:        nn.Module mapping x to logits (B, K)
    x:            (B, C, H, W) images in [0, 1] or (B, d) table rows
    target:       None (predicted class), an int, or (B,) class indices in 0..K−1
    method:       a registered interpreter (:data:`xaifool.explain.registry.METHODS`)
    create_graph: keep the graph so the heatmap can be differentiated (differentiable interpreters)
    reduce, normalize: post-processing, see module docstring
    options:      method options (n_samples, n_steps, baseline, layer, composite, background, seed, …)
    returns:      (B, H, W) for images, (B, d) for tables; on the model's device
    """
    with eval_mode(model):
        x, t = _validate(model, x, target, method, create_graph)
        return heatmap(model, x, t, method, create_graph=create_graph, reduce=reduce, normalize=normalize,
                       **options)


def explain_many(model: nn.Module, x: torch.Tensor, methods, target=None, *, options: dict | None = None,
                 cache: bool = False, **common) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """Run several methods on the same batch.

    methods: iterable of method names
    options: {method: {option: value}} per-method options
    cache:   take the maps (and the seconds measured when they were computed) from the on-disk
             cache when the same network, images and settings were explained before
             (:func:`xaifool.cache.cached_call`)
    common:  options for every method (``reduce``, ``normalize``, ``background``, …)
    returns: ({method: heatmaps on CPU}, {method: wall-clock seconds per sample})
    """
    import time

    options = options or {}
    methods = list(methods)
    unknown = sorted(set(options) - set(methods))
    if unknown:
        raise ValueError(f"options has entries {unknown} for methods not in methods={list(methods)}")
    if cache and all(METHODS.is_builtin(m) for m in methods):   # runtime entries: not cached
        from ..cache import cached_call

        return tuple(cached_call("explain-many", explain_many, model, x, methods, target, options=options, **common))
    maps, seconds = {}, {}
    # One untimed gradient call first, so that one-off start-up costs (thread pools, kernel
    # selection) are not charged to whichever method happens to run first.
    explain(model, x[:1], None if target is None else torch.as_tensor(target).reshape(-1)[:1], "gradient")
    for m in methods:
        t0 = time.perf_counter()
        maps[m] = explain(model, x, target, m, **{**common, **options.get(m, {})}).cpu()
        seconds[m] = (time.perf_counter() - t0) / x.shape[0]
    return maps, seconds


def heatmap_and_logits(model: nn.Module, x: torch.Tensor, label: torch.Tensor, method: str,
                       options: dict | None = None, create_graph: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The network's heatmap (B, H, W) and logits (B, K) at ``x``: what an attack's keep-the-best rule
    needs after every step (detached), and what Heo et al.'s fine-tuning loss needs on every batch
    (``create_graph=True``: both keep their graph to the input and the parameters). For interpreters
    whose entry says ``shares_forward`` the logits are read off the heatmap's own forward pass (a
    hook on ``model``) instead of a second one: the same logits, one forward pass less."""
    options = options or {}
    if not interpreter(method).shares_forward:
        with torch.set_grad_enabled(create_graph and torch.is_grad_enabled()):
            logits = model(x)
        return heatmap(model, x, label, method, create_graph=create_graph, **options), logits
    seen = []
    handle = model.register_forward_hook(lambda m, i, out: seen.append(out if create_graph else out.detach()))
    try:
        h = heatmap(model, x, label, method, create_graph=create_graph, **options)
    finally:
        handle.remove()
    if len(seen) != 1 or seen[0].shape[0] != x.shape[0]:
        raise RuntimeError(f"{method} ran the network {len(seen)} times; expected once on the batch")
    return h, seen[0]
