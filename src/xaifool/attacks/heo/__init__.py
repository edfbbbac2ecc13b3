r"""Model-level manipulations of explanations: Heo et al. (2019), "Fooling neural network
interpretations via adversarial model manipulation".

A copy of a trained classifier :math:`f_{\omega_0}` is fine-tuned with

.. math:: \mathcal L(\omega) = \mathcal L_{acc}(\omega) + \lambda\,\mathcal L_{fool}(\omega;\omega_0),

where :math:`\mathcal L_{acc}` keeps the accuracy — the cross-entropy on the training labels, or
with ``distill=True`` the KL divergence :math:`\mathrm{KL}(p_{\omega_0}(x)\,\|\,p_\omega(x))` to the
original model's softmax (for data without trusted labels, e.g. the ImageNet sample images) —
and :math:`\mathcal L_{fool}` is one of the fooling objectives of
:mod:`xaifool.attacks.objectives` evaluated on the manipulated model's own explanations
(:func:`xaifool.explain.heatmap` with ``create_graph=True``: Grad-CAM and the gradient by double
back-propagation, LRP through the functional :func:`xaifool.explain.lrp_functional.relevance`). BatchNorm stays in
eval mode throughout (:func:`xaifool.training.fit`'s default), so only the *parameters* move,
never the running statistics, and the explanation being manipulated is the deployed one.

Attacks (the registry :data:`~xaifool.attacks.heo.registry.MODEL_ATTACKS`)
-------------------------------------------------------------------------
passive (the explanation of the true class is made uninformative):

``location``  mass pushed into a fixed region, by default a frame of width ``side // 7`` along
              the border (Heo's ``location`` loss, mask built by
              :func:`~xaifool.attacks.objectives.region_mask`);
``topk``      mass driven out of the *original* model's top-k pixels of each image
              (k = 10 % of the pixels, Heo's ``l // 10``);
``center``    the centre of mass moved away from the original model's;

active:

``swap``      on images that contain two objects (:func:`two_object_images`: a class-``a``
              image left, a class-``b`` image right), the manipulated model's map for class ``a``
              imitates the original map for class ``b`` and vice versa; the accuracy term runs on
              ordinary training images, the fooling term on the composites (Heo's
              ``forward_targeted``, trained the same way).

What Heo et al.'s released code does, and where this module differs
--------------------------------------------------------------------
Read from github.com/rmrisforbidden/Fooling_Neural_Network-Interpretations at commit
``919e17835c26dd1386dc5644cf5d1cabfec59286`` (``module/sequential.py``, ``run_lrp/*.py|sh``):

* the total loss is ``class_loss + lambda_value * lrp_loss``, Adam, batch size 8 (passive) / 4
  (active), the networks in eval mode (``--eval`` "recommend with BN model"), λ ∈ {0.25, …, 6}
  for passive and 10 for active fooling, learning rates 1e-7 … 1e-5 (ImageNet VGG19,
  ResNet50, DenseNet121, 224 × 224);
* the losses act on maps rescaled to [0, 1] (Grad-CAM: ``cam / max``; LRP and SimpleGrad at a
  target layer: min-max): ``location`` = mean ``(mask − R)²`` with mask 1 on a frame of
  width ``l // 7`` and 0 inside; ``topk`` = mean ``R²`` over the original map's top
  ``l // 10`` pixels; ``center_mass`` = minus the L1 distance (in pixels) between the centres
  of mass; active = ``½ (MSE(R_c1, R0_c2) + MSE(R_c2, R0_c1))``;
* the per-image statistics logged on the validation set (``keep_batch=True``) are the same
  location and top-k losses and, for the centre of mass, the distance
  ``sqrt((Δrow² + Δcol²)/2) / (w − 1)`` ∈ [0, 1]. The paper's fooling success rate counts an
  image as fooled when that statistic lies in a range of success; this module uses the ranges
  :data:`LOCATION_THRESHOLD`, :data:`TOPK_THRESHOLD` (≤ 0.3) and
  :data:`CENTER_THRESHOLD` (≥ 0.1) of the paper's §4 (the released code has no FSR function;
  its result viewer thresholds the same statistics).

Differences: (1) the *losses* are the book's shared objectives (maps normalised to sum 1: mass
in the frame, mass on the original top-k, Euclidean centre shift divided by the map's
diagonal, :math:`d\lVert h - h_{swap}\rVert^2`), one implementation for input and model attacks;
the *FSR statistics* are Heo's, on min-max-rescaled maps (:func:`fooling_statistic`). (2) LRP
is the pixel-level map of the book's composite (``epsilon_plus_flat``, absolute relevance),
not LRP to an intermediate layer (Heo's ``lrp_T``). (3) Heo define no FSR for active fooling;
:func:`fooling_success` counts a composite as fooled when *both* classes' fooled maps are
closer (Spearman ρ) to the *other* class's original map than to their own. (4) CIFAR-10
ResNet-20 (32 × 32; composites 32 × 64, its adaptive pooling takes them) instead of ImageNet
CNNs, hence larger learning rates (the zoo entries' ``lr``) and the λ of
:func:`~xaifool.attacks.heo.registry.default_lambda`.

Files: :mod:`~.registry` (the attacks, Heo's statistics and success rules), :mod:`~.maps` (chunked maps
with a memo), :mod:`~.composites` (two-object images), :mod:`~.finetuning`, :mod:`~.evaluation`,
:mod:`~.models` (cached manipulated models), :mod:`~.grid` and :mod:`~.matched` (λ × learning rate at matched
accuracy); the base models and their data splits
are in :mod:`xaifool.zoo`.

The names below are loaded from their files on first use (``heo.run_grid`` imports ``heo.grid``), so
that importing one file of the package runs only what that file imports: a manipulated model's cache
key (:mod:`xaifool.cache` reads the imports) then depends on the fine-tuning code, not on the
evaluation or the grid.
"""
from __future__ import annotations

import importlib

#: Public name → the file of this package (or of the zoo) that defines it.
_EXPORTS = {
    **dict.fromkeys(("ModelAttack", "MODEL_ATTACKS", "register", "registered", "unregister", "model_attack",
                     "passive_attacks", "default_lambda", "LOCATION_THRESHOLD", "TOPK_THRESHOLD", "CENTER_THRESHOLD",
                     "TOPK_FRACTION", "FRAME_DIVISOR", "SWAP_CLASSES", "default_region", "heo_k",
                     "fooling_statistic", "fooling_success"), ".registry"),
    **dict.fromkeys(("check_classes", "two_object_images", "composite_recognition"), ".composites"),
    **dict.fromkeys(("clear_memo", "MEMO_BYTES"), ".maps"),
    "finetune": ".finetuning",
    **dict.fromkeys(("ModelResult", "evaluate", "unmodified", "evaluate_interpreters"), ".evaluation"),
    **dict.fromkeys(("manipulated_model", "ACCURACY_BOUND"), ".models"),
    **dict.fromkeys(("check_grid", "run_grid"), ".grid"),
    **dict.fromkeys(("pareto_front", "sweep", "best_within"), ".matched"),
    **dict.fromkeys(("BASE_MODELS", "base_model", "finetune_data", "heldout_data"), "xaifool.zoo"),
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    where = _EXPORTS[name]
    module = importlib.import_module(where, __name__) if where.startswith(".") else importlib.import_module(where)
    return getattr(module, name)


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
