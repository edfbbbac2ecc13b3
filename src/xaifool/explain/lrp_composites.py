"""The LRP composites of the book: one table that both LRP paths read.

Each entry says which rule every layer gets — the same for zennit's path
(:func:`xaifool.explain.lrp_zennit.lrp_composite` builds the zennit composite from ``zennit``) and
for the functional path (:func:`xaifool.explain.lrp_functional.relevance` reads ``first_rule``,
``conv_rule`` and ``linear_rule``). Every composite uses zennit's Norm rule at sums and average pools
and Pass at activations. Adding a composite is one entry here (with a test against zennit).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..validate import check_choice

__all__ = ["LrpComposite", "COMPOSITES", "composite_spec"]


@dataclass(frozen=True)
class LrpComposite:
    """One LRP composite.

    name:        the key of :data:`COMPOSITES` (``composite=`` of the LRP interpreter)
    first_rule:  the rule of the first linear-type layer in module order (``"flat"``), or None: no special first layer
    conv_rule:   the rule of the other convolutions (``"zplus"``, ``"alpha_beta"`` (α = 2, β = 1) or ``"epsilon"``)
    linear_rule: the rule of ``nn.Linear`` layers
    zennit:      ``(epsilon, extra_layer_map, canonizers) → zennit Composite``, the same rules in zennit
    """

    name: str
    first_rule: str | None
    conv_rule: str
    linear_rule: str
    zennit: Callable


def _epsilon_plus_flat(epsilon, extra, canonizers):
    from zennit.composites import EpsilonPlusFlat

    return EpsilonPlusFlat(epsilon=epsilon, layer_map=extra, canonizers=canonizers)


def _epsilon(epsilon, extra, canonizers):
    from zennit.composites import LayerMapComposite, layer_map_base
    from zennit.rules import Epsilon
    from zennit.types import Convolution, Linear

    # layer_map_base gives activations Pass and sums / average pools the Norm rule.
    return LayerMapComposite(extra + layer_map_base() + [(Convolution, Epsilon(epsilon)), (Linear, Epsilon(epsilon))],
                             canonizers=canonizers)


def _epsilon_alpha2_beta1_flat(epsilon, extra, canonizers):
    from zennit.composites import EpsilonAlpha2Beta1Flat

    return EpsilonAlpha2Beta1Flat(epsilon=epsilon, layer_map=extra, canonizers=canonizers)


COMPOSITES: dict[str, LrpComposite] = {c.name: c for c in [
    LrpComposite("epsilon_plus_flat", "flat", "zplus", "epsilon", _epsilon_plus_flat),
    LrpComposite("epsilon", None, "epsilon", "epsilon", _epsilon),
    LrpComposite("epsilon_alpha2_beta1_flat", "flat", "alpha_beta", "epsilon", _epsilon_alpha2_beta1_flat),
]}


def composite_spec(composite) -> LrpComposite:
    """The entry of :data:`COMPOSITES` named ``composite``; a ValueError naming the accepted ones otherwise."""
    return COMPOSITES[check_choice(composite, "composite", tuple(COMPOSITES))]
