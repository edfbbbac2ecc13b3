"""Heatmaps and logits of Heo et al.'s models in chunks on the model's device, with an in-process memo
of maps already computed (the original model explains the same held-out images for every
manipulated model), and the check that a model suits an interpreter."""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import asdict

import torch

from ... import explain as E
from ...cache import cache_key, module_digest
from ...config import get_config
from ...models import device_of
from ...validate import check_module

__all__ = ["heatmaps", "logits", "clear_memo", "MEMO_BYTES", "check_model"]


def check_model(model, method, name="model") -> None:
    """``model`` is a network that ``method`` can explain (a Grad-CAM layer where the interpreter needs one)."""
    check_module(model, name)
    if E.interpreter(method).needs_cam_layer:
        if not getattr(model, "cam_layer", ""):
            raise ValueError(f"{name} has no cam_layer: {method} needs the name of its last convolutional block "
                             "(the models of xaifool.models set model.cam_layer, e.g. 'net.layer3')")
        try:
            model.get_submodule(model.cam_layer)
        except AttributeError:
            raise ValueError(f"{name}.cam_layer={model.cam_layer!r} is not a submodule of {name}") from None


#: Maps already computed in this process, keyed by content (:func:`_memo_key`). :func:`evaluate`
#: explains the *original* model on the same held-out images once per manipulated model, and
#: :func:`evaluate_interpreters` once per manipulated model and interpreter; the memo computes each once.
_MEMO: OrderedDict[str, torch.Tensor] = OrderedDict()
#: Bytes the memo may hold before it forgets the least recently used maps.
MEMO_BYTES = 512 * 2 ** 20
_MEMO_HELD = [0]   # bytes the memo holds now (kept with every insert and eviction)


def _memo_key(model, x, target, method, batch_size, options) -> str:
    """Everything a map depends on: the network's content (:func:`xaifool.cache.module_digest`:
    weights, buffers, module classes, train/eval), the images and classes by value, the interpreter,
    its options, the chunk size (SmoothGrad's noise is drawn per chunk), the device and the active
    profile (seed, and the defaults of options left out)."""
    return cache_key("heatmaps", {"model": module_digest(model), "x": x, "target": target, "method": method,
                                  "options": dict(options), "batch_size": int(batch_size),
                                  "device": str(device_of(model)), "profile": asdict(get_config().profile)},
                     depends=(__name__,))


def clear_memo() -> None:
    """Forget the maps :func:`heatmaps` remembers (tests; freeing memory)."""
    _MEMO.clear()
    _MEMO_HELD[0] = 0


def heatmaps(model, x, target, method, *, batch_size, options) -> torch.Tensor:
    """Detached heatmaps (N, H, W) on the CPU, computed in chunks on the model's device, or
    taken from the in-process memo when the same network already explained the same images."""
    try:
        key = _memo_key(model, x, target, method, batch_size, options)
    except (ValueError, TypeError):   # a value the key cannot hold (a callable, a bfloat16 image): not remembered
        key = None
    if key in _MEMO:
        _MEMO.move_to_end(key)
        return _MEMO[key].clone()
    dev = device_of(model)
    out = []
    for i in range(0, x.shape[0], batch_size):
        xb, tb = x[i:i + batch_size].to(dev), target[i:i + batch_size].to(dev)
        out.append(E.heatmap(model, xb, tb, method, **options).cpu())
    h = torch.cat(out)
    if key is None:
        return h
    _MEMO[key] = h.clone()
    _MEMO_HELD[0] += h.numel() * h.element_size()
    while _MEMO and _MEMO_HELD[0] > MEMO_BYTES:
        _, old = _MEMO.popitem(last=False)
        _MEMO_HELD[0] -= old.numel() * old.element_size()
    return h


@torch.no_grad()
def logits(model, x, batch_size) -> torch.Tensor:
    dev = device_of(model)
    return torch.cat([model(x[i:i + batch_size].to(dev)).float().cpu() for i in range(0, x.shape[0], batch_size)])
