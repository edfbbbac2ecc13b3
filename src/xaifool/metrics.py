r"""Similarity metrics between explanation heatmaps (before / after an attack).

All metrics are batched: the inputs ``a`` and ``b`` are :class:`torch.Tensor`
objects of identical shape ``(B, ...)`` -- image heatmaps are ``(B, H, W)``,
tabular attributions ``(B, d)``. Each sample is flattened to a vector of
``d`` entries and the metric returns a floating tensor of shape ``(B,)`` (``(B, 2)``
for :func:`center_of_mass`) on the input's device. Everything is vectorised
across the batch (no Python loop over samples). The metrics are differentiable
with respect to their inputs where the mathematics allows it; the rank-based ones
(:func:`spearman`, :func:`topk_intersection`) are piecewise constant and carry no
gradient.

Notation: for a sample, :math:`x, y \in \mathbb{R}^d` are the flattened maps,
:math:`\bar x` the mean and :math:`\operatorname{rg}(x)` the vector of ranks
(1-based, ties receive the average of the ranks they span).

Pearson correlation {cite}`dombrowski2019explanations`
    .. math:: r(x, y) = \frac{\sum_i (x_i - \bar x)(y_i - \bar y)}
              {\sqrt{\sum_i (x_i - \bar x)^2}\,\sqrt{\sum_i (y_i - \bar y)^2}}

Spearman rank correlation {cite}`spearman1904proof`
    .. math:: \rho(x, y) = r(\operatorname{rg}(x), \operatorname{rg}(y))

Top-k intersection {cite}`ghorbani2019interpretation`
    .. math:: \operatorname{top}_k(x, y) = \frac{|T_k(x) \cap T_k(y)|}{k}

    where :math:`T_k(x)` is the set of indices of the ``k`` largest entries of
    :math:`x`.

Centre of mass {cite}`ghorbani2019interpretation`
    For a map :math:`h \in \mathbb{R}^{H \times W}` with weights
    :math:`w_{ij} = |h_{ij}|`,

    .. math:: \operatorname{CoM}(h) = \frac{\sum_{ij} w_{ij}\,(i, j)}{\sum_{ij} w_{ij}},
              \qquad
              d_{\mathrm{CoM}}(a, b) = \lVert \operatorname{CoM}(a) - \operatorname{CoM}(b) \rVert_2 .

Structural similarity {cite}`wang2004image,dombrowski2019explanations`
    With Gaussian-weighted local means :math:`\mu`, variances :math:`\sigma^2`
    and covariance :math:`\sigma_{xy}` (11x11 window, :math:`\sigma = 1.5`),
    :math:`C_1 = (K_1 L)^2`, :math:`C_2 = (K_2 L)^2`, :math:`K_1 = 0.01`,
    :math:`K_2 = 0.03` and data range :math:`L`,

    .. math:: \operatorname{SSIM}(x, y) = \operatorname{mean}_{p}
              \frac{(2\mu_x\mu_y + C_1)(2\sigma_{xy} + C_2)}
              {(\mu_x^2 + \mu_y^2 + C_1)(\sigma_x^2 + \sigma_y^2 + C_2)}

    where the mean runs over the pixels :math:`p` at least 5 pixels away from
    the border (as in ``skimage.metrics.structural_similarity``).

Mean squared error {cite}`dombrowski2019explanations`
    .. math:: \operatorname{MSE}(x, y) = \frac{1}{d}\sum_i (x_i - y_i)^2
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import torch
import torch.nn.functional as F

__all__ = [
    "spearman",
    "pearson",
    "topk_intersection",
    "center_of_mass",
    "center_of_mass_unchecked",
    "center_of_mass_distance",
    "ssim",
    "mse",
    "fooling_success_rate",
]

# SSIM constants of Wang et al. (2004), as used by skimage with gaussian_weights=True.
_SSIM_K1 = 0.01
_SSIM_K2 = 0.03
_SSIM_SIGMA = 1.5
_SSIM_TRUNCATE = 3.5
_SSIM_RADIUS = int(_SSIM_TRUNCATE * _SSIM_SIGMA + 0.5)  # = 5, as in scipy.ndimage
_SSIM_WIN = 2 * _SSIM_RADIUS + 1  # = 11


# --------------------------------------------------------------------------- checks
def _check_map(x: object, name: str, *, ndim: int | None = None) -> torch.Tensor:
    """Validate one heatmap batch argument and return it."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"`{name}` must be a torch.Tensor; got {type(x).__name__}.")
    if ndim is None:
        if x.dim() < 2:
            raise ValueError(
                f"`{name}` must have a leading batch dimension, i.e. shape (B, ...) with at "
                f"least 2 dims; got shape {tuple(x.shape)}."
            )
    elif x.dim() != ndim:
        raise ValueError(
            f"`{name}` must have shape (B, H, W) ({ndim} dims); got shape {tuple(x.shape)}."
        )
    if not x.is_floating_point():
        raise ValueError(
            f"`{name}` must have a floating dtype (float16/bfloat16/float32/float64); "
            f"got {x.dtype}."
        )
    if x.shape[0] == 0 or x[0].numel() == 0:
        raise ValueError(
            f"`{name}` must have a non-empty batch and non-empty samples; got shape "
            f"{tuple(x.shape)}."
        )
    if torch.isnan(x).any():
        raise ValueError(f"`{name}` must not contain NaN values.")
    return x


def _check_pair(
    a: object, b: object, *, ndim: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate ``a`` and ``b``; return them with a common dtype."""
    a = _check_map(a, "a", ndim=ndim)
    b = _check_map(b, "b", ndim=ndim)
    if a.shape != b.shape:
        raise ValueError(
            f"`a` and `b` must have identical shapes; got a: {tuple(a.shape)} and "
            f"b: {tuple(b.shape)}."
        )
    if a.device != b.device:
        raise ValueError(
            f"`a` and `b` must be on the same device; got a: {a.device} and b: {b.device}."
        )
    dtype = torch.promote_types(a.dtype, b.dtype)
    return a.to(dtype), b.to(dtype)


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1)


# ------------------------------------------------------------------ correlations
def _pearson_flat(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Row-wise Pearson correlation of (B, d) tensors; NaN for constant rows."""
    const = (x.amax(dim=1) == x.amin(dim=1)) | (y.amax(dim=1) == y.amin(dim=1))
    xc = x - x.mean(dim=1, keepdim=True)
    yc = y - y.mean(dim=1, keepdim=True)
    num = (xc * yc).sum(dim=1)
    var_prod = (xc * xc).sum(dim=1) * (yc * yc).sum(dim=1)
    # Replace the zero variance of constant rows *before* the sqrt, so that they
    # yield NaN in the forward pass only and a zero (not 0 * inf = NaN) gradient.
    den = torch.sqrt(torch.where(const, torch.ones_like(var_prod), var_prod))
    r = (num / den).clamp(-1.0, 1.0)
    return torch.where(const, torch.full_like(r, float("nan")), r)


def _average_ranks(x: torch.Tensor) -> torch.Tensor:
    """1-based ranks of each row of a (B, d) tensor, ties get their average rank.

    Equivalent to ``scipy.stats.rankdata(row, method="average")`` for every row,
    fully vectorised: after sorting, a run of equal values occupies sorted
    positions ``s..e``; every member gets ``(s + e) / 2 + 1``. ``s`` is a running
    maximum of the run starts, ``e`` a reversed running minimum of the run ends.
    """
    n, d = x.shape
    sorted_vals, order = torch.sort(x, dim=1)
    pos = torch.arange(d, device=x.device).expand(n, d)
    new_run = torch.ones_like(sorted_vals, dtype=torch.bool)
    new_run[:, 1:] = sorted_vals[:, 1:] != sorted_vals[:, :-1]
    end_run = torch.ones_like(new_run)
    end_run[:, :-1] = new_run[:, 1:]
    start = torch.where(new_run, pos, torch.zeros_like(pos)).cummax(dim=1).values
    end_rev = torch.where(end_run, pos, torch.full_like(pos, d - 1)).flip(1)
    end = end_rev.cummin(dim=1).values.flip(1)
    avg = (start + end).to(x.dtype) / 2 + 1
    return torch.empty_like(avg).scatter_(1, order, avg)


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman rank correlation between each pair of flattened maps.

    Ties are given the average of the ranks they span (as
    ``scipy.stats.spearmanr``). If a sample of ``a`` or ``b`` is constant its
    correlation is undefined and NaN is returned for it, as scipy does. Ranks are
    piecewise constant, so the result carries no gradient.

    Args:
        a: (B, ...) floating tensor, any real values (no NaN).
        b: (B, ...) floating tensor of the same shape as ``a``, any real values.

    Returns:
        (B,) tensor of the input dtype with values in [-1, 1] (or NaN).
    """
    a, b = _check_pair(a, b)
    with torch.no_grad():
        return _pearson_flat(_average_ranks(_flat(a)), _average_ranks(_flat(b)))


def pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation between each pair of flattened maps.

    If a sample of ``a`` or ``b`` is constant the correlation is undefined and NaN
    is returned for it (as ``scipy.stats.pearsonr``). Differentiable elsewhere.

    Args:
        a: (B, ...) floating tensor, any real values (no NaN).
        b: (B, ...) floating tensor of the same shape as ``a``, any real values.

    Returns:
        (B,) tensor of the input dtype with values in [-1, 1] (or NaN).
    """
    a, b = _check_pair(a, b)
    return _pearson_flat(_flat(a), _flat(b))


# ------------------------------------------------------------------------ top-k
def topk_intersection(a: torch.Tensor, b: torch.Tensor, k: int) -> torch.Tensor:
    """Fraction of the ``k`` largest entries of ``a`` that are among the ``k`` largest of ``b``.

    Ghorbani et al. (2019) top-k intersection. When several entries tie at the
    k-th largest value, the ``k`` indices chosen by :func:`torch.topk` are used
    (which one wins a tie is implementation-defined). Not differentiable.

    Args:
        a: (B, ...) floating tensor, any real values (no NaN); d = numel per sample.
        b: (B, ...) floating tensor of the same shape as ``a``, any real values.
        k: int in 1..d, the number of top features compared.

    Returns:
        (B,) tensor of the input dtype with values in {0, 1/k, ..., 1}.
    """
    a, b = _check_pair(a, b)
    x, y = _flat(a), _flat(b)
    d = x.shape[1]
    if isinstance(k, bool) or not isinstance(k, Integral):
        raise ValueError(f"`k` must be an int in 1..{d}; got {k!r} ({type(k).__name__}).")
    k = int(k)
    if not 1 <= k <= d:
        raise ValueError(f"`k` must be in the range 1..{d} (features per sample); got {k}.")
    with torch.no_grad():
        top_a = torch.topk(x, k, dim=1).indices
        top_b = torch.topk(y, k, dim=1).indices
        in_b = torch.zeros_like(y, dtype=torch.bool).scatter_(1, top_b, True)
        return in_b.gather(1, top_a).sum(dim=1).to(x.dtype) / k


# --------------------------------------------------------------- centre of mass
def center_of_mass(h: torch.Tensor) -> torch.Tensor:
    """(row, col) centre of mass of each map, weighting pixels by ``|h|``.

    The absolute value of ``h`` is taken first, so signed heatmaps are handled as
    magnitude maps; for non-negative maps this equals
    ``scipy.ndimage.center_of_mass``. An all-zero map has no centre of mass; the
    image centre ``((H - 1) / 2, (W - 1) / 2)`` is returned for it.
    Differentiable (except at the all-zero maps).

    Args:
        h: (B, H, W) floating tensor, any real values (no NaN).

    Returns:
        (B, 2) tensor of the input dtype: row in [0, H - 1], col in [0, W - 1].
    """
    h = _check_map(h, "h", ndim=3)
    return center_of_mass_unchecked(h)


def center_of_mass_unchecked(h: torch.Tensor) -> torch.Tensor:
    """:func:`center_of_mass` without the argument checks (no NaN scan): for loops that check their maps once."""
    _, height, width = h.shape
    w = h.abs()
    rows = torch.arange(height, device=h.device, dtype=h.dtype)
    cols = torch.arange(width, device=h.device, dtype=h.dtype)
    total = w.sum(dim=(1, 2))
    zero = total == 0
    safe_total = torch.where(zero, torch.ones_like(total), total)
    r = (w.sum(dim=2) * rows).sum(dim=1) / safe_total
    c = (w.sum(dim=1) * cols).sum(dim=1) / safe_total
    r = torch.where(zero, torch.full_like(r, (height - 1) / 2), r)
    c = torch.where(zero, torch.full_like(c, (width - 1) / 2), c)
    return torch.stack([r, c], dim=1)


def center_of_mass_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Euclidean distance in pixels between the centres of mass of ``a`` and ``b``.

    Centres are computed by :func:`center_of_mass` (absolute values; image centre
    for all-zero maps).

    Args:
        a: (B, H, W) floating tensor, any real values (no NaN).
        b: (B, H, W) floating tensor of the same shape, any real values.

    Returns:
        (B,) tensor of the input dtype, values in [0, sqrt((H-1)^2 + (W-1)^2)].
    """
    a, b = _check_pair(a, b, ndim=3)
    return torch.linalg.vector_norm(center_of_mass_unchecked(a) - center_of_mass_unchecked(b), dim=1)


# ------------------------------------------------------------------------- SSIM
def _pad_symmetric(x: torch.Tensor, pad: int, dim: int) -> torch.Tensor:
    """Pad ``x`` by ``pad`` samples on both sides of ``dim``, mirroring the edge sample.

    This is scipy.ndimage's ``mode='reflect'`` (``d c b a | a b c d | d c b a``),
    i.e. numpy's ``mode='symmetric'``. It is hand-written because torch's
    ``F.pad`` only offers 'reflect' (``d c b | a b c d``, which does *not* repeat
    the edge, scipy's 'mirror'), 'replicate' and 'circular'. Requires
    ``pad <= x.shape[dim]``.
    """
    if pad == 0:
        return x
    n = x.shape[dim]
    head = x.narrow(dim, 0, pad).flip(dim)
    tail = x.narrow(dim, n - pad, pad).flip(dim)
    return torch.cat([head, x, tail], dim=dim)


def _gaussian_kernel1d(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """scipy.ndimage's 1-D Gaussian kernel for sigma=1.5, truncate=3.5 (11 taps)."""
    x = torch.arange(-_SSIM_RADIUS, _SSIM_RADIUS + 1, dtype=torch.float64)
    phi = torch.exp(-0.5 / _SSIM_SIGMA**2 * x * x)
    return (phi / phi.sum()).to(dtype=dtype, device=device)


def _gaussian_filter(x: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur of (N, H, W) maps, equal to
    ``scipy.ndimage.gaussian_filter(map, 1.5, mode='reflect', truncate=3.5)``."""
    n, height, width = x.shape
    r = _SSIM_RADIUS
    # Only the border strip that SSIM later crops depends on the padding mode, but
    # the full map is kept faithful to scipy so it can be inspected/plotted.
    k = _gaussian_kernel1d(x.dtype, x.device)
    y = _pad_symmetric(_pad_symmetric(x, r, 1), r, 2).unsqueeze(1)
    y = F.conv2d(y, k.view(1, 1, 1, -1))  # along W
    y = F.conv2d(y, k.view(1, 1, -1, 1))  # along H
    return y.view(n, height, width)


def _ssim_map(a: torch.Tensor, b: torch.Tensor, data_range: torch.Tensor) -> torch.Tensor:
    """Per-pixel SSIM map (B, H, W), computed like skimage (population covariance)."""
    bsz = a.shape[0]
    stacked = torch.cat([a, b, a * a, b * b, a * b], dim=0)
    ux, uy, uxx, uyy, uxy = _gaussian_filter(stacked).split(bsz, dim=0)
    vx = uxx - ux * ux
    vy = uyy - uy * uy
    vxy = uxy - ux * uy
    r = data_range.view(-1, 1, 1)
    c1 = (_SSIM_K1 * r) ** 2
    c2 = (_SSIM_K2 * r) ** 2
    num = (2 * ux * uy + c1) * (2 * vxy + c2)
    den = (ux * ux + uy * uy + c1) * (vx + vy + c2)
    return num / den


def ssim(
    a: torch.Tensor, b: torch.Tensor, data_range: float | torch.Tensor | None = None
) -> torch.Tensor:
    """Mean structural similarity (Wang et al. 2004) of each pair of maps.

    Matches ``skimage.metrics.structural_similarity(x, y, data_range=...,
    gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``: 11x11
    Gaussian window with sigma 1.5 (scipy ``gaussian_filter``, ``truncate=3.5``,
    ``mode='reflect'``), K1=0.01, K2=0.03, and the SSIM map averaged after
    cropping 5 pixels from every side. With ``data_range=None`` the range of each
    sample is ``max(a, b) - min(a, b)`` taken over both maps together (and
    differentiated through); if that range is 0 both maps are the same constant
    and the result is 1. Differentiable.

    Args:
        a: (B, H, W) floating tensor with H, W >= 11, any real values (no NaN).
        b: (B, H, W) floating tensor of the same shape, any real values.
        data_range: None, a positive finite number, or a (B,) tensor of positive
            values: the dynamic range L used in C1 = (0.01 L)^2, C2 = (0.03 L)^2.

    Returns:
        (B,) tensor of the input dtype, values in [-1, 1].
    """
    a, b = _check_pair(a, b, ndim=3)
    bsz, height, width = a.shape
    if height < _SSIM_WIN or width < _SSIM_WIN:
        raise ValueError(
            f"`a` and `b` must be at least {_SSIM_WIN}x{_SSIM_WIN} (the SSIM window); "
            f"got H={height}, W={width}."
        )
    constant = torch.zeros(bsz, dtype=torch.bool, device=a.device)
    if data_range is None:
        hi = torch.maximum(a.amax(dim=(1, 2)), b.amax(dim=(1, 2)))
        lo = torch.minimum(a.amin(dim=(1, 2)), b.amin(dim=(1, 2)))
        rng = hi - lo
        constant = rng == 0
        rng = torch.where(constant, torch.ones_like(rng), rng)
    elif isinstance(data_range, torch.Tensor):
        if data_range.shape != (bsz,) or not data_range.is_floating_point():
            raise ValueError(
                f"`data_range` as a tensor must be floating with shape ({bsz},); got "
                f"dtype {data_range.dtype} and shape {tuple(data_range.shape)}."
            )
        if not bool(torch.isfinite(data_range).all()) or not bool((data_range > 0).all()):
            raise ValueError("`data_range` must contain only positive finite values.")
        rng = data_range.to(dtype=a.dtype, device=a.device)
    elif isinstance(data_range, Real) and not isinstance(data_range, bool):
        if not (math.isfinite(data_range) and data_range > 0):
            raise ValueError(f"`data_range` must be a positive finite number; got {data_range}.")
        rng = torch.full((bsz,), float(data_range), dtype=a.dtype, device=a.device)
    else:
        raise ValueError(
            "`data_range` must be None, a positive number or a (B,) tensor; got "
            f"{type(data_range).__name__}."
        )
    s = _ssim_map(a, b, rng)
    p = _SSIM_RADIUS
    # skimage averages the map in float64; do the same where the device allows it.
    acc = torch.float64 if a.device.type != "mps" else a.dtype
    val = s[:, p : height - p, p : width - p].to(acc).mean(dim=(1, 2)).to(a.dtype)
    return torch.where(constant, torch.ones_like(val), val)


# -------------------------------------------------------------------------- MSE
def mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared error between each pair of flattened maps.

    Args:
        a: (B, ...) floating tensor, any real values (no NaN).
        b: (B, ...) floating tensor of the same shape, any real values.

    Returns:
        (B,) tensor of the input dtype, values >= 0.
    """
    a, b = _check_pair(a, b)
    return ((_flat(a) - _flat(b)) ** 2).mean(dim=1)


# ---------------------------------------------------------------- fooling success rate
def fooling_success_rate(similarity, label_kept, tau: float) -> float:
    """FSR_τ of Heo et al. (2019): the fraction of samples whose explanation moved below the
    similarity threshold ``tau`` *and* whose label was kept (Definition 2).

    Args:
        similarity: (n,) similarities of h(x_adv) to h(x) (e.g. top-k intersection, Spearman ρ);
            tensor, array or pandas Series.
        label_kept: (n,) booleans of the same length.
        tau: the threshold; a sample counts as fooled when its similarity is < tau.

    Returns:
        a float in [0, 1] (NaN similarities count as not fooled).
    """
    import numpy as np

    sim = torch.as_tensor(np.asarray(similarity, dtype=np.float64))
    kept = torch.as_tensor(np.asarray(label_kept, dtype=bool))
    if sim.dim() != 1 or sim.shape != kept.shape or len(sim) == 0:
        raise ValueError(f"similarity and label_kept must be non-empty 1-D sequences of the same length, got "
                         f"shapes {tuple(sim.shape)} and {tuple(kept.shape)}")
    if isinstance(tau, bool) or not isinstance(tau, (int, float)) or tau != tau:
        raise ValueError(f"tau must be a number, got {tau!r}")
    return float(((sim < tau) & kept).double().mean())


def pairwise_agreement(heatmaps: dict, k: int):
    """Mean Spearman ρ and top-k intersection between every pair of interpreters.

    heatmaps: {method name: (B, ...) heatmaps of the same B samples}
    k:        top-k size, 1..d
    returns:  a pandas DataFrame with columns method_a, method_b, spearman, topk_intersection
              (means over the B samples; NaN correlations of constant maps are skipped)
    """
    import pandas as pd

    if not isinstance(heatmaps, dict) or len(heatmaps) < 2:
        raise ValueError("heatmaps must be a dict of at least two {method: (B, ...) tensor} entries")
    names = list(heatmaps)
    rows = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            ha, hb = heatmaps[a].detach().float().cpu(), heatmaps[b].detach().float().cpu()
            rows.append({
                "method_a": a, "method_b": b,
                "spearman": float(torch.nanmean(spearman(ha, hb))),
                "topk_intersection": float(topk_intersection(ha, hb, k).mean()),
            })
    return pd.DataFrame(rows)
