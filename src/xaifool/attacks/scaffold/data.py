"""The data of a scaffolding experiment: data cards, the decoy columns, the one-hot pairs of Slack's
encoding, the prepared data set and a reference model's accuracy."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from ...config import get_config, one_thread
from ...data import TabularDataset, load_tabular
from ...validate import check_int
from .config import ScaffoldConfig, check_dataset
from .classifiers import BiasedClassifier, torch_predict


def sensitive_index(ds: TabularDataset, sensitive: str | None) -> int:
    name = ds.sensitive if sensitive is None else sensitive
    binary = [ds.feature_names[i] for i in ds.categorical]
    if name not in binary:
        raise ValueError(f"sensitive must be a 0/1 column of {ds.name!r}; accepted: {binary}, got {name!r}")
    return ds.feature_names.index(name)


def dataset_card(ds: TabularDataset) -> dict:
    """Rows, features, split sizes and base rates of class 1 by sensitive group (whole filtered set)."""
    s = ds.sensitive_index
    X = np.concatenate([ds.X_train, ds.X_test])
    y = np.concatenate([ds.y_train, ds.y_test])
    g = X[:, s] > 0.5
    return {
        "data set": ds.name, "rows": int(len(y)), "features": int(ds.n_features),
        "sensitive": ds.sensitive, "share sensitive = 1": float(g.mean()),
        "positive class": ds.class_names[1],
        "base rate (sensitive = 0)": float(y[~g].mean()), "base rate (sensitive = 1)": float(y[g].mean()),
        "train rows": int(len(ds.y_train)), "test rows": int(len(ds.y_test)),
    }


def with_unrelated(ds: TabularDataset, seed: int | None = None, n: int = 1) -> TabularDataset:
    """``ds`` with ``n`` synthetic random 0/1 columns ``unrelated_1`` … appended (Slack et al.'s decoys).

    The columns are drawn independently of everything else (seeded; ``unrelated_1`` does not
    depend on ``n``), so they are uncorrelated with the sensitive attribute and the label by
    construction.
    """
    check_int(n, "n", 1)
    rng = np.random.default_rng(get_config().seed if seed is None else int(seed))
    col = lambda m: rng.integers(0, 2, size=(m, 1)).astype(np.float32)  # noqa: E731
    Xtr, Xte, names, cat = ds.X_train, ds.X_test, ds.feature_names, ds.categorical
    for j in range(1, n + 1):
        Xtr, Xte = np.hstack([Xtr, col(len(Xtr))]), np.hstack([Xte, col(len(Xte))])
        names, cat = (*names, f"unrelated_{j}"), (*cat, len(names))
    return replace(ds, X_train=Xtr, X_test=Xte, feature_names=names, categorical=cat)


def with_pairs(ds: TabularDataset, columns) -> TabularDataset:
    """``ds`` with each 0/1 column ``c`` of ``columns`` followed by ``not_c`` = 1 − c (one-hot pairs).

    Slack et al. one-hot encode COMPAS's sex and charge degree (``pd.get_dummies``): two columns
    per attribute, which KernelSHAP and LIME then set independently of each other.
    """
    binary = [ds.feature_names[i] for i in ds.categorical]
    bad = [c for c in columns if c not in binary or c == ds.sensitive]
    if bad:
        raise ValueError(f"pairs must name 0/1 columns of {ds.name!r} other than the sensitive one; "
                         f"accepted: {[c for c in binary if c != ds.sensitive]}, got {list(columns)!r}")
    Xtr, Xte, names = ds.X_train, ds.X_test, list(ds.feature_names)
    for c in columns:
        j = names.index(c)
        Xtr = np.insert(Xtr, j + 1, 1.0 - Xtr[:, j], axis=1)
        Xte = np.insert(Xte, j + 1, 1.0 - Xte[:, j], axis=1)
        names.insert(j + 1, f"not_{c}")
    cat = tuple(i for i in range(len(names)) if set(np.unique(Xtr[:, i])) <= {0.0, 1.0})
    return replace(ds, X_train=Xtr, X_test=Xte, feature_names=tuple(names), categorical=cat)


def prepare_dataset(name: str, config: ScaffoldConfig, *, sensitive: str | None = None,
                    seed: int | None = None) -> TabularDataset:
    """Data set ``name`` encoded as ``config`` says: its ``pairs`` one-hot encoded, the random decoy
    columns (``unrelated_k``) its ``decoys`` name appended, and real decoys checked."""
    check_dataset(name)
    seed = get_config().seed if seed is None else int(seed)
    ds = load_tabular(name)
    ds = replace(ds, sensitive=ds.feature_names[sensitive_index(ds, sensitive)])
    ds = with_pairs(ds, config.pairs)
    unrelated = [c for c in config.decoys if c.startswith("unrelated_")]
    n_unrelated = max((int(c.split("_")[1]) for c in unrelated if c.split("_")[1].isdigit()), default=0)
    if n_unrelated:
        ds = with_unrelated(ds, seed=seed, n=n_unrelated)
    bad = [c for c in config.decoys if c not in ds.feature_names or c == ds.sensitive]
    if bad:
        raise ValueError(f"decoys must be unrelated_1, unrelated_2, … or columns of {name!r} other than "
                         f"{ds.sensitive!r}; got {list(config.decoys)!r}")
    return ds


def reference_accuracy(ds: TabularDataset) -> dict:
    """Test accuracy of the book's MLP and logistic regression (:func:`xaifool.models.train_tabular_model`),
    of the biased classifier ``f`` and of always predicting the majority class."""
    from ...models import train_tabular_model

    out = {}
    with one_thread():
        for kind, label in (("mlp", "MLP"), ("logreg", "logistic regression")):
            pred = torch_predict(train_tabular_model(ds, kind))(ds.X_test)
            out[label] = float((pred == ds.y_test).mean())
    out["biased f (sensitive attribute only)"] = float((BiasedClassifier(ds.sensitive_index).predict(ds.X_test)
                                                        == ds.y_test).mean())
    out["majority class"] = float(max(ds.y_test.mean(), 1 - ds.y_test.mean()))
    return out
