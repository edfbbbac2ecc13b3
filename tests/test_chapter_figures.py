"""Reader-facing details of chapter 06's and 08's figures (xaifool.plot)."""
import matplotlib

matplotlib.use("Agg")

from xaifool import plot  # noqa: E402


def test_row_labels_fit_beside_their_row():
    assert plot._row_label("Gradient") == "Gradient"
    assert plot._row_label("Integrated Gradients") == "Integrated\nGradients"
    assert plot._row_label("SmoothGrad") == "Smooth-\nGrad"
    assert all(len(line) <= 10 for line in plot._row_label("Guided Backprop").split("\n"))


def test_rank_share_figure_uses_reader_titles_and_percent():
    import matplotlib.pyplot as plt

    r = {"ranks_f": [1.0, 0, 0], "ranks_scaffold": [0.1, 0.5, 0.2], "ranks_unrelated": [0.9, 0.1, 0],
         "sensitive": "african_american"}
    fig = plot.rank_share_figure({("compas", "lime"): r})
    ax = fig.axes[0]
    assert ax.get_title() == "COMPAS (african american) — LIME"
    assert "%" in ax.get_ylabel()
    plt.close(fig)
