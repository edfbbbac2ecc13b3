r"""Model-level manipulations of explanations: Heo et al. (2019), "Fooling neural network
interpretations via adversarial model manipulation".

A copy of a trained classifier :math:`f_{\omega_0}` is fine-tuned with

.. math:: \mathcal L(\omega) = \mathcal L_{acc}(\omega) + \lambda\,\mathcal L_{fool}(\omega;\omega_0),

where :math:`\mathcal L_{acc}` keeps the accuracy — the cross-entropy on the training labels, or
with ``distill=True`` the KL divergence :math:`\mathrm{KL}(p_{\omega_0}(x)\,\|\,p_\omega(x))` to the
original model's softmax (for data without trusted labels, e.g. the ImageNet sample images) —
and :math:`\mathcal L_{fool}` is one of the fooling objectives of
:mod:`xaifool.attacks.objectives` evaluated on the manipulated model's own explanations
(:func:`xaifool.explain.heatmap` with ``create_graph=True``: Grad-CAM and the gradient by double
back-propagation, LRP through the functional :func:`xaifool.lrp.relevance`). BatchNorm stays in
eval mode throughout (:func:`xaifool.training.fit`'s default), so only the *parameters* move,
never the running statistics, and the explanation being manipulated is the deployed one.

Attacks (:data:`ATTACKS`)
-------------------------
passive (the explanation of the true class is made uninformative):

``location``  mass pushed into a fixed region, by default a frame of width ``side // 7`` along
              the border (Heo's ``location`` loss, mask built by
              :func:`~xaifool.attacks.objectives.region_mask`);
``topk``      mass driven out of the *original* model's top-k pixels of each image
              (k = 10 % of the pixels, Heo's ``l // 10``);
``center``    the centre of mass moved away from the original model's;

active:

``swap``      on images that contain two objects (:func:`two_object_images`: a class-``a``
              image left, a class-``b`` image right), the manipulated model's map for class ``a``
              imitates the original map for class ``b`` and vice versa; the accuracy term runs on
              ordinary training images, the fooling term on the composites (Heo's
              ``forward_targeted``, trained the same way).

What Heo et al.'s released code does, and where this module differs
--------------------------------------------------------------------
Read from github.com/rmrisforbidden/Fooling_Neural_Network-Interpretations at commit
``919e17835c26dd1386dc5644cf5d1cabfec59286`` (``module/sequential.py``, ``run_lrp/*.py|sh``):

* the total loss is ``class_loss + lambda_value * lrp_loss``, Adam, batch size 8 (passive) / 4
  (active), the networks in eval mode (``--eval`` "recommend with BN model"), λ ∈ {0.25, …, 6}
  for passive and 10 for active fooling, learning rates 1e-7 … 1e-5 (ImageNet VGG19,
  ResNet50, DenseNet121, 224 × 224);
* the losses act on maps rescaled to [0, 1] (Grad-CAM: ``cam / max``; LRP and SimpleGrad at a
  target layer: min-max): ``location`` = mean ``(mask − R)²`` with mask 1 on a frame of
  width ``l // 7`` and 0 inside; ``topk`` = mean ``R²`` over the original map's top
  ``l // 10`` pixels; ``center_mass`` = minus the L1 distance (in pixels) between the centres
  of mass; active = ``½ (MSE(R_c1, R0_c2) + MSE(R_c2, R0_c1))``;
* the per-image statistics logged on the validation set (``keep_batch=True``) are the same
  location and top-k losses and, for the centre of mass, the distance
  ``sqrt((Δrow² + Δcol²)/2) / (w − 1)`` ∈ [0, 1]. The paper's fooling success rate counts an
  image as fooled when that statistic lies in a range of success; this module uses the ranges
  :data:`LOCATION_THRESHOLD` (≤ 0.2), :data:`TOPK_THRESHOLD` (≤ 0.3) and
  :data:`CENTER_THRESHOLD` (≥ 0.1) of the paper's §4 (the released code has no FSR function;
  its result viewer thresholds the same statistics).

Differences: (1) the *losses* are the book's shared objectives (maps normalised to sum 1: mass
in the frame, mass on the original top-k, Euclidean centre shift divided by the map's
diagonal, :math:`d\lVert h - h_{swap}\rVert^2`), one implementation for input and model attacks;
the *FSR statistics* are Heo's, on min-max-rescaled maps (:func:`fooling_statistic`). (2) LRP
is the pixel-level map of the book's composite (``epsilon_plus_flat``, absolute relevance),
not LRP to an intermediate layer (Heo's ``lrp_T``). (3) Heo define no FSR for active fooling;
:func:`fooling_success` counts a composite as fooled when *both* classes' fooled maps are
closer (Spearman ρ) to the *other* class's original map than to their own. (4) CIFAR-10
ResNet-20 (32 × 32; composites 32 × 64, its adaptive pooling takes them) instead of ImageNet
CNNs, hence larger learning rates (:data:`DEFAULT_LR`) and the λ of :data:`DEFAULT_LAMBDA`.
"""
from __future__ import annotations

import copy
import math
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field, replace
from numbers import Real

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import explain as E
from .. import metrics as M
from ..cache import cache_key, cached_call, module_digest
from ..config import get_config
from ..models import depthwise_as_convs, depthwise_as_shifts
from .input import _check_int, heatmap_and_logits
from .objectives import OBJECTIVES, region_mask
from .result import BeforeAfter

__all__ = ["ATTACKS", "PASSIVE_ATTACKS", "METHODS", "BASE_MODELS", "DEFAULT_LAMBDA", "DEFAULT_LR", "ACCURACY_BOUND",
           "LOCATION_THRESHOLD", "TOPK_THRESHOLD", "CENTER_THRESHOLD", "TOPK_FRACTION", "FRAME_DIVISOR",
           "SWAP_CLASSES", "ModelResult", "default_region", "default_k", "two_object_images", "finetune",
           "fooling_statistic", "fooling_success", "evaluate", "unmodified", "transfer", "base_model", "finetune_data",
           "heldout_data", "manipulated_model", "run_grid", "check_grid", "composite_recognition", "clear_memo",
           "MEMO_BYTES"]

ATTACKS = ("location", "topk", "center", "swap")
PASSIVE_ATTACKS = ("location", "topk", "center")
#: Interpreters the fine-tuning differentiates through (any image method can be *evaluated*).
METHODS = ("gradcam", "lrp", "gradient")
#: Base models :func:`manipulated_model` knows (key → what it is).
BASE_MODELS = {
    "cifar_resnet20": "CIFAR-10 ResNet-20 (xaifool.models.load_cifar_resnet(20))",
    "mobilenet_v2": "ImageNet MobileNetV2 (xaifool.models.load_imagenet_classifier())",
}

#: Heo's frame: width ``side // FRAME_DIVISOR`` pixels (``k = l // 7`` in ``location``).
FRAME_DIVISOR = 7
#: Heo's top-k: the top 10 % of the pixels (``l // 10`` in ``topk``).
TOPK_FRACTION = 0.1
#: Fooling success, location: at least 70 % of the map's mass Σ|h| inside the region (the default
#: frame covers 44 % of a 32 × 32 image; the original Grad-CAM maps put ~18 % there).
LOCATION_THRESHOLD = 0.7
#: top-k: at most 30 % of the original top-k pixels still among the fooled map's top-k.
TOPK_THRESHOLD = 0.3
#: centre of mass: shift sqrt((Δr/(H−1))² + (Δc/(W−1))²)/√2 ≥ 0.1 (Heo's ``center_mass`` statistic).
CENTER_THRESHOLD = 0.1

#: λ of L = L_acc + λ·L_fool per (attack, method) (book's objectives, maps normalised to sum 1):
#: 10 for the passive attacks, 2 for swap, × 3 for the gradient, whose top-k barely moved at λ = 10.
#: Measured on the ResNet-20 (2,048 lossless training images, one epoch, Adam 3e-4, batch 32; 500
#: held-out test images, accuracy 80 %): larger λ buys FSR with accuracy — location λ = 20: FSR 0.48
#: at 21 % accuracy; LRP top-k λ = 30: FSR 0.66 at 50 %; swap λ = 3: FSR 0.79 at 60 %, λ = 10: 0.90
#: at 52 %; the λ = 0 control loses 3 points. Pairs outside the quick grid are untuned.
DEFAULT_LAMBDA = {(a, m): lam * (3.0 if m == "gradient" else 1.0)
                  for a, lam in {"location": 10.0, "topk": 10.0, "center": 10.0, "swap": 2.0}.items()
                  for m in ("gradcam", "lrp", "gradient")}
#: The accuracy bound the book states and tests: passive top-k fooling of Grad-CAM with the default
#: settings costs the ResNet-20 at most this much held-out top-1 accuracy (quick profile).
ACCURACY_BOUND = 0.10
#: Adam's learning rate for the CIFAR-10 ResNet-20 and for MobileNetV2.
DEFAULT_LR = {"cifar_resnet20": 3e-4, "mobilenet_v2": 1e-4}
#: Default class pair of the active attack (CIFAR-10 indices).
SWAP_CLASSES = (1, 7)


# --------------------------------------------------------------------------------------
# Result
# --------------------------------------------------------------------------------------

@dataclass(kw_only=True)
class ModelResult(BeforeAfter):
    """A manipulated model against its original on held-out images (tensors on the CPU).

    The :class:`~xaifool.attacks.result.BeforeAfter` fields compare the *original* model
    (``heatmap``, ``logits``) with the *manipulated* one (``heatmap_adv``, ``logits_adv``) on the
    same inputs ``x``; ``label`` is the class explained (the original model's prediction, or for
    ``swap`` class ``a`` on rows 0..n−1 and class ``b`` on rows n..2n−1 of the same n composites,
    where ``label_kept`` has no meaning).

    attack:                 a key of :data:`ATTACKS`
    x:                      (B, C, H, W) the images explained
    score:                  (n,) Heo's per-image statistic (:func:`fooling_statistic`)
    success:                (n,) bool, fooled by Heo's criterion (:func:`fooling_success`)
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


# --------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------

def _check_attack(attack) -> str:
    if attack not in ATTACKS:
        raise ValueError(f"attack must be one of {ATTACKS}, got {attack!r}")
    return attack


def _check_method(method, allowed=METHODS, name="method") -> str:
    if method not in allowed:
        raise ValueError(f"{name} must be one of {tuple(allowed)}, got {method!r}")
    return method


def _check_lam(lam) -> float:
    if isinstance(lam, bool) or not isinstance(lam, Real) or not math.isfinite(float(lam)) or float(lam) < 0:
        raise ValueError(f"lam must be a finite number >= 0 (the weight λ of the fooling loss), got {lam!r}")
    return float(lam)


def _check_model(model, method, name="model") -> None:
    if not isinstance(model, nn.Module):
        raise ValueError(f"{name} must be a torch.nn.Module, got {type(model).__name__}")
    if method == "gradcam" and not getattr(model, "cam_layer", ""):
        raise ValueError(f"{name} has no cam_layer: Grad-CAM needs the name of its last convolutional block "
                         "(the models of xaifool.models set model.cam_layer, e.g. 'net.layer3')")
    if method == "gradcam":
        try:
            model.get_submodule(model.cam_layer)
        except AttributeError:
            raise ValueError(f"{name}.cam_layer={model.cam_layer!r} is not a submodule of {name}") from None


def _check_images(x, name="x") -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() != 4 or x.shape[0] == 0:
        got = f"{tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a non-empty floating-point tensor of images (N, C, H, W), got {got}")
    return x


def _check_labels(y, n, name="y", allow_none=False):
    if y is None:
        if allow_none:
            return None
        raise ValueError(f"{name} must be a tensor of class indices ({n},); it may be None only with distill=True")
    if not isinstance(y, torch.Tensor) or y.dtype != torch.long or tuple(y.shape) != (n,):
        got = f"{y.dtype} {tuple(y.shape)}" if isinstance(y, torch.Tensor) else type(y).__name__
        raise ValueError(f"{name} must be a torch.long tensor of shape ({n},) (one class per image), got {got}")
    return y


def _check_classes(classes, n_classes=None):
    try:
        a, b = (int(c) for c in classes)
        ok = all(not isinstance(c, bool) and float(c) == int(c) for c in classes)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"classes must be a pair (a, b) of class indices for the swap attack, got {classes!r}")
    if a == b:
        raise ValueError(f"classes must be two different classes for the swap attack, got {classes!r}")
    if min(a, b) < 0 or (n_classes is not None and max(a, b) >= n_classes):
        rng = f"0..{n_classes - 1}" if n_classes is not None else ">= 0"
        raise ValueError(f"classes must be class indices in {rng}, got {classes!r}")
    return a, b


def default_region(hw) -> torch.Tensor:
    """Heo's location target: a frame of width ``min(H, W) // 7`` (4 px at 32 × 32, 32 px at 224 × 224), (H, W)."""
    h, w = (int(v) for v in hw)
    return region_mask((h, w), "frame", max(1, min(h, w) // FRAME_DIVISOR))


def default_k(hw) -> int:
    """Heo's top-k size: 10 % of the pixels (102 at 32 × 32, 5018 at 224 × 224)."""
    return max(1, round(TOPK_FRACTION * int(hw[0]) * int(hw[1])))


def _check_region(region, hw) -> torch.Tensor:
    if region is None:
        return default_region(hw)
    if not isinstance(region, torch.Tensor) or tuple(region.shape) != tuple(hw):
        got = tuple(region.shape) if isinstance(region, torch.Tensor) else type(region).__name__
        raise ValueError(f"region must be a 0/1 tensor of the heatmaps' shape {tuple(hw)} (e.g. "
                         f"xaifool.attacks.objectives.region_mask), got {got}")
    r = region.float()
    if torch.isnan(r).any() or r.min() < 0 or r.max() > 1:
        raise ValueError("region must hold values in [0, 1] (1 inside the region)")
    if not 0 < float(r.sum()) < r.numel():
        raise ValueError(f"region must cover part of the image: between 1 and {r.numel() - 1} of its "
                         f"{r.numel()} pixels, got {float(r.sum()):g}")
    return r


def _check_k(k, hw) -> int:
    n = int(hw[0]) * int(hw[1])
    return default_k(hw) if k is None else _check_int(k, "k", 1, n - 1)


def _device(model) -> torch.device:
    return next(model.parameters()).device


# --------------------------------------------------------------------------------------
# Composite two-object images
# --------------------------------------------------------------------------------------

def two_object_images(images, class_a: int, class_b: int, n: int | None = None, *,
                      seed: int | None = None) -> torch.Tensor:
    """Composites of two objects side by side: a class-``a`` image left, a class-``b`` image right.

    images:  an :class:`~xaifool.data.ImageBatch` or a pair ``(x (N, C, H, W), y (N,))``
    class_a, class_b: two different class indices, each present in ``images``
    n:       number of composites (default: as many as the rarer class has images); up to that
             number every image is used at most once, beyond it pairs are drawn with replacement
    seed:    seed of the pairing (default: the profile's seed)
    returns: (n, C, H, 2W) in the value range of ``images`` — the analogue of Heo et al.'s
             synthetic two-object images; CIFAR-10's 32 × 64 composites go through ResNet-20
             unchanged (its global average pool adapts to the width)
    """
    x, y = (images.x, images.y) if hasattr(images, "x") and hasattr(images, "y") else images
    _check_images(x, "images")
    _check_labels(y, x.shape[0], "images' labels")
    a, b = _check_classes((class_a, class_b))
    ia, ib = (y == a).nonzero().view(-1), (y == b).nonzero().view(-1)
    for c, idx in ((a, ia), (b, ib)):
        if len(idx) == 0:
            raise ValueError(f"images hold no image of class {c} (class_a={class_a}, class_b={class_b})")
    n_max = min(len(ia), len(ib))
    n = n_max if n is None else _check_int(n, "n", 1)
    g = torch.Generator().manual_seed(get_config().seed if seed is None else int(seed))
    if n <= n_max:
        left, right = ia[torch.randperm(len(ia), generator=g)[:n]], ib[torch.randperm(len(ib), generator=g)[:n]]
    else:
        left, right = ia[torch.randint(len(ia), (n,), generator=g)], ib[torch.randint(len(ib), (n,), generator=g)]
    return torch.cat([x[left], x[right]], dim=3)


@torch.no_grad()
def composite_recognition(model: nn.Module, composites: torch.Tensor, class_a: int, class_b: int, *,
                          batch_size: int = 256) -> dict[str, float]:
    """Does ``model`` still see both objects of :func:`two_object_images` composites?

    returns: ``left`` / ``right`` — the share of left halves classified as ``class_a`` and of right
             halves as ``class_b`` (each half alone, at its original size); ``both_top2`` — the
             share of whole composites whose two highest-scoring classes are {a, b};
             ``mass_ab`` — the mean softmax mass p(a) + p(b) on the whole composite
    """
    _check_images(composites, "composites")
    a, b = _check_classes((class_a, class_b))
    w = composites.shape[-1] // 2
    left = _logits(model, composites[..., :w], batch_size).argmax(1)
    right = _logits(model, composites[..., w:], batch_size).argmax(1)
    whole = _logits(model, composites, batch_size)
    top2 = whole.topk(2, dim=1).indices.sort(1).values
    p = whole.softmax(1)
    return {"left": float((left == a).float().mean()), "right": float((right == b).float().mean()),
            "both_top2": float((top2 == torch.tensor(sorted((a, b)))).all(1).float().mean()),
            "mass_ab": float((p[:, a] + p[:, b]).mean())}


# --------------------------------------------------------------------------------------
# Heatmaps, losses and Heo's statistics
# --------------------------------------------------------------------------------------

#: Maps already computed in this process, keyed by content (:func:`_memo_key`). :func:`evaluate`
#: explains the *original* model on the same held-out images once per manipulated model, and
#: :func:`transfer` once per manipulated model and interpreter; the memo computes each once.
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
                                  "device": str(_device(model)), "profile": asdict(get_config().profile)},
                     depends=(__name__,))


def clear_memo() -> None:
    """Forget the maps :func:`_heatmaps` remembers (tests; freeing memory)."""
    _MEMO.clear()
    _MEMO_HELD[0] = 0


def _heatmaps(model, x, target, method, *, batch_size, options) -> torch.Tensor:
    """Detached heatmaps (N, H, W) on the CPU, computed in chunks on the model's device, or
    taken from the in-process memo when the same network already explained the same images."""
    try:
        key = _memo_key(model, x, target, method, batch_size, options)
    except (ValueError, TypeError):   # a value the key cannot hold (a callable, a bfloat16 image): not remembered
        key = None
    if key in _MEMO:
        _MEMO.move_to_end(key)
        return _MEMO[key].clone()
    dev = _device(model)
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
def _logits(model, x, batch_size) -> torch.Tensor:
    dev = _device(model)
    return torch.cat([model(x[i:i + batch_size].to(dev)).float().cpu() for i in range(0, x.shape[0], batch_size)])


def _reference(attack, h0, *, region=None, k=None) -> dict:
    """The shared objective's reference for original maps ``h0`` (B, H, W)."""
    obj = OBJECTIVES[attack]
    if attack == "location":
        return obj.reference(h0, None, region=region)
    if attack == "topk":
        return obj.reference(h0, None, k=k)
    return obj.reference(h0, None)


def _fooling_loss(attack, h, ref) -> torch.Tensor:
    """(B,) the shared objective; ``center`` as a fraction of the map's diagonal (λ independent of size)."""
    loss = OBJECTIVES[attack].loss(h, None, ref)
    if attack == "center":
        loss = loss / math.hypot(h.shape[-2] - 1, h.shape[-1] - 1)
    return loss


def _unit(h: torch.Tensor) -> torch.Tensor:
    """Each map min-max rescaled to [0, 1] (Heo's ``normalize``)."""
    flat = h.flatten(1)
    lo, hi = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    return ((flat - lo) / (hi - lo + 1e-8)).view_as(h)


def _check_pair(h_orig, h_fooled):
    for name, h in (("h_orig", h_orig), ("h_fooled", h_fooled)):
        if not isinstance(h, torch.Tensor) or h.dim() != 3 or not h.is_floating_point() or h.shape[0] == 0:
            got = tuple(h.shape) if isinstance(h, torch.Tensor) else type(h).__name__
            raise ValueError(f"{name} must be a floating-point tensor of heatmaps (B, H, W), got {got}")
    if h_orig.shape != h_fooled.shape:
        raise ValueError(f"h_orig and h_fooled must have the same shape, got {tuple(h_orig.shape)} and "
                         f"{tuple(h_fooled.shape)}")


def fooling_statistic(attack: str, h_orig: torch.Tensor, h_fooled: torch.Tensor, *, region=None,
                      k: int | None = None) -> torch.Tensor:
    """The per-image statistic behind :func:`fooling_success`.

    attack:   a key of :data:`ATTACKS`
    h_orig:   (B, H, W) the original model's maps (``swap``: rows 0..n−1 class ``a``, n..2n−1 class ``b``)
    h_fooled: (B, H, W) the manipulated model's maps of the same images and classes
    region:   ``location``: the (H, W) 0/1 target region (default :func:`default_region`)
    k:        ``topk``: top-k size (default :func:`default_k`, 10 % of the pixels)
    returns:  (B,) — ``location``: the share of the fooled map's mass Σ|h'| inside the region
              (higher = fooled); ``topk``: the top-k intersection of the fooled with the original map
              (lower = fooled); ``center``: the centre-of-mass shift
              sqrt((Δr/(H−1))² + (Δc/(W−1))²)/√2 ∈ [0, 1] of the min-max-rescaled maps (Heo's
              ``center_mass`` statistic; higher = fooled); ``swap``: (n,) the smaller of the two
              margins ρ(h'_a, h_b) − ρ(h'_a, h_a) and ρ(h'_b, h_a) − ρ(h'_b, h_b) (Spearman ρ; > 0 = fooled)
    """
    _check_attack(attack)
    _check_pair(h_orig, h_fooled)
    hw = tuple(h_orig.shape[-2:])
    h0, h1 = h_orig.detach().float().cpu(), h_fooled.detach().float().cpu()
    if attack == "location":
        r = _check_region(region, hw)
        w = h1.abs().flatten(1)
        return (w * r.flatten()).sum(1) / w.sum(1).clamp_min(1e-30)
    if attack == "topk":
        return M.topk_intersection(h0, h1, _check_k(k, hw))
    if attack == "center":
        d = M._center_of_mass(_unit(h1)) - M._center_of_mass(_unit(h0))
        scale = torch.tensor([max(hw[0] - 1, 1), max(hw[1] - 1, 1)], dtype=d.dtype)
        return torch.linalg.vector_norm(d / scale, dim=1) / math.sqrt(2)
    if h0.shape[0] % 2:
        raise ValueError(f"h_orig must hold 2n maps for swap (rows 0..n−1 class a, n..2n−1 class b), got "
                         f"{h0.shape[0]}")
    n = h0.shape[0] // 2
    a0, b0, a1, b1 = h0[:n], h0[n:], h1[:n], h1[n:]
    margin_a = M.spearman(a1, b0) - M.spearman(a1, a0)
    margin_b = M.spearman(b1, a0) - M.spearman(b1, b0)
    return torch.minimum(margin_a, margin_b)


def fooling_success(attack: str, h_orig: torch.Tensor, h_fooled: torch.Tensor, *, region=None,
                    k: int | None = None) -> torch.Tensor:
    """(B,) bool (``swap``: (n,)): is each image fooled? (statistics of :func:`fooling_statistic`)

    ``location``: share of the mass in the region ≥ :data:`LOCATION_THRESHOLD` (0.7);
    ``topk``:     top-k intersection with the original map ≤ :data:`TOPK_THRESHOLD` (0.3);
    ``center``:   centre-of-mass shift ≥ :data:`CENTER_THRESHOLD` (0.1);
    ``swap``:     > 0 — both classes' fooled maps closer to the other class's original map than to
                  their own (this book's criterion; Heo et al. report correlations, no FSR).
    An unchanged map is never fooled. NaN statistics (constant maps) count as not fooled.
    Arguments as for :func:`fooling_statistic`.
    """
    s = fooling_statistic(attack, h_orig, h_fooled, region=region, k=k)
    if attack == "location":
        return s >= LOCATION_THRESHOLD
    if attack == "topk":
        return s <= TOPK_THRESHOLD
    if attack == "center":
        return s >= CENTER_THRESHOLD
    return s > 0


# --------------------------------------------------------------------------------------
# Fine-tuning
# --------------------------------------------------------------------------------------

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
    attack:     a key of :data:`ATTACKS`
    method:     a key of :data:`METHODS`: the interpreter differentiated through
    lam:        λ ≥ 0 (0: fine-tuning on L_acc alone, a control)
    epochs, lr, batch_size: passes over ``x_train``, Adam's learning rate, images per step
    region:     ``location``: (H, W) 0/1 target region (default :func:`default_region`, Heo's frame)
    k:          ``topk``: pixels of the original top-k (default :func:`default_k`, 10 %)
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
    from ..training import fit

    _check_attack(attack)
    _check_method(method)
    _check_model(model, method)
    lam = _check_lam(lam)
    epochs = _check_int(epochs, "epochs", 1)
    batch_size = _check_int(batch_size, "batch_size", 1)
    if isinstance(lr, bool) or not isinstance(lr, Real) or not float(lr) > 0 or not math.isfinite(float(lr)):
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
    if not isinstance(distill, bool):
        raise ValueError(f"distill must be True or False, got {distill!r}")
    _check_images(x_train, "x_train")
    y_train = _check_labels(y_train, x_train.shape[0], "y_train", allow_none=distill)
    if region is not None and attack != "location":
        raise ValueError(f"region is for attack='location' only, got attack={attack!r}")
    if k is not None and attack != "topk":
        raise ValueError(f"k is for attack='topk' only, got attack={attack!r}")
    if (classes is not None or x_fool is not None) and attack != "swap":
        raise ValueError(f"classes and x_fool are for attack='swap' only, got attack={attack!r}")
    options = dict(options or {})
    seed = get_config().seed if seed is None else int(seed)
    dev = _device(model)
    hw = tuple(x_train.shape[-2:])
    chunk = max(batch_size, 64)

    logits0 = _logits(model, x_train, chunk)
    k_classes = logits0.shape[1]
    if y_train is not None and ((y_train < 0) | (y_train >= k_classes)).any():
        raise ValueError(f"y_train must hold class indices in 0..{k_classes - 1}")
    target = y_train if y_train is not None else logits0.argmax(1)
    p0 = logits0.softmax(1) if distill else None

    if attack == "swap":
        a, b = _check_classes(SWAP_CLASSES if classes is None else classes, k_classes)
        if x_fool is None:
            x_fool = two_object_images((x_train, target), a, b, seed=seed)
        _check_images(x_fool, "x_fool")
        if x_fool.shape[1] != x_train.shape[1]:
            raise ValueError(f"x_fool must have x_train's {x_train.shape[1]} channels, got {x_fool.shape[1]}")
        nf = x_fool.shape[0]
        tf = torch.cat([torch.full((nf,), a), torch.full((nf,), b)])
        h_fool0 = _heatmaps(model, torch.cat([x_fool, x_fool]), tf, method, batch_size=chunk, options=options)
        h_fool0 = torch.stack([h_fool0[:nf], h_fool0[nf:]], 1)  # (M, 2, H, W'): classes a, b
        fool_bs = max(1, batch_size // 2)
    else:
        region = _check_region(region, hw) if attack == "location" else None
        k = _check_k(k, hw) if attack == "topk" else None
        h0 = None if attack == "location" else _heatmaps(model, x_train, target, method, batch_size=chunk,
                                                           options=options)

    manipulated = copy.deepcopy(model).eval()
    for p in manipulated.parameters():
        p.requires_grad_(True)

    n = x_train.shape[0]
    if attack == "location":
        ref_location = _reference("location", torch.zeros(1, *hw, device=dev), region=region.to(dev))

    def batches(epoch):
        g = torch.Generator().manual_seed(seed * 1000 + epoch)
        order = torch.randperm(n, generator=g)
        forder = torch.randperm(nf, generator=g) if attack == "swap" else None
        for step, idx in enumerate(order.split(batch_size)):
            batch = {"x": x_train[idx].to(dev), "t": target[idx].to(dev)}
            if distill:
                batch["p0"] = p0[idx].to(dev)
            if attack == "swap":
                j = forder[(torch.arange(fool_bs) + step * fool_bs) % nf]
                xf = x_fool[j].to(dev)
                batch["xf"] = torch.cat([xf, xf])
                batch["tf"] = torch.cat([torch.full((len(j),), a), torch.full((len(j),), b)]).to(dev)
                batch["ref"] = OBJECTIVES["swap"].reference(
                    torch.cat([h_fool0[j, 0], h_fool0[j, 1]]).to(dev), None)
            elif attack == "location":
                batch["ref"] = ref_location
            else:
                batch["ref"] = _reference(attack, h0[idx].to(dev), k=k)
            yield batch

    def loss_fn(net, batch):
        if attack == "swap":   # the map is of other images: a forward pass of its own
            logits = net(batch["x"])
            h = E.heatmap(net, batch["xf"], batch["tf"], method, create_graph=True, **options)
        else:                  # the map's forward pass gives the logits (gradient, Grad-CAM: one pass)
            h, logits = heatmap_and_logits(net, batch["x"], batch["t"], method, options, create_graph=True)
        if distill:
            acc_loss = F.kl_div(logits.log_softmax(1), batch["p0"], reduction="batchmean")
        else:
            acc_loss = F.cross_entropy(logits, batch["t"])
        fool = _fooling_loss(attack, h, batch["ref"]).mean()
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


# --------------------------------------------------------------------------------------
# Evaluation on held-out images
# --------------------------------------------------------------------------------------

def evaluate(base: nn.Module, manipulated: nn.Module, x_test: torch.Tensor, y_test: torch.Tensor | None,
             attack: str, method: str, *, classes=None, n_pairs: int | None = None, region=None,
             k: int | None = None, batch_size: int | None = None, seed: int | None = None,
             options: dict | None = None, cache: bool = False) -> ModelResult:
    """The original and the manipulated model side by side on held-out images.

    base, manipulated: the original model and its manipulated copy
    x_test:  (N, C, H, W) held-out images; y_test: (N,) their labels (None: no accuracy)
    attack:  a key of :data:`ATTACKS` (decides the statistic and, for ``swap``, the inputs)
    method:  the interpreter evaluated: any image method of :data:`xaifool.explain.METHODS`
             (the one fooled, or another to measure transfer, e.g. ``"smoothgrad"``)
    classes, n_pairs: ``swap``: the class pair (default :data:`SWAP_CLASSES`) and the number of
             composites built from the held-out images of the two classes by
             :func:`two_object_images` (default: as many as the rarer class has; needs ``y_test``)
    region, k: as for :func:`fooling_statistic`
    options: interpreter options (e.g. ``n_samples`` for SmoothGrad)
    cache:   take the result from the on-disk cache when the same two networks were evaluated on
             the same images with the same settings (:func:`xaifool.cache.cached_call`)
    returns: :class:`ModelResult` — passive attacks: maps of the original model's predicted class
             on each image; ``swap``: maps of classes a and b on each composite (2n rows).
             ``accuracy`` / ``accuracy_adv`` on all of ``x_test``.
    """
    _check_attack(attack)
    _check_method(method, E.IMAGE_METHODS)
    for name, m in (("base", base), ("manipulated", manipulated)):
        _check_model(m, method, name)
    _check_images(x_test, "x_test")
    y_test = _check_labels(y_test, x_test.shape[0], "y_test", allow_none=attack != "swap")
    if cache:
        manipulated.to(_device(base))   # where a computed evaluation leaves it
        return cached_call("heo-evaluate", evaluate, base, manipulated, x_test, y_test, attack, method,
                           classes=classes, n_pairs=n_pairs, region=region, k=k, batch_size=batch_size, seed=seed,
                           options=options, encode=ModelResult.to_dict, decode=ModelResult.from_dict)
    cfg = get_config()
    bs = cfg.profile.batch_size if batch_size is None else _check_int(batch_size, "batch_size", 1)
    options = dict(options or {})
    dev = _device(base)
    manipulated = manipulated.to(dev)
    t0 = time.perf_counter()
    logits_test, logits_test_adv = _logits(base, x_test, bs), _logits(manipulated, x_test, bs)
    acc = acc_adv = float("nan")
    if y_test is not None:
        acc = float((logits_test.argmax(1) == y_test).float().mean())
        acc_adv = float((logits_test_adv.argmax(1) == y_test).float().mean())
    settings = {"options": options, "n_test": x_test.shape[0]}
    if attack == "swap":
        a, b = _check_classes(SWAP_CLASSES if classes is None else classes, logits_test.shape[1])
        xc = two_object_images((x_test, y_test), a, b, n_pairs, seed=seed)
        n = xc.shape[0]
        x = torch.cat([xc, xc])
        label = torch.cat([torch.full((n,), a), torch.full((n,), b)])
        logits, logits_adv = _logits(base, x, bs), _logits(manipulated, x, bs)
        settings["classes"] = [a, b]
    else:
        x, logits, logits_adv = x_test, logits_test, logits_test_adv
        label = logits.argmax(1)
    hw = tuple(x.shape[-2:])
    if attack == "location":
        region = _check_region(region, hw)
        settings["region"] = region
    elif region is not None:
        raise ValueError(f"region is for attack='location' only, got attack={attack!r}")
    if attack == "topk":
        k = _check_k(k, hw)
    elif k is not None:
        raise ValueError(f"k is for attack='topk' only, got attack={attack!r}")
    settings["k"] = k if k is not None else default_k(hw)
    h = _heatmaps(base, x, label, method, batch_size=bs, options=options)
    h_adv = _heatmaps(manipulated, x, label, method, batch_size=bs, options=options)
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
    kw = {"region": result.settings.get("region"), "k": result.settings["k"] if result.attack == "topk" else None}
    return replace(result, heatmap_adv=h, logits_adv=result.logits, accuracy_adv=result.accuracy,
                   score=fooling_statistic(result.attack, h, h, **kw), success=fooling_success(result.attack, h, h, **kw),
                   settings={**result.settings, "seconds": 0.0})


def transfer(base: nn.Module, manipulated: nn.Module, x_test: torch.Tensor, y_test: torch.Tensor | None,
             attack: str, methods, *, options: dict | None = None, **kwargs) -> dict[str, ModelResult]:
    """:func:`evaluate` for several interpreters on the same manipulated model — does a model
    fooled through one interpreter also fool SmoothGrad, Integrated Gradients, …?

    methods: iterable of image methods of :data:`xaifool.explain.METHODS`
    options: ``{method: {option: value}}`` per-method interpreter options
    kwargs:  passed to :func:`evaluate` (``classes``, ``region``, ``k``, ``batch_size``, ``cache``, …)
    returns: ``{method: ModelResult}``
    """
    methods = list(methods)
    for m in methods:
        _check_method(m, E.IMAGE_METHODS, "methods")
    options = dict(options or {})
    unknown = sorted(set(options) - set(methods))
    if unknown:
        raise ValueError(f"options has entries {unknown} for methods not in methods={methods}")
    return {m: evaluate(base, manipulated, x_test, y_test, attack, m, options=options.get(m), **kwargs)
            for m in methods}


# --------------------------------------------------------------------------------------
# Base models, data, cached manipulated models
# --------------------------------------------------------------------------------------

def _check_base_key(base_key) -> str:
    if base_key not in BASE_MODELS:
        raise ValueError(f"base_key must be one of {tuple(BASE_MODELS)}, got {base_key!r}")
    return base_key


def base_model(base_key: str, device=None) -> nn.Module:
    """The original model of ``base_key`` (a key of :data:`BASE_MODELS`), eval mode, on the device."""
    from ..models import load_cifar_resnet, load_imagenet_classifier

    _check_base_key(base_key)
    if base_key == "cifar_resnet20":
        return load_cifar_resnet(20, device=device)
    return load_imagenet_classifier(device=device)


def _imagenet_halves(n: int, seed: int):
    from ..data import load_imagenet_samples

    images = load_imagenet_samples(n)
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(images), generator=g)
    half = len(images) // 2
    return images.subset(perm[:half].sort().values), images.subset(perm[half:].sort().values)


def _split(base_key: str, n, seed, half: int):
    """Shared checks of :func:`finetune_data` / :func:`heldout_data`: (profile, seed, ImageNet half or None)."""
    _check_base_key(base_key)
    P = get_config().profile
    seed = get_config().seed if seed is None else int(seed)
    if base_key == "mobilenet_v2":
        if n is not None:
            raise ValueError("n must be None for mobilenet_v2 (profile.heo_n_imagenet sets the split)")
        return P, seed, _imagenet_halves(P.heo_n_imagenet, seed)[half]
    return P, seed, None


def finetune_data(base_key: str, n: int | None = None, *, seed: int | None = None):
    """The fine-tuning images of ``base_key`` as an :class:`~xaifool.data.ImageBatch`.

    ``cifar_resnet20``: ``n`` (default ``profile.heo_n_train``) CIFAR-10 training images — a seeded
    subset of the 4,000 lossless ones when n ≤ 4000, else of the 50,000 JPEGs;
    ``mobilenet_v2``: the fine-tuning half of ``profile.heo_n_imagenet`` ImageNet sample images
    (``n`` must then be None).
    """
    from ..data import load_cifar10

    P, seed, images = _split(base_key, n, seed, 0)
    if images is not None:
        return images
    n = P.heo_n_train if n is None else _check_int(n, "n", 1, 50000)
    split = "train4000" if n <= 4000 else "train"
    return load_cifar10(split, None if n == (4000 if split == "train4000" else 50000) else n, seed=seed)


def heldout_data(base_key: str, n: int | None = None, *, seed: int | None = None):
    """Held-out images of ``base_key``: ``n`` (default ``profile.heo_n_test``) CIFAR-10 test images,
    or for ``mobilenet_v2`` the held-out half of the ImageNet sample images (``n`` must be None)."""
    from ..data import load_cifar10

    P, seed, images = _split(base_key, n, seed, 1)
    if images is not None:
        return images
    n = P.heo_n_test if n is None else _check_int(n, "n", 1, 10000)
    return load_cifar10("test", n, seed=seed)


def manipulated_model(base_key: str, attack: str, method: str, *, lam: float | None = None,
                      epochs: int | None = None, lr: float | None = None, n_train: int | None = None,
                      batch_size: int | None = None, classes=None, seed: int | None = None,
                      progress: bool | None = None, refresh: bool = False) -> nn.Module:
    """The manipulated copy of ``base_key`` for ``attack`` through ``method``, fine-tuned once and cached.

    base_key: a key of :data:`BASE_MODELS`; ``mobilenet_v2`` is fine-tuned with ``distill=True`` on
              half of the ImageNet sample images (passive attacks only: the samples hold one image
              per class, too few for two-object composites)
    attack, method: keys of :data:`ATTACKS` and :data:`METHODS`
    lam, lr:  default :data:`DEFAULT_LAMBDA` [attack, method], :data:`DEFAULT_LR` [base_key]
    epochs, n_train, batch_size: default the profile's ``heo_*`` sizes
    classes:  ``swap``: the class pair (default :data:`SWAP_CLASSES`)
    refresh:  recompute and overwrite the cached weights
    returns:  the model (eval mode, on the configured device), with ``model.manipulation`` =
              ``{"settings": ..., "history": ...}``. The cache key holds every setting, the device
              and the source of this module and of those it imports, so later chapters (sanity
              checks, leaderboards) load the same weights by calling this function again.
    """
    from ..cache import cached
    from ..data import ImageBatch  # noqa: F401  (data is part of the dependency closure)

    _check_base_key(base_key)
    _check_attack(attack)
    _check_method(method)
    cfg = get_config()
    P = cfg.profile
    imagenet = base_key == "mobilenet_v2"
    if imagenet and attack == "swap":
        raise ValueError("attack 'swap' needs two-object images of two classes; the ImageNet sample images hold one "
                         "image per class, so base_key='mobilenet_v2' supports the passive attacks "
                         f"{PASSIVE_ATTACKS} only")
    if imagenet and n_train is not None:
        raise ValueError("n_train must be None for mobilenet_v2 (profile.heo_n_imagenet sets the split)")
    lam = DEFAULT_LAMBDA[attack, method] if lam is None else _check_lam(lam)
    lr = DEFAULT_LR[base_key] if lr is None else lr
    epochs = (P.heo_epochs_imagenet if imagenet else P.heo_epochs) if epochs is None else _check_int(epochs, "epochs", 1)
    batch_size = (P.heo_batch_size_imagenet if imagenet else P.heo_batch_size) if batch_size is None else \
        _check_int(batch_size, "batch_size", 1)
    n_train = None if imagenet else (P.heo_n_train if n_train is None else _check_int(n_train, "n_train", 1, 50000))
    seed = cfg.seed if seed is None else int(seed)
    if attack == "swap":
        classes = list(_check_classes(SWAP_CLASSES if classes is None else classes, 10))
    elif classes is not None:
        raise ValueError(f"classes are for attack='swap' only, got attack={attack!r}")
    settings = {"base": base_key, "attack": attack, "method": method, "lam": lam, "lr": float(lr), "epochs": epochs,
                "batch_size": batch_size, "n_train": n_train, "n_imagenet": P.heo_n_imagenet if imagenet else None,
                "classes": classes, "seed": seed, "distill": imagenet, "device": cfg.device.type}
    base = base_model(base_key)

    def compute():
        data = finetune_data(base_key, n_train, seed=seed)
        model, history = finetune(base, data.x, data.y, attack, method, lam=lam, epochs=epochs, lr=lr,
                                  batch_size=batch_size, classes=classes, distill=imagenet, seed=seed,
                                  progress=progress)
        return {"state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}, "history": history}

    out = cached("heo-model", settings, compute, depends=(__name__,), refresh=refresh)
    model = copy.deepcopy(base)
    model.load_state_dict(out["state_dict"])
    model.manipulation = {"settings": settings, "history": out["history"]}
    return model.eval()


def check_grid(pairs, name="pairs") -> tuple:
    """``pairs`` as a tuple of (attack, method) pairs, each a key of :data:`ATTACKS` × :data:`METHODS`."""
    try:
        pairs = tuple((a, m) for a, m in pairs)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a sequence of (attack, method) pairs, e.g. "
                         f"[('topk', 'gradcam')], got {pairs!r}") from None
    if not pairs:
        raise ValueError(f"{name} must hold at least one (attack, method) pair")
    for a, m in pairs:
        _check_attack(a)
        _check_method(m, METHODS, f"the method of {name}")
    return pairs


def run_grid(base_key: str, pairs, *, x_test=None, y_test=None, progress: bool | None = None, **kwargs) -> dict:
    """Every manipulated model of ``pairs`` (fine-tuned once, then loaded from the cache) on held-out images.

    base_key: a key of :data:`BASE_MODELS`
    pairs:    (attack, method) pairs, e.g. ``profile.heo_grid``
    x_test, y_test: held-out images and labels (default :func:`heldout_data`)
    kwargs:   settings passed to :func:`manipulated_model` (``lam``, ``epochs``, ``lr``, …)
    returns:  ``{"models": {pair: model}, "results": {pair: ModelResult}, "unmodified": {pair:
              ModelResult}}`` — ``unmodified`` applies the same criterion with the original model in
              place of the manipulated one (the FSR a manipulation has to beat; 0 for the passive
              attacks by construction)
    """
    pairs = check_grid(pairs)
    _check_base_key(base_key)
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
