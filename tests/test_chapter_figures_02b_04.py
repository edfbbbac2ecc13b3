"""Figures of chapters 02b, 03 and 04 legible at page width: natural width at most 1100 px at the
book's inline 110 dpi, reader labels instead of attack keys."""
import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")

from xaifool import plot  # noqa: E402

MEASURED = ("gradient", "integrated_gradients", "smoothgrad", "gradcam", "lrp")


def _width_px(fig, dpi=110):
    return fig.get_size_inches()[0] * dpi


def test_attack_label_is_a_reader_label():
    assert plot.attack_label("topk") == "top-k"
    assert plot.attack_label("center") == "centre of mass"
    assert plot.attack_label("swap") == "class swap"


@pytest.mark.parametrize("fmt", [".0%", ".2f"])
def test_transfer_matrices_fit_the_page_with_legible_text(fmt):
    rng = np.random.default_rng(0)
    attacked = ("gradient", "grad_x_input", "integrated_gradients", "smoothgrad", "gradcam", "lrp")
    frames = {"input level": pd.DataFrame(rng.random((6, 5)), index=attacked, columns=MEASURED),
              "model level": pd.DataFrame(rng.random((3, 5)), index=("gradient", "gradcam", "lrp"),
                                          columns=MEASURED)}
    fig = plot.transfer_matrices(frames, fmt=fmt)
    try:
        assert _width_px(fig) <= 1100
        axes = [ax for ax in fig.axes if ax.get_title()]
        assert [ax.get_title() for ax in axes] == list(frames)
        for ax in axes:
            cells = [t for t in ax.texts if t.get_text()]
            assert cells and min(t.get_fontsize() for t in cells) >= 9
            labels = [t.get_text() for t in ax.get_yticklabels()]
            assert all(labels) and "gradcam" not in labels   # reader labels, every row labelled
            outlined = [p for p in ax.patches if isinstance(p, matplotlib.patches.Rectangle) and not p.get_fill()]
            assert len(outlined) == sum(m in MEASURED for m in frames[ax.get_title()].index)
    finally:
        matplotlib.pyplot.close(fig)


def test_pareto_figure_titles_use_reader_labels():
    runs = {("topk", "gradcam"): [
        {"lam": 3.0, "lr": 1e-4, "fsr": 0.1, "accuracy": 0.8, "accuracy_adv": 0.79, "drop": 0.01, "pareto": True},
        {"lam": 10.0, "lr": 1e-4, "fsr": 0.3, "accuracy": 0.8, "accuracy_adv": 0.75, "drop": 0.05, "pareto": True}]}
    fig = plot.pareto_figure(runs, 0.02)
    try:
        assert fig.axes[0].get_title() == "top-k, Grad-CAM"
        assert _width_px(fig) <= 1100
    finally:
        matplotlib.pyplot.close(fig)
