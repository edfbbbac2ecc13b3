"""Attacks on tabular explanations by scaffolding (Slack et al. 2020), an input-distribution attack.

Dimanov et al.'s (2020) concealment changes the *model*; it lives in
:mod:`xaifool.attacks.concealment`, next to Heo et al.'s model manipulations.

**Scaffolding** (:func:`~.experiment.scaffold_experiment`). A *biased* classifier ``f`` decides by the
sensitive attribute alone; an *innocuous* classifier ``ψ`` decides by one or two decoy columns
(synthetic random 0/1 columns ``unrelated_1``, ``unrelated_2`` appended to the data as Slack et
al. did, or a real feature); an out-of-distribution *detector* (a random forest) is trained to
tell real rows from explainer probes; the *scaffolded* classifier answers with ``f`` on rows
whose detector score P(real) reaches a threshold and with ``ψ`` on everything else. The
explainers under attack are the real ``lime`` (``LimeTabularExplainer``) and ``shap``
(``KernelExplainer``) packages, through the book's one tabular path
(:func:`xaifool.explain.lime_table`, :func:`xaifool.explain.kernel_shap_table`: row ``i`` seeded
with ``seed + i``). They call a NumPy function, and every call is batched: LIME passes all
perturbations of one row in one call, KernelSHAP the row alone and then all its coalitions.

**Two configurations** (:func:`scaffold_config`), run by the same code, every choice an
explicit field of :class:`ScaffoldConfig`:

* ``"book"`` — the book's stricter attacker: the detector (:class:`OffGridDetector`) is trained
  on the points LIME / KernelSHAP *actually* query while explaining training rows
  (:func:`collect_queries`), and its threshold keeps ≥ 97 % of real rows with ``f``; KernelSHAP's
  background is ``shap.kmeans`` on raw units; the 0/1 columns stay single columns.
* ``"slack"`` — the settings of Slack et al.'s released scripts (``compas_experiment.py``,
  ``german_experiment.py``, ``adversarial_models.py`` in dylan-slack/Fooling-LIME-SHAP): a
  random forest on the raw features trained on *their* synthetic perturbations (LIME: Gaussian
  noise of 0.3 standard deviations on the numerical columns, 30 copies; KernelSHAP: 10 copies of
  the data against rows with features substituted from the background centres), P(real) ≥ 0.5;
  background: ``shap.kmeans`` with 10 centres on *standardised* features (German:
  scikit-learn ``KMeans`` centres, unrounded, equal weights); COMPAS's sex and charge degree
  one-hot encoded as pairs of columns; ``f`` and ``ψ`` test their features against the training
  mean (Slack's models compare standardised features with 0); German's ψ tests
  ``LoanRateAsPercentOfIncome`` (as Slack's German script does).

The attack's trade-off is measured, not assumed: every run explains, on the same perturbations,
the scaffold at every threshold of :data:`TRADEOFF_THRESHOLDS` (threshold 0: everything to
``f``; beyond 1: everything to ``ψ``), giving fidelity (agreement with ``f`` on real test rows)
against fooling (share of explanations ranking the sensitive feature first) —
:func:`xaifool.plot.tradeoff_figure`.

Bad input raises ``ValueError`` naming the argument and the accepted values.

Files: :mod:`~.config` (the two configurations and the constants), :mod:`~.data` (data cards, decoys,
the prepared data set), :mod:`~.classifiers` (f, ψ and the scaffold), :mod:`~.explainers` (backgrounds,
LIME / KernelSHAP on NumPy functions), :mod:`~.detectors` (the rehearsal of the explainer, the
detectors), :mod:`~.experiment` (the experiment and its measures); the figures are in :mod:`xaifool.plot`.
"""
from __future__ import annotations

from .config import (SCAFFOLD_EXPLAINERS, UNRELATED, DETECTOR_REAL_QUANTILE, SCAFFOLD_CONFIGS, BACKGROUNDS, DETECTORS,
                     RULES, TRADEOFF_THRESHOLDS, ScaffoldConfig, scaffold_config, check_dataset, check_explainer)
from .classifiers import (BiasedClassifier, InnocuousClassifier, ScaffoldedClassifier, scaffold_models, torch_predict)
from .data import (sensitive_index, dataset_card, with_unrelated, with_pairs, prepare_dataset, reference_accuracy)
from .explainers import (standardise, make_background, centres, background_summary, explain_outputs, explain_proba)
from .detectors import (REHEARSAL_PROBES, probe_keys, rehearsal_seed, collect_queries, row_keys, forest_proba,
                        OffGridDetector, ForestDetector, train_detector, train_perturbation_detector)
from .experiment import (build_scaffold, sensitive_rank, rank_shares, flip_rate, scaffold_experiment, tradeoff_points)

__all__ = ['SCAFFOLD_EXPLAINERS', 'UNRELATED', 'DETECTOR_REAL_QUANTILE', 'SCAFFOLD_CONFIGS', 'BACKGROUNDS',
           'DETECTORS', 'RULES', 'TRADEOFF_THRESHOLDS', 'ScaffoldConfig', 'scaffold_config', 'check_dataset',
           'check_explainer', 'BiasedClassifier', 'InnocuousClassifier', 'ScaffoldedClassifier', 'scaffold_models',
           'torch_predict', 'sensitive_index', 'dataset_card', 'with_unrelated', 'with_pairs', 'prepare_dataset',
           'reference_accuracy', 'standardise', 'make_background', 'centres', 'background_summary', 'explain_outputs',
           'explain_proba', 'REHEARSAL_PROBES', 'probe_keys', 'rehearsal_seed', 'collect_queries', 'row_keys',
           'forest_proba', 'OffGridDetector', 'ForestDetector', 'train_detector', 'train_perturbation_detector',
           'build_scaffold', 'sensitive_rank', 'rank_shares', 'flip_rate', 'scaffold_experiment', 'tradeoff_points']
