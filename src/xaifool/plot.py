"""Figures and tables in one visual style for the whole book.

* :func:`heatmap_grid` — images × interpreters, heatmaps overlaid, predicted class and score.
* :func:`attribution_bars` — feature attributions of tabular explanations.
* :func:`agreement_matrix` — a symmetric matrix plot of pairwise agreement scores.
"""
from __future__ import annotations

import matplotlib

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch

__all__ = ["set_style", "HEATMAP_CMAP", "METHOD_LABELS", "heatmap_grid", "attribution_bars", "agreement_matrix",
           "pair_table"]

HEATMAP_CMAP = "inferno"
METHOD_LABELS = {
    "gradient": "Gradient", "grad_x_input": "Grad × Input", "smoothgrad": "SmoothGrad",
    "integrated_gradients": "Integrated Gradients", "gradcam": "Grad-CAM", "lrp": "LRP",
    "lime": "LIME", "kernel_shap": "KernelSHAP",
}


def set_style() -> None:
    """The book's matplotlib / seaborn style (call once per chapter)."""
    sns.set_theme(context="notebook", style="white", font_scale=0.9)
    matplotlib.rcParams.update({"figure.dpi": 110, "savefig.dpi": 150, "axes.titlesize": 9,
                                "image.cmap": HEATMAP_CMAP})


def _img(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().permute(1, 2, 0).clamp(0, 1).numpy()


def _clip_map(h: torch.Tensor, q: float = 0.99) -> np.ndarray:
    """Scale a non-negative map to [0, 1], clipping at its q-quantile so a few pixels do not wash it out."""
    h = h.detach().cpu().float()
    top = torch.quantile(h.flatten(), q).clamp_min(1e-12)
    return (h / top).clamp(0, 1).numpy()


def heatmap_grid(images: torch.Tensor, heatmaps: dict, *, titles=None, overlay: bool = False,
                 image_titles=None, width: float = 1.55):
    """Grid with one row per image: the image, then one heatmap per method.

    images:   (B, 3, H, W) in [0, 1]
    heatmaps: {method: (B, H, W)} non-negative maps (``explain`` with ``reduce="abs_sum"``)
    titles:   column titles per method (default: :data:`METHOD_LABELS`)
    image_titles: B strings under each image (e.g. predicted class and score)
    overlay:  draw each heatmap over a grey copy of the image
    """
    if images.dim() != 4:
        raise ValueError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
    names = list(heatmaps)
    b = images.shape[0]
    for n in names:
        if heatmaps[n].shape[0] != b:
            raise ValueError(f"heatmaps[{n!r}] has {heatmaps[n].shape[0]} maps for {b} images")
    fig, axes = plt.subplots(b, len(names) + 1, figsize=(width * (len(names) + 1), width * b + 0.3), squeeze=False)
    for i in range(b):
        axes[i, 0].imshow(_img(images[i]))
        if image_titles is not None:
            axes[i, 0].set_title(image_titles[i], fontsize=7)
        for j, n in enumerate(names, start=1):
            ax = axes[i, j]
            if overlay:
                ax.imshow(_img(images[i]).mean(-1), cmap="gray", alpha=0.35)
                ax.imshow(_clip_map(heatmaps[n][i]), cmap=HEATMAP_CMAP, alpha=0.75)
            else:
                ax.imshow(_clip_map(heatmaps[n][i]), cmap=HEATMAP_CMAP)
            if i == 0:
                ax.set_title((titles or {}).get(n, METHOD_LABELS.get(n, n)))
    for ax in axes.flat:
        ax.set_xticks([]), ax.set_yticks([])
        for s in ax.spines.values():
            s.set_visible(False)
    fig.tight_layout(pad=0.3)
    return fig


def attribution_bars(values: dict, feature_names, *, highlight: str | None = None, title: str = "",
                     xlabel: str = "mean |attribution| (normalised)"):
    """Horizontal bars: one group per feature, one bar per explainer.

    values:        {explainer: (d,) array-like of attributions}
    feature_names: d names
    highlight:     a feature name drawn in bold (e.g. the sensitive attribute)
    """
    frame = pd.DataFrame({k: np.asarray(v, dtype=float).reshape(-1) for k, v in values.items()},
                         index=list(feature_names))
    if frame.shape[0] != len(feature_names):
        raise ValueError("each entry of values must have one value per feature name")
    order = frame.abs().mean(1).sort_values(ascending=True).index
    long = frame.loc[order].reset_index(names="feature").melt("feature", var_name="explainer", value_name="value")
    long["explainer"] = long.explainer.map(lambda n: METHOD_LABELS.get(n, n))
    fig, ax = plt.subplots(figsize=(6.0, 0.32 * len(order) + 1.0))
    sns.barplot(long, y="feature", x="value", hue="explainer", ax=ax, orient="h", palette="colorblind")
    ax.axvline(0, color="0.3", lw=0.8)
    ax.set_xlabel(xlabel), ax.set_ylabel("")
    if title:
        ax.set_title(title)
    if highlight is not None:
        for lab in ax.get_yticklabels():
            if lab.get_text() == highlight:
                lab.set_fontweight("bold")
    ax.legend(frameon=False, fontsize=8)
    sns.despine(ax=ax)
    fig.tight_layout()
    return fig


def pair_table(pairs: pd.DataFrame, value: str) -> pd.DataFrame:
    """Square, symmetric table from a long table of pairs (``method_a``, ``method_b``, value)."""
    names = list(dict.fromkeys([*pairs.method_a, *pairs.method_b]))
    mat = pd.DataFrame(np.eye(len(names)), index=names, columns=names)
    for r in pairs.itertuples():
        mat.loc[r.method_a, r.method_b] = mat.loc[r.method_b, r.method_a] = getattr(r, value)
    labels = [METHOD_LABELS.get(n, n) for n in names]
    mat.index, mat.columns = labels, labels
    return mat


def agreement_matrix(pairs: pd.DataFrame, values=("spearman", "topk_intersection"), titles=None):
    """Side-by-side matrix plots of pairwise agreement (from :func:`xaifool.metrics.pairwise_agreement`)."""
    fig, axes = plt.subplots(1, len(values), figsize=(4.6 * len(values), 4.0), squeeze=False)
    for ax, v in zip(axes[0], values):
        mat = pair_table(pairs, v)
        mask = np.triu(np.ones_like(mat, dtype=bool), k=1)
        sns.heatmap(mat, mask=mask, annot=True, fmt=".2f", vmin=-0.2 if v == "spearman" else 0, vmax=1,
                    cmap="mako", cbar=False, ax=ax, annot_kws={"fontsize": 7}, square=True)
        ax.set_title((titles or {}).get(v, v.replace("_", " ")))
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    return fig
