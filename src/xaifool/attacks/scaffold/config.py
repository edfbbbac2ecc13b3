"""The scaffolding experiment's configurations (:class:`ScaffoldConfig`: the book's and Slack et al.'s),
its constants, and the checks of its data-set and explainer names."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from numbers import Real

import numpy as np

from ...config import get_config
from ...data import TABULAR_DATASETS
from ...validate import check_choice, check_int


#: Explainers the scaffolding attack targets (``"shap"`` is accepted as an alias of ``"kernel_shap"``).
SCAFFOLD_EXPLAINERS = ("lime", "kernel_shap")
UNRELATED = "unrelated_1"
#: The book's detector threshold is the out-of-bag P(real) quantile that keeps ≥ 1 − this of real rows.
DETECTOR_REAL_QUANTILE = 0.03
#: Named configurations of the scaffolding experiment (:func:`scaffold_config`).
SCAFFOLD_CONFIGS = ("book", "slack")
#: KernelSHAP backgrounds: shap.kmeans on raw units / on standardised features (centres rounded to data
#: values), scikit-learn KMeans on standardised features (unrounded, equal weights), real rows.
BACKGROUNDS = ("kmeans", "kmeans_std", "kmeans_unrounded", "rows")
#: Detectors: trained on the explainer's recorded queries (book) / on Slack et al.'s synthetic perturbations.
DETECTORS = ("queries", "perturbations")
#: How f and ψ test a feature: x > 0.5 (0/1 columns) or x > its training mean (Slack's rule).
RULES = ("half", "mean")
#: Detector thresholds swept by every run (the trade-off curve); inf (everything to ψ) is added.
TRADEOFF_THRESHOLDS = tuple(float(t) for t in np.round(np.linspace(0.0, 1.0, 21), 2))


@dataclass(frozen=True)
class ScaffoldConfig:
    """Every choice of a scaffolding experiment (sizes come from the profile).

    name:               label ("book", "slack", or anything for a modified copy)
    background:         KernelSHAP background, one of :data:`BACKGROUNDS`
    n_centres:          background centres (None: ``profile.shap_background``); also the number of
                        real rows of the uncovering background
    detector:           one of :data:`DETECTORS`
    threshold:          P(real) at or above which a row goes to f, in [0, 1]; None: the book's rule
                        (out-of-bag quantile keeping ≥ 97 % of real rows, at most 0.5)
    pairs:              0/1 columns encoded as two columns (``c``, ``not_c``), as Slack one-hot encoded
                        COMPAS's sex and charge degree
    rule:               how f and ψ test their features, one of :data:`RULES`
    decoys:             ψ's features: ``unrelated_k`` (appended random 0/1 columns) or real columns;
                        two or more: ψ is their XOR (Slack's two-decoy model)
    lime_around_instance: LIME samples around the row (Slack's COMPAS one-decoy script) instead of
                        around the training mean
    lime_multiplier, shap_multiplier, n_substitutions: Slack's detector training set — copies of
                        the data per LIME noise draw (30), copies of the real rows for KernelSHAP
                        (10) and substituted rows (COMPAS 20,000, German 50,000)
    detector_max_rows:  cap on the detector's training rows (uniform subsample; None: no cap)
    """

    name: str = "book"
    background: str = "kmeans"
    n_centres: int | None = None
    detector: str = "queries"
    threshold: float | None = None
    pairs: tuple = ()
    rule: str = "half"
    decoys: tuple = (UNRELATED,)
    lime_around_instance: bool = False
    lime_multiplier: int = 30
    shap_multiplier: int = 10
    n_substitutions: int = 20000
    detector_max_rows: int | None = None

    def __post_init__(self):
        check_choice(self.background, "background", BACKGROUNDS)
        check_choice(self.detector, "detector", DETECTORS)
        check_choice(self.rule, "rule", RULES)
        if self.threshold is not None and (isinstance(self.threshold, bool) or not isinstance(self.threshold, Real)
                                           or not 0.0 <= float(self.threshold) <= 1.0):
            raise ValueError(f"threshold must be a number in [0, 1] or None (the book's rule), got {self.threshold!r}")
        if self.n_centres is not None:
            check_int(self.n_centres, "n_centres", 1)
        for arg in ("lime_multiplier", "shap_multiplier", "n_substitutions"):
            check_int(getattr(self, arg), arg, 1)
        if self.detector_max_rows is not None:
            check_int(self.detector_max_rows, "detector_max_rows", 100)
        if not isinstance(self.decoys, (tuple, list)) or not self.decoys or \
                not all(isinstance(c, str) for c in self.decoys):
            raise ValueError(f"decoys must be a non-empty tuple of column names, got {self.decoys!r}")
        if not isinstance(self.pairs, (tuple, list)) or not all(isinstance(c, str) for c in self.pairs):
            raise ValueError(f"pairs must be a tuple of 0/1 column names, got {self.pairs!r}")
        object.__setattr__(self, "decoys", tuple(self.decoys))
        object.__setattr__(self, "pairs", tuple(self.pairs))
        if self.threshold is not None:
            object.__setattr__(self, "threshold", float(self.threshold))

    def as_dict(self) -> dict:
        return asdict(self)


def _slack_settings(name: str) -> dict:
    """Slack et al.'s choices for data set ``name`` (their scripts; Adult by analogy with COMPAS). The
    detector's training rows are capped at ``profile.scaffold_detector_max_rows`` (full profile: no cap)."""
    base = dict(name="slack", background="kmeans_std", n_centres=10, detector="perturbations", threshold=0.5,
                rule="mean", lime_multiplier=30, shap_multiplier=10, n_substitutions=20000,
                detector_max_rows=getattr(get_config().profile, "scaffold_detector_max_rows", None))
    if name == "compas":
        # compas_experiment.py: pd.get_dummies of sex and c_charge_degree; LIME sample_around_instance=True
        return base | dict(pairs=("felony_charge", "male"), lime_around_instance=True)
    if name == "german":
        # german_experiment.py: KMeans(n_clusters=10, random_state=0) centres, unrounded; ψ: loan rate vs
        # its mean; 5e4 substitutions
        return base | dict(background="kmeans_unrounded", decoys=("LoanRateAsPercentOfIncome",),
                           n_substitutions=50000)
    return base


def scaffold_config(config: str | ScaffoldConfig = "book", name: str = "compas", **overrides) -> ScaffoldConfig:
    """The named configuration ``config`` (one of :data:`SCAFFOLD_CONFIGS`) for data set ``name``,
    with ``overrides`` (fields of :class:`ScaffoldConfig`) applied.

    ``"book"``: the book's own attacker (see the module doc). ``"slack"``: Slack et al.'s released
    settings for that data set. A ``ScaffoldConfig`` is returned with the overrides applied.
    """
    check_dataset(name)
    known = {f.name for f in fields(ScaffoldConfig)}
    bad = sorted(set(overrides) - known)
    if bad:
        raise ValueError(f"config key(s) {bad} unknown; accepted keys: {sorted(known)}")
    if isinstance(config, ScaffoldConfig):
        return replace(config, **overrides)
    check_choice(config, "config", SCAFFOLD_CONFIGS)
    base = {} if config == "book" else _slack_settings(name)
    return ScaffoldConfig(**(base | overrides))


def check_dataset(name: str) -> str:
    if name not in TABULAR_DATASETS:
        raise ValueError(f"name must be one of {TABULAR_DATASETS}, got {name!r}")
    return name


def check_explainer(explainer: str) -> str:
    if explainer == "shap":
        return "kernel_shap"
    if explainer not in SCAFFOLD_EXPLAINERS:
        raise ValueError(f"explainer must be one of {SCAFFOLD_EXPLAINERS} (or 'shap'), got {explainer!r}")
    return explainer
