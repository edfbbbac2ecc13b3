"""One entry point for every interpreter: ``explain(model, x, target, method, **options)``,
and beneath it one differentiable path, ``heatmap(model, x, target, method, create_graph=…)``.

Heatmaps follow Definition 1 of the review: ``h = I(x, c; ω)`` scores every input feature
for the logit of class ``c``. The registry :data:`METHODS` (:mod:`xaifool.explain.registry`, one
:class:`~xaifool.explain.registry.Interpreter` entry each) holds

============================  ==========  =================================================
method                        family      implementation
============================  ==========  =================================================
``gradient``                  gradient    ∂f_c/∂x (SimpleGrad, Simonyan et al. 2014)
``grad_x_input``              gradient    x ⊙ ∂f_c/∂x (Shrikumar et al. 2017)
``smoothgrad``                gradient    mean gradient over x + N(0, σ²) (Smilkov et al. 2017)
``integrated_gradients``      gradient    path integral from a baseline (Sundararajan et al. 2017)
``gradcam``                   cam         ReLU(Σ_k α_k A_k) at ``model.cam_layer`` (Selvaraju et al. 2017)
``guided_backprop``           gradient    gradient with negative signals zeroed at every ReLU (Springenberg et al. 2015)
``guided_gradcam``            cam         guided backprop ⊙ upsampled Grad-CAM (Selvaraju et al. 2017)
``lrp``                       lrp         zennit, composite EpsilonPlusFlat (Bach et al. 2015);
                                          with ``create_graph=True`` :func:`~.lrp_functional.relevance`
``lime``                      perturb.    the ``lime`` package (Ribeiro et al. 2016)
``kernel_shap``               perturb.    the ``shap`` package's KernelExplainer (Lundberg & Lee 2017)
============================  ==========  =================================================

Guided backpropagation overrides the backward pass of every ``nn.ReLU`` *and* ``nn.ReLU6``
module (captum's ``GuidedBackprop`` hooks ``nn.ReLU`` only, so on a ReLU6 network it silently
returns the plain gradient); a model without such modules is refused with a ValueError.

The gradient family and Grad-CAM are computed here with ``torch.autograd`` rather than
through captum, because attacks need ``create_graph=True`` (a gradient of the explanation)
and captum's attribution methods detach their graph; tests check them against captum's
``Saliency``, ``InputXGradient``, ``NoiseTunnel``, ``IntegratedGradients`` and ``LayerGradCam``.
zennit builds LRP's modified weights from ``param.data``, which cuts the graph to the weights;
with ``create_graph=True`` LRP is therefore computed by the functional implementation
:func:`xaifool.explain.lrp_functional.relevance` (tested equal to zennit), differentiable in ``x`` and the weights.

**Two entry points.** :func:`explain` is the checked, user-facing call: it validates its
arguments (one no-grad forward pass resolves ``target=None`` and checks the classes) and runs
the model in eval mode for the duration of the call, restoring every module's ``training``
flag afterwards, so it never moves batch-norm statistics. :func:`heatmap` is what attacks,
fine-tuning and sanity checks call in their loops: no validation forward pass, ``target`` a
(B,) long tensor, the model used in whatever mode it is in, and with ``create_graph=True`` a map
differentiable with respect to the input and the model's parameters (every method with
``differentiable=True``). Both apply the same post-processing, so ``heatmap == explain`` for an
eval-mode model.

**Post-processing, the same for every method** (stated once here):

* images: the raw attribution ``a`` (B, C, H, W) is reduced over channels by
  ``reduce="abs_sum"`` (default, ``Σ_c |a_c|``) or ``"sum"`` (signed ``Σ_c a_c``); Grad-CAM
  (one channel, non-negative) and superpixel methods are upsampled / painted to (H, W) first.
  Tables keep one value per feature, (B, d), and are reduced by ``abs`` only with ``"abs_sum"``.
* ``normalize="sum"`` (default) divides each map by the sum of its absolute values, so a
  non-negative map is a distribution over pixels (as in Ghorbani et al. 2019); ``"max"``
  divides by the largest absolute value; ``None`` keeps raw scale.

**Files**: :mod:`~xaifool.explain.registry` (the entries), :mod:`~xaifool.explain.api` (the calls),
:mod:`~xaifool.explain.gradient` (gradient family, Grad-CAM, guided backprop),
:mod:`~xaifool.explain.lrp_composites` (the one table of LRP composites), :mod:`~xaifool.explain.lrp_zennit`
and :mod:`~xaifool.explain.lrp_functional` (the two LRP paths), :mod:`~xaifool.explain.perturbation`
(LIME, KernelSHAP).
"""
from __future__ import annotations

from ..quiet import import_quietly
from .api import (CONTEXT_OPTIONS, NORMALIZATIONS, REDUCTIONS, attribute, eval_mode, explain, explain_many, heatmap,
                  heatmap_and_logits, method_options, postprocess)
from .lrp_composites import COMPOSITES as LRP_COMPOSITES
from .lrp_zennit import lrp_objective_gradient
from .perturbation import kernel_shap_table, lime_table
from .registry import (METHODS, RELEVANCE_GATES, SOFTPLUS, Interpreter, Surrogate, check_methods, interpreter, label,
                       names, register,
                       registered, unregister)

__all__ = ["Interpreter", "Surrogate", "SOFTPLUS", "RELEVANCE_GATES", "METHODS", "register", "unregister", "registered",
           "interpreter", "names", "label", "check_methods", "LRP_COMPOSITES", "explain", "heatmap", "heatmap_and_logits", "attribute", "postprocess",
           "explain_many", "eval_mode", "method_options", "CONTEXT_OPTIONS", "REDUCTIONS", "NORMALIZATIONS",
           "lrp_objective_gradient", "lime_table", "kernel_shap_table", "import_quietly"]
