"""The presentation helpers of chapters 01 and 02a (xaifool.book.interpreting): reader labels, no
internal keys, units in the headers."""
import pandas as pd
import torch

from xaifool import explain as E
from xaifool.book import interpreting as T


def test_taxonomy_table_has_reader_labels_and_no_keys():
    t = T.taxonomy_table(E.METHODS)
    assert len(t) == len(E.METHODS)
    assert "Grad-CAM" in t.index and "gradcam" not in t.index
    assert set(t["differentiable"]) <= {"yes", "no"}
    assert not any("20" in str(v) for v in t.to_numpy().ravel())   # no citation keys


def test_prediction_labels_name_the_true_class_only_when_wrong():
    labels = T.prediction_labels(["cat", "dog"], torch.tensor([0, 1]), torch.tensor([0.9, 0.5]),
                                 torch.tensor([0, 0]))
    assert labels == ["cat\n90%", "dog\n50% (true: cat)"]


def _summary():
    rows = [{"method": m, "attack": a, "topk": 0.5, "spearman": 0.2, "seconds_per_image": 0.1}
            for m in ("gradient", "gradcam") for a in ("random", "topk", "center")]
    return pd.DataFrame(rows)


def test_similarity_and_cost_tables_use_labels_and_units():
    t = T.similarity_table(_summary(), ["gradient", "gradcam"])
    assert list(t.index) == ["Gradient", "Grad-CAM"]
    assert "top-k / random sign" in t.columns and not any(c.startswith("topk") for c in t.columns)

    class Res:
        seconds = 2.0

    cost = T.attack_cost_table(_summary(), ["gradient", "gradcam"], {"gradient": Res()}, n_images=4)
    assert all(c.endswith("(s per image)") for c in cost.columns)
    assert cost.loc["Gradient", "target map (s per image)"] == 0.5
    assert pd.isna(cost.loc["Grad-CAM", "target map (s per image)"])


def test_transfer_table_rows_are_interpreter_labels():
    sim = {"lrp": {"topk": torch.tensor([0.2, 0.4]), "spearman": torch.tensor([0.1, 0.3])}}
    t = T.transfer_table(sim, sim)
    assert list(t.index) == ["LRP"]
    assert abs(t.loc["LRP", "top-k (attack on gradient)"] - 0.3) < 1e-6
