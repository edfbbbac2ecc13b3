"""The leaderboard's outcomes (chapter 07), gathered from what the other chapters computed.

Every call below is one the chapters make themselves (chapter 02a's attack parts, chapter 02b's
manipulated models, chapter 06's cascading test), so they find the cached results; only the
transfer measurements, the Quantus noise scores and the timings are the leaderboard's own, and
they are cached too. Rows are the registry's image interpreters; attack columns follow the attack
registries (:data:`xaifool.leaderboard.COLUMNS`).

``input_outcomes``   FSR of the input attacks at ε = 8/255 (direct on the attack grid's interpreters,
                     by transfer from the attack on the gradient for the others)
``model_outcomes``   Heo et al.'s FSR of the manipulated ResNet-20s (direct, or by transfer from the
                     strongest model fine-tuned for that attack; LIME and KernelSHAP on fewer images)
``noise_outcomes``   Quantus' Max-Sensitivity and Local Lipschitz Estimate
``sanity_outcomes``  the randomisation test's similarity after the upper layers, and its verdict
``cost_outcomes``    milliseconds per explanation
``all_outcomes``     all of them
"""
from __future__ import annotations

import math

import numpy as np

from ..leaderboard import Outcome

__all__ = ["interpreters", "input_outcomes", "model_outcomes", "noise_outcomes", "sanity_outcomes",
           "cost_outcomes", "all_outcomes", "interpreter_options", "recorded_standings", "EPSILON"]

#: The attack budget of the input columns and the noise scale of the natural-robustness columns, × 1/255.
EPSILON = 8


def interpreters() -> tuple[str, ...]:
    """The leaderboard's rows: every registered image interpreter."""
    from .. import explain as E

    return E.names(modality="image")


def interpreter_options(P) -> dict:
    """Each interpreter's options at its standard settings in the profile (cost and transfer)."""
    return {"smoothgrad": {"n_samples": P.smoothgrad_samples}, "integrated_gradients": {"n_steps": P.ig_steps}}


def _fooled(topk, label_kept, tau: float) -> np.ndarray:
    import torch

    return ((torch.as_tensor(topk) < tau) & torch.as_tensor(label_kept).bool()).double().numpy()


def input_outcomes(P, setup, methods=None) -> dict:
    """{(interpreter, "input_<attack>"): Outcome} for the attack grid's attacks and the target-map attack."""
    from ..attacks import transfer
    from ..attacks.input import DOMBROWSKI_KINDS, GRID_ATTACKS
    from . import experiments as X

    methods = methods or interpreters()
    parts = X.input_parts(P, setup, imagenet=False)
    out = {}
    for attack in GRID_ATTACKS + DOMBROWSKI_KINDS:
        direct = {}
        for m in methods:
            name = f"grid/{m}/{attack}/{EPSILON:g}" if attack in GRID_ATTACKS else f"{attack}_{m}"
            if name in parts:
                found = parts[name]()
                direct[m] = found["grid"][attack, m, float(EPSILON)] if "grid" in found else found[name]
        if not direct:
            for m in methods:
                out[m, f"input_{attack}"] = Outcome.empty("no attack of this kind was run")
            continue
        source = "gradient" if "gradient" in direct else next(iter(direct))
        how = "noise" if attack == "random" else "direct"
        for m in methods:
            if m in direct:
                r = direct[m]
                out[m, f"input_{attack}"] = Outcome(_fooled(r.similarity(setup.k)["topk"], r.label_kept, X.FSR_TAU), how)
                continue
            r = direct[source]
            moved = transfer.to_interpreters(setup.model, r, [m], k=setup.k,
                                             options={m: interpreter_options(P).get(m, {})}, cache=True)[m]
            out[m, f"input_{attack}"] = Outcome(_fooled(moved["topk"], r.label_kept, X.FSR_TAU),
                                                how if attack == "random" else "transfer", source=source)
    return out


def model_outcomes(P, methods=None, base_key: str = "cifar_resnet20") -> dict:
    """{(interpreter, "model_<attack>"): Outcome} for every registered model attack."""
    from ..attacks import heo as MM

    methods = methods or interpreters()
    grid = MM.run_grid(base_key, P.heo_grid)
    from .. import explain as E

    base, test = MM.base_model(base_key), MM.heldout_data(base_key)
    opts = interpreter_options(P)
    out = {}

    def n_images(m):
        """Held-out images a transfer cell explains: the perturbation interpreters (a few hundred forward
        passes per map) as many as the input attacks use, the others as many as chapter 02b's transfer."""
        return min(P.heo_n_transfer, P.attack_n_cifar) if E.METHODS[m].family == "perturbation" else P.heo_n_transfer

    for attack in MM.MODEL_ATTACKS:
        direct = {m: grid["results"][a, m] for a, m in P.heo_grid if a == attack}
        if not direct:
            for m in methods:
                out[m, f"model_{attack}"] = Outcome.empty(f"no model fine-tuned for it in the {P.name} profile")
            continue
        source = max(direct, key=lambda m: direct[m].fsr)    # the strongest manipulation of this kind
        for m in methods:
            if m in direct:
                out[m, f"model_{attack}"] = Outcome(direct[m].success.double().numpy(), "direct")
                continue
            # an active attack draws its two-object composites (two maps each) from the whole held-out set
            active = MM.MODEL_ATTACKS[attack].active
            rows = slice(None) if active else slice(0, n_images(m))
            extra = {"n_pairs": max(1, n_images(m) // 2)} if active else {}
            r = MM.evaluate(base, grid["models"][attack, source], test.x[rows], test.y[rows], attack, m,
                            options=opts.get(m), cache=True, **extra)
            out[m, f"model_{attack}"] = Outcome(r.success.double().numpy(), "transfer", source=source)
    return out


def noise_outcomes(P, setup, methods=None) -> dict:
    """{(interpreter, metric): Outcome} of Quantus' noise scores on the first ``P.noise_n`` of the input
    chapter's images."""
    from .. import stability as S

    methods = methods or interpreters()
    x, y = setup.x[: P.noise_n], setup.y[: P.noise_n]
    return {(m, metric): Outcome(S.noise_scores(setup.model, x, y, m, metric, scale=EPSILON / 255,
                                                nr_samples=P.noise_samples, options=setup.options.get(m)).numpy(),
                                 "estimate")
            for m in methods for metric in S.NOISE_METRICS}


def sanity_outcomes(P, methods=None, *, top: float = 0.5) -> dict:
    """{(interpreter, "sanity"): Outcome}: per image, the Spearman ρ of |maps| over the first half of
    the cascading steps (upper layers first), with chapter 06's verdict."""
    from .. import sanity as S
    from . import experiments as X

    methods = methods or interpreters()
    result, _ = X.sanity_test("cifar_resnet20", P)
    verdict = S.verdict(result, top=top)
    out = {}
    for m in methods:
        if m not in result["similarity"]:
            out[m, "sanity"] = Outcome.empty("not in chapter 06's test")
            continue
        sim = result["similarity"][m]["spearman_abs"].double().nan_to_num(0.0)     # (steps, images)
        head = sim[: math.ceil(top * sim.shape[0])].mean(0)
        out[m, "sanity"] = Outcome(head.numpy(), "verdict",
                                   verdict="passes" if bool(verdict.loc[m, "passes"]) else "fails")
    return out


def cost_outcomes(P, setup, methods=None) -> dict:
    """{(interpreter, "cost"): Outcome}: seconds per image, every interpreter timed on the same batch."""
    from .. import explain as E

    methods = list(methods or interpreters())
    opts = interpreter_options(P)
    _, seconds = E.explain_many(setup.model, setup.x, methods, target=setup.y,
                                options={m: opts[m] for m in opts if m in methods}, cache=True)
    return {(m, "cost"): Outcome(np.array([seconds[m]]), "timed", n=len(setup.x)) for m in methods}


def all_outcomes(P, setup=None, methods=None) -> dict:
    """Every outcome of the leaderboard (the input chapter's setup is built when not given)."""
    from . import experiments as X

    setup = setup or X.input_setup(P)
    out = {}
    for part in (input_outcomes(P, setup, methods), model_outcomes(P, methods), noise_outcomes(P, setup, methods),
                 sanity_outcomes(P, methods), cost_outcomes(P, setup, methods)):
        out.update(part)
    return out


def recorded_standings(rec: dict | None):
    """The leaderboard of a full-results record of chapter 07 (:mod:`xaifool.book.full_results`), or None
    without a record: the same cells as a Standings, rebuilt from their recorded numbers."""
    from ..leaderboard import COLUMNS, Cell, Standings

    if rec is None:
        return None
    cells = {}
    for i, by_column in rec["numbers"]["cells"].items():
        cells[i] = {}
        for c, v in by_column.items():
            if c not in COLUMNS:
                continue
            num = lambda key: math.nan if v[key] is None else float(v[key])
            cells[i][c] = Cell(num("estimate"), num("low"), num("high"), int(v["n"]), v["how"],
                               v["source"] or None, v["verdict"] or None, v["why"] or None)
    columns = tuple(c for c in COLUMNS if all(c in by for by in cells.values()))
    return Standings(tuple(cells), columns, cells, 0.95)
