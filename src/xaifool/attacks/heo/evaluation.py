"""A manipulated model against its original on held-out images: Heo et al.'s statistic and fooling
success rate, the accuracies, and the same for other interpreters (transfer)."""
from __future__ import annotations

import time
from dataclasses import dataclass, replace

import torch
import torch.nn as nn

from ... import explain as E
from ...cache import cached_call
from ...config import get_config
from ...models import device_of
from ...validate import check_images, check_int, check_labels
from ..result import BeforeAfter
from . import maps
from .composites import check_classes, two_object_images
from .maps import check_model
from .registry import MODEL_ATTACKS, SWAP_CLASSES, check_settings, fooling_statistic, fooling_success, heo_k, model_attack

__all__ = ["ModelResult", "evaluate", "unmodified", "evaluate_interpreters"]


@dataclass(kw_only=True)
class ModelResult(BeforeAfter):
    """A manipulated model against its original on held-out images (tensors on the CPU).

    The :class:`~xaifool.attacks.result.BeforeAfter` fields compare the *original* model
    (``heatmap``, ``logits``) with the *manipulated* one (``heatmap_adv``, ``logits_adv``) on the
    same inputs ``x``; ``label`` is the class explained (the original model's prediction, or for
    ``swap`` class ``a`` on rows 0..n−1 and class ``b`` on rows n..2n−1 of the same n composites,
    where ``label_kept`` has no meaning).

    attack:                 a registered model attack (:data:`~xaifool.attacks.heo.registry.MODEL_ATTACKS`)
    x:                      (B, C, H, W) the images explained
    score:                  (n,) Heo's per-image statistic (:func:`~xaifool.attacks.heo.registry.fooling_statistic`)
    success:                (n,) bool, fooled by Heo's criterion (:func:`~xaifool.attacks.heo.registry.fooling_success`)
    accuracy, accuracy_adv: top-1 accuracy of the original and manipulated model on the held-out
                            single images (NaN without labels)
    """

    attack: str
    x: torch.Tensor
    score: torch.Tensor
    success: torch.Tensor
    accuracy: float = float("nan")
    accuracy_adv: float = float("nan")

    @property
    def fsr(self) -> float:
        """Fooling success rate: the fraction of images fooled by Heo's criterion."""
        return float(self.success.float().mean())

    @property
    def prediction_kept(self) -> torch.Tensor:
        """(B,) bool: the manipulated model predicts what the original predicted."""
        return self.logits_adv.argmax(1) == self.logits.argmax(1)

    def summary(self) -> dict:
        """FSR, accuracies and the mean similarity of the maps (numbers for tables)."""
        sim = {f"mean_{k}": float(v.float().nanmean()) for k, v in self.similarity().items()}
        return {"attack": self.attack, "method": self.method, "fsr": self.fsr, "accuracy": self.accuracy,
                "accuracy_adv": self.accuracy_adv, "accuracy_drop": self.accuracy - self.accuracy_adv,
                "mean_score": float(self.score.float().nanmean()), **sim}


def evaluate(base: nn.Module, manipulated: nn.Module, x_test: torch.Tensor, y_test: torch.Tensor | None,
             attack: str, method: str, *, classes=None, n_pairs: int | None = None, region=None,
             k: int | None = None, batch_size: int | None = None, seed: int | None = None,
             options: dict | None = None, cache: bool = False) -> ModelResult:
    """The original and the manipulated model side by side on held-out images.

    base, manipulated: the original model and its manipulated copy
    x_test:  (N, C, H, W) held-out images; y_test: (N,) their labels (None: no accuracy)
    attack:  a registered model attack (decides the statistic and, for ``swap``, the inputs)
    method:  the interpreter evaluated: any image method of :data:`xaifool.explain.METHODS`
             (the one fooled, or another to measure transfer, e.g. ``"smoothgrad"``)
    classes, n_pairs: ``swap``: the class pair (default :data:`SWAP_CLASSES`) and the number of
             composites built from the held-out images of the two classes by
             :func:`two_object_images` (default: as many as the rarer class has; needs ``y_test``)
    region, k: as for :func:`~xaifool.attacks.heo.registry.fooling_statistic`
    options: interpreter options (e.g. ``n_samples`` for SmoothGrad)
    cache:   take the result from the on-disk cache when the same two networks were evaluated on
             the same images with the same settings (:func:`xaifool.cache.cached_call`)
    returns: :class:`ModelResult` — passive attacks: maps of the original model's predicted class
             on each image; ``swap``: maps of classes a and b on each composite (2n rows).
             ``accuracy`` / ``accuracy_adv`` on all of ``x_test``.
    """
    spec = model_attack(attack)
    E.interpreter(method, modality="image")
    for name, m in (("base", base), ("manipulated", manipulated)):
        check_model(m, method, name)
    check_images(x_test, "x_test")
    y_test = check_labels(y_test, x_test.shape[0], "y_test", allow_none=not spec.active,
                          why_none="for passive attacks (active ones build composites from the labels)")
    if cache and MODEL_ATTACKS.is_builtin(attack) and E.METHODS.is_builtin(method):   # runtime entries: not cached
        manipulated.to(device_of(base))   # where a computed evaluation leaves it
        return cached_call("heo-evaluate", evaluate, base, manipulated, x_test, y_test, attack, method,
                           classes=classes, n_pairs=n_pairs, region=region, k=k, batch_size=batch_size, seed=seed,
                           options=options, encode=ModelResult.to_dict, decode=ModelResult.from_dict)
    cfg = get_config()
    bs = cfg.profile.batch_size if batch_size is None else check_int(batch_size, "batch_size", 1)
    options = dict(options or {})
    dev = device_of(base)
    manipulated = manipulated.to(dev)
    t0 = time.perf_counter()
    logits_test, logits_test_adv = maps.logits(base, x_test, bs), maps.logits(manipulated, x_test, bs)
    acc = acc_adv = float("nan")
    if y_test is not None:
        acc = float((logits_test.argmax(1) == y_test).float().mean())
        acc_adv = float((logits_test_adv.argmax(1) == y_test).float().mean())
    settings = {"options": options, "n_test": x_test.shape[0]}
    if spec.active:
        a, b = check_classes(SWAP_CLASSES if classes is None else classes, logits_test.shape[1])
        xc = two_object_images((x_test, y_test), a, b, n_pairs, seed=seed)
        n = xc.shape[0]
        x = torch.cat([xc, xc])
        label = torch.cat([torch.full((n,), a), torch.full((n,), b)])
        logits, logits_adv = maps.logits(base, x, bs), maps.logits(manipulated, x, bs)
        settings["classes"] = [a, b]
    else:
        x, logits, logits_adv = x_test, logits_test, logits_test_adv
        label = logits.argmax(1)
    hw = tuple(x.shape[-2:])
    region, k = check_settings(spec, region, k, hw)
    if region is not None:
        settings["region"] = region
    settings["k"] = k if k is not None else heo_k(hw)
    h = maps.heatmaps(base, x, label, method, batch_size=bs, options=options)
    h_adv = maps.heatmaps(manipulated, x, label, method, batch_size=bs, options=options)
    score = fooling_statistic(attack, h, h_adv, region=region, k=k)
    success = fooling_success(attack, h, h_adv, region=region, k=k)
    settings["seconds"] = time.perf_counter() - t0
    return ModelResult(attack=attack, method=method, x=x.cpu(), label=label.cpu(), heatmap=h, heatmap_adv=h_adv,
                       logits=logits, logits_adv=logits_adv, score=score, success=success, accuracy=acc,
                       accuracy_adv=acc_adv, settings=settings)


def unmodified(result: ModelResult) -> ModelResult:
    """What :func:`evaluate` gives with the original model on both sides, taken from the original
    side of ``result`` (an :func:`evaluate` of the original against a manipulated model) instead
    of explaining the same images twice more: the criterion applied to the unmodified maps, the FSR
    a manipulation has to beat. Equal to ``evaluate(base, base, …)`` for the deterministic
    interpreters (and for SmoothGrad, whose noise is one seeded draw)."""
    if not isinstance(result, ModelResult):
        raise ValueError(f"result must be a ModelResult of evaluate(), got {type(result).__name__}")
    h = result.heatmap
    kw = {"region": result.settings.get("region"),
          "k": result.settings["k"] if "k" in model_attack(result.attack).reference_options else None}
    return replace(result, heatmap_adv=h, logits_adv=result.logits, accuracy_adv=result.accuracy,
                   score=fooling_statistic(result.attack, h, h, **kw), success=fooling_success(result.attack, h, h, **kw),
                   settings={**result.settings, "seconds": 0.0})


def evaluate_interpreters(base: nn.Module, manipulated: nn.Module, x_test: torch.Tensor, y_test: torch.Tensor | None,
             attack: str, methods, *, options: dict | None = None, **kwargs) -> dict[str, ModelResult]:
    """:func:`evaluate` for several interpreters on the same manipulated model — does a model
    fooled through one interpreter also fool SmoothGrad, Integrated Gradients, …?

    methods: iterable of image methods of :data:`xaifool.explain.METHODS`
    options: ``{method: {option: value}}`` per-method interpreter options
    kwargs:  passed to :func:`evaluate` (``classes``, ``region``, ``k``, ``batch_size``, ``cache``, …)
    returns: ``{method: ModelResult}``
    """
    methods = list(E.check_methods(methods))
    options = dict(options or {})
    unknown = sorted(set(options) - set(methods))
    if unknown:
        raise ValueError(f"options has entries {unknown} for methods not in methods={methods}")
    return {m: evaluate(base, manipulated, x_test, y_test, attack, m, options=options.get(m), **kwargs)
            for m in methods}
