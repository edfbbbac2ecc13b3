"""One training loop for every training and fine-tuning in the book.

:func:`fit` runs ``epochs`` passes of a first-order optimiser (Adam or SGD) over mini-batches
and returns a per-epoch history. It is what :func:`xaifool.models.train_tabular_model` and
Dimanov et al.'s concealment (:func:`xaifool.attacks.concealment.conceal`) train with, and what
later fine-tunings (Heo et al., label randomisation) are meant to use::

    def loss_fn(model, batch):
        x, y = batch
        logits = model(x)
        return F.cross_entropy(logits, y), {"accuracy": (logits.argmax(1) == y).float().mean()}

    history = fit(net, lambda epoch: [(X[i], y[i]) for i in torch.randperm(len(X)).chunk(4)],
                  loss_fn, epochs=20, lr=1e-2)
    history["loss"], history["accuracy"]   # one mean per epoch

The model stays in **eval mode** while it is trained unless ``train_mode=True``: fine-tuning a
pretrained CNN must not move its BatchNorm running statistics (nor switch dropout on), and the
explanations being manipulated are those of the eval-mode network. Each module's original mode
is restored at the end.
"""
from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any, Callable, Iterable

import torch
import torch.nn as nn
from tqdm import tqdm

__all__ = ["OPTIMIZERS", "fit"]

#: Accepted values of ``fit(optimizer=...)``.
OPTIMIZERS = ("adam", "sgd")


def _check(model, batches, loss_fn, epochs, lr, weight_decay, optimizer, metrics, train_mode, desc):
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not callable(loss_fn):
        raise ValueError(f"loss_fn must be a callable (model, batch) -> loss or (loss, logs), got "
                         f"{type(loss_fn).__name__}")
    if not callable(batches):
        try:
            it = iter(batches)
        except TypeError:
            raise ValueError("batches must be a callable epoch -> iterable of batches, or a re-iterable "
                             f"(a list, a DataLoader); got {type(batches).__name__}") from None
        if it is batches:
            raise ValueError("batches must be a callable epoch -> iterable of batches, or a re-iterable "
                             f"(a list, a DataLoader); got a one-shot iterator ({type(batches).__name__}) "
                             "that would be empty after the first epoch")
    if isinstance(epochs, bool) or not isinstance(epochs, Integral) or epochs < 1:
        raise ValueError(f"epochs must be an int >= 1, got {epochs!r}")
    if isinstance(lr, bool) or not isinstance(lr, Real) or not float(lr) > 0 or not math.isfinite(lr):
        raise ValueError(f"lr must be a finite number > 0 (the learning rate), got {lr!r}")
    if (isinstance(weight_decay, bool) or not isinstance(weight_decay, Real) or not float(weight_decay) >= 0
            or not math.isfinite(weight_decay)):
        raise ValueError(f"weight_decay must be a finite number >= 0, got {weight_decay!r}")
    if not isinstance(optimizer, str) or optimizer.lower() not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    if metrics is not None and not callable(metrics):
        raise ValueError(f"metrics must be None or a callable (model, batch) -> dict of numbers, got "
                         f"{type(metrics).__name__}")
    if not isinstance(train_mode, bool):
        raise ValueError(f"train_mode must be True or False, got {train_mode!r}")
    if desc is not None and not isinstance(desc, str):
        raise ValueError(f"desc must be None or a string, got {type(desc).__name__}")


def _params(model: nn.Module, params) -> list[torch.nn.Parameter]:
    if params is None:
        chosen = [p for p in model.parameters() if p.requires_grad]
        if not chosen:
            raise ValueError("params: the model has no parameter that requires grad; pass params= explicitly "
                             "or set requires_grad on the ones to train")
        return chosen
    if isinstance(params, torch.Tensor):
        params = [params]
    try:
        chosen = list(params)
    except TypeError:
        raise ValueError(f"params must be None or an iterable of parameters (tensors with requires_grad), got "
                         f"{type(params).__name__}") from None
    if not chosen:
        raise ValueError("params must hold at least one parameter, got an empty iterable")
    if not all(isinstance(p, torch.Tensor) and p.requires_grad and p.is_leaf for p in chosen):
        raise ValueError("params must hold leaf tensors with requires_grad=True (e.g. model.fc.parameters())")
    return chosen


def _make_optimizer(name: str, params, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay)


def _number(v) -> float:
    return float(v.detach().float().mean()) if isinstance(v, torch.Tensor) else float(v)


def fit(model: nn.Module, batches: Callable[[int], Iterable[Any]] | Iterable[Any],
        loss_fn: Callable[[nn.Module, Any], Any], *, epochs: int, lr: float, weight_decay: float = 0.0,
        optimizer: str = "adam", params=None, metrics: Callable[[nn.Module, Any], dict] | None = None,
        progress: bool | None = True, desc: str | None = None, seed: int | None = None,
        train_mode: bool = False, log_every: int | None = None) -> dict[str, list[float]]:
    """Train ``model`` in place for ``epochs`` passes over ``batches``; return the per-epoch history.

    batches:      a callable ``epoch -> iterable of batches`` (``epoch`` counts from 0; e.g. a
                  fresh shuffle per epoch), or a re-iterable such as a list or a ``DataLoader``
    loss_fn:      ``(model, batch) -> loss`` (a scalar tensor) or ``(loss, logs)`` where ``logs``
                  is a dict of numbers / scalar tensors recorded like the loss (e.g. accuracy from
                  the logits the loss used, which costs no extra forward pass)
    epochs:       int >= 1
    lr:           learning rate > 0
    weight_decay: L2 penalty >= 0 of the optimiser
    optimizer:    ``"adam"`` (``torch.optim.Adam``) or ``"sgd"`` (plain ``torch.optim.SGD``)
    params:       the parameters to optimise (default: every parameter of ``model`` that requires
                  grad); the others are never stepped
    metrics:      optional ``(model, batch) -> dict of numbers``, evaluated under ``no_grad`` on each
                  batch before its optimiser step (an extra forward pass; prefer ``loss_fn``'s logs)
    progress:     tqdm bar over epochs whose postfix shows the epoch's loss and logged metrics
                  (``False``: none; ``None``: only on a terminal)
    desc:         the bar's label
    seed:         if given, ``torch.manual_seed(seed)`` before the first batch is drawn, so the run
                  is deterministic; otherwise the global RNG is used as it stands
    train_mode:   run the model in train mode (BatchNorm statistics update, dropout on); the default
                  ``False`` keeps it in eval mode. Each module's mode is restored afterwards.
    log_every:    if an int >= 1, also record a finer curve: ``history["steps"]`` is a dict with
                  ``"step"`` (optimiser steps taken so far) and each logged quantity averaged over
                  the last ``log_every`` steps, plus a last, shorter window if the steps do not
                  divide evenly (one host sync per window; the epoch means are the same with or
                  without it)

    Returns ``{"loss": [...], <log name>: [...], ...}``: per epoch, the mean over its batches.
    """
    if log_every is not None and (isinstance(log_every, bool) or not isinstance(log_every, int) or log_every < 1):
        raise ValueError(f"log_every must be None or an int >= 1 (steps per point of the fine curve), got {log_every!r}")
    _check(model, batches, loss_fn, epochs, lr, weight_decay, optimizer, metrics, train_mode, desc)
    chosen = _params(model, params)
    epochs, lr, weight_decay = int(epochs), float(lr), float(weight_decay)
    if seed is not None:
        torch.manual_seed(int(seed))
    opt = _make_optimizer(optimizer.lower(), chosen, lr, weight_decay)
    modes = [(m, m.training) for m in model.modules()]
    history: dict[str, list[float]] = {"loss": []}
    steps: dict[str, list[float]] = {"step": []}
    window: dict[str, Any] = {}
    taken = window_start = 0
    bar = tqdm(range(epochs), desc=desc, disable=None if progress is None else not progress, leave=False)
    try:
        model.train(train_mode)
        for epoch in bar:
            sums: dict[str, Any] = {}
            n = 0
            for batch in (batches(epoch) if callable(batches) else batches):
                extra = {}
                if metrics is not None:
                    with torch.no_grad():
                        extra = dict(metrics(model, batch))
                opt.zero_grad()
                out = loss_fn(model, batch)
                loss, logs = (out[0], dict(out[1])) if isinstance(out, tuple) else (out, {})
                if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                    raise ValueError("loss_fn must return a scalar loss tensor (or (loss, logs)), got "
                                     f"{type(loss).__name__}" + (f" of shape {tuple(loss.shape)}"
                                                                 if isinstance(loss, torch.Tensor) else ""))
                loss.backward()
                opt.step()
                # Sums stay on the device (no sync per step); read once per epoch.
                for key, value in {"loss": loss, **logs, **extra}.items():
                    v = value.detach().float().mean() if isinstance(value, torch.Tensor) else float(value)
                    sums[key] = sums[key] + v if key in sums else v
                    if log_every is not None:
                        window[key] = window[key] + v if key in window else v
                n += 1
                taken += 1
                if log_every is not None and taken % log_every == 0:
                    steps["step"].append(taken)
                    for key, total in window.items():
                        steps.setdefault(key, []).append(_number(total) / log_every)
                    window = {}
                    window_start = taken
            if n == 0:
                raise ValueError(f"batches yielded no batch in epoch {epoch}")
            for key, total in sums.items():
                history.setdefault(key, []).append(_number(total) / n)
            bar.set_postfix({k: f"{v[-1]:.4g}" for k, v in history.items()})
        if log_every is not None:
            if window:  # the last, shorter window: the curve always ends at the last step
                steps["step"].append(taken)
                for key, total in window.items():
                    steps.setdefault(key, []).append(_number(total) / (taken - window_start))
            history["steps"] = steps
    finally:
        bar.close()
        for m, was_training in modes:
            m.training = was_training
    return history
