"""Model-level manipulation of a tabular classifier: Dimanov et al. (2020), concealment by a gradient penalty.

A small MLP is trained on labels into which a known dependence on the sensitive feature is
injected (:func:`biased_labels`), then fine-tuned (:func:`conceal`, with the book's one training
loop :func:`xaifool.training.fit`) with ``cross-entropy + λ · mean |∂z_c/∂x_s|`` — the mean
absolute gradient of both logits with respect to the sensitive input at the training rows
(double back-propagation). Like Heo et al.'s fine-tuning (:mod:`xaifool.attacks.heo`) it
changes the *weights* so that explanations mislead on every input; unlike it, the target is a
tabular model and the explainers are gradient, LIME and KernelSHAP. :func:`concealment_report`
measures the sensitive feature's share of the gradient, LIME and KernelSHAP attributions,
accuracy, and the model's *real* dependence: the flip rate (predictions that change when ``x_s``
is flipped 0 ↔ 1) and the demographic-parity gap.

Bad input raises ``ValueError`` naming the argument and the accepted values.
"""
from __future__ import annotations

import copy
from dataclasses import replace
from numbers import Integral, Real

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..cache import cached
from ..config import get_config, one_thread
from ..data import TabularDataset, load_tabular
from .scaffold import check_dataset, flip_rate, sensitive_index, sensitive_rank, torch_predict

__all__ = ["CONCEALMENT_LAMBDA", "biased_labels", "sensitive_gradient", "conceal", "concealment_report"]

#: Weight λ of the gradient penalty in :func:`conceal` (the same in both profiles).
CONCEALMENT_LAMBDA = 1.0


# --------------------------------------------------------------------------------------
# Dimanov et al. (2020): concealment by a gradient penalty
# --------------------------------------------------------------------------------------

def biased_labels(ds: TabularDataset, strength: float = 0.3, *, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Training / test labels with an injected dependence on the sensitive feature.

    With probability ``strength`` a row's label is replaced by its sensitive value (seeded),
    so a model fitted to these labels must use the sensitive feature.
    """
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    rng = np.random.default_rng(get_config().seed if seed is None else int(seed))
    s = ds.sensitive_index
    out = []
    for X, y in ((ds.X_train, ds.y_train), (ds.X_test, ds.y_test)):
        swap = rng.random(len(y)) < strength
        out.append(np.where(swap, (X[:, s] > 0.5).astype(np.int64), y).astype(np.int64))
    return out[0], out[1]


def sensitive_gradient(model: nn.Module, X: torch.Tensor, index: int, create_graph: bool = False) -> torch.Tensor:
    """|∂z_c/∂x_s| for both logits c, per row: (n, 2)."""
    x = X.detach().clone().requires_grad_(True)
    z = model(x)
    grads = [torch.autograd.grad(z[:, c].sum(), x, create_graph=create_graph, retain_graph=True)[0][:, index] for c in range(z.shape[1])]
    return torch.stack(grads, 1).abs()


def _concealment_loss(index: int, lam: float):
    """``(model, (x, y)) -> (cross-entropy + lam · mean |∂z_c/∂x_index|, logs)``: Dimanov et al.'s objective."""

    def loss_fn(model, batch):
        x, y = batch
        logits = model(x)
        ce = F.cross_entropy(logits, y)  # before the penalty, in the order of the original loop
        penalty = sensitive_gradient(model, x, index, True).mean()
        logs = {"accuracy": (logits.argmax(1) == y).float().mean(), "penalty": penalty.detach()}
        return ce + lam * penalty, logs

    return loss_fn


def conceal(name: str, *, sensitive: str | None = None, strength: float = 0.3, lam: float | None = None,
            epochs: int | None = None, lr: float = 1e-3, n_batches: int = 4, seed: int | None = None):
    """Base and concealed MLP for data set ``name`` (cached).

    The base model is :func:`xaifool.models.train_tabular_model` on :func:`biased_labels`; the
    concealed model starts from it and is fine-tuned with Adam for ``epochs`` epochs (each
    ``n_batches`` shuffled mini-batches, as in the base model's training) on ``cross-entropy + lam · mean |∂z_c/∂x_s|`` over the mini-batch.
    Returns ``(ds_biased, base, concealed)`` where ``ds_biased`` holds the biased labels.
    """
    from ..models import train_tabular_model
    from ..training import fit

    check_dataset(name)
    cfg = get_config()
    P = cfg.profile
    seed = cfg.seed if seed is None else int(seed)
    lam = CONCEALMENT_LAMBDA if lam is None else lam
    epochs = P.concealment_epochs if epochs is None else epochs
    if isinstance(lam, bool) or not isinstance(lam, Real) or not float(lam) >= 0:
        raise ValueError(f"lam must be a number >= 0 (weight of the gradient penalty), got {lam!r}")
    if isinstance(lr, bool) or not isinstance(lr, Real) or not float(lr) > 0:
        raise ValueError(f"lr must be a number > 0 (Adam's learning rate), got {lr!r}")
    for arg, value in (("epochs", epochs), ("n_batches", n_batches)):
        if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
            raise ValueError(f"{arg} must be an int >= 1, got {value!r}")
    lam, lr, epochs, n_batches = float(lam), float(lr), int(epochs), int(n_batches)
    ds0 = load_tabular(name)
    s = sensitive_index(ds0, sensitive)
    ds0 = replace(ds0, sensitive=ds0.feature_names[s])
    ytr, yte = biased_labels(ds0, strength, seed=seed)
    ds = replace(ds0, y_train=ytr, y_test=yte)
    base = train_tabular_model(ds, "mlp", seed=seed)  # trains on one thread itself
    settings = dict(name=name, sensitive=ds.sensitive, strength=strength, lam=lam, epochs=epochs, lr=lr, n_batches=n_batches, seed=seed,
                    base=[v for v in base.state_dict().values()])

    @one_thread()
    def finetune():
        net = copy.deepcopy(base)
        X, y = torch.from_numpy(ds.X_train), torch.from_numpy(ds.y_train)
        fit(net, lambda epoch: [(X[idx], y[idx]) for idx in torch.randperm(len(X)).chunk(n_batches)],
            _concealment_loss(s, lam), epochs=epochs, lr=lr, seed=seed, progress=None,
            desc=f"concealment on {name}")
        return net.state_dict()

    concealed = copy.deepcopy(base)
    concealed.load_state_dict(cached("dimanov-conceal", settings, finetune, depends=(__name__,)))
    return ds, base.eval(), concealed.eval()


def concealment_report(ds: TabularDataset, models: dict, *, n_explain: int | None = None,
                       true_labels: np.ndarray | None = None, seed: int | None = None) -> dict:
    """For each model (``{"before": base, "after": concealed}``): accuracy, attributions of the sensitive
    feature and its real dependence, on ``ds``'s test split.

    Per model: ``accuracy`` (on ``ds.y_test``), ``accuracy_true`` (on ``true_labels`` if given),
    ``grad_abs`` (mean |∂z_c/∂x_s| over test rows and both logits), ``share_<method>`` for
    ``gradient``, ``lime``, ``kernel_shap`` (the sensitive feature's share of the row's total
    |attribution| for the predicted class, mean over ``n_explain`` test rows), ``top1_<method>``,
    ``flip`` (:func:`flip_rate`), ``dp_gap`` (P(ŷ=1 | s=1) − P(ŷ=1 | s=0) on test rows).
    """
    from .. import explain as E

    cfg = get_config()
    seed = cfg.seed if seed is None else int(seed)
    n_explain = cfg.profile.n_tabular_explain if n_explain is None else int(n_explain)
    if not 1 <= n_explain <= len(ds.X_test):
        raise ValueError(f"n_explain must be in 1..{len(ds.X_test)}, got {n_explain}")
    s = ds.sensitive_index
    X = torch.from_numpy(ds.X_test)
    rows = X[torch.from_numpy(np.random.default_rng(seed + 3).choice(len(X), n_explain, replace=False))]
    g = ds.X_test[:, s] > 0.5
    context = dict(background=ds.X_train, feature_names=ds.feature_names, categorical=ds.categorical)
    out = {}
    with one_thread():
        for key, model in models.items():
            out[key] = _report_one(model.eval(), ds, s, X, rows, g, context, true_labels, seed, E)
    return out


def _report_one(model, ds, s, X, rows, g, context, true_labels, seed, E) -> dict:
    pred = torch_predict(model)(ds.X_test)
    r = {"accuracy": float((pred == ds.y_test).mean())}
    if true_labels is not None:
        r["accuracy_true"] = float((pred == np.asarray(true_labels)).mean())
    r["grad_abs"] = float(sensitive_gradient(model, X, s).mean())
    for m in ("gradient", "lime", "kernel_shap"):
        torch.manual_seed(seed)
        np.random.seed(seed)
        extra = {} if m == "gradient" else {"seed": seed}
        a = E.explain(model, rows, None, m, reduce="sum", normalize=None, **extra, **context).cpu().abs()
        r[f"share_{m}"] = float((a[:, s] / a.sum(1).clamp_min(1e-12)).mean())
        r[f"top1_{m}"] = float((sensitive_rank(a.numpy(), s) == 0).mean())
    r["flip"] = flip_rate(torch_predict(model), ds.X_test, s)
    r["dp_gap"] = float(pred[g].mean() - pred[~g].mean())
    return r
