"""Tests for :mod:`xaifool.attacks.tabular` (Slack et al.'s scaffolding, Dimanov et al.'s concealment).

Each test checks a property the attacks must have, on seeded small runs of the real data
(the loaders themselves are tested in ``test_data.py``):

* the scaffold behaves like the biased classifier on real rows (fidelity ≥ 95 %), its
  detector separates real rows from LIME's queries on held-out data, and the sensitive
  feature's top-1 share under LIME falls by at least half;
* LIME and KernelSHAP send each row's perturbations to the model in one batched call;
* concealment keeps test accuracy within 2 points, lowers the sensitive feature's mean
  |gradient|, and flipping the feature still changes predictions;
* bad input raises ``ValueError`` naming the argument.
"""
from __future__ import annotations

import numpy as np
import pytest

from xaifool.attacks import concealment as C
from xaifool.attacks import tabular as T
from xaifool.data import load_tabular


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    """Recompute instead of reading cached results, so the code under test really runs."""
    monkeypatch.setenv("XAIFOOL_NO_CACHE", "1")


@pytest.fixture(scope="module")
def german(mirror_available):
    return T.with_unrelated(load_tabular("german"), seed=0)


# ---------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------

def test_unrelated_column_is_binary_and_uncorrelated(mirror_available):
    ds = T.with_unrelated(load_tabular("adult"), seed=0)
    u = ds.X_train[:, -1]
    assert ds.feature_names[-1] == T.UNRELATED and ds.n_features - 1 in ds.categorical
    assert set(np.unique(u)) == {0.0, 1.0}
    assert abs(np.corrcoef(u, ds.X_train[:, ds.sensitive_index])[0, 1]) < 0.03
    assert abs(np.corrcoef(u, ds.y_train)[0, 1]) < 0.03


def test_biased_and_innocuous_classifiers(german):
    s, u = german.sensitive_index, german.feature_names.index(T.UNRELATED)
    f, psi = T.BiasedClassifier(s), T.InnocuousClassifier(u)
    X = german.X_test
    assert np.array_equal(f.predict(X), X[:, s].astype(int))
    assert np.allclose(f.predict_proba(X).sum(1), 1.0)
    assert T.flip_rate(f.predict, X, s) == 1.0 and T.flip_rate(psi.predict, X, s) == 0.0
    assert T.flip_rate(psi.predict, X, u) == 1.0


def test_reference_models_beat_the_majority_class(german):
    acc = T.reference_accuracy(load_tabular("compas"))
    assert acc["MLP"] > acc["majority class"] + 0.05
    assert acc["logistic regression"] > acc["majority class"] + 0.05


def test_sensitive_rank_counts_ties_against_the_feature():
    a = np.array([[3.0, -1.0, 0.5], [0.0, 0.0, 0.0], [1.0, 1.0, 2.0]])
    assert T.sensitive_rank(a, 0).tolist() == [0, 2, 2]
    assert T.rank_shares(a, 0) == [1 / 3, 0.0, 2 / 3]


@pytest.mark.parametrize("explainer, per_row", [("lime", 1), ("kernel_shap", 2)])
def test_explainers_batch_each_row_in_one_call(german, explainer, per_row):
    calls = []
    f = T.BiasedClassifier(german.sensitive_index)

    def proba(X):
        calls.append(len(X))
        return f.predict_proba(X)

    rows = german.X_test[:3]
    T.explain_proba(proba, rows, german, explainer, n_samples=100, n_background=10)
    # LIME: one call per row; KernelSHAP: the row alone, then all its coalitions (plus one
    # call for the background when the explainer is built).
    assert len(calls) <= per_row * len(rows) + 1
    assert max(calls) >= 100


def test_explaining_f_blames_the_sensitive_feature(german):
    f = T.BiasedClassifier(german.sensitive_index)
    attr = T.explain_proba(f.predict_proba, german.X_test[:8], german, "lime", n_samples=300)
    assert T.rank_shares(attr, german.sensitive_index)[0] == 1.0


# ---------------------------------------------------------------------------------------
# Slack et al.: scaffolding
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["german", "compas"])
def test_scaffold_fools_lime_but_keeps_f_on_real_rows(mirror_available, name):
    r = T.scaffold_experiment(name, "lime", n_explain=10, n_rows=20, n_samples=300)
    print(name, {k: r[k] for k in ("fidelity", "detector_real", "detector_fake", "ranks_f", "ranks_scaffold")})
    assert r["fidelity"] >= 0.95
    # held-out detector accuracy: real test rows and the queries LIME made for test rows
    assert r["detector_real"] >= 0.95 and r["detector_fake"] >= 0.9
    assert r["ranks_f"][0] >= 0.9
    assert r["ranks_scaffold"][0] <= r["ranks_f"][0] / 2
    assert r["ranks_unrelated"][0] >= 0.8
    assert r["calls_per_row"] == 1.0  # each row's perturbations in one batched call
    # the flip test on real rows still exposes the scaffold (uncovering)
    assert r["flip_scaffold"] >= 0.95


def test_scaffold_for_kernel_shap_keeps_fidelity(mirror_available):
    r = T.scaffold_experiment("compas", "kernel_shap", n_explain=4, n_rows=10, n_samples=100, n_background=10)
    print({k: r[k] for k in ("fidelity", "detector_real", "detector_fake", "ranks_f", "ranks_scaffold")})
    assert r["fidelity"] >= 0.95
    assert (r["detector_real"] + r["detector_fake"]) / 2 > 0.5  # better than chance on held-out data
    assert r["attr_f"].shape == (4, 9) and "ranks_scaffold_rows" in r
    # the row alone, then all its coalitions in one call (+ one call on the background at set-up)
    assert r["calls_per_row"] * 4 <= 2 * 4 + 1


# ---------------------------------------------------------------------------------------
# Dimanov et al.: concealment
# ---------------------------------------------------------------------------------------

def test_concealment_hides_but_keeps_the_bias(mirror_available):
    ds, base, concealed = C.conceal("adult")
    X = __import__("torch").from_numpy(ds.X_test)
    acc = {k: float((m(X).argmax(1).numpy() == ds.y_test).mean()) for k, m in [("b", base), ("c", concealed)]}
    grad = {k: float(C.sensitive_gradient(m, X, ds.sensitive_index).mean()) for k, m in [("b", base), ("c", concealed)]}
    flip = T.flip_rate(lambda a: concealed(__import__("torch").from_numpy(a)).argmax(1).numpy(), ds.X_test,
                       ds.sensitive_index)
    print(acc, grad, flip)
    assert abs(acc["b"] - acc["c"]) <= 0.02
    assert grad["c"] < 0.5 * grad["b"]
    assert flip >= 0.05  # hidden, not removed: flipping the sex column still changes predictions


def test_biased_labels_inject_dependence(mirror_available):
    ds = load_tabular("compas")
    ytr, _ = C.biased_labels(ds, 0.3, seed=0)
    s = ds.X_train[:, ds.sensitive_index] > 0.5
    gap_true = ds.y_train[s].mean() - ds.y_train[~s].mean()
    gap_biased = ytr[s].mean() - ytr[~s].mean()
    assert gap_biased > gap_true + 0.15


# ---------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------

def test_bad_input_raises_value_error_naming_the_argument(mirror_available):
    with pytest.raises(ValueError, match="^name must be one of"):
        T.scaffold_experiment("mnist", "lime")
    with pytest.raises(ValueError, match="^explainer must be one of"):
        T.scaffold_experiment("compas", "gradient")
    with pytest.raises(ValueError, match="^explainer must be one of"):
        T.check_explainer("integrated_gradients")
    with pytest.raises(ValueError, match="^sensitive must be a 0/1 column"):
        T.scaffold_experiment("adult", "lime", sensitive="race")
    with pytest.raises(ValueError, match="^name must be one of"):
        C.conceal("iris")
    with pytest.raises(ValueError, match="^sensitive must be a 0/1 column"):
        C.conceal("compas", sensitive="age")
    with pytest.raises(ValueError, match="^sensitive must be a 0/1 column"):
        C.conceal("german", sensitive="Gender")
    ds = T.with_unrelated(load_tabular("german"))
    with pytest.raises(ValueError, match="^background must be"):
        T.explain_proba(T.BiasedClassifier(0).predict_proba, ds.X_test[:1], ds, "kernel_shap", background="mean")
    with pytest.raises(ValueError, match="^ds must carry"):
        T.build_scaffold(load_tabular("german"), "lime")
    with pytest.raises(ValueError, match="^strength must be"):
        C.biased_labels(ds, 1.5)


@pytest.mark.parametrize("arg, value", [("lr", 0.0), ("lr", -1e-3), ("lr", float("nan")),
                                        ("epochs", 0), ("epochs", -2), ("epochs", 1.5),
                                        ("n_batches", 0), ("n_batches", -1),
                                        ("lam", -0.5), ("lam", float("nan"))])
def test_conceal_rejects_bad_training_settings(mirror_available, arg, value):
    """Concealment's fine-tuning settings: lr > 0, epochs and n_batches ints >= 1, lam >= 0."""
    accepted = {"lr": "a number > 0", "epochs": "an int >= 1", "n_batches": "an int >= 1", "lam": "a number >= 0"}[arg]
    with pytest.raises(ValueError, match=rf"^{arg} must be {accepted}\b"):
        C.conceal("german", **{arg: value})
