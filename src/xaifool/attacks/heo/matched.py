"""Heo et al.'s claim at matched accuracy: a λ × learning-rate sweep of one (attack, interpreter) pair,
every run fine-tuned once and cached (:func:`~xaifool.attacks.heo.models.manipulated_model`) and
evaluated on held-out images, the Pareto front of fooling success against held-out accuracy, and the best
FSR whose accuracy drop stays within a bound (Heo et al. chose λ and learning rates so that top-1
"barely moved")."""
from __future__ import annotations

import math

from ...validate import check_fraction, check_nonnegative, check_positive
from ...zoo import base_model, heldout_data
from .evaluation import evaluate
from .models import manipulated_model
from .registry import model_attack

__all__ = ["pareto_front", "sweep", "best_within"]


def pareto_front(points) -> list[int]:
    """Indices (in input order) of the points ``(fsr, accuracy)`` that no other point dominates: none has
    both a higher-or-equal FSR and a higher-or-equal accuracy with one of them strictly higher.
    Points with a NaN coordinate are never on the front."""
    pts = [(float(f), float(a)) for f, a in points]
    front = []
    for i, (f, a) in enumerate(pts):
        if math.isnan(f) or math.isnan(a):
            continue
        if not any((g >= f and b >= a and (g > f or b > a)) for j, (g, b) in enumerate(pts)
                   if j != i and not (math.isnan(g) or math.isnan(b))):
            front.append(i)
    return front


def sweep(base_key: str, attack: str, method: str, lams, lrs, *, progress: bool | None = None) -> list[dict]:
    """One row per (λ, learning rate): ``lam``, ``lr``, ``fsr``, ``accuracy`` (the original model's),
    ``accuracy_adv`` (the manipulated one's), ``drop`` (their difference) and ``pareto`` (on the front of
    FSR against ``accuracy_adv``), on the base model's held-out images; every run cached."""
    model_attack(attack)
    lams = [check_nonnegative(v, "lams", "the weights λ of the fooling loss") for v in lams]
    lrs = [check_positive(v, "lrs") for v in lrs]
    if not lams or not lrs:
        raise ValueError("lams and lrs must each hold at least one value")
    test, base = heldout_data(base_key), base_model(base_key)
    rows = []
    for lr in lrs:
        for lam in lams:
            model = manipulated_model(base_key, attack, method, lam=lam, lr=lr, progress=progress)
            r = evaluate(base, model, test.x, test.y, attack, method, cache=True)
            rows.append({"lam": lam, "lr": lr, "fsr": r.fsr, "accuracy": r.accuracy, "accuracy_adv": r.accuracy_adv,
                         "drop": r.accuracy - r.accuracy_adv})
    on = set(pareto_front([(r["fsr"], r["accuracy_adv"]) for r in rows]))
    for i, r in enumerate(rows):
        r["pareto"] = i in on
    return rows


def best_within(rows, max_drop: float = 0.02) -> dict | None:
    """The row of :func:`sweep` with the highest FSR among those whose accuracy drop is at most ``max_drop``
    (ties: the smaller drop), or None where no run stays within it."""
    max_drop = check_fraction(max_drop, "max_drop", open_low=False)
    ok = [r for r in rows if r["drop"] <= max_drop + 1e-12]
    return max(ok, key=lambda r: (r["fsr"], -r["drop"])) if ok else None
