"""Sanity checks for interpreters (Adebayo et al. 2018): does the explanation change when the
model's weights are randomised?

:func:`randomized` yields randomised copies of a model in the shape Quantus' MPRT uses
(``for layer_name, model in randomized(model, order=…, seed=…)``): every module with its own
``reset_parameters`` (convolutions, linear layers, batch norms) is re-initialised with that
method — the layer's own initialiser — after ``torch.manual_seed(seed + 1)``, as Quantus does.

``order="top_down"``     cascading randomisation: from the output layer towards the input, each
                         step keeps the layers randomised before it (Adebayo et al.'s Fig. 2);
``order="bottom_up"``    the same from the input towards the output;
``order="independent"``  one layer at a time, every other layer original.

:func:`cascading` explains the same images with every interpreter at every step — one batched
call per (step, interpreter), never a loop over images — and scores each map against the original
model's map with :data:`SIMILARITIES`: Spearman's ρ of the absolute and of the signed maps, SSIM,
and the Pearson correlation of their histograms of oriented gradients (HOG), as in the paper.

**Data randomisation** (:func:`label_trained_model`): a CIFAR-10 ResNet-20 trained from scratch on
training images whose labels were randomly permuted, next to the same network trained by the
same recipe on the true labels; an interpreter that explains the model should give different maps
for the two.

Bad input raises ``ValueError`` naming the argument and the accepted values.
"""
from __future__ import annotations

import copy
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn as nn

from . import explain as E
from . import metrics as M
from .config import get_config

__all__ = ["ORDERS", "SIMILARITIES", "randomizable_layers", "randomized", "similarity", "hog_pearson", "cascading",
           "label_trained_model"]

ORDERS = ("top_down", "bottom_up", "independent")
SIMILARITIES = ("spearman_abs", "spearman", "ssim", "hog_pearson")


def randomizable_layers(model: nn.Module) -> list[str]:
    """Names of the modules that own a ``reset_parameters`` method, in definition order (input first)."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return [name for name, m in model.named_modules() if name and callable(getattr(m, "reset_parameters", None))]


def randomized(model: nn.Module, order: str = "top_down", *, seed: int | None = None,
               layers=None) -> Iterator[tuple[str, nn.Module]]:
    """Yield ``(layer_name, randomised_model)`` for each layer in ``order``; ``model`` is never modified.

    order:  a key of :data:`ORDERS`
    seed:   ``torch.manual_seed(seed + 1)`` before each re-initialisation (default: the profile's seed)
    layers: the layer names to randomise (default :func:`randomizable_layers`), in input-to-output
            order; ``top_down`` walks them backwards
    The yielded model is one copy, changed in place from step to step (cascading) or restored to the
    original weights before each step (independent): use it before advancing the generator, or
    ``copy.deepcopy`` it. It is in eval mode, on ``model``'s device.
    """
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    names = randomizable_layers(model)
    if layers is not None:
        layers = [layers] if isinstance(layers, str) else list(layers)
        unknown = [n for n in layers if n not in names]
        if unknown or not layers:
            raise ValueError(f"layers must name modules with reset_parameters, e.g. {names[:3]}…, got {unknown or layers}")
        names = [n for n in names if n in layers]
    seed = get_config().seed if seed is None else int(seed)
    work = copy.deepcopy(model).eval()
    original = {k: v.clone() for k, v in work.state_dict().items()}
    for name in (names[::-1] if order == "top_down" else names):
        if order == "independent":
            work.load_state_dict(original)
        torch.manual_seed(seed + 1)
        work.get_submodule(name).reset_parameters()
        yield name, work


def _check_maps(a, b):
    for arg, t in (("a", a), ("b", b)):
        if not isinstance(t, torch.Tensor) or t.dim() != 3 or t.shape[0] == 0:
            got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"{arg} must be a tensor of maps (B, H, W), got {got}")
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")


def _hog(h: np.ndarray) -> np.ndarray:
    from skimage.feature import hog

    side = min(h.shape)
    cell = max(2, side // 8)
    return hog(h, orientations=9, pixels_per_cell=(cell, cell), cells_per_block=(2, 2), feature_vector=True)


def hog_pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B,) Pearson's r between the HOG features (scikit-image ``hog``: 9 orientations, cells of
    side/8 pixels, 2 × 2 blocks) of maps ``a`` and ``b`` (B, H, W); NaN where a HOG is constant."""
    _check_maps(a, b)
    fa = np.stack([_hog(x) for x in a.detach().double().cpu().numpy()])
    fb = np.stack([_hog(x) for x in b.detach().double().cpu().numpy()])
    fa, fb = fa - fa.mean(1, keepdims=True), fb - fb.mean(1, keepdims=True)
    den = np.sqrt((fa ** 2).sum(1) * (fb ** 2).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(den > 0, (fa * fb).sum(1) / den, np.nan)
    return torch.from_numpy(r).float()


def similarity(a: torch.Tensor, b: torch.Tensor, metrics=SIMILARITIES) -> dict[str, torch.Tensor]:
    """(B,) similarity of signed maps ``b`` to ``a`` (B, H, W) under each of ``metrics`` (:data:`SIMILARITIES`).

    ``spearman_abs`` ranks |a| against |b| (Adebayo et al.'s main measure); ``spearman`` the signed
    maps; ``ssim`` and ``hog_pearson`` compare |a| and |b| each scaled to [0, 1] by its maximum.
    """
    _check_maps(a, b)
    metrics = (metrics,) if isinstance(metrics, str) else tuple(metrics)
    bad = [m for m in metrics if m not in SIMILARITIES]
    if bad or not metrics:
        raise ValueError(f"metrics must be among {SIMILARITIES}, got {bad or metrics}")
    a, b = a.detach().float().cpu(), b.detach().float().cpu()
    pa, pb = a.abs(), b.abs()
    unit = lambda t: t / t.flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1)  # noqa: E731
    fns = {"spearman_abs": lambda: M.spearman(pa, pb), "spearman": lambda: M.spearman(a, b),
           "ssim": lambda: M.ssim(unit(pa), unit(pb)), "hog_pearson": lambda: hog_pearson(unit(pa), unit(pb))}
    return {m: fns[m]() for m in metrics}


def cascading(model: nn.Module, x: torch.Tensor, methods, target=None, *, order: str = "top_down",
              seed: int | None = None, layers=None, metrics=SIMILARITIES, options: dict | None = None) -> dict:
    """The randomisation test: every interpreter's map of ``x`` after each randomisation step.

    model, x: the trained model and images (B, C, H, W); target: the classes explained (default:
              the *original* model's predictions, kept fixed through all steps, as Adebayo et al.)
    methods:  image interpreters of :data:`xaifool.explain.METHODS`
    order, seed, layers: as for :func:`randomized`; metrics: subset of :data:`SIMILARITIES`
    options:  ``{method: {option: value}}`` interpreter options (e.g. ``n_samples`` for SmoothGrad)
    returns:  ``{"layers": [names in the order randomised], "original": {method: (B, H, W)},
              "maps": {method: (L, B, H, W)}, "similarity": {method: {metric: (L, B)}}}``
              — maps signed (``reduce="sum"``, not normalised), on the CPU
    """
    methods = (methods,) if isinstance(methods, str) else tuple(methods)
    bad = [m for m in methods if m not in E.IMAGE_METHODS]
    if bad or not methods:
        raise ValueError(f"methods must be image interpreters among {E.IMAGE_METHODS}, got {bad or methods}")
    options = dict(options or {})
    unknown = sorted(set(options) - set(methods))
    if unknown:
        raise ValueError(f"options has entries {unknown} for methods not in methods={list(methods)}")
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[0] == 0:
        raise ValueError(f"x must be a batch of images (B, C, H, W), got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    dev = next(model.parameters()).device
    x = x.to(dev)
    with torch.no_grad():
        target = model.eval()(x).argmax(1) if target is None else torch.as_tensor(target, device=dev).view(-1)

    def maps(net):
        return {m: E.explain(net, x, target, m, reduce="sum", normalize=None, **options.get(m, {})).detach().cpu()
                for m in methods}

    original = maps(model)
    names, per_step = [], []
    for name, net in randomized(model, order, seed=seed, layers=layers):
        names.append(name)
        per_step.append(maps(net))
    out_maps = {m: torch.stack([s[m] for s in per_step]) for m in methods}
    sims = {}
    for m in methods:
        scores = [similarity(original[m], step[m], metrics) for step in per_step]
        sims[m] = {k: torch.stack([sc[k] for sc in scores]) for k in scores[0]}
    return {"layers": names, "original": original, "maps": out_maps, "similarity": sims}


def label_trained_model(permute: bool = True, *, n_train: int | None = None, epochs: int | None = None,
                        lr: float = 1e-3, batch_size: int = 128, seed: int | None = None,
                        progress: bool | None = None, refresh: bool = False) -> nn.Module:
    """A CIFAR-10 ResNet-20 trained from scratch (Adam, batch norm in train mode), cached.

    permute:  train on a seeded random permutation of the labels (Adebayo et al.'s data
              randomisation test) or, with False, on the true labels (the comparison model)
    n_train:  lossless training images (default ``profile.sanity_n_train``, at most 4,000)
    epochs:   passes over them (default ``profile.sanity_epochs``)
    returns:  the model in eval mode on the configured device, with ``model.training_record`` =
              ``{"settings", "history", "labels"}`` (``labels``: the labels it was trained on)
    """
    from .cache import cached
    from .data import load_cifar10
    from .models import Normalized, cifar_resnet
    from .training import fit

    cfg = get_config()
    P = cfg.profile
    if not isinstance(permute, bool):
        raise ValueError(f"permute must be True or False, got {permute!r}")
    n_train = P.sanity_n_train if n_train is None else n_train
    epochs = P.sanity_epochs if epochs is None else epochs
    for arg, value, hi in (("n_train", n_train, 4000), ("epochs", epochs, None), ("batch_size", batch_size, None)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1 or (hi is not None and value > hi):
            raise ValueError(f"{arg} must be an int in 1..{hi or '∞'}, got {value!r}")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
        raise ValueError(f"lr must be a number > 0, got {lr!r}")
    seed = cfg.seed if seed is None else int(seed)
    data = load_cifar10("train4000", None if n_train == 4000 else n_train, seed=seed)
    labels = data.y[torch.randperm(len(data.y), generator=torch.Generator().manual_seed(seed + 7))] if permute \
        else data.y
    settings = {"permute": permute, "n_train": n_train, "epochs": epochs, "lr": float(lr), "batch_size": batch_size,
                "seed": seed, "device": cfg.device.type}

    def build():
        torch.manual_seed(seed)
        return Normalized(cifar_resnet(20), cam_layer="net.layer3").to(cfg.device)

    def compute():
        net = build()
        x, y = data.x, labels

        def batches(epoch):
            order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed * 1000 + epoch))
            return [(x[i].to(cfg.device), y[i].to(cfg.device)) for i in order.split(batch_size)]

        def loss_fn(model, batch):
            logits = model(batch[0])
            return (nn.functional.cross_entropy(logits, batch[1]),
                    {"accuracy": (logits.argmax(1) == batch[1]).float().mean()})

        history = fit(net, batches, loss_fn, epochs=epochs, lr=float(lr), seed=seed, train_mode=True,
                      progress=progress, desc="random labels" if permute else "true labels")
        return {"state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()}, "history": history}

    out = cached("sanity-label-model", settings, compute, depends=(__name__,), refresh=refresh)
    model = build()
    model.load_state_dict(out["state_dict"])
    model.training_record = {"settings": settings, "history": out["history"], "labels": labels}
    return model.eval()
