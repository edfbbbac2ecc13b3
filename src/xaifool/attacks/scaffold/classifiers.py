"""The three classifiers of the scaffold (NumPy ``predict_proba``, like Slack et al.'s code): the biased
``f``, the innocuous ``ψ`` and the scaffolded one; and a torch model as a NumPy predictor."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ...data import TabularDataset
from .config import ScaffoldConfig


def _one_hot(cls: np.ndarray) -> np.ndarray:
    out = np.zeros((len(cls), 2))
    out[np.arange(len(cls)), cls.astype(int)] = 1.0
    return out


@dataclass
class BiasedClassifier:
    """``f``: class 1 iff the sensitive feature exceeds ``threshold`` (COMPAS: recidivism for
    African-Americans; German: good customer for men; Adult: >50K for men). ``threshold`` 0.5 for
    a 0/1 column; Slack's rule uses the column's training mean."""

    sensitive_index: int
    threshold: float = 0.5

    def predict(self, X) -> np.ndarray:
        return (np.asarray(X)[:, self.sensitive_index] > self.threshold).astype(int)

    def predict_proba(self, X) -> np.ndarray:
        return _one_hot(self.predict(X))


@dataclass
class InnocuousClassifier:
    """``ψ``: class 1 iff the decoy column exceeds ``threshold``; with several columns (a tuple of
    indices and thresholds), the XOR of those tests (Slack's two-decoy model)."""

    unrelated_index: int | tuple
    threshold: float | tuple = 0.5

    def predict(self, X) -> np.ndarray:
        X = np.asarray(X)
        idx = np.atleast_1d(self.unrelated_index)
        thr = np.broadcast_to(np.asarray(self.threshold, dtype=np.float64), idx.shape)
        return (np.sum(X[:, idx] > thr, axis=1) % 2).astype(int)

    def predict_proba(self, X) -> np.ndarray:
        return _one_hot(self.predict(X))


class ScaffoldedClassifier:
    """Answers with ``biased`` where the detector's P(real) ≥ ``threshold`` (default: the
    detector's ``threshold_``), with ``innocuous`` elsewhere.

    ``record=True`` keeps every queried batch in ``self.queries``.
    """

    def __init__(self, biased, innocuous, detector, record: bool = False, threshold: float | None = None):
        self.biased, self.innocuous, self.detector = biased, innocuous, detector
        self.record = record
        self.threshold = threshold
        self.queries: list[np.ndarray] = []
        self.calls = 0

    @property
    def threshold_(self) -> float:
        return float(getattr(self.detector, "threshold_", 0.5) if self.threshold is None else self.threshold)

    def p_real(self, X) -> np.ndarray:
        return self.detector.predict_proba(np.asarray(X, dtype=np.float32))[:, 1]

    def is_real(self, X) -> np.ndarray:
        return self.p_real(X) >= self.threshold_

    def predict(self, X) -> np.ndarray:
        X = np.asarray(X)
        self.calls += 1
        if self.record:
            self.queries.append(X.astype(np.float32).copy())
        return np.where(self.is_real(X), self.biased.predict(X), self.innocuous.predict(X))

    def predict_proba(self, X) -> np.ndarray:
        return _one_hot(self.predict(X))


def scaffold_models(ds: TabularDataset, config: ScaffoldConfig) -> tuple[BiasedClassifier, InnocuousClassifier]:
    """f and ψ for ``ds`` under ``config.rule`` and ``config.decoys``."""
    mean = ds.X_train.astype(np.float64).mean(0)
    thr = (lambda j: float(mean[j])) if config.rule == "mean" else (lambda j: 0.5)
    s = ds.sensitive_index
    idx = tuple(ds.feature_names.index(c) for c in config.decoys)
    psi = InnocuousClassifier(idx[0], thr(idx[0])) if len(idx) == 1 else \
        InnocuousClassifier(idx, tuple(thr(j) for j in idx))
    return BiasedClassifier(s, thr(s)), psi


def torch_predict(model):
    """NumPy rows → predicted classes of a torch model (the interface of :func:`flip_rate`)."""
    from ...models import predict

    return lambda X: predict(model, torch.as_tensor(np.asarray(X), dtype=torch.float32)).argmax(1).numpy()
