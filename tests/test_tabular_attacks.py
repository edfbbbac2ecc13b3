"""Tests for :mod:`xaifool.attacks.scaffold` (Slack et al.'s scaffolding, Dimanov et al.'s concealment).

Each test checks a property the attacks must have, on seeded small runs of the real data
(the loaders themselves are tested in ``test_data.py``):

* the scaffold behaves like the biased classifier on real rows (fidelity ≥ 95 %), its
  detector separates real rows from LIME's queries on held-out data, and the sensitive
  feature's top-1 share under LIME falls by at least half;
* under Slack et al.'s settings the sensitive feature's top-1 share under KernelSHAP falls by at
  least half on COMPAS, with fidelity reported; two decoys fool LIME as well;
* the fidelity–fooling curve is monotone in the threshold and ends at the two trivial scaffolds;
* standardised k-means centres are data values and split every binary column;
* the detector's held-out scores leave out the queries it was trained on; LIME / KernelSHAP rows
  are seeded the same way by ``explain_proba`` and ``xaifool.explain``;
* LIME and KernelSHAP send each row's perturbations to the model in one batched call;
* concealment keeps test accuracy within 2 points, lowers the sensitive feature's mean
  |gradient|, and flipping the feature still changes predictions;
* bad input raises ``ValueError`` naming the argument.
"""
from __future__ import annotations

import numpy as np
import torch
import pytest

from xaifool.attacks import concealment as C
from xaifool.attacks import scaffold as T
from xaifool.attacks.scaffold import experiment as TX
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
    # every probe of every explained row is fresh: the attacker's rehearsal shares none of them
    # (LIME's probes do not depend on the row here, so a shared seed would share the probes)
    assert r["n_queries"] == 10 * (300 - 1)
    # the flip test on real rows still exposes the scaffold (uncovering)
    assert r["flip_scaffold"] >= 0.95


def test_scaffold_for_kernel_shap_keeps_fidelity(mirror_available):
    r = T.scaffold_experiment("compas", "kernel_shap", n_explain=4, n_rows=10, n_samples=100, n_background=10)
    print({k: r[k] for k in ("fidelity", "detector_real", "detector_fake", "ranks_f", "ranks_scaffold")})
    assert r["fidelity"] >= 0.95
    assert (r["detector_real"] + r["detector_fake"]) / 2 > 0.5  # better than chance on held-out data
    assert r["attr_f"].shape == (4, 9) and "ranks_scaffold_rows" in r
    # the row alone, then all its coalitions in one call (the set-up call on the background not counted)
    assert r["calls_per_row"] == 2.0
    # two processes: the same attributions and the same counts (the background is neither a query
    # nor a per-row call, though each process scores it once)
    r2 = T.scaffold_experiment("compas", "kernel_shap", n_explain=4, n_rows=10, n_samples=100, n_background=10,
                               n_jobs=2)
    assert torch.equal(r2["attr_scaffold"], r["attr_scaffold"]) and torch.equal(r2["attr_f"], r["attr_f"])
    for key in ("n_queries", "detector_fake", "f_agree_queries", "calls_per_row"):
        assert r2[key] == r[key], key


# ---------------------------------------------------------------------------------------
# Slack et al.'s settings, the trade-off, two decoys
# ---------------------------------------------------------------------------------------

def test_slack_settings_hide_race_from_kernel_shap(mirror_available):
    r = T.scaffold_experiment("compas", "kernel_shap", config="slack", n_explain=10, n_samples=200, uncover=False,
                              detector_max_rows=20000)
    print({k: r[k] for k in ("fidelity", "threshold", "detector_real", "detector_fake", "ranks_f", "ranks_scaffold")})
    assert r["config"]["background"] == "kmeans_std" and r["config"]["threshold"] == 0.5
    assert {"not_male", "not_felony_charge"} <= set(r["features"])  # Slack's one-hot pairs
    assert r["ranks_f"][0] >= 0.9
    assert r["ranks_scaffold"][0] <= r["ranks_f"][0] / 2
    assert 0.5 < r["fidelity"] <= 1.0  # reported: the share of real test rows answered like f


def test_tradeoff_curve_is_monotone_and_ends_at_the_trivial_scaffolds(mirror_available):
    r = T.scaffold_experiment("compas", "kernel_shap", config="slack", n_explain=8, n_samples=100, uncover=False,
                              detector_max_rows=5000)
    c = r["curve"]
    thr, fid, routed = np.array(c["threshold"]), np.array(c["fidelity"]), np.array(c["routed"])
    assert np.all(np.diff(thr) > 0) and thr[0] == 0.0 and np.isinf(thr[-1])
    assert np.all(np.diff(fid) <= 0) and np.all(np.diff(routed) <= 0)
    # threshold 0: everything to f — the bias shows
    assert routed[0] == 1.0 and fid[0] == 1.0 and c["top1"][0] == r["ranks_f"][0] >= 0.9
    # beyond 1: everything to ψ — fidelity is ψ's agreement with f, and ψ's explanation
    assert routed[-1] == 0.0 and fid[-1] == r["psi_agreement"] and c["top1"][-1] == r["ranks_psi"][0]
    assert 0.3 < r["psi_agreement"] < 0.7  # a coin-flip column agrees with f about half the time
    pts = T.tradeoff_points(r)
    assert pts["operating"]["threshold"] == 0.5 and pts["keep97"]["routed"] >= 0.97
    # a result without the sweep and without threshold 0 whose one threshold routes too few rows
    bare = {"threshold": 0.9, "curve": {"threshold": [0.9], "routed": [0.5], "fidelity": [0.6], "top1": [0.0],
                                        "top1_decoys": [1.0]}}
    with pytest.raises(ValueError, match="sweep=True"):
        T.tradeoff_points(bare)


def test_two_decoys_fool_lime(mirror_available):
    # Slack's two-decoy script samples around the training mean; LIME needs enough samples to see
    # the XOR of two indicators (with a few hundred, other features often come first)
    r = T.scaffold_experiment("compas", "lime", config="slack", decoys=("unrelated_1", "unrelated_2"), n_explain=8,
                              n_samples=2000, detector_max_rows=5000, sweep=False, lime_around_instance=False)
    print({k: r[k] for k in ("fidelity", "ranks_f", "ranks_scaffold", "top1_decoys")})
    assert {"unrelated_1", "unrelated_2"} <= set(r["features"])
    assert r["ranks_f"][0] >= 0.9 and r["ranks_scaffold"][0] <= r["ranks_f"][0] / 2
    assert r["top1_decoys"] >= 0.5


def test_innocuous_classifier_with_two_decoys_is_their_xor():
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    assert T.InnocuousClassifier((0, 1)).predict(X).tolist() == [0, 1, 1, 0]
    assert T.InnocuousClassifier(1, 0.25).predict(X).tolist() == [0, 1, 0, 1]


def test_standardised_kmeans_centres_are_data_values_and_split_binary_columns(mirror_available):
    ds = T.prepare_dataset("compas", T.scaffold_config("slack", "compas"), seed=0)
    C = T.background_summary(ds, 10, method="kmeans_std")
    X = ds.X_train.astype(np.float64)
    assert C.shape == (10, ds.n_features)
    for j in range(ds.n_features):
        assert np.isin(C[:, j], np.unique(X[:, j])).all(), ds.feature_names[j]
    for j in ds.categorical:
        if len(np.unique(X[:, j])) == 2:
            assert len(np.unique(C[:, j])) == 2, f"all centres agree in {ds.feature_names[j]}"
    # unrounded (Slack's German background): real means, not data values
    U = T.background_summary(ds, 10, method="kmeans_unrounded")
    assert not np.isin(U[:, ds.sensitive_index], [0.0, 1.0]).all()


def test_detector_held_out_scores_leave_out_its_training_queries(german):
    adv = T.build_scaffold(german, "kernel_shap", n_rows=4, n_samples=60, n_background=5)
    assert adv.detector.fake_keys
    trained_on = np.frombuffer(next(iter(adv.detector.fake_keys)), dtype=np.float32)[None]
    fresh = german.X_test[:3]
    routes = TX._Routes(adv, [0.0, adv.threshold_], adv.threshold_, adv.detector.fake_keys)
    routes(np.vstack([trained_on, fresh]))
    assert routes.n == 3  # the query the detector was trained on is not scored as held-out


def test_explain_proba_and_explain_share_one_seeding_path(german):
    import torch

    from xaifool import explain as E
    from xaifool.models import train_tabular_model

    model = train_tabular_model(load_tabular("german"), "logreg")
    ds = load_tabular("german")
    rows = ds.X_test[:3]
    proba = lambda X: torch.softmax(model(torch.as_tensor(X, dtype=torch.float32)), 1).detach().double().numpy()  # noqa: E731
    x, tgt = torch.as_tensor(rows), torch.ones(3, dtype=torch.long)
    for method, opts in (("lime", {"n_samples": 200}), ("kernel_shap", {"n_samples": 60, "n_background": 5})):
        mine = T.explain_proba(proba, rows, ds, method, seed=3, **opts)
        theirs = E.METHODS[method].fn(model, x, tgt, background=ds.X_train, seed=3,
                                          categorical=ds.categorical, feature_names=ds.feature_names, **opts)
        np.testing.assert_allclose(mine, theirs.numpy(), rtol=1e-4, atol=1e-6)
    # a row's explanation does not depend on the rows explained with it, nor on the processes
    one = T.explain_proba(proba, rows, ds, "lime", seed=3, n_samples=200)
    two = T.explain_proba(proba, rows, ds, "lime", seed=3, n_samples=200, n_jobs=2)
    np.testing.assert_array_equal(one, two)


def test_a_computed_background_gives_the_same_kernel_shap_values(german):
    f = T.BiasedClassifier(german.sensitive_index)
    fn = lambda X: f.predict_proba(X)[:, 1:]  # noqa: E731
    rows = german.X_test[:2]
    opts = dict(n_outputs=1, n_samples=60, n_background=5, background="kmeans_std", seed=4)
    fresh = T.explain_outputs(fn, rows, german, "kernel_shap", **opts)
    bg = T.make_background(german, "kmeans_std", 5, 4)
    given = T.explain_outputs(fn, rows, german, "kernel_shap", background_data=bg, **opts)
    np.testing.assert_array_equal(fresh, given)
    with pytest.raises(ValueError, match="background_data"):
        T.explain_outputs(fn, rows, german, "kernel_shap", background_data=bg.data[:, :3], **opts)


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


@pytest.mark.parametrize("kwargs, arg", [
    ({"detector_depth": 3}, "config key"), ({"threshold": 1.5}, "threshold"), ({"threshold": -0.1}, "threshold"),
    ({"n_centres": 0}, "n_centres"), ({"background": "median"}, "background"), ({"rule": "median"}, "rule"),
])
def test_scaffold_config_rejects_bad_settings(kwargs, arg):
    with pytest.raises(ValueError, match=rf"^{arg}"):
        T.scaffold_config("slack", "compas", **kwargs)


def test_bad_scaffold_input_names_the_argument(mirror_available):
    with pytest.raises(ValueError, match="^config must be one of"):
        T.scaffold_config("paper", "compas")
    with pytest.raises(ValueError, match="^config key"):
        T.scaffold_experiment("compas", "lime", config="slack", n_trees=5)
    ds = T.prepare_dataset("german", T.scaffold_config("book", "german"), seed=0)
    with pytest.raises(ValueError, match=r"^n_centres must be an int in 1\.\.800"):
        T.background_summary(ds, len(ds.X_train) + 1, method="kmeans_std")
    with pytest.raises(ValueError, match="^n_centres must be"):
        T.background_summary(ds, 0, method="rows")
    with pytest.raises(ValueError, match="^pairs must name 0/1 columns"):
        T.prepare_dataset("compas", T.scaffold_config("book", "compas", pairs=("age",)))
    with pytest.raises(ValueError, match="^decoys must be"):
        T.prepare_dataset("compas", T.scaffold_config("book", "compas", decoys=("african_american",)))


@pytest.mark.parametrize("arg, value", [("lr", 0.0), ("lr", -1e-3), ("lr", float("nan")),
                                        ("epochs", 0), ("epochs", -2), ("epochs", 1.5),
                                        ("n_batches", 0), ("n_batches", -1),
                                        ("lam", -0.5), ("lam", float("nan"))])
def test_conceal_rejects_bad_training_settings(mirror_available, arg, value):
    """Concealment's fine-tuning settings: lr > 0, epochs and n_batches ints >= 1, lam >= 0."""
    accepted = {"lr": "a number > 0", "epochs": "an int >= 1", "n_batches": "an int >= 1", "lam": "a number >= 0"}[arg]
    with pytest.raises(ValueError, match=rf"^{arg} must be {accepted}\b"):
        C.conceal("german", **{arg: value})


def test_unique_rows_is_exact():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 3, size=(500, 4)).astype(np.float32)
    U, inv, cnt = TX._unique_rows(X)
    assert np.array_equal(U[inv], X) and cnt.sum() == len(X)
    assert len(U) == len(np.unique(X, axis=0))


def test_forest_proba_equals_scikit_learn():
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 5)).astype(np.float32)
    y = (X[:, 0] + 0.5 * rng.normal(size=400) > 0).astype(int)
    forest = RandomForestClassifier(n_estimators=20, random_state=0).fit(X, y)
    Z = rng.normal(size=(300, 5)).astype(np.float32)
    np.testing.assert_array_equal(T.forest_proba(forest, Z), forest.predict_proba(Z))


def test_rows_text_names_the_data_sets_only_where_counts_differ():
    from xaifool.book import paper as X

    assert X.rows_text({"compas": 20, "german": 20, "adult": 20}) == "20"
    assert X.rows_text({"compas": 1235, "german": 200, "adult": 603}) == "1,235 (COMPAS), 200 (German) and 603 (Adult)"
    with pytest.raises(ValueError, match="counts"):
        X.rows_text({})


def test_probe_keys_depend_on_the_row_and_the_seed_only():
    X = np.random.default_rng(0).normal(size=(500, 7)).astype(np.float32)
    k = T.probe_keys(X, 3)
    perm = np.random.default_rng(1).permutation(len(X))
    assert np.array_equal(T.probe_keys(X[perm], 3), k[perm])           # order does not matter
    assert np.array_equal(T.probe_keys(X[:10], 3), k[:10])             # nor the other rows
    assert len(np.unique(k)) == len(X) and not np.array_equal(T.probe_keys(X, 4), k)
    # the smallest keys pick a uniform sample: about half of the kept rows come from each half
    X = np.arange(20000, dtype=np.float32)[:, None]
    kept = np.argsort(T.probe_keys(X, 0))[:2000]
    assert 0.45 < (kept < 10000).mean() < 0.55


def test_bounded_rehearsal_is_a_sample_of_the_queries_whatever_the_processes(german):
    opts = dict(n_samples=60, n_background=5)
    rows = german.X_train[:6]
    every = T.collect_queries(german, "kernel_shap", rows, seed=5, **opts)
    one = T.collect_queries(german, "kernel_shap", rows, seed=5, limit=100, **opts)
    two = T.collect_queries(german, "kernel_shap", rows, seed=5, limit=100, n_jobs=2, **opts)
    assert np.array_equal(one, two) and 90 <= len(one) <= 100           # ≤ limit, explained rows dropped
    keys = T.row_keys(every)
    assert len(T.row_keys(one)) == len(one) and all(r.tobytes() in keys for r in one)   # distinct queries
    assert T.row_keys(rows).isdisjoint(T.row_keys(one))
    roomy = T.collect_queries(german, "kernel_shap", rows, seed=5, limit=10**7, n_jobs=2, **opts)
    assert T.row_keys(roomy) == keys                                    # a large limit keeps every distinct query
    with pytest.raises(ValueError, match="limit"):
        T.collect_queries(german, "lime", rows, limit=0)
