"""The model zoo: the book's base models with their data splits, one :class:`BaseModel` entry each.

Model attacks (Heo et al.) fine-tune a copy of a base model on its fine-tuning images and are
evaluated on its held-out images; the entry says how to load the model and its splits, whether its
images carry trusted labels (otherwise the accuracy term distils the original model's softmax), and
its fine-tuning sizes. A new base model is one entry in :data:`BASE_MODELS` (``register``).
:func:`correct_subset` picks the images a model classifies correctly (the input attacks' images).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn

from .config import get_config
from .entries import Registry
from .validate import check_int

__all__ = ["BaseModel", "BASE_MODELS", "register", "base_entry", "base_model", "finetune_data", "heldout_data",
           "correct_subset"]


@dataclass(frozen=True)
class BaseModel:
    """One base model.

    key:           the name (``base_key=`` everywhere)
    description:   one line for tables
    load:          ``device → nn.Module`` (eval mode)
    finetune:      ``(n or None, seed) → ImageBatch`` the fine-tuning images
    heldout:       ``(n or None, seed) → ImageBatch`` the held-out images
    labelled:      the fine-tuning images carry trusted labels (False: distil the original's softmax)
    composites:    two-object composites can be built from its images (active attacks)
    lr:            Adam's learning rate for Heo et al.'s fine-tuning
    epochs, batch_size, n_train: the profile fields that size its fine-tuning (``n_train`` None: the
                   split is fixed, ``n`` must be None)
    """

    key: str
    description: str
    load: Callable
    finetune: Callable
    heldout: Callable
    labelled: bool
    composites: bool
    lr: float
    epochs: str
    batch_size: str
    n_train: str | None


def _cifar_finetune(n, seed):
    from .data import load_cifar10

    n = get_config().profile.heo_n_train if n is None else check_int(n, "n", 1, 50000)
    split = "train4000" if n <= 4000 else "train"
    return load_cifar10(split, None if n == (4000 if split == "train4000" else 50000) else n, seed=seed)


def _cifar_heldout(n, seed):
    from .data import load_cifar10

    n = get_config().profile.heo_n_test if n is None else check_int(n, "n", 1, 10000)
    return load_cifar10("test", n, seed=seed)


def _imagenet_halves(n: int, seed: int):
    from .data import load_imagenet_samples

    images = load_imagenet_samples(n)
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(images), generator=g)
    half = len(images) // 2
    return images.subset(perm[:half].sort().values), images.subset(perm[half:].sort().values)


def _imagenet_half(half: int):
    def split(n, seed):
        if n is not None:
            raise ValueError("n must be None for mobilenet_v2 (profile.heo_n_imagenet sets the split)")
        return _imagenet_halves(get_config().profile.heo_n_imagenet, seed)[half]
    return split


def _load_resnet20(device):
    from .models import load_cifar_resnet

    return load_cifar_resnet(20, device=device)


def _load_mobilenet(device):
    from .models import load_imagenet_classifier

    return load_imagenet_classifier(device=device)


#: The base models (key → entry). ``cifar_resnet20``: ``n`` (default ``profile.heo_n_train``) CIFAR-10
#: training images — a seeded subset of the 4,000 lossless ones when n ≤ 4000, else of the 50,000
#: JPEGs — and ``profile.heo_n_test`` test images; ``mobilenet_v2``: the two halves of
#: ``profile.heo_n_imagenet`` ImageNet sample images (one image per class, no trusted labels).
BASE_MODELS: Registry = Registry("base model", BaseModel, [
    BaseModel("cifar_resnet20", "CIFAR-10 ResNet-20 (xaifool.models.load_cifar_resnet(20))", _load_resnet20,
              _cifar_finetune, _cifar_heldout, labelled=True, composites=True, lr=3e-4, epochs="heo_epochs",
              batch_size="heo_batch_size", n_train="heo_n_train"),
    BaseModel("mobilenet_v2", "ImageNet MobileNetV2 (xaifool.models.load_imagenet_classifier())", _load_mobilenet,
              _imagenet_half(0), _imagenet_half(1), labelled=False, composites=False, lr=1e-4,
              epochs="heo_epochs_imagenet", batch_size="heo_batch_size_imagenet", n_train=None),
], key="key")
#: Add a :class:`BaseModel` (see :class:`xaifool.entries.Registry`).
register = BASE_MODELS.register


def base_entry(base_key) -> BaseModel:
    """The entry of ``base_key``; a ValueError naming the registered base models otherwise."""
    return BASE_MODELS.entry(base_key, "base_key")


def base_model(base_key: str, device=None) -> nn.Module:
    """The original model of ``base_key`` (a key of :data:`BASE_MODELS`), eval mode, on the device."""
    return base_entry(base_key).load(device)


def finetune_data(base_key: str, n: int | None = None, *, seed: int | None = None):
    """The fine-tuning images of ``base_key`` as an :class:`~xaifool.data.ImageBatch` (see :data:`BASE_MODELS`)."""
    entry = base_entry(base_key)
    return entry.finetune(n, get_config().seed if seed is None else int(seed))


def heldout_data(base_key: str, n: int | None = None, *, seed: int | None = None):
    """Held-out images of ``base_key`` (see :data:`BASE_MODELS`)."""
    entry = base_entry(base_key)
    return entry.heldout(n, get_config().seed if seed is None else int(seed))


def correct_subset(model: nn.Module, images, n: int):
    """The first ``n`` images of an :class:`~xaifool.data.ImageBatch` that ``model`` classifies
    correctly, taken round-robin over the classes (one of each class, then a second of each, …)
    so that a small attacked set is not dominated by the first class of the file."""
    from .models import predict

    n = check_int(n, "n", 1)
    ok = (predict(model, images.x).argmax(1) == images.y).nonzero().view(-1)
    if len(ok) < n:
        raise ValueError(f"n: only {len(ok)} of {len(images)} images are classified correctly, asked for {n}")
    y = images.y[ok]
    rank = torch.zeros_like(y)
    for c in y.unique():  # position of each image within its class (a loop over classes, not images)
        idx = (y == c).nonzero().view(-1)
        rank[idx] = torch.arange(len(idx))
    order = torch.argsort(rank * (int(y.max()) + 1) + y, stable=True)
    return images.subset(ok[order[:n]])
