"""One set of argument checks for the whole package: one argument order, one wording.

Every check takes the value first and the argument's name second, raises ``ValueError`` naming
the argument and what it accepts, and returns the value in the form the caller uses (an ``int``,
a ``float``, the tensor). Modules add their own checks only for what is theirs alone (a region
mask's shape, a record's schema).
"""
from __future__ import annotations

import math
from numbers import Integral, Real

import torch
import torch.nn as nn

__all__ = ["check_int", "check_choice", "check_positive", "check_nonnegative", "check_bool", "check_images",
           "check_labels", "check_module", "check_fraction", "one_or_many"]


def check_int(value, name: str, lo: int, hi: int | None = None) -> int:
    """``value`` as an int in ``lo..hi`` (``hi=None``: no upper bound); bools are refused."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < lo or (hi is not None and value > hi):
        rng = f"an int >= {lo}" if hi is None else f"an int in {lo}..{hi}"
        raise ValueError(f"{name} must be {rng}, got {value!r}")
    return int(value)


def check_choice(value, name: str, accepted):
    """``value`` if it is one of ``accepted`` (any container; the message lists it as a tuple)."""
    try:
        ok = value in accepted
    except TypeError:   # an unhashable value asked of a dict or set
        ok = False
    if not ok:
        raise ValueError(f"{name} must be one of {tuple(accepted)}, got {value!r}")
    return value


def _real(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, Real) and math.isfinite(float(value))


def check_positive(value, name: str, what: str = "") -> float:
    """``value`` as a finite float > 0; ``what`` says what the number is, in the message."""
    if not _real(value) or not float(value) > 0:
        raise ValueError(f"{name} must be a finite number > 0{f' ({what})' if what else ''}, got {value!r}")
    return float(value)


def check_nonnegative(value, name: str, what: str = "") -> float:
    """``value`` as a finite float >= 0; ``what`` says what the number is, in the message."""
    if not _real(value) or float(value) < 0:
        raise ValueError(f"{name} must be a finite number >= 0{f' ({what})' if what else ''}, got {value!r}")
    return float(value)


def check_fraction(value, name: str, *, open_low: bool = True, open_high: bool = True) -> float:
    """``value`` as a float in the interval (0, 1), with either end closed on request."""
    lo, hi = ("(" if open_low else "["), (")" if open_high else "]")
    ok = _real(value) and (0 < float(value) if open_low else 0 <= float(value)) and \
        (float(value) < 1 if open_high else float(value) <= 1)
    if not ok:
        raise ValueError(f"{name} must be a number in {lo}0, 1{hi}, got {value!r}")
    return float(value)


def check_bool(value, name: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


def check_images(x, name: str = "x") -> torch.Tensor:
    """``x`` if it is a non-empty floating-point batch of images (N, C, H, W) with pixels in [0, 1]."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() != 4 or x.shape[0] == 0:
        got = f"tensor of shape {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a non-empty floating-point tensor of images (N, C, H, W), got {got}")
    lo, hi = torch.aminmax(x.detach())
    if torch.isnan(x).any() or lo < 0 or hi > 1:
        raise ValueError(f"{name} must hold pixels in the valid range [0, 1]; got values in "
                         f"[{float(lo):.4g}, {float(hi):.4g}]")
    return x


def check_labels(y, n: int, name: str = "y", *, allow_none: bool = False, why_none: str = ""):
    """``y`` if it is a ``torch.long`` tensor of shape (n,); None only with ``allow_none``."""
    if y is None:
        if allow_none:
            return None
        raise ValueError(f"{name} must be a tensor of class indices ({n},)"
                         + (f"; it may be None only {why_none}" if why_none else ""))
    if not isinstance(y, torch.Tensor) or y.dtype != torch.long or tuple(y.shape) != (n,):
        got = f"{y.dtype} {tuple(y.shape)}" if isinstance(y, torch.Tensor) else type(y).__name__
        raise ValueError(f"{name} must be a torch.long tensor of shape ({n},) (one class per image), got {got}")
    return y


def one_or_many(value, name: str, single: type | tuple, what: str) -> tuple:
    """``value`` as a non-empty tuple: one item of type ``single`` becomes a 1-tuple, any other iterable
    a tuple of its items; ``what`` says what is accepted, in the messages."""
    if isinstance(value, single):
        return (value,)
    try:
        items = tuple(value)
    except TypeError:
        raise ValueError(f"{name} must be {what}, got {type(value).__name__}") from None
    if not items:
        raise ValueError(f"{name} must name at least one item ({what}), got an empty sequence")
    return items


def check_module(model, name: str = "model") -> nn.Module:
    if not isinstance(model, nn.Module):
        raise ValueError(f"{name} must be a torch.nn.Module, got {type(model).__name__}")
    return model
