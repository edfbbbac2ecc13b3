"""A grid of manipulated models on held-out images: every (attack, interpreter) pair fine-tuned once
(cached), evaluated (cached) and compared with the unmodified model."""
from __future__ import annotations

from ... import explain as E
from ...zoo import base_entry, base_model, heldout_data
from .evaluation import evaluate, unmodified
from .models import manipulated_model
from .registry import model_attack

__all__ = ["check_grid", "run_grid"]


def check_grid(pairs, name="pairs") -> tuple:
    """``pairs`` as a tuple of (attack, method) pairs: a registered model attack and a differentiable image interpreter."""
    try:
        pairs = tuple((a, m) for a, m in pairs)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a sequence of (attack, method) pairs, e.g. "
                         f"[('topk', 'gradcam')], got {pairs!r}") from None
    if not pairs:
        raise ValueError(f"{name} must hold at least one (attack, method) pair")
    for a, m in pairs:
        model_attack(a, f"the attack of {name}")
        E.interpreter(m, f"the method of {name}", modality="image", differentiable=True)
    return pairs


def run_grid(base_key: str, pairs, *, x_test=None, y_test=None, progress: bool | None = None, **kwargs) -> dict:
    """Every manipulated model of ``pairs`` (fine-tuned once, then loaded from the cache) on held-out images.

    base_key: a key of :data:`xaifool.zoo.BASE_MODELS`
    pairs:    (attack, method) pairs, e.g. ``profile.heo_grid``
    x_test, y_test: held-out images and labels (default :func:`heldout_data`)
    kwargs:   settings passed to :func:`manipulated_model` (``lam``, ``epochs``, ``lr``, …)
    returns:  ``{"models": {pair: model}, "results": {pair: ModelResult}, "unmodified": {pair:
              ModelResult}}`` — ``unmodified`` applies the same criterion with the original model in
              place of the manipulated one (the FSR a manipulation has to beat; 0 for the passive
              attacks by construction)
    """
    pairs = check_grid(pairs)
    base_entry(base_key)
    if x_test is None:
        test = heldout_data(base_key)
        x_test, y_test = test.x, test.y
    base = base_model(base_key)
    out = {"models": {}, "results": {}, "unmodified": {}}
    for attack, method in pairs:
        model = manipulated_model(base_key, attack, method, progress=progress, **kwargs)
        out["models"][attack, method] = model
        out["results"][attack, method] = evaluate(base, model, x_test, y_test, attack, method, cache=True)
        out["unmodified"][attack, method] = unmodified(out["results"][attack, method])
    return out
