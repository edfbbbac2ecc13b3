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

from .explain.registry import label as method_label
from .leaderboard import attack_label  # reader labels of attack keys ("topk" → "top-k")

__all__ = ["set_style", "HEATMAP_CMAP", "method_label", "heatmap_grid", "attribution_bars", "agreement_matrix",
           "randomisation_grid", "similarity_curves", "shared_legend",
           "pair_table", "rank_share_figure", "tradeoff_figure", "pareto_figure"]

HEATMAP_CMAP = "inferno"


def set_style() -> None:
    """The book's matplotlib / seaborn style (call once per chapter)."""
    sns.set_theme(context="notebook", style="white", font_scale=0.9)
    matplotlib.rcParams.update({"figure.dpi": 110, "savefig.dpi": 150, "axes.titlesize": 9,
                                "image.cmap": HEATMAP_CMAP})


def _img(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().permute(1, 2, 0).clamp(0, 1).numpy()


def _bare(axes) -> None:
    """Image panels: no ticks, no frame."""
    for ax in np.asarray(axes).flat:
        ax.set_xticks([]), ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)


def shared_legend(fig, ax, *, ncol: int, fontsize: float = 8, bottom: float = 0.06, **layout):
    """One legend for a figure of small multiples, built from ``ax``'s labelled artists, centred
    below the panels; the panels are laid out above a strip of height ``bottom`` (figure fraction)."""
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=ncol, frameon=False, fontsize=fontsize)
    fig.tight_layout(rect=(0, bottom, 1, 1), **layout)
    return fig


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
    titles:   column titles per method (default: the interpreters' labels, :func:`method_label`)
    image_titles: B strings shown above each image (e.g. predicted class and score)
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
            axes[i, 0].set_title(image_titles[i], fontsize=8)
        for j, n in enumerate(names, start=1):
            ax = axes[i, j]
            if overlay:
                ax.imshow(_img(images[i]).mean(-1), cmap="gray", alpha=0.35)
                ax.imshow(_clip_map(heatmaps[n][i]), cmap=HEATMAP_CMAP, alpha=0.75)
            else:
                ax.imshow(_clip_map(heatmaps[n][i]), cmap=HEATMAP_CMAP)
            if i == 0:
                ax.set_title((titles or {}).get(n, method_label(n)))
    _bare(axes)
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
    long["explainer"] = long.explainer.map(lambda n: method_label(n))
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
    labels = [method_label(n) for n in names]
    mat.index, mat.columns = labels, labels
    return mat


def agreement_matrix(pairs: pd.DataFrame, values=("spearman", "topk_intersection"), titles=None):
    """Matrix plots of pairwise agreement (from :func:`xaifool.metrics.pairwise_agreement`): side by side
    for up to seven methods, one above the other for more (so that the annotated cells stay legible)."""
    n = len(pair_table(pairs, values[0]))
    font = 7
    if len(values) == 1 and n > 7:   # one matrix sized for the page (≤ 6 in wide at 150 dpi)
        fig, axes = plt.subplots(1, 1, figsize=(6.0, 5.4), squeeze=False)
        font = 8
    elif n <= 7:
        fig, axes = plt.subplots(1, len(values), figsize=(4.6 * len(values), 4.0), squeeze=False)
    else:
        side = 0.5 * n + 1.6
        fig, axes = plt.subplots(len(values), 1, figsize=(side, side * len(values)), squeeze=False)
        axes = axes.T
    for ax, v in zip(axes[0], values):
        mat = pair_table(pairs, v)
        mask = np.triu(np.ones_like(mat, dtype=bool), k=1)
        sns.heatmap(mat, mask=mask, annot=True, fmt=".2f", vmin=-0.2 if v == "spearman" else 0, vmax=1,
                    cmap="mako", cbar=False, ax=ax, annot_kws={"fontsize": font}, square=True)
        ax.set_title((titles or {}).get(v, v.replace("_", " ")), fontsize=font + 2)
        ax.tick_params(labelsize=font)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------
# Manipulation chapters (input level)
# --------------------------------------------------------------------------------------

def manipulation_grid(columns: dict, *, row_titles=None, width: float = 1.45, perturbation_gain: float = 0.0,
                      quantiles: dict | None = None, row_fontsize: float = 7):
    """One row per sample, one column per entry of ``columns``.

    columns: {title: tensor}; (B, 3, H, W) entries are drawn as images, (B, H, W) entries as
             heatmaps (clipped at their 99th percentile, like :func:`heatmap_grid`)
    row_titles: B strings drawn left of each row
    perturbation_gain: > 0 draws 3-channel entries whose title starts with "δ" as
             0.5 + gain·δ (a visible perturbation)
    quantiles: {title: q} colour-scale clipping quantile per heatmap column (default 0.99;
             1.0 scales each map to its maximum)
    """
    quantiles = quantiles or {}
    names = list(columns)
    first = next(iter(columns.values()))
    b = first.shape[0]
    ratio = first.shape[-2] / first.shape[-1]  # rows sized to the images (composites are wider than tall)
    fig, axes = plt.subplots(b, len(names), figsize=(width * len(names), width * ratio * b + 0.45), squeeze=False)
    for j, n in enumerate(names):
        t = columns[n].detach().cpu()
        if t.shape[0] != b:
            raise ValueError(f"columns[{n!r}] has {t.shape[0]} rows, expected {b}")
        for i in range(b):
            ax = axes[i, j]
            if t.dim() == 4 and perturbation_gain > 0 and n.startswith("δ"):
                ax.imshow(_img(0.5 + perturbation_gain * t[i]))
            elif t.dim() == 4:
                ax.imshow(_img(t[i]))
            else:
                ax.imshow(_clip_map(t[i], quantiles.get(n, 0.99)), cmap=HEATMAP_CMAP)
            if i == 0:
                ax.set_title(n, fontsize=8)
            if j == 0 and row_titles is not None:
                ax.set_ylabel(row_titles[i], fontsize=row_fontsize)
    _bare(axes)
    fig.tight_layout(pad=0.3)
    return fig


def attack_curves(frame: pd.DataFrame, *, metrics=("topk", "spearman"), labels=None, methods=None,
                  panel=(3.0, 2.4), legend_below: bool = False):
    """Ghorbani-style curves: a metric (mean ± standard error) against ε, one line per attack.

    frame: long table with columns ``method``, ``attack``, ``eps255`` and one column per metric
           (one row per sample); one panel per (metric, method)
    methods: the interpreters drawn, in order (default: every one in ``frame``)
    panel: (width, height) of one panel in inches
    legend_below: one legend centred below the panels (default: in the last top panel)
    Colours: one per registered objective (:data:`xaifool.attacks.objectives.OBJECTIVES`) and ``random``.
    """
    methods = list(methods) if methods is not None else list(dict.fromkeys(frame.method))
    labels = labels or {}
    fig, axes = plt.subplots(len(metrics), len(methods), figsize=(panel[0] * len(methods), panel[1] * len(metrics)),
                             squeeze=False, sharex=True)
    from .attacks.objectives import OBJECTIVES  # one colour per registered objective, and the random baseline

    names = ["random", *OBJECTIVES]
    palette = dict(zip(names, sns.color_palette("colorblind", len(names))))
    for i, metric in enumerate(metrics):
        for j, method in enumerate(methods):
            ax = axes[i, j]
            sub = frame[frame.method == method]
            for attack, g in sub.groupby("attack", sort=False):
                stats = g.groupby("eps255")[metric].agg(["mean", "sem"]).reset_index()
                ax.errorbar(stats.eps255, stats["mean"], yerr=stats["sem"].fillna(0), marker="o", ms=3.5,
                            capsize=2, lw=1.2, color=palette.get(attack), label=labels.get(attack, attack))
            ax.set_xscale("log", base=2)
            ax.set_xticks(sorted(sub.eps255.unique()))
            ax.set_xticklabels([f"{e:g}" for e in sorted(sub.eps255.unique())])
            ax.set_ylim(-0.05 if metric == "topk" else min(-0.05, float(sub[metric].min()) - 0.05), 1.02)
            if i == 0:
                ax.set_title(method_label(method))
            if i == len(metrics) - 1:
                ax.set_xlabel("ε (× 1/255)")
            if j == 0:
                ax.set_ylabel({"topk": "top-k intersection", "spearman": "Spearman ρ"}.get(metric, metric))
            sns.despine(ax=ax)
    if legend_below:
        return shared_legend(fig, axes[0, -1], ncol=len(axes[0, -1].get_legend_handles_labels()[1]),
                             fontsize=9, bottom=0.09)
    axes[0, -1].legend(frameon=False, fontsize=7)
    fig.tight_layout()
    return fig


def training_curves(histories: dict, *, quantities=("fooling_loss", "accuracy"), labels=None):
    """Fine-tuning curves: one panel per quantity, one line per run, against optimiser steps.

    histories:  {name: history} where ``history["steps"]`` is the fine curve of
                :func:`xaifool.training.fit` (``log_every``) — ``"step"`` and one list per quantity
    quantities: the logged quantities to draw; ``fooling_loss`` is drawn as its change since the
                first point divided by that point's magnitude (the objectives have different scales
                and signs; every curve starts at 0, lower = more fooled), the others as they are
    labels:     {quantity: axis label}
    """
    labels = {"fooling_loss": "fooling loss, change / |start|", "accuracy": "training accuracy",
              "accuracy_loss": "accuracy term", **(labels or {})}
    names = list(histories)
    palette = dict(zip(names, sns.color_palette("colorblind", len(names))))
    fig, axes = plt.subplots(1, len(quantities), figsize=(3.4 * len(quantities), 2.6), squeeze=False)
    for ax, q in zip(axes[0], quantities):
        for name in names:
            steps = histories[name].get("steps") or {}
            if q not in steps:
                raise ValueError(f"histories[{name!r}] has no fine curve of {q!r}: fine-tune with log_every")
            y = np.asarray(steps[q], dtype=float)
            if q == "fooling_loss":
                y = (y - y[0]) / abs(y[0]) if y[0] != 0 else y - y[0]
            ax.plot(steps["step"], y, lw=1.4, color=palette[name], label=str(name),
                    ls=("-", "--", "-.", ":")[names.index(name) % 4])
        ax.set_xlabel("optimiser step")
        ax.set_ylabel(labels.get(q, q))
        sns.despine(ax=ax)
    axes[0, -1].legend(frameon=False, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    return fig


def transfer_matrices(frames: dict, *, fmt: str = ".0%", vmin: float = 0.0, vmax: float = 1.0,
                      cbar_label: str = "FSR", fontsize: float = 10, width: float = 6.4):
    """One annotated matrix per entry of ``frames`` ({title: DataFrame}, rows: the interpreter
    attacked, columns: the interpreter measured), one above the other with one shared colour
    scale, sized to be legible at page width (``width`` inches, cell numbers and labels at
    ``fontsize`` points; long interpreter names wrapped onto two lines). The cell whose column is
    its row's own interpreter (the attack itself, not a transfer) is outlined."""
    import textwrap

    def wrap(m):
        return textwrap.fill(method_label(m), 11)

    titles = list(frames)
    heights = [0.42 * frames[t].shape[0] + 0.25 for t in titles]
    fig, axes = plt.subplots(len(titles), 1, figsize=(width, sum(heights) + 0.75 + 0.45 * len(titles)),
                             squeeze=False, gridspec_kw={"height_ratios": heights}, layout="constrained")
    for j, (ax, t) in enumerate(zip(axes[:, 0], titles)):
        f = frames[t].rename(index=wrap, columns=wrap)
        sns.heatmap(f.astype(float), annot=True, fmt=fmt, vmin=vmin, vmax=vmax, cmap="mako_r", cbar=False,
                    ax=ax, annot_kws={"fontsize": fontsize}, square=False)
        cols = list(frames[t].columns)
        for i, m in enumerate(frames[t].index):   # the attack itself: the row's own interpreter, outlined
            if m in cols:
                ax.add_patch(plt.Rectangle((cols.index(m), i), 1, 1, fill=False, ec="#d95f02", lw=2.2))
        ax.set_title(t, fontsize=fontsize + 1)
        ax.set_xlabel("measured with" if j == len(titles) - 1 else "", fontsize=fontsize)
        ax.set_ylabel("attacked", fontsize=fontsize)
        ax.tick_params(axis="x", labelrotation=0, labelsize=fontsize - 1)
        ax.tick_params(axis="y", labelrotation=0, labelsize=fontsize - 1)
    cbar = fig.colorbar(axes[0, 0].collections[0], ax=axes[:, 0], shrink=0.8, aspect=30)
    cbar.set_label(cbar_label, fontsize=fontsize)
    cbar.ax.tick_params(labelsize=fontsize - 1)
    if fmt.endswith("%"):
        from matplotlib.ticker import PercentFormatter

        cbar.ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    return fig


def pipeline_diagram(level: str = "input"):
    """The review's two manipulation pipelines, drawn with boxes and arrows.

    level: ``"input"`` (the image is perturbed, the model is fixed) or ``"model"`` (the model is
           fine-tuned with a fooling loss, the inputs are untouched)
    """
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    if level not in ("input", "model"):
        raise ValueError(f"level must be 'input' or 'model', got {level!r}")
    fig, ax = plt.subplots(figsize=(7.2, 2.4))
    ax.set_xlim(0, 10), ax.set_ylim(0.35, 3.3), ax.axis("off")
    red, blue, grey = "#d55e00", "#0072b2", "#555555"

    def box(x, y, text, color, w=1.7, h=0.8):
        ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.05", fc="white",
                                    ec=color, lw=1.6))
        ax.text(x, y, text, ha="center", va="center", fontsize=8, color="black")

    def arrow(a, b, color=grey, style="-|>", ls="-"):
        ax.add_patch(FancyArrowPatch(a, b, arrowstyle=style, mutation_scale=12, color=color, lw=1.3, ls=ls))

    if level == "input":
        box(0.9, 2.2, "input $x$", grey, w=1.3)
        box(3.0, 2.2, "perturb\n$x_{adv}=x+\\delta$\n$\\|\\delta\\|_\\infty\\leq\\varepsilon$", red, w=2.0, h=1.1)
        box(5.4, 2.2, "model $N$\n(fixed $\\omega$)", blue)
        box(7.7, 2.8, "prediction\n$y$ unchanged", grey, w=1.9, h=0.7)
        box(7.7, 1.5, "explanation\n$h(x_{adv})\\neq h(x)$", red, w=1.9, h=0.8)
        arrow((1.55, 2.2), (2.0, 2.2)), arrow((4.0, 2.2), (4.55, 2.2))
        arrow((6.25, 2.4), (6.75, 2.75)), arrow((6.25, 2.0), (6.75, 1.6))
        arrow((7.7, 1.05), (3.0, 1.05), color=red, ls="--")
        arrow((3.0, 1.05), (3.0, 1.6), color=red, ls="--")
        ax.text(5.3, 0.8, "gradient of the fooling loss w.r.t. $x$ (one image at a time)", ha="center",
                fontsize=8, color=red)
    else:
        box(0.9, 2.2, "data $\\mathcal{D}$\n(unchanged)", grey, w=1.5)
        box(3.3, 2.2, "model $N$\n$\\omega_0\\to\\omega$", red, w=1.9)
        box(5.9, 2.8, "prediction\n$y$ unchanged", grey, w=1.9, h=0.7)
        box(5.9, 1.5, "explanation\n$h_\\omega(x)\\neq h_{\\omega_0}(x)$", red, w=2.1, h=0.8)
        box(8.7, 2.2, "$\\mathcal{L}=\\mathcal{L}_{CE}+\\lambda\\mathcal{L}_{F}$", red, w=2.2)
        arrow((1.65, 2.2), (2.35, 2.2)), arrow((4.25, 2.4), (4.95, 2.75)), arrow((4.25, 2.0), (4.85, 1.6))
        arrow((6.85, 2.8), (7.6, 2.35)), arrow((6.95, 1.5), (7.6, 2.05))
        arrow((8.7, 1.75), (8.7, 0.9), color=red, ls="--", style="-")
        arrow((8.7, 0.9), (3.3, 0.9), color=red, ls="--", style="-")
        arrow((3.3, 0.9), (3.3, 1.75), color=red, ls="--")
        ax.text(6.0, 0.6, "fine-tune the weights on a fooling loss (once, for every input)", ha="center",
                fontsize=8, color=red)
    fig.tight_layout(pad=0.2)
    return fig


# --------------------------------------------------------------------------------------
# Sanity checks
# --------------------------------------------------------------------------------------

SIMILARITY_LABELS = {"spearman_abs": "Spearman |map|", "spearman": "Spearman (signed)", "ssim": "SSIM",
                     "hog_pearson": "HOG Pearson"}


def _short_layer(name: str) -> str:
    return name.removeprefix("net.").replace("features.", "f").replace("classifier.1", "logits")


def _row_label(label: str, width: int = 9) -> str:
    """A row label on at most two lines (at the first space or inner capital), so that it stays beside its row."""
    if len(label) <= width:
        return label
    if " " in label:
        return label.replace(" ", "\n", 1)
    cut = next((k for k in range(1, len(label)) if label[k].isupper()), None)
    return label if cut is None else f"{label[:cut]}-\n{label[cut:]}"


def randomisation_grid(image: torch.Tensor, original: dict, maps: dict, layers, steps, *, width: float = 1.25,
                       index: int = 0, fontsize: float = 8):
    """Adebayo et al.'s figure: one row per interpreter — the image, the trained network's map, then
    the maps after the cascading randomisation has reached each of ``steps``.

    image:    (3, H, W) the explained image; original: {method: (B, H, W)}; maps: {method: (L, B, H, W)}
    layers:   the L layer (block) names in the order randomised; steps: indices into them to draw
    index:    which image of the batch; maps are shown as |map| clipped at the 99th percentile
    """
    methods = list(maps)
    steps = list(steps)
    ncol = len(steps) + 2
    fig, axes = plt.subplots(len(methods), ncol, figsize=(width * ncol, width * len(methods) + 0.3), squeeze=False)
    for i, m in enumerate(methods):
        axes[i, 0].imshow(_img(image))
        axes[i, 0].set_ylabel(_row_label(method_label(m)), fontsize=fontsize)
        axes[i, 1].imshow(_clip_map(original[m][index].abs()), cmap=HEATMAP_CMAP)
        for j, s in enumerate(steps, start=2):
            axes[i, j].imshow(_clip_map(maps[m][s, index].abs()), cmap=HEATMAP_CMAP)
    axes[0, 1].set_title("trained", fontsize=fontsize)
    for j, s in enumerate(steps, start=2):
        axes[0, j].set_title(f"→ {_short_layer(layers[s])}", fontsize=fontsize)
    _bare(axes)
    fig.tight_layout(pad=0.2, h_pad=0.2, w_pad=0.2)
    return fig


def similarity_curves(summary: pd.DataFrame, *, metrics=("spearman_abs", "ssim", "hog_pearson"), ncols: int = 4,
                      threshold: float | None = None, width: float = 1.75, min_band: int = 5):
    """Small multiples, one panel per interpreter: mean similarity to the original map against the
    randomisation step, one line per metric with its confidence band (from :func:`xaifool.sanity.summarize`;
    drawn where at least ``min_band`` images give a similarity)."""
    methods = list(dict.fromkeys(summary.method))
    nrows = -(-len(methods) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, 1.9 * nrows + 0.8), squeeze=False, sharey=True)
    colors = sns.color_palette("colorblind", len(metrics))
    layers = None
    for ax, m in zip(axes.flat, methods):
        for c, metric in zip(colors, metrics):
            d = summary[(summary.method == m) & (summary.metric == metric)].sort_values("step")
            if d.empty:
                continue
            layers = list(d.layer)
            ax.plot(d.step, d["mean"], color=c, lw=1.4, label=SIMILARITY_LABELS.get(metric, metric))
            if d.n.min() >= min_band:  # a t-interval over two or three images says nothing
                ax.fill_between(d.step, d.low.clip(-1, 1), d.high.clip(-1, 1), color=c, alpha=0.2, lw=0)
        if threshold is not None:
            ax.axhline(threshold, color="0.5", lw=0.8, ls=":")
        ax.axhline(0, color="0.8", lw=0.6)
        ax.set_title(method_label(m), fontsize=9.5)
        ax.set_ylim(-0.3, 1.05)
        ax.tick_params(labelsize=8)
    for ax in axes.flat[len(methods):]:
        ax.axis("off")
    if layers:
        ticks = sorted({1, len(layers), *range(1, len(layers) + 1, max(1, len(layers) // 4))})
        for ax in axes.flat[:len(methods)]:
            ax.set_xticks(ticks)
            ax.set_xticklabels([_short_layer(layers[t - 1]) for t in ticks], rotation=45, ha="right", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("similarity", fontsize=9)
    return shared_legend(fig, axes.flat[0], ncol=len(metrics), pad=0.3, fontsize=9, bottom=0.08)


# ---- chapter 08: the scaffolding attack (xaifool.attacks.scaffold)

def rank_share_figure(results: dict):
    """Slack et al.'s figure as bars: ``results[(name, explainer)]`` from :func:`xaifool.attacks.scaffold.scaffold_experiment`.

    One panel per data set (rows) and explainer (columns); for ranks 1–3, the share of
    explanations in which the sensitive feature holds that rank for ``f`` and for the scaffold,
    and the share in which the (first) decoy feature of ψ does for the scaffold.
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    names = list(dict.fromkeys(k[0] for k in results))
    expl = list(dict.fromkeys(k[1] for k in results))
    fig, axes = plt.subplots(len(names), len(expl), figsize=(3.3 * len(expl), 2.0 * len(names) + 0.6),
                             squeeze=False, sharey=True)
    bars = [("ranks_f", "sensitive feature, biased f", "#d55e00"),
            ("ranks_scaffold", "sensitive feature, scaffolded", "#0072b2"),
            ("ranks_unrelated", "decoy feature of ψ, scaffolded", "#999999")]
    x = np.arange(3)
    w = 0.27
    for i, n in enumerate(names):
        for j, e in enumerate(expl):
            ax = axes[i, j]
            r = results[(n, e)]
            for b, (key, label, color) in enumerate(bars):
                ax.bar(x + (b - 1) * w, r[key], w, color=color, label=label)
            ax.set_xticks(x, ["1st", "2nd", "3rd"])
            ax.set_ylim(0, 1.05)
            ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{100 * v:.0f}"))
            title = {"compas": "COMPAS", "german": "German", "adult": "Adult"}.get(n, n)
            ax.set_title(f"{title} ({r['sensitive'].replace('_', ' ')}) — {method_label(e)}", fontsize=10)
            if j == 0:
                ax.set_ylabel("explanations (%)")
            sns.despine(ax=ax)
    return shared_legend(fig, axes[0, 0], ncol=3)


def tradeoff_figure(results: dict):
    """The attacker's fidelity–fooling trade-off: ``results[(config, name, explainer)]`` from
    :func:`xaifool.attacks.scaffold.scaffold_experiment`.

    One panel per explainer (rows) and data set (columns). x: the share of real test rows the
    scaffold misroutes (answers unlike f: 1 − fidelity) on a scale that is linear below 1 % and
    logarithmic above, so that operating points close to full fidelity separate; y: share of
    explanations that rank the sensitive feature first. One line per configuration, traced by
    sweeping its detector's threshold from 0 (everything to f, left) to beyond 1 (everything to
    ψ); filled marker: the configuration's own operating point (Slack: P(real) ≥ 0.5; the book:
    keep ≥ 97 % of real training rows); open diamond: the highest threshold that keeps ≥ 97 % of
    real test rows. The operating points are labelled with their threshold t.
    """
    from matplotlib.ticker import FixedLocator, FuncFormatter

    from .attacks.scaffold import tradeoff_points
    import matplotlib.pyplot as plt
    import seaborn as sns

    configs = list(dict.fromkeys(k[0] for k in results))
    names = list(dict.fromkeys(k[1] for k in results))
    expl = list(dict.fromkeys(k[2] for k in results))
    fig, axes = plt.subplots(len(expl), len(names), figsize=(2.45 * len(names) + 0.5, 2.5 * len(expl) + 0.8),
                             squeeze=False, sharey=True, sharex=True)
    style = {"slack": ("#0072b2", "o", "Slack et al.'s settings", (5, 5)),
             "book": ("#d55e00", "s", "the book's settings", (5, 19))}
    lin = 0.01
    for i, e in enumerate(expl):
        for j, n in enumerate(names):
            ax = axes[i, j]
            for c in configs:
                if (c, n, e) not in results:
                    continue
                color, marker, label, offset = style.get(c, ("#555555", "^", c, (4, 5)))
                tp = tradeoff_points(results[(c, n, e)])
                xs = [1 - p["fidelity"] for p in tp["curve"]]
                ys = [p["top1"] for p in tp["curve"]]
                ax.plot(xs, ys, "-", color=color, lw=1.2, alpha=0.8, label=label)
                for key, mk, mfc, text in (("operating", marker, color, f"{label}: operating point"),
                                           ("keep97", "D", "none", f"{label}: ≥ 97 % of real rows to f")):
                    pt = tp[key]
                    ax.plot([1 - pt["fidelity"]], [pt["top1"]], mk, mfc=mfc, color=color, ms=7, label=text)
                    if key == "operating":
                        dy = offset[1] if pt["top1"] < 0.8 else -14  # keep clear of the title
                        ax.annotate(f"t = {pt['threshold']:.2f}", (1 - pt["fidelity"], pt["top1"]),
                                    xytext=(offset[0], dy), textcoords="offset points", fontsize=9,
                                    color=color)
            ax.set_xscale("symlog", linthresh=lin, linscale=0.6)
            ax.set_xlim(-0.002, 0.7)
            ax.xaxis.set_major_locator(FixedLocator([0, 0.01, 0.1, 0.5]))
            ax.xaxis.set_minor_locator(FixedLocator([0.005, 0.02, 0.03, 0.05, 0.2, 0.3, 0.4]))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{100 * v:g}"))
            ax.set_ylim(-0.03, 1.08)
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{100 * v:.0f}"))
            title = {"compas": "COMPAS", "german": "German", "adult": "Adult"}.get(n, n)
            ax.set_title(f"{title} — {method_label(e)}", fontsize=9)
            if i == len(expl) - 1:
                ax.set_xlabel("real rows misrouted (%)")
            if j == 0:
                ax.set_ylabel("sensitive first (%)")
            sns.despine(ax=ax)
    return shared_legend(fig, axes[0, 0], ncol=2, fontsize=9, bottom=0.115)


# ---- chapter 02b: Heo's claim at matched accuracy (xaifool.attacks.heo.matched)

def pareto_figure(runs: dict, max_drop: float):
    """FSR against held-out accuracy for every run of a λ × learning-rate sweep, one panel per
    (attack, interpreter) pair (``runs``: ``{(attack, method): rows of xaifool.attacks.heo.sweep()}``):
    the runs (marker: learning rate, label: λ), the Pareto front as a line, the original model's accuracy
    and the band within ``max_drop`` of it shaded."""
    pairs = list(runs)
    fig, axes = plt.subplots(1, len(pairs), figsize=(3.6 * len(pairs) + 0.6, 3.0), squeeze=False)
    markers = ("o", "s", "^", "D", "v")
    for ax, pair in zip(axes[0], pairs):
        rows = runs[pair]
        lrs = sorted({r["lr"] for r in rows})
        base = rows[0]["accuracy"]
        ax.axvspan(100 * (base - max_drop), 100 * base, color="0.9", zorder=0,
                   label=f"within {100 * max_drop:g} points")
        ax.axvline(100 * base, color="0.4", lw=0.8, ls="--", label="original model")
        front = sorted((r for r in rows if r["pareto"]), key=lambda r: r["accuracy_adv"])
        ax.plot([100 * r["accuracy_adv"] for r in front], [r["fsr"] for r in front], color="0.2", lw=1.0,
                label="Pareto front")
        for i, lr in enumerate(lrs):
            mine = [r for r in rows if r["lr"] == lr]
            ax.scatter([100 * r["accuracy_adv"] for r in mine], [r["fsr"] for r in mine], marker=markers[i % 5],
                       s=30, zorder=3, label=f"lr {lr:g}")
            for r in mine:
                ax.annotate(f"λ={r['lam']:g}", (100 * r["accuracy_adv"], r["fsr"]), fontsize=8,
                            xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel("held-out accuracy (%)")
        ax.set_ylabel("fooling success rate")
        ax.set_ylim(-0.03, 1.03)
        ax.set_title(f"{attack_label(pair[0])}, {method_label(pair[1])}", fontsize=10)
        sns.despine(ax=ax)
    axes[0, -1].legend(frameon=False, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    return fig


def robustness_scatter(x: dict, y: dict, *, xlabel: str, ylabel: str, labels=None):
    """One point per interpreter: a natural-robustness score (x) against its mean attack FSR (y), labelled."""
    labels = labels or {}
    fig, ax = plt.subplots(figsize=(5.6, 3.8), layout="constrained")
    xs, ys = np.array([x[n] for n in x], float), np.array([y[n] for n in x], float)
    span_x, span_y = np.ptp(xs) or 1.0, np.ptp(ys) or 1.0
    placed: list[tuple[float, float]] = []
    for name in sorted(x, key=lambda n: (y[n], x[n])):
        ax.scatter(x[name], y[name], s=28, color="C0")
        # a label whose point lies close to an already labelled one is moved down a line
        near = sum(abs(x[name] - px) < 0.12 * span_x and abs(y[name] - py) < 0.05 * span_y for px, py in placed)
        placed.append((x[name], y[name]))
        ax.annotate(labels.get(name, name), (x[name], y[name]), xytext=(4, 3 - 10 * near),
                    textcoords="offset points", fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    return fig


def curvature_scatter(table: pd.DataFrame, *, x: str = "curvature", y: str = "effect", xlabel: str = "",
                      ylabel: str = ""):
    """Per image: a curvature measure against the attack's effect on the map (log x-axis)."""
    fig, ax = plt.subplots(figsize=(5.2, 3.4), layout="constrained")
    kept = table["label kept"].astype(bool)
    ax.scatter(table.loc[kept, x], table.loc[kept, y], s=24, color="C0", label="label kept")
    if (~kept).any():
        ax.scatter(table.loc[~kept, x], table.loc[~kept, y], s=24, facecolor="none", edgecolor="C3",
                   label="label changed")
    ax.set_xscale("log")
    ax.set_xlabel(xlabel or x)
    ax.set_ylabel(ylabel or y)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    return fig


def defence_figure(panels: dict, *, xlabel: dict, curves: dict, reference: dict | None = None):
    """Defence sweeps side by side: ``panels`` {title: DataFrame with the swept column first}; ``curves``
    {column: legend label} drawn against the swept value (log axis); ``reference`` {column: value of the
    undefended network} drawn as dashed lines."""
    from matplotlib.ticker import FixedLocator, NullLocator

    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.5), squeeze=False)
    for ax, (title, frame) in zip(axes[0], panels.items()):
        key = frame.columns[0]
        xs = frame[key].astype(float)
        for i, (col, lab) in enumerate(curves.items()):
            if col in frame:
                ax.plot(xs, frame[col], marker="o", color=f"C{i}", label=lab)
                if reference and col in reference:
                    ax.axhline(reference[col], color=f"C{i}", ls="--", lw=0.8)
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(FixedLocator(list(xs)))     # ticks at the swept values only
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticklabels([f"{v:g}" for v in xs])
        ax.set_xlabel(xlabel[title])
        ax.set_title(title, fontsize=10)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    shared_legend(fig, axes[0][0], ncol=2, fontsize=8, bottom=0.17)
    return fig


def roc_figure(curves: dict, *, ncols: int = 2):
    """ROC curves, one panel per detector: ``curves`` {title: {case label: Roc}}."""
    n = len(curves)
    rows = -(-n // ncols)
    most = max(len(c) for c in curves.values())   # more than two cases: the legend goes below its panel
    below = 0.2 * most if most > 2 else 0.0
    fig, axes = plt.subplots(rows, ncols, figsize=(max(3.3 * ncols, 4.2 if below else 0), (3.1 + below) * rows),
                             layout="constrained", squeeze=False)
    for ax, (title, by_case) in zip(axes.flat, curves.items()):
        for i, (case, r) in enumerate(by_case.items()):
            ax.step(r.false_alarm, r.detection, where="post", color=f"C{i}", label=f"{case} (AUC {r.auc:.2f})")
        ax.plot([0, 1], [0, 1], color="grey", lw=0.6, ls=":")
        ax.set_xlabel("false-alarm rate")
        ax.set_ylabel("detection rate")
        ax.set_title(title)
        if below:
            ax.legend(fontsize=8, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.2))
        else:
            ax.legend(fontsize=8, frameon=False, loc="lower right")
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    return fig
