"""Heo et al.'s fine-tuning: a copy of a trained classifier trained on L = L_acc + λ·L_fool, the fooling
term being the registered model attack's objective on the copy's own explanations."""
from __future__ import annotations

import copy
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from ... import explain as E
from ...config import get_config
from ...models import depthwise_as_convs, depthwise_as_shifts, device_of
from ...training import fit
from ...validate import check_bool, check_images, check_int, check_labels, check_nonnegative, check_positive
from . import maps
from .composites import check_classes, two_object_images
from .maps import check_model
from .registry import MODEL_ATTACKS, SWAP_CLASSES, check_settings, fooling_loss, model_attack, reference

__all__ = ["finetune"]


def finetune(model: nn.Module, x_train: torch.Tensor, y_train: torch.Tensor | None, attack: str, method: str, *,
             lam: float, epochs: int, lr: float, batch_size: int, region: torch.Tensor | None = None,
             k: int | None = None, classes=None, x_fool: torch.Tensor | None = None, distill: bool = False,
             seed: int | None = None, progress: bool | None = None, options: dict | None = None,
             log_every: int | None = 8):
    """Fine-tune a copy of ``model`` with L = L_acc + λ·L_fool; return ``(manipulated_model, history)``.

    model:      a trained classifier, (N, C, H, W) in [0, 1] → logits (N, K); left unchanged
    x_train:    (N, C, H, W) fine-tuning images (kept on the CPU, sent to the model's device per batch)
    y_train:    (N,) their labels (the accuracy term's targets and the class whose map is fooled);
                may be None with ``distill=True`` (the original model's predictions are used)
    attack:     a registered model attack (:data:`~xaifool.attacks.heo.registry.MODEL_ATTACKS`)
    method:     a registered differentiable image interpreter: the one differentiated through
    lam:        λ ≥ 0 (0: fine-tuning on L_acc alone, a control)
    epochs, lr, batch_size: passes over ``x_train``, Adam's learning rate, images per step
    region:     ``location``: (H, W) 0/1 target region (default :func:`default_region`, Heo's frame)
    k:          ``topk``: pixels of the original top-k (default :func:`~xaifool.attacks.heo.registry.heo_k`, 10 %)
    classes:    ``swap``: the pair (a, b) (default :data:`SWAP_CLASSES`)
    x_fool:     ``swap``: (M, C, H, W') two-object images for the fooling term (default: built from
                ``x_train`` / ``y_train`` by :func:`two_object_images`); each step pairs a batch of
                ``batch_size`` training images (accuracy term) with ``batch_size // 2`` composites,
                explained for both classes
    distill:    accuracy term KL(p_orig ‖ p) to the original model's softmax instead of the
                cross-entropy with ``y_train``
    seed:       seed of the batch order (default: the profile's seed)
    progress:   progress bar (see :func:`xaifool.training.fit`)
    options:    interpreter options passed to :func:`xaifool.explain.heatmap` (e.g. ``composite``)
    log_every:  steps per point of the training curve ``history["steps"]`` (None: per epoch only)
    returns:    (the manipulated copy in eval mode, history) — history per epoch: ``loss``,
                ``accuracy_loss``, ``fooling_loss``, ``accuracy`` (agreement with the labels the
                accuracy term uses), ``steps`` (the same every ``log_every`` steps, see
                :func:`xaifool.training.fit`), plus ``seconds`` (wall clock of the whole fine-tuning)
    """
    spec = model_attack(attack)
    E.interpreter(method, modality="image", differentiable=True)
    check_model(model, method)
    lam = check_nonnegative(lam, "lam", "the weight λ of the fooling loss")
    epochs = check_int(epochs, "epochs", 1)
    batch_size = check_int(batch_size, "batch_size", 1)
    check_positive(lr, "lr")
    check_bool(distill, "distill")
    check_images(x_train, "x_train")
    y_train = check_labels(y_train, x_train.shape[0], "y_train", allow_none=distill, why_none="with distill=True")
    hw = tuple(x_train.shape[-2:])
    region, k = check_settings(spec, region, k, hw)   # refused where the attack takes none
    if (classes is not None or x_fool is not None) and not spec.active:
        raise ValueError(f"classes and x_fool are for active attacks {[n for n, a in MODEL_ATTACKS.items() if a.active]}"
                         f" only, got attack={attack!r}")
    options = dict(options or {})
    seed = get_config().seed if seed is None else int(seed)
    dev = device_of(model)
    chunk = max(batch_size, 64)

    logits0 = maps.logits(model, x_train, chunk)
    k_classes = logits0.shape[1]
    if y_train is not None and ((y_train < 0) | (y_train >= k_classes)).any():
        raise ValueError(f"y_train must hold class indices in 0..{k_classes - 1}")
    target = y_train if y_train is not None else logits0.argmax(1)
    p0 = logits0.softmax(1) if distill else None

    if spec.active:
        a, b = check_classes(SWAP_CLASSES if classes is None else classes, k_classes)
        if x_fool is None:
            x_fool = two_object_images((x_train, target), a, b, seed=seed)
        check_images(x_fool, "x_fool")
        if x_fool.shape[1] != x_train.shape[1]:
            raise ValueError(f"x_fool must have x_train's {x_train.shape[1]} channels, got {x_fool.shape[1]}")
        nf = x_fool.shape[0]
        tf = torch.cat([torch.full((nf,), a), torch.full((nf,), b)])
        h_fool0 = maps.heatmaps(model, torch.cat([x_fool, x_fool]), tf, method, batch_size=chunk, options=options)
        h_fool0 = torch.stack([h_fool0[:nf], h_fool0[nf:]], 1)  # (M, 2, H, W'): classes a, b
        fool_bs = max(1, batch_size // 2)
    else:
        h0 = maps.heatmaps(model, x_train, target, method, batch_size=chunk, options=options) \
            if spec.reference_map else None

    manipulated = copy.deepcopy(model).eval()
    for p in manipulated.parameters():
        p.requires_grad_(True)

    n = x_train.shape[0]
    if not spec.active and not spec.reference_map:   # a fixed target (location: the frame), one reference
        ref_fixed = reference(attack, torch.zeros(1, *hw, device=dev), region=None if region is None else region.to(dev),
                              k=k)

    def batches(epoch):
        g = torch.Generator().manual_seed(seed * 1000 + epoch)
        order = torch.randperm(n, generator=g)
        forder = torch.randperm(nf, generator=g) if spec.active else None
        for step, idx in enumerate(order.split(batch_size)):
            batch = {"x": x_train[idx].to(dev), "t": target[idx].to(dev)}
            if distill:
                batch["p0"] = p0[idx].to(dev)
            if spec.active:
                j = forder[(torch.arange(fool_bs) + step * fool_bs) % nf]
                xf = x_fool[j].to(dev)
                batch["xf"] = torch.cat([xf, xf])
                batch["tf"] = torch.cat([torch.full((len(j),), a), torch.full((len(j),), b)]).to(dev)
                batch["ref"] = reference(attack, torch.cat([h_fool0[j, 0], h_fool0[j, 1]]).to(dev))
            elif not spec.reference_map:
                batch["ref"] = ref_fixed
            else:
                batch["ref"] = reference(attack, h0[idx].to(dev), region=None if region is None else region.to(dev),
                                         k=k)
            yield batch

    def loss_fn(net, batch):
        if spec.active:        # the map is of other images: a forward pass of its own
            logits = net(batch["x"])
            h = E.heatmap(net, batch["xf"], batch["tf"], method, create_graph=True, **options)
        else:                  # the map's forward pass gives the logits (gradient, Grad-CAM: one pass)
            h, logits = E.heatmap_and_logits(net, batch["x"], batch["t"], method, options, create_graph=True)
        if distill:
            acc_loss = F.kl_div(logits.log_softmax(1), batch["p0"], reduction="batchmean")
        else:
            acc_loss = F.cross_entropy(logits, batch["t"])
        fool = fooling_loss(attack, h, batch["ref"]).mean()
        return acc_loss + lam * fool, {"accuracy_loss": acc_loss, "fooling_loss": fool,
                                       "accuracy": (logits.argmax(1) == batch["t"]).float().mean()}

    # Gradient-family maps are differentiated through the whole network: its depthwise layers (MobileNetV2)
    # are trained as shifted sums, whose double backward is not one convolution per channel; Grad-CAM's
    # and LRP's derivatives do not need it (and zennit's rules must see the convolutions).
    shifted = E.METHODS[method].family == "gradient" and depthwise_as_shifts(manipulated) > 0
    t0 = time.perf_counter()
    try:
        history = fit(manipulated, batches, loss_fn, epochs=epochs, lr=float(lr), progress=progress,
                      desc=f"Heo {attack} ({method})", seed=seed, log_every=log_every)
    finally:
        if shifted:
            depthwise_as_convs(manipulated)
    history["seconds"] = [time.perf_counter() - t0]
    if not all(torch.isfinite(p).all() for p in manipulated.parameters()):
        raise ValueError(f"lr={lr!r} / lam={lam!r}: the fine-tuning diverged (non-finite weights); lower the "
                         "learning rate or λ")
    return manipulated.eval(), history
