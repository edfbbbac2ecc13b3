"""Perturbation methods through their own packages: LIME (``lime``) and KernelSHAP (``shap``).

``lime`` and ``kernel_shap`` have the interpreter signature (images: superpixels by SLIC, painted
back to (B, 1, H, W); tables: one value per feature). ``lime_table`` / ``kernel_shap_table`` explain
any probability function on table rows: the scaffolding attacks of chapter 08 call them directly.
Neither method is differentiable.
"""
from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np
import torch
import torch.nn.functional as F

from ..config import get_config
from ..models import channels_last
from ..quiet import import_quietly

__all__ = ["lime", "kernel_shap", "lime_table", "kernel_shap_table", "segments"]


def _probabilities(model, batch_size):
    dev = next(model.parameters()).device

    @torch.no_grad()
    def fn(arr: np.ndarray) -> np.ndarray:
        t = torch.as_tensor(np.asarray(arr), dtype=torch.float32)
        # image perturbations are forward-only: faster in channels-last order on a CPU
        outs = [F.softmax(model(channels_last(t[i:i + batch_size].to(dev))), 1).cpu()
                for i in range(0, len(t), batch_size)]
        return torch.cat(outs).double().numpy()

    return fn


def segments(img_hwc: np.ndarray, n_segments: int) -> np.ndarray:
    from skimage.segmentation import slic

    return slic(img_hwc, n_segments=n_segments, compactness=10, start_label=0)


def lime(model, x, target, create_graph=False, background=None, n_samples=None, n_segments=50, seed=None,
          feature_names=None, categorical=None):
    cfg = get_config()
    seed = cfg.seed if seed is None else int(seed)
    bs = max(cfg.profile.batch_size, 64)
    out = torch.zeros(x.shape[0], 1, *x.shape[2:]) if x.dim() == 4 else torch.zeros(x.shape)
    if x.dim() == 4:
        lime_image = import_quietly("lime.lime_image")

        n = cfg.profile.lime_image_samples if n_samples is None else int(n_samples)
        explainer = lime_image.LimeImageExplainer(random_state=seed)
        proba = _probabilities(model, bs)
        for i in range(x.shape[0]):  # lime explains one image at a time; its samples are batched
            img = x[i].permute(1, 2, 0).detach().cpu().double().numpy()
            segs = segments(img, n_segments)
            with contextlib.redirect_stderr(io.StringIO()):  # lime 0.2 always draws a tqdm bar
                exp = explainer.explain_instance(
                    img, lambda b: proba(np.transpose(b, (0, 3, 1, 2))), labels=(int(target[i]),),
                    top_labels=None, hide_color=0.0, num_samples=n, batch_size=bs,
                    segmentation_fn=lambda im: segs, random_seed=seed)
            heat = np.zeros(segs.shape)
            for s, wgt in exp.local_exp[int(target[i])]:
                heat[segs == s] = wgt
            out[i, 0] = torch.from_numpy(heat)
        return out.to(x.device)
    LimeTabularExplainer = import_quietly("lime.lime_tabular").LimeTabularExplainer

    if background is None:
        raise ValueError("background: LIME on tables needs training rows (N, d) to learn feature statistics")
    n = cfg.profile.lime_samples if n_samples is None else int(n_samples)
    proba = _probabilities(model, 4096)
    xs = x.detach().cpu().double().numpy()
    for c in torch.unique(target).tolist():
        rows = (target == c).nonzero().view(-1).cpu().numpy()
        a = lime_table(proba, xs[rows], background, n_samples=n, seed=seed, indices=rows, labels=(int(c),),
                       feature_names=feature_names, categorical=categorical)
        out[rows] = torch.as_tensor(a[0], dtype=out.dtype)
    return out.to(x.device)


def lime_table(predict_proba, rows, training, *, n_samples: int, seed: int, indices=None, labels=(1,),
               feature_names=None, categorical=(), sample_around_instance: bool = False,
               num_features: int | None = None) -> np.ndarray:
    """LIME (the ``lime`` package's ``LimeTabularExplainer``) on table rows; (len(labels), n, d) weights.

    The one seeding path for tabular LIME in the book: row ``i`` of ``rows`` is sampled with
    ``RandomState(seed + indices[i])`` (``indices`` defaults to 0, 1, …: the rows' positions in the
    caller's full set), so a row's explanation does not depend on which rows are explained with it
    or on how rows are split between processes. ``predict_proba`` receives all
    perturbations of one row in one call and returns (m, K) scores; ``labels`` picks the columns
    explained (several columns are explained on the same samples). ``discretize_continuous=False``;
    ``categorical`` lists the 0/1 columns (sampled from their training frequencies).
    """
    LimeTabularExplainer = import_quietly("lime.lime_tabular").LimeTabularExplainer

    training = np.asarray(training, dtype=np.float64)
    rows = np.asarray(rows, dtype=np.float64)
    d = training.shape[1]
    labels = tuple(int(c) for c in labels)
    nf = d if num_features is None else int(num_features)
    explainer = LimeTabularExplainer(training, feature_names=list(feature_names or range(d)),
                                     categorical_features=list(categorical or []), discretize_continuous=False,
                                     sample_around_instance=sample_around_instance, random_state=seed)
    out = np.zeros((len(labels), len(rows), d))
    indices = _row_indices(indices, len(rows))
    for i, r in enumerate(rows):
        explainer.random_state = explainer.base.random_state = np.random.RandomState(seed + indices[i])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # several score columns need not sum to one
            exp = explainer.explain_instance(r, predict_proba, labels=labels, num_features=nf, num_samples=n_samples)
        for k, c in enumerate(labels):
            for j, wgt in exp.as_map()[c]:
                out[k, i, j] = wgt
    return out


def _row_indices(indices, n: int) -> list[int]:
    idx = list(range(n)) if indices is None else [int(i) for i in np.asarray(indices).reshape(-1)]
    if len(idx) != n:
        raise ValueError(f"indices must give one index per row ({n}), got {len(idx)}")
    return idx


def kernel_shap_table(fn, rows, background, *, n_samples, seed: int, indices=None) -> np.ndarray:
    """KernelSHAP (the ``shap`` package's ``KernelExplainer``) on table rows; (K, n, d) Shapley values.

    The one seeding path for tabular KernelSHAP in the book: the explainer is built after
    ``np.random.seed(seed)`` and row ``i`` is explained after ``np.random.seed(seed + indices[i])``
    (shap samples coalitions with NumPy's global generator; ``indices`` as in :func:`lime_table`),
    so a row's values do not depend on the other rows of the call. ``fn(X)`` returns (m,) or (m, K) outputs; shap evaluates the row alone
    and then all its coalitions in one call. ``background``: (k, d) rows (equal weights) or a shap
    ``DenseData`` summary (weighted, e.g. from ``shap.kmeans``). ``n_samples``: coalitions per row
    (an int, or ``"auto"``: shap's 2·d + 2048).
    """
    shap = import_quietly("shap")

    rows = np.asarray(rows, dtype=np.float64)
    np.random.seed(seed)
    explainer = shap.KernelExplainer(fn, background)
    out = None
    indices = _row_indices(indices, len(rows))
    for i, r in enumerate(rows):
        np.random.seed(seed + indices[i])
        v = explainer.shap_values(r[None], nsamples=n_samples, silent=True)
        v = np.stack(v, -1) if isinstance(v, list) else np.asarray(v)  # (1, d) or (1, d, K)
        v = v.reshape(v.shape[1], -1).T  # (K, d)
        if out is None:
            out = np.zeros((len(v), len(rows), rows.shape[1]))
        out[:, i] = v
    return np.zeros((1, 0, rows.shape[1])) if out is None else out


def kernel_shap(model, x, target, create_graph=False, background=None, n_samples=None, n_segments=50,
                 seed=None, n_background=None, feature_names=None, categorical=None):
    shap = import_quietly("shap")

    cfg = get_config()
    seed = cfg.seed if seed is None else int(seed)
    bs = max(cfg.profile.batch_size, 64)
    proba = _probabilities(model, bs)
    if x.dim() == 4:
        n = cfg.profile.lime_image_samples if n_samples is None else int(n_samples)
        out = torch.zeros(x.shape[0], 1, *x.shape[2:])
        for i in range(x.shape[0]):  # one image at a time; all coalitions of an image are batched
            img = x[i].detach().cpu().numpy()
            segs = segments(img.transpose(1, 2, 0).astype(np.float64), n_segments)
            n_seg = int(segs.max()) + 1
            c = int(target[i])

            def f(z, img=img, segs=segs, c=c):
                masks = np.asarray(z, dtype=np.float32)[:, segs][:, None]  # (m, 1, H, W) superpixels on/off
                return proba(img[None] * masks)[:, c]

            np.random.seed(seed)
            explainer = shap.KernelExplainer(f, np.zeros((1, n_seg)))
            vals = np.asarray(explainer.shap_values(np.ones((1, n_seg)), nsamples=n, silent=True)).reshape(-1)
            out[i, 0] = torch.from_numpy(vals[segs])
        return out.to(x.device)
    n = cfg.profile.shap_samples if n_samples is None else int(n_samples)
    if background is None:
        raise ValueError("background: KernelSHAP on tables needs background rows (N, d)")
    bg = np.asarray(background, dtype=np.float64)
    k = cfg.profile.shap_background if n_background is None else int(n_background)
    np.random.seed(seed)
    summary = shap.kmeans(bg, k) if len(bg) > k else bg
    proba = _probabilities(model, 1 << 16)
    out = torch.zeros(x.shape)
    xs = x.detach().cpu().double().numpy()
    for c in torch.unique(target).tolist():
        rows = (target == c).nonzero().view(-1).cpu().numpy()
        vals = kernel_shap_table(lambda a, c=c: proba(a)[:, c], xs[rows], summary, n_samples=n, seed=seed,
                                 indices=rows)
        out[rows] = torch.as_tensor(vals[0], dtype=torch.float32)
    return out.to(x.device)
