"""The registry of interpreters: one :class:`Interpreter` entry each, and everything the rest of the
package asks about an interpreter is read from its entry (never from its name).

Adding an interpreter is one call, ``register(Interpreter(...))``; the explain API, the input and
model attacks, the sanity checks, transfer and the figures' labels then take it. ``registered(...)``
does the same for the duration of a ``with`` block (tests, experiments).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import torch.nn as nn

from ..entries import Registry
from ..models import set_beta, smooth
from ..validate import check_choice, check_positive, one_or_many
from .gradient import gradcam, grad_x_input, gradient, guided_backprop, guided_gradcam, integrated_gradients, smoothgrad
from .lrp_functional import relevance
from .lrp_zennit import lrp_objective_gradient, lrp_zennit
from .perturbation import kernel_shap, lime

__all__ = ["Surrogate", "SOFTPLUS", "RELEVANCE_GATES", "Interpreter", "METHODS", "register", "unregister",
           "registered", "interpreter", "names", "label", "check_methods", "MODALITIES", "FAMILIES"]

MODALITIES = ("image", "table")
FAMILIES = ("gradient", "cam", "lrp", "perturbation")


def softplus_copy(model: nn.Module, beta: float) -> nn.Module:
    """A frozen copy of ``model`` with Softplus(β) in place of every ReLU (:func:`xaifool.models.smooth`);
    a network that is smooth already (a β-smoothing defence: Softplus and no ReLU) is copied as it is,
    and the attack's β schedule then sets its β (the attacker of a defence passes the defence's β)."""
    if _smooth_already(model):
        surrogate = copy.deepcopy(model).eval()
        set_beta(surrogate, beta)
    else:
        surrogate = smooth(model, beta)
    for p in surrogate.parameters():
        p.requires_grad_(False)
    return surrogate


def _smooth_already(model: nn.Module) -> bool:
    kinds = {type(m) for m in model.modules()}
    return nn.Softplus in kinds and not kinds & {nn.ReLU, nn.ReLU6}


def the_model(model: nn.Module, beta: float) -> nn.Module:
    """The network itself (only the input's gradient is ever asked of it)."""
    return model


@dataclass(frozen=True)
class Surrogate:
    """How an input attack differentiates an interpreter's map (a ReLU network's map is piecewise
    constant in the input, Dombrowski et al. 2019).

    build:              ``(model, β) → network`` the attack differentiates
    set_beta:           ``(network, β)``: move the network to a new β of the schedule; None when β
                        is passed to ``objective_gradient`` on every call instead
    objective_gradient: ``(model, x, target, objective, *, beta, **options) → (loss (B,), grad (B, C, H, W))``;
                        None: the interpreter's own map with ``create_graph=True`` on the built
                        network, differentiated by autograd
    """

    name: str
    build: Callable
    set_beta: Callable | None = None
    objective_gradient: Callable | None = None


#: Dombrowski et al.'s surrogate: the ReLUs of a copy replaced by Softplus(β).
SOFTPLUS = Surrogate("softplus", softplus_copy, set_beta)
#: LRP's: the ReLU forward pass kept, the relevance gated by sigmoid(β z) (zennit's ReLUBetaSmooth).
RELEVANCE_GATES = Surrogate("relevance gates", the_model, None, lrp_objective_gradient)


@dataclass(frozen=True)
class Interpreter:
    """One interpreter I(x, c; ω) (Definition 1 of the review).

    name:            the key (``method=`` everywhere)
    fn:              ``(model, x, target, create_graph=False, **options) → raw attribution`` of x's shape
                     (Grad-CAM and superpixel methods (B, 1, H, W)); its keyword options are the
                     interpreter's options
    family:          one of :data:`FAMILIES`
    differentiable:  the map can be differentiated (``create_graph=True``) w.r.t. the input and the
                     parameters: input attacks and model attacks (fine-tuning) take it
    modalities:      among :data:`MODALITIES`
    citation:        BibTeX key in ``book/references.bib``
    label:           the name figures and tables show
    needs_cam_layer: needs a convolutional layer (``model.cam_layer`` or ``layer=``)
    shares_forward:  the map runs the network exactly once, on the image itself, so its forward
                     pass also gives the logits (an attack step or a fine-tuning step saves a pass)
    graph_fn:        the implementation used with ``create_graph=True`` when ``fn`` cannot keep the
                     graph to the weights (LRP: the functional relevance); None: ``fn``
    surrogate:       how input attacks differentiate the map (:class:`Surrogate`)
    lambda_scale:    factor on a model attack's default λ (the gradient's top-k barely moved at λ = 10)
    """

    name: str
    fn: Callable
    family: str
    differentiable: bool
    modalities: tuple[str, ...]
    citation: str
    label: str
    needs_cam_layer: bool = False
    shares_forward: bool = False
    graph_fn: Callable | None = None
    surrogate: Surrogate = SOFTPLUS
    lambda_scale: float = 1.0

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"name must be an identifier-like string, got {self.name!r}")
        if not callable(self.fn):
            raise ValueError(f"fn must be callable, got {type(self.fn).__name__}")
        check_choice(self.family, "family", FAMILIES)
        if not isinstance(self.label, str) or not self.label:
            raise ValueError(f"label must be a non-empty string, got {self.label!r}")
        if self.graph_fn is not None and not callable(self.graph_fn):
            raise ValueError(f"graph_fn must be None or callable, got {type(self.graph_fn).__name__}")
        if not isinstance(self.surrogate, Surrogate):
            raise ValueError(f"surrogate must be a Surrogate (e.g. SOFTPLUS, RELEVANCE_GATES), got {self.surrogate!r}")
        check_positive(self.lambda_scale, "lambda_scale", "a factor on a model attack's default λ")
        if not self.modalities or any(m not in MODALITIES for m in self.modalities):
            raise ValueError(f"modalities must be a non-empty tuple of {MODALITIES}, got {self.modalities!r}")

    def implementation(self, create_graph: bool) -> Callable:
        """The function that computes the raw attribution, with or without the graph."""
        return self.graph_fn if create_graph and self.graph_fn is not None else self.fn


#: Every interpreter, in the order tables and figures list them.
METHODS: Registry = Registry("interpreter", Interpreter, [
    Interpreter("gradient", gradient, "gradient", True, ("image", "table"), "simonyan2014deep", "Gradient",
                shares_forward=True, lambda_scale=3.0),
    Interpreter("grad_x_input", grad_x_input, "gradient", True, ("image", "table"), "shrikumar2017learning",
                "Grad × Input", shares_forward=True),
    Interpreter("smoothgrad", smoothgrad, "gradient", True, ("image", "table"), "smilkov2017smoothgrad", "SmoothGrad"),
    Interpreter("integrated_gradients", integrated_gradients, "gradient", True, ("image", "table"),
                "sundararajan2017axiomatic", "Integrated Gradients"),
    Interpreter("gradcam", gradcam, "cam", True, ("image",), "selvaraju2017gradcam", "Grad-CAM",
                needs_cam_layer=True, shares_forward=True),
    Interpreter("guided_backprop", guided_backprop, "gradient", False, ("image", "table"), "springenberg2015striving",
                "Guided Backprop"),
    Interpreter("guided_gradcam", guided_gradcam, "cam", False, ("image",), "selvaraju2017gradcam", "Guided Grad-CAM",
                needs_cam_layer=True),
    Interpreter("lrp", lrp_zennit, "lrp", True, ("image", "table"), "bach2015pixel", "LRP", graph_fn=relevance,
                surrogate=RELEVANCE_GATES),
    Interpreter("lime", lime, "perturbation", False, ("image", "table"), "ribeiro2016why", "LIME"),
    Interpreter("kernel_shap", kernel_shap, "perturbation", False, ("image", "table"), "lundberg2017unified",
                "KernelSHAP"),
])
#: Add, remove, or add for a ``with`` block an :class:`Interpreter` (see :class:`xaifool.entries.Registry`).
register, unregister, registered = METHODS.register, METHODS.unregister, METHODS.registered


def names(*, modality: str | None = None, differentiable: bool | None = None) -> tuple[str, ...]:
    """The registered interpreters (in registry order) that apply to ``modality`` and, when asked,
    are (not) differentiable."""
    if modality is not None:
        check_choice(modality, "modality", MODALITIES)
    return tuple(n for n, m in METHODS.items()
                 if (modality is None or modality in m.modalities)
                 and (differentiable is None or m.differentiable == differentiable))


def interpreter(name, argument: str = "method", *, modality: str | None = None,
                differentiable: bool | None = None) -> Interpreter:
    """The entry of ``name``; a ValueError naming ``argument`` and the accepted interpreters when
    ``name`` is not registered, does not apply to ``modality`` or is not differentiable when asked."""
    accepted = names(modality=modality, differentiable=differentiable)
    if name not in accepted:
        what = " ".join(w for w in ("differentiable" if differentiable else "",
                                    f"{modality}" if modality else "") if w)
        raise ValueError(f"{argument} must be one of the registered {what + ' ' if what else ''}interpreters "
                         f"{accepted}, got {name!r}")
    return METHODS[name]


def label(name: str) -> str:
    """The label figures show for ``name`` (the name itself for what is not an interpreter)."""
    m = METHODS.get(name)
    return m.label if m is not None else name


def check_methods(methods, argument: str = "methods", *, modality: str | None = "image",
                  differentiable: bool | None = None) -> tuple[str, ...]:
    """``methods`` (one name or an iterable of names) as a non-empty tuple of registered interpreters
    that apply to ``modality``; a ValueError naming ``argument`` otherwise."""
    accepted = names(modality=modality, differentiable=differentiable)
    kind = f"{modality} interpreters" if modality else "interpreters"
    methods = one_or_many(methods, argument, str, f"a method name or a sequence of names from {accepted}")
    bad = [m for m in methods if not isinstance(m, str) or m not in accepted]
    if bad:
        raise ValueError(f"{argument} must be {kind} among {accepted}, got {bad}")
    return methods
