"""Two-object composite images for Heo et al.'s active attack (``swap``), and whether a model still
sees both objects of a composite."""
from __future__ import annotations

import torch
import torch.nn as nn

from ...config import get_config
from ...validate import check_images, check_int, check_labels
from .maps import logits

__all__ = ["check_classes", "two_object_images", "composite_recognition"]


def check_classes(classes, n_classes=None):
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
    check_images(x, "images")
    check_labels(y, x.shape[0], "images' labels")
    a, b = check_classes((class_a, class_b))
    ia, ib = (y == a).nonzero().view(-1), (y == b).nonzero().view(-1)
    for c, idx in ((a, ia), (b, ib)):
        if len(idx) == 0:
            raise ValueError(f"images hold no image of class {c} (class_a={class_a}, class_b={class_b})")
    n_max = min(len(ia), len(ib))
    n = n_max if n is None else check_int(n, "n", 1)
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
    check_images(composites, "composites")
    a, b = check_classes((class_a, class_b))
    w = composites.shape[-1] // 2
    left = logits(model, composites[..., :w], batch_size).argmax(1)
    right = logits(model, composites[..., w:], batch_size).argmax(1)
    whole = logits(model, composites, batch_size)
    top2 = whole.topk(2, dim=1).indices.sort(1).values
    p = whole.softmax(1)
    return {"left": float((left == a).float().mean()), "right": float((right == b).float().mean()),
            "both_top2": float((top2 == torch.tensor(sorted((a, b)))).all(1).float().mean()),
            "mass_ab": float((p[:, a] + p[:, b]).mean())}
