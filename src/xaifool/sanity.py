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

__all__ = ["ORDERS", "SIMILARITIES", "PASS_THRESHOLD", "randomizable_layers", "blocks", "randomized",
           "similarity", "hog_pearson", "cascading", "label_trained_model", "summarize", "verdict", "compare_models",
           "manipulation_checks"]

ORDERS = ("top_down", "bottom_up", "independent")
SIMILARITIES = ("spearman_abs", "spearman", "ssim", "hog_pearson")


def randomizable_layers(model: nn.Module) -> list[str]:
    """Names of the modules that own a ``reset_parameters`` method, in definition order (input first)."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return [name for name, m in model.named_modules() if name and callable(getattr(m, "reset_parameters", None))]


def blocks(model: nn.Module) -> list[str]:
    """The model's blocks, input first: the children of its top-level sequential stages (ResNet stages,
    MobileNetV2's ``features``), else its top-level children — every one holding a layer with
    ``reset_parameters``. Adebayo et al. randomise Inception v3 block by block like this; pass the
    result as ``layers=`` to :func:`randomized` / :func:`cascading` for one step per block."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    root, prefix = model, ""
    while len(list(root.children())) == 1:  # unwrap single-child wrappers (Normalized → net)
        name, root = next(iter(root.named_children()))
        prefix += name + "."
    out = []
    for name, child in root.named_children():
        parts = (list(child.named_children()) if isinstance(child, nn.Sequential) and len(child) > 1
                 else [("", child)])
        for sub, m in parts:
            if randomizable_layers(m) or callable(getattr(m, "reset_parameters", None)):
                out.append(prefix + name + ("." + sub if sub else ""))
    return out


def _resolve(model: nn.Module, layers) -> list[tuple[str, list[str]]]:
    """``[(step name, [modules it resets])]`` in input-to-output order."""
    names = randomizable_layers(model)
    if layers is None:
        return [(n, [n]) for n in names]
    layers = [layers] if isinstance(layers, str) else list(layers)
    steps, bad = [], []
    for entry in layers:
        inside = [n for n in names if n == entry or n.startswith(entry + ".")] if isinstance(entry, str) else []
        (steps.append((entry, inside)) if inside else bad.append(entry))
    if bad or not steps:
        raise ValueError(f"layers must name modules with reset_parameters (e.g. {names[:3]}…) or blocks holding "
                         f"them (e.g. {blocks(model)[:3]}…), got {bad or layers}")
    owners = [n for _, inside in steps for n in inside]
    if len(owners) != len(set(owners)):
        raise ValueError(f"layers must not overlap (a block and a layer inside it), got {layers}")
    first = {n: i for i, n in enumerate(names)}
    return sorted(steps, key=lambda st: first[st[1][0]])


def randomized(model: nn.Module, order: str = "top_down", *, seed: int | None = None,
               layers=None) -> Iterator[tuple[str, nn.Module]]:
    """Yield ``(layer_name, randomised_model)`` for each layer in ``order``; ``model`` is never modified.

    order:  a key of :data:`ORDERS`
    seed:   ``torch.manual_seed(seed + 1)`` before each re-initialisation (default: the profile's seed)
    layers: what one step randomises (default :func:`randomizable_layers`: one module per step, as
            Quantus); an entry may also name a block (e.g. from :func:`blocks`), whose modules are
            re-initialised together in one step. Steps run input to output; ``top_down`` walks them backwards
    The yielded model is one copy, changed in place from step to step (cascading) or restored to the
    original weights before each step (independent): use it before advancing the generator, or
    ``copy.deepcopy`` it. It is in eval mode, on ``model``'s device.
    """
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    steps = _resolve(model, layers)
    seed = get_config().seed if seed is None else int(seed)
    work = copy.deepcopy(model).eval()
    original = {k: v.clone() for k, v in work.state_dict().items()}
    for name, modules in (steps[::-1] if order == "top_down" else steps):
        if order == "independent":
            work.load_state_dict(original)
        torch.manual_seed(seed + 1)
        for m in modules:
            work.get_submodule(m).reset_parameters()
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
              seed: int | None = None, layers=None, metrics=SIMILARITIES, options: dict | None = None,
              cache: bool = False) -> dict:
    """The randomisation test: every interpreter's map of ``x`` after each randomisation step.

    model, x: the trained model and images (B, C, H, W); target: the classes explained (default:
              the *original* model's predictions, kept fixed through all steps, as Adebayo et al.)
    methods:  image interpreters of :data:`xaifool.explain.METHODS`
    order, seed, layers: as for :func:`randomized`; metrics: subset of :data:`SIMILARITIES`
    options:  ``{method: {option: value}}`` interpreter options (e.g. ``n_samples`` for SmoothGrad)
    returns:  ``{"layers": [names in the order randomised], "original": {method: (B, H, W)},
              "maps": {method: (L, B, H, W)}, "similarity": {method: {metric: (L, B)}}}``
              — maps signed (``reduce="sum"``, not normalised), on the CPU
    cache:    take the result from the on-disk cache when the same network, images and settings
              were tested before (:func:`xaifool.cache.cached_call`)
    """
    methods = E.check_methods(methods)
    options = dict(options or {})
    unknown = sorted(set(options) - set(methods))
    if unknown:
        raise ValueError(f"options has entries {unknown} for methods not in methods={list(methods)}")
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[0] == 0:
        raise ValueError(f"x must be a batch of images (B, C, H, W), got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    if cache and all(E.METHODS.is_builtin(m) for m in methods):   # runtime entries: not cached
        from .cache import cached_call

        return cached_call("sanity-cascading", cascading, model, x, methods, target, order=order, seed=seed,
                           layers=layers, metrics=metrics, options=options)
    dev = next(model.parameters()).device
    # the re-initialisations seed the global generator; leave it as it was, as a cached result does
    cuda = [torch.cuda.current_device() if dev.index is None else dev.index] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        return _cascading(model, x, methods, target, order, seed, layers, metrics, options, dev)


def _cascading(model, x, methods, target, order, seed, layers, metrics, options, dev) -> dict:
    x = x.to(dev)
    with torch.no_grad(), E.eval_mode(model):
        logits = model(x)
    n_classes = logits.shape[1]
    if target is None:
        target = logits.argmax(1)
    else:
        target = torch.as_tensor(target, dtype=torch.long, device=dev).reshape(-1)
        target = target.expand(len(x)).contiguous() if target.numel() == 1 else target
        if target.numel() != len(x):
            raise ValueError(f"target must be an int or hold one class per image ({len(x)}), got {target.numel()}")

    for m in methods:  # option names checked once here, so the loop needs no validation pass
        E.method_options(m, options.get(m, {}))
    if ((target < 0) | (target >= n_classes)).any():
        raise ValueError(f"target must hold class indices in 0..{n_classes - 1}, got {target.tolist()}")

    def maps(net):  # one batched heatmap per interpreter; no validation forward pass
        return {m: E.heatmap(net, x, target, m, reduce="sum", normalize=None, **options.get(m, {})).detach().cpu()
                for m in methods}

    with E.eval_mode(model):
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


# --------------------------------------------------------------------------------------
# Summaries of a test for the chapter: curves with confidence bands, pass / fail
# --------------------------------------------------------------------------------------

#: An interpreter passes the randomisation test when its maps' similarity to the trained network's
#: (Spearman of absolute maps, mean over images and over the steps that randomise the upper half of
#: the network) is below this: see :func:`verdict`.
PASS_THRESHOLD = 0.5


def _check_result(result) -> None:
    if not isinstance(result, dict) or not {"layers", "similarity"} <= set(result):
        raise ValueError("result must be the dict returned by cascading()")


def summarize(result: dict, *, level: float = 0.95) -> "pd.DataFrame":
    """Long table of a :func:`cascading` result: one row per (method, metric, step) with the mean
    similarity over images and a Student-t confidence interval of ``level`` (NaN maps — a constant
    map after randomisation, e.g. a dead Grad-CAM — are left out of the mean and counted in ``n``)."""
    import pandas as pd
    from scipy import stats

    _check_result(result)
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    rows = []
    for method, by_metric in result["similarity"].items():
        for metric, vals in by_metric.items():
            for step, (layer, v) in enumerate(zip(result["layers"], vals.double().numpy())):
                v = v[np.isfinite(v)]
                mean = float(v.mean()) if len(v) else float("nan")
                half = (float(stats.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
                        if len(v) > 1 else float("nan"))
                rows.append({"method": method, "metric": metric, "step": step + 1, "layer": layer, "mean": mean,
                             "low": mean - half, "high": mean + half, "n": int(len(v))})
    return pd.DataFrame(rows)


def verdict(result: dict, *, metric: str = "spearman_abs", threshold: float = PASS_THRESHOLD,
            top: float = 0.5) -> "pd.DataFrame":
    """Per interpreter: the mean similarity (over images) after the first step, averaged over the first
    ``top`` share of the steps, and after the last step; and whether it passes.

    In top-down order the first steps randomise the upper layers, the ones that decide the class:
    an interpreter *passes* when its maps are already dissimilar there — the mean over the first
    ``ceil(top · L)`` steps is below ``threshold`` — and fails when they stay alike until the lower
    layers are reached (Adebayo et al.'s "invariant to the higher layers"). Steps whose maps are all
    constant (NaN: a dead Grad-CAM, which has lost all structure) count as similarity 0.
    """
    import math

    import pandas as pd

    _check_result(result)
    if metric not in SIMILARITIES:
        raise ValueError(f"metric must be one of {SIMILARITIES}, got {metric!r}")
    if not 0 < top <= 1:
        raise ValueError(f"top must be in (0, 1], got {top!r}")
    rows = {}
    for method, by_metric in result["similarity"].items():
        if metric not in by_metric:
            raise ValueError(f"metric {metric!r} was not computed; the result has {sorted(by_metric)}")
        per_step = by_metric[metric].double().nanmean(1).nan_to_num(0.0)  # (L,)
        head = per_step[: math.ceil(top * len(per_step))]
        rows[method] = {"after first step": float(per_step[0]), "upper layers (mean)": float(head.mean()),
                        "after all steps": float(per_step[-1]), "passes": bool(head.mean() < threshold)}
    return pd.DataFrame.from_dict(rows, orient="index")


def compare_models(models: dict, x: torch.Tensor, methods, *, metrics=SIMILARITIES, options: dict | None = None,
                   reference: str | None = None) -> dict:
    """Maps of several models on the same images (each explaining the class *it* predicts), and each
    model's similarity to ``reference`` (default: the first model) — the data-randomisation test and
    the check of manipulated models.

    returns: ``{"maps": {model: {method: (B, H, W) signed}}, "predicted": {model: (B,)},
              "similarity": {model: {method: {metric: (B,)}}}}`` (the reference model left out of ``similarity``)
    """
    if not isinstance(models, dict) or len(models) < 2:
        raise ValueError("models must be a dict of at least two named models")
    reference = next(iter(models)) if reference is None else reference
    if reference not in models:
        raise ValueError(f"reference must be one of {list(models)}, got {reference!r}")
    methods = E.check_methods(methods)
    options = dict(options or {})
    maps, predicted = {}, {}
    for name, model in models.items():
        with E.eval_mode(model):
            dev = next(model.parameters()).device
            with torch.no_grad():
                t = model(x.to(dev)).argmax(1)
            predicted[name] = t.cpu()
            maps[name] = {m: E.heatmap(model, x.to(dev), t, m, reduce="sum", normalize=None,
                                       **options.get(m, {})).detach().cpu() for m in methods}
    sims = {name: {m: similarity(maps[reference][m], maps[name][m], metrics) for m in methods}
            for name in models if name != reference}
    return {"maps": maps, "predicted": predicted, "similarity": sims}


# --------------------------------------------------------------------------------------
# The chapter's tests, shared by the chapter and ``python -m xaifool full-results``
# --------------------------------------------------------------------------------------

def manipulation_checks(original: nn.Module, manipulated: dict, x: torch.Tensor, *, options: dict | None = None,
                        threshold: float = PASS_THRESHOLD, cache: bool = False) -> "pd.DataFrame":
    """Do the sanity checks notice a manipulated model? One row per entry of ``manipulated``
    (``{name: (model, method)}``, the interpreter the manipulation targeted), on images ``x``:

    ``randomisation, original`` / ``randomisation, manipulated``: the cascading test's upper-layer
    similarity (:func:`verdict`, block steps) of the original and of the manipulated model;
    ``manipulated passes``: the manipulated model passes the test; ``similarity to original's map``:
    Spearman |map| between the two models' maps of the same images (each explaining its own
    prediction); ``original, logits random``: the original's similarity after its logits layer alone
    was randomised — how far a map moves when the decision layer is noise.
    ``cache``: take the cascading tests from the on-disk cache (:func:`cascading`).
    """
    import pandas as pd

    if not isinstance(manipulated, dict) or not manipulated:
        raise ValueError("manipulated must be a non-empty dict {name: (model, method)}")
    options = dict(options or {})
    reference: dict = {}
    rows = {}
    for name, entry in manipulated.items():
        if not (isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[0], nn.Module)):
            raise ValueError(f"manipulated[{name!r}] must be a (model, method) pair, got {type(entry).__name__}")
        model, method = entry
        opts = {method: options[method]} if method in options else None
        if method not in reference:
            reference[method] = verdict(cascading(original, x, [method], layers=blocks(original),
                                                  metrics=("spearman_abs",), options=opts, cache=cache),
                                        threshold=threshold)
        before = reference[method].loc[method]
        after = verdict(cascading(model, x, [method], layers=blocks(model), metrics=("spearman_abs",), options=opts,
                                  cache=cache), threshold=threshold).loc[method]
        vs = compare_models({"original": original, "manipulated": model}, x, [method], metrics=("spearman_abs",),
                            options=opts)
        rows[name] = {"method": method, "randomisation, original": float(before["upper layers (mean)"]),
                      "randomisation, manipulated": float(after["upper layers (mean)"]),
                      "manipulated passes": bool(after["passes"]),
                      "similarity to original's map": float(vs["similarity"]["manipulated"][method]["spearman_abs"]
                                                            .nanmean()),
                      "original, logits random": float(before["after first step"])}
    return pd.DataFrame.from_dict(rows, orient="index")
