"""Chapter 08's inventory of the book (``xaifool.book.inventory``): one row per registered attack, a new
attack or model attack shows up by itself, parameters counted from the model, accuracies in range, and
tables that hold reader-facing text only (no raw keys, no Python values)."""
from __future__ import annotations

import re

import pandas as pd
import pytest
import torch
import torch.nn as nn

from xaifool import data
from xaifool import explain as E
from xaifool.attacks import input as A
from xaifool.attacks import objectives as O
from xaifool.leaderboard import attack_label
from xaifool.attacks.heo import registry as HR
from xaifool.book import experiments
from xaifool.book import inventory as I
from xaifool.zoo import BASE_MODELS

#: Registry keys a reader must never see (labels replace them): keys that are not English words.
RAW_KEYS = sorted({*(k for k in [*O.OBJECTIVES, *HR.MODEL_ATTACKS, *E.METHODS, *BASE_MODELS] if "_" in k),
                   "topk", "gradcam", "center", "logreg", "mlp", *data.TABULAR_DATASETS})


def assert_reader_facing(md: str) -> None:
    for word in ("None", "True", "False", "nan", "NaN"):
        assert not re.search(rf"\b{word}\b", md), word
    for key in RAW_KEYS:
        assert not re.search(rf"(?<![\w/.-]){re.escape(key)}(?![\w/.-])", md), key
    assert not re.search(r"[(\[]['\"]", md), "a Python tuple or list"


def rows_at(frame: pd.DataFrame, level: str) -> pd.DataFrame:
    return frame[frame.level == level]


# ---- the methods table follows the registries ------------------------------------------------------

def test_methods_table_has_one_row_per_input_attack_and_model_attack():
    frame = I.methods_frame()
    assert len(rows_at(frame, "input")) == len(I.input_attacks())
    assert len(frame[frame.paper == "Heo et al. (2019)"]) == len(HR.MODEL_ATTACKS)
    # every input attack of the registry has its row, or is an earlier one under another name (same loss)
    shown = {O.OBJECTIVES[n].loss if n in O.OBJECTIVES else n for n in I.input_attacks()}
    for name in A.ATTACKS:
        assert (O.OBJECTIVES[name].loss if name in O.OBJECTIVES else name) in shown, name
    assert "location" not in I.input_attacks() and "region" in I.input_attacks()
    # the papers of the rows, and each of them has a bibliography key
    assert set(frame.paper) == set(I.PAPERS)
    assert {"scaffolding", "concealment", "randomisation checks"} <= set(frame.method)
    assert_reader_facing(I.markdown_table(frame))


def test_a_registered_model_attack_gets_a_row_by_itself():
    toy = HR.ModelAttack("left_half", "region", lambda h0, h1, region, k: h1.flatten(1).sum(1),
                         lambda s: s >= 0.6, "≥ 0.6", 5.0, ("region",), reference_map=False,
                         description="mass pushed into the left half")
    before = len(I.methods_frame())
    with HR.registered(toy):
        frame = I.methods_frame()
        row = frame[frame.method == "left half"]
        assert len(frame) == before + 1 and len(row) == 1
        assert row.iloc[0].level == "model" and "mass pushed into the left half" in row.iloc[0]["what it changes"]
        assert row.iloc[0]["run against"] == I.NOT_RUN     # in no grid of the profile
        assert_reader_facing(I.markdown_table(frame))
    assert len(I.methods_frame()) == before


def test_a_new_input_objective_gets_a_row_by_itself(monkeypatch):
    def loss(h, logits, ref):
        return h.flatten(1).amax(1)

    toy = O.Objective("peak", loss, lambda h0, logits0=None, *, k=None: {}, False, False,
                      "the largest value of the map (Someone et al. 2031)")
    monkeypatch.setitem(O.OBJECTIVES, "peak", toy)
    monkeypatch.setattr(A, "ATTACKS", (*A.ATTACKS, "peak"))
    assert "peak" in I.input_attacks()
    frame = I.methods_frame()
    row = frame[frame.method == "peak"].iloc[0]
    assert row.level == "input" and row.paper == "Someone et al. (2031)"
    assert "the largest value of the map" in row["what it changes"] and row["run against"] == I.NOT_RUN


def test_input_runs_are_the_parts_the_chapters_run():
    runs = I.input_runs()
    for attack in ("random", "topk", "center"):
        assert runs[attack]["cifar_resnet20"] == experiments.GRID_METHODS
    assert runs["target"]["cifar_resnet20"] == ("gradient", "lrp")
    assert runs["region"] == {"cifar_resnet20": ("gradient",)}
    assert runs["topk"]["mobilenet_v2"] == ("gradient", "lrp") and "mobilenet_v2" not in runs["center"]
    assert set(runs) <= set(A.ATTACKS)


def test_model_attack_rows_name_the_interpreters_of_the_profile_grids():
    from xaifool.config import get_config

    P = get_config().profile
    frame = I.methods_frame()
    heo = frame[frame.paper == "Heo et al. (2019)"].set_index("method")
    for attack, method in P.heo_grid:
        assert E.label(method) in heo.loc[attack_label(attack), "run against"]


# ---- models ------------------------------------------------------------------------------------------

def test_image_models_count_parameters_and_measure_accuracy(mirror_available):
    from xaifool import models

    records = I.image_models(n_cifar=32, n_imagenet=4)
    assert [r.name for r in records] == ["CIFAR-10 ResNet-20", "ImageNet MobileNetV2"]
    resnet = records[0]
    assert resnet.parameters == sum(p.numel() for p in models.load_cifar_resnet(20).parameters()) == 269_722
    assert resnet.n == 32 and records[1].n == 4
    for r in records:
        assert 0.0 <= r.accuracy <= 1.0
    manipulated = I.manipulated_models(records)
    assert manipulated[0].parameters == resnet.parameters and manipulated[0].accuracy is None
    frame = I.models_frame(records + manipulated)
    assert frame.loc[0, "parameters"] == "269,722"
    for cell in frame["top-1 accuracy (this build)"]:
        if cell != "–":
            assert re.fullmatch(r"\d{1,3}\.\d %", cell) and 0 <= float(cell.split()[0]) <= 100
    assert_reader_facing(I.markdown_table(frame))


def test_tabular_models_take_the_chapters_accuracy(mirror_available, monkeypatch):
    from xaifool import models

    def untrained(ds, kind="mlp"):   # the counting and formatting, not the training, is tested here
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(ds.n_features, 2)) if kind == "logreg" else \
            nn.Sequential(nn.Linear(ds.n_features, 4), nn.ReLU(), nn.Linear(4, 2))

    monkeypatch.setattr(models, "train_tabular_model", untrained)
    sets = {"compas": data.load_tabular("compas")}
    acc = pd.DataFrame({"MLP": [0.7], "logistic regression": [0.655], "majority class": [0.5]}, index=["compas"])
    records = I.tabular_models(sets, acc)
    assert [r.name for r in records] == ["MLP (COMPAS)", "logistic regression (COMPAS)"]
    d = sets["compas"].n_features
    assert [r.parameters for r in records] == [d * 4 + 4 + 4 * 2 + 2, d * 2 + 2]
    assert [r.accuracy for r in records] == [0.7, 0.655] and records[0].n == len(sets["compas"].y_test)
    frame = I.models_frame(records)
    assert list(frame["top-1 accuracy (this build)"]) == ["70.0 %", "65.5 %"]
    assert_reader_facing(I.markdown_table(frame))
    with pytest.raises(ValueError, match="column 'MLP'"):
        I.tabular_models(sets, acc.drop(columns="MLP"))


# ---- data sets ---------------------------------------------------------------------------------------

def test_datasets_table_states_the_profiles_sizes(mirror_available):
    from xaifool.config import get_config

    P = get_config().profile
    sets = {n: data.load_tabular(n) for n in data.TABULAR_DATASETS}
    frame = I.datasets_frame(sets).set_index("data set")
    assert len(frame) == 3 + len(sets)
    assert f"{P.n_accuracy_cifar:,} for accuracy" in frame.loc["CIFAR-10 test images (JPEG, quality 75)",
                                                              "used in this profile"]
    compas = frame.loc["COMPAS"]
    assert compas.modality == "table" and f"{len(sets['compas'].y_test):,} test" in compas["used in this profile"]
    assert "`african_american`" in compas["classes / features"]
    assert "≤ 50K / > 50K" in frame.loc["Adult", "classes / features"]
    assert_reader_facing(I.markdown_table(frame.reset_index()))


# ---- links and Markdown ------------------------------------------------------------------------------

def test_chapter_links_point_at_targets_of_the_chapters():
    titles = I.chapter_titles()
    assert titles["chap-input-manipulation"] == "Input manipulation"
    assert titles["exp-scaffolding"].startswith("Experiments, § Scaffolding")
    assert I.chapter_link("chap-targets") == "{ref}`Targets <chap-targets>`"
    with pytest.raises(ValueError, match="chap-nowhere"):
        I.chapter_link("chap-nowhere")


def test_markdown_table_escapes_pipes_and_refuses_an_empty_frame():
    md = I.markdown_table(pd.DataFrame({"a": ["x | y"], "b": [float("nan")]}))
    assert md.splitlines() == ["| a | b |", "|---|---|", "| x \\| y | – |"]
    with pytest.raises(ValueError, match="at least one row"):
        I.markdown_table(pd.DataFrame({"a": []}))
