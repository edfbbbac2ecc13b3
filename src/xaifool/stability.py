"""Natural robustness of an interpreter: how much its map moves under random input noise, scored by
Quantus itself (Hedström et al. 2023), and cached.

Two of Quantus' robustness metrics, each a Monte Carlo estimate per image:

``max_sensitivity``   Yeh et al. (2019): the largest ‖h(x) − h(x + η)‖ / ‖h(x)‖ over ``nr_samples`` draws of
                      uniform noise η ∈ [−radius, radius]ᵈ (Quantus ≥ 0.4.2 divides by the norm of the
                      original map; earlier releases divided by the norm of x). captum's
                      ``sensitivity_max`` draws from a radius of 0.02 by default, Quantus from 0.2.
``local_lipschitz``   Alvarez-Melis & Jaakkola (2018): the largest ‖h(x) − h(x + η)‖ / ‖η‖ over draws of
                      Gaussian noise η ~ N(0, std²).

The book draws both at the scale of its input attacks (radius = std = ε = 8/255 on images in [0, 1]),
so that the noise scores and the attacks probe the same neighbourhood: the attack is the worst case,
the noise score an average-case estimate.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from . import explain as E
from .cache import cached_call
from .config import get_config
from .models import device_of
from .validate import check_choice, check_images, check_int, check_labels, check_module, check_positive

__all__ = ["NOISE_METRICS", "quantus_version", "noise_scores"]

#: The Quantus metrics the book reads, by the book's name.
NOISE_METRICS = ("max_sensitivity", "local_lipschitz")


def quantus_version() -> str:
    """The installed Quantus release (part of every cached score's key)."""
    from importlib.metadata import version

    return version("quantus")


def _explain_func(model, inputs, targets, **kwargs):
    """Quantus' ``explain_func``: NumPy (B, C, H, W) in, (B, 1, H, W) maps out (the book's interpreters)."""
    method = kwargs.pop("method")
    options = kwargs.pop("options", None) or {}
    dev = device_of(model)
    x = torch.as_tensor(np.asarray(inputs), dtype=torch.float32, device=dev)
    y = torch.as_tensor(np.asarray(targets), dtype=torch.long, device=dev).reshape(-1)
    h = E.explain(model, x, y, method, **options)
    return h.detach().float().cpu().numpy()[:, None]


def _metric(name: str, scale: float, nr_samples: int):
    import quantus

    common = dict(nr_samples=nr_samples, disable_warnings=True, display_progressbar=False,
                  return_nan_when_prediction_changes=False, abs=False, normalise=False)
    if name == "max_sensitivity":
        return quantus.MaxSensitivity(lower_bound=scale, **common)
    return quantus.LocalLipschitzEstimate(perturb_std=scale, perturb_mean=0.0, **common)


def _scores(model, x, y, method, metric, scale, nr_samples, options, seed, quantus):
    np.random.seed(seed)     # Quantus draws its noise from NumPy's global generator
    torch.manual_seed(seed)
    m = _metric(metric, scale, nr_samples)
    out = m(model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=None, explain_func=_explain_func,
            explain_func_kwargs={"method": method, "options": options}, device=str(device_of(model)),
            batch_size=x.shape[0], channel_first=True)
    return torch.as_tensor(np.asarray(out, dtype=np.float64))


def noise_scores(model: nn.Module, x: torch.Tensor, y: torch.Tensor, method: str, metric: str, *,
                 scale: float = 8 / 255, nr_samples: int = 20, options: dict | None = None,
                 seed: int | None = None) -> torch.Tensor:
    """Per-image Quantus score of ``method``'s maps under random noise (cached; lower: more stable).

    model:   network on images in [0, 1], eval mode; x: (B, C, H, W) images in [0, 1]; y: (B,) classes explained
    method:  an image interpreter of :data:`xaifool.explain.METHODS`; metric: one of :data:`NOISE_METRICS`
    scale:   Max-Sensitivity's noise radius / the Local Lipschitz Estimate's noise std (> 0)
    nr_samples: noise draws per image (Quantus' default is 200)
    options: the interpreter's options; seed: NumPy / torch seed of the draws (default: the profile's)
    returns: (B,) float64 scores on the CPU
    """
    model = check_module(model)
    x = check_images(x)
    y = check_labels(y, x.shape[0])
    E.check_methods(method)
    metric = check_choice(metric, "metric", NOISE_METRICS)
    scale = check_positive(scale, "scale", "the noise radius / std on images in [0, 1]")
    nr_samples = check_int(nr_samples, "nr_samples", 1)
    seed = get_config().seed if seed is None else int(seed)
    args = (model, x.cpu(), y.cpu(), method, metric, float(scale), nr_samples, dict(options or {}), seed,
            quantus_version())
    if not E.METHODS.is_builtin(method):
        return _scores(*args)
    return cached_call("noise-scores", _scores, *args)
