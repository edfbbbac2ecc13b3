"""One result shape for "explanation before / after a manipulation", shared by every attack.

:class:`BeforeAfter` holds what every attack reports — the label, the heatmaps and the logits
before and after — and :func:`similarity` decides, in this one place, the book's metric set
comparing the two heatmaps. :class:`xaifool.attacks.input.AttackResult` (input manipulations)
extends it; model manipulations extend it the same way.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch

from .. import metrics as M
from .objectives import default_k

__all__ = ["BeforeAfter", "similarity", "SIMILARITY_METRICS"]

#: The book's metric set, in the order of tables and figures.
SIMILARITY_METRICS = ("topk", "spearman", "pearson", "ssim", "mse", "com_distance")


def similarity(a: torch.Tensor, b: torch.Tensor, k: int) -> dict[str, torch.Tensor]:
    """(B,) similarity of heatmaps ``b`` to ``a`` under every metric of the book.

    a, b:    (B, H, W) heatmaps (before, after)
    k:       top-k size for ``topk`` in 1..H·W (e.g. :func:`xaifool.attacks.objectives.default_k`)
    returns: {metric: (B,)} for the metrics of :data:`SIMILARITY_METRICS` (``mse`` and
             ``com_distance`` are distances: lower = more similar)
    """
    return {
        "topk": M.topk_intersection(a, b, k),
        "spearman": M.spearman(a, b),
        "pearson": M.pearson(a, b),
        "ssim": M.ssim(a, b),
        "mse": M.mse(a, b),
        "com_distance": M.center_of_mass_distance(a, b),
    }


@dataclass(kw_only=True)
class BeforeAfter:
    """Explanations and predictions before and after a manipulation (tensors on the CPU).

    label:                 (B,) the class explained, the original network's prediction at the input
    heatmap, heatmap_adv:  (B, H, W) explanations of ``label`` before and after
    logits, logits_adv:    (B, K) logits before and after
    method:                the interpreter (a key of :data:`xaifool.explain.METHODS`)
    settings:              everything needed to reproduce the result (``settings["k"]``: top-k size)
    """

    label: torch.Tensor
    heatmap: torch.Tensor
    heatmap_adv: torch.Tensor
    logits: torch.Tensor
    logits_adv: torch.Tensor
    method: str
    settings: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return self.label.shape[0]

    @property
    def label_kept(self) -> torch.Tensor:
        """(B,) bool: the prediction after is still ``label``."""
        return self.logits_adv.argmax(1) == self.label

    @property
    def confidence(self) -> torch.Tensor:
        """(B,) softmax probability of ``label`` before."""
        return self.logits.softmax(1).gather(1, self.label.view(-1, 1)).view(-1)

    @property
    def confidence_adv(self) -> torch.Tensor:
        """(B,) softmax probability of ``label`` after."""
        return self.logits_adv.softmax(1).gather(1, self.label.view(-1, 1)).view(-1)

    def similarity(self, k: int | None = None) -> dict[str, torch.Tensor]:
        """(B,) similarity of ``heatmap_adv`` to ``heatmap`` under every metric of the book (:func:`similarity`).

        k: top-k size; default ``settings["k"]`` or :func:`~xaifool.attacks.objectives.default_k`
        """
        a, b = self.heatmap, self.heatmap_adv
        k = int(self.settings.get("k") or default_k(a.shape[-2:])) if k is None else int(k)
        return similarity(a, b, k)

    # ---- cache round trip --------------------------------------------------------------
    def to_dict(self) -> dict:
        """Every field by name (tensors, numbers, strings, dicts: loadable with ``weights_only``)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict):
        """The inverse of :meth:`to_dict` (keys that are not fields are ignored)."""
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})
