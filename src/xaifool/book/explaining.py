"""Chapter 05's experiments as functions of a profile: why input manipulations work (curvature), two
defences under attack, and detectors of manipulated inputs and models.

Every attack and manipulated model it reads is one that chapters 02a and 02b computed (same calls,
so the cache answers); its own computations (curvature, the defence sweeps, detector scores) are
cached by the library functions it calls.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

#: Readers' names of the tabular data sets.
DATASET_NAMES = {"compas": "COMPAS", "german": "German credit", "adult": "Adult income"}

#: Budgets (× 1/255) of the curvature study and of the defence sweep: the smallest of the input chapter's
#: grid (at 8/255 the top-k attack already leaves no top-k pixel in place on almost every image), and
#: twice that for the defences, so that a defence has room to show.
CURVATURE_EPSILON = 1
DEFENCE_EPSILON = 2

__all__ = ["CURVATURE_EPSILON", "DEFENCE_EPSILON", "DATASET_NAMES", "curvature_study", "defence_tables", "halving_point", "input_detectors", "model_detectors",
           "detector_summary", "tabular_uncovering"]


def _topk_result(P, setup, method: str = "gradient", attack: str = "topk", e: float = 8):
    from . import experiments as X

    return X.input_parts(P, setup, imagenet=False)[f"grid/{method}/{attack}/{e:g}"]()["grid"][attack, method, float(e)]


def curvature_study(P, setup) -> dict:
    """Per image of the input chapter: the curvature of the attacked logit (largest |Hessian eigenvalue|
    of the Softplus(β) surrogate the attack differentiates, and ‖Hδ‖/‖δ‖ along the attack's δ) and the
    attack's effect on the gradient map (1 − Spearman ρ between the maps before and after Ghorbani's
    top-k attack at ε = :data:`CURVATURE_EPSILON`/255, the grid's smallest budget).
    Returns {"table": DataFrame, "rho_eig": (ρ, low, high), "rho_dir": (ρ, low, high), "n_moved", "beta", "epsilon"}."""
    import pandas as pd

    from .. import curvature as C
    from ..attacks.input import DEFAULT_BETA
    from ..detection import spearman_ci
    from ..models import smooth

    r = _topk_result(P, setup, e=CURVATURE_EPSILON)
    net = smooth(setup.model, DEFAULT_BETA)
    eig = C.top_hessian_eigenvalue(net, r.x, r.label, n_iter=P.curvature_iters).abs().double().numpy()
    delta = r.x_adv - r.x
    moved = delta.flatten(1).abs().amax(1) > 0
    direc = C.directional_curvature(net, r.x, delta, r.label).double().numpy()
    effect = (1 - r.similarity(setup.k)["spearman"]).double().numpy()
    table = pd.DataFrame({"curvature": eig, "along the attack": direc, "effect": effect,
                          "label kept": r.label_kept.numpy(), "moved": moved.numpy()})
    m = moved.numpy()
    rho_dir = spearman_ci(direc[m], effect[m], seed=P.seed) if m.sum() >= 3 else (math.nan,) * 3  # images the attack moved
    return {"table": table, "rho_eig": spearman_ci(eig, effect, seed=P.seed), "rho_dir": rho_dir,
            "n_moved": int(m.sum()), "beta": DEFAULT_BETA, "epsilon": CURVATURE_EPSILON}


def defence_tables(P, setup) -> dict:
    """The β and σ sweeps on the first ``P.defence_n`` images: one row per setting with the means of
    every measure (top-k intersection after the attack, target SSIM after, faithfulness, curvature,
    labels kept), plus the per-image values. Returns {"beta": DataFrame, "sigma": DataFrame, "raw_beta", "raw_sigma"}."""
    import pandas as pd

    from .. import defences as D

    x = setup.x[: P.defence_n]
    common = dict(epsilon=DEFENCE_EPSILON / 255, n_iter=P.attack_iters, target_iters=P.defence_target_iters, k=setup.k,
                  batch_size=P.attack_batch_size)
    raw_beta = D.beta_sweep(setup.model, x, P.defence_betas, curvature_iters=P.curvature_iters, **common)
    raw_sigma = D.sigma_sweep(setup.model, x, P.defence_sigmas, n_samples=P.attack_smoothgrad_samples, **common)

    def rows(raw, key):
        out = []
        for setting, m in raw.items():
            out.append({key: setting, **{name: float(v.mean()) for name, v in m.items()}})
        return pd.DataFrame(out)

    return {"beta": rows(raw_beta, "beta"), "sigma": rows(raw_sigma, "sigma"), "raw_beta": raw_beta,
            "raw_sigma": raw_sigma}


def halving_point(table, relu_effect: float, *, column: str = "spearman_after", key: str = "beta") -> float:
    """The β (interpolated in log β between the swept values) at which the attack's effect
    (1 − ``column``: by default 1 − the Spearman ρ between the maps before and after the attack) falls
    to half the effect on the undefended network; NaN when no swept β gets there.
    ``table``: :func:`defence_tables`' ``"beta"`` frame (the "relu" row is ignored)."""
    t = table[table[key] != "relu"].copy()
    t[key] = t[key].astype(float)
    t = t.sort_values(key, ascending=False)           # from nearly ReLU (large β) to very smooth (small β)
    effect = 1 - t[column].to_numpy()
    betas = t[key].to_numpy()
    half = relu_effect / 2
    for i in range(len(betas)):
        if effect[i] <= half:
            if i == 0:
                return float(betas[0])
            # linear in log β between the last β above half and this one
            e0, e1, b0, b1 = effect[i - 1], effect[i], math.log(betas[i - 1]), math.log(betas[i])
            w = (e0 - half) / (e0 - e1) if e0 != e1 else 0.0
            return float(math.exp(b0 + w * (b1 - b0)))
    return math.nan


def input_detectors(P, setup) -> dict:
    """Two detectors of manipulated inputs on the input chapter's images: clean images, images with
    random sign noise of the same budget (must not be flagged), and images after the top-k attack on the
    gradient (ε = 8/255). Returns {detector: {"clean", "noise", "attacked": (n,) scores, "roc_attack",
    "roc_noise": Roc}}."""
    from .. import uncover as U
    from ..detection import roc

    top, rnd = _topk_result(P, setup), _topk_result(P, setup, attack="random")
    out = {}
    for name, score in (("noise instability", lambda x, y: U.noise_instability(
                            setup.model, x, "gradient", target=y, draws=P.detector_draws)),
                        ("interpreter disagreement", lambda x, y: U.interpreter_disagreement(
                            setup.model, x, "gradient", "smoothgrad", target=y,
                            options={"smoothgrad": {"n_samples": P.smoothgrad_samples}}))):
        s = {"clean": score(top.x, top.label).numpy(), "noise": score(rnd.x_adv, rnd.label).numpy(),
             "attacked": score(top.x_adv, top.label).numpy()}
        s["roc_attack"] = roc(s["clean"], s["attacked"])
        s["roc_noise"] = roc(s["clean"], s["noise"])
        out[name] = s
    return out


def model_detectors(P, base_key: str = "cifar_resnet20") -> dict:
    """The reference-model detector on the held-out images chapter 02b scores transfer on: per image,
    the disagreement of each manipulated model's map with the original ResNet-20's map (the interpreter
    it was fooled through), and of an honestly fine-tuned control (λ = 0: the same fine-tuning without
    the fooling term) as the clean case. Returns {"clean": {method: scores}, "manipulated":
    {(attack, method): scores}, "roc": {(attack, method): Roc}}."""
    from ..attacks import heo as MM
    from ..detection import roc
    from .. import uncover as U

    grid = MM.run_grid(base_key, P.heo_grid)
    base, test = MM.base_model(base_key), MM.heldout_data(base_key)
    some = slice(0, P.heo_n_transfer)
    x = test.x[some]
    # with λ = 0 the fooling term vanishes, so the control's fine-tuning does not depend on the pair
    # it is named after: chapter 02b's control (top-k × Grad-CAM, λ = 0) serves every interpreter
    control = MM.manipulated_model(base_key, "topk", "gradcam", lam=0.0)
    clean, manip, rocs = {}, {}, {}
    for attack, method in P.heo_grid:
        if MM.MODEL_ATTACKS[attack].active:
            continue     # fooled on two-object composites only: its single-image maps are not the attack
        if method not in clean:
            clean[method] = U.reference_disagreement(control, base, x, method).numpy()
        manip[attack, method] = U.reference_disagreement(grid["models"][attack, method], base, x, method).numpy()
        rocs[attack, method] = roc(clean[method], manip[attack, method])
    return {"clean": clean, "manipulated": manip, "roc": rocs, "n": len(x)}


def detector_summary(rows) -> "pd.DataFrame":
    """A reader's table of detectors: rows of (detector, cases, Roc, clean scores, manipulated scores) →
    AUC, detection rate at the threshold that keeps false alarms ≤ 5 % on the clean cases, that rate, n."""
    import pandas as pd

    from ..detection import rates_at, threshold_for_false_alarm

    out = []
    for detector, cases, r, clean, manip in rows:
        thr = threshold_for_false_alarm(clean, 0.05)
        det, fa = rates_at(clean, manip, thr)
        out.append({"detector": detector, "clean vs": cases, "AUC": r.auc, "detected (%)": 100 * det,
                    "false alarms (%)": 100 * fa, "n clean": len(clean), "n manipulated": len(manip)})
    return pd.DataFrame(out)


def tabular_uncovering(names=None) -> "pd.DataFrame":
    """Chapter 08's uncovering of Slack et al.'s scaffold (its cached experiments), one row per
    (settings, data set, explainer): how often the scaffold hides the sensitive feature from the
    explainer, and the share of real rows whose decision a flip of the sensitive feature changes
    (the flip test), the sensitive feature's top-1 share with a real-row background (KernelSHAP),
    and the scaffold's agreement with the biased model on the explainer's probes."""
    import pandas as pd

    from .. import data
    from ..attacks import scaffold as T
    from ..plot import method_label

    rows = []
    for config, settings in (("slack", "Slack et al."), ("book", "the book's")):
        for n in names or data.TABULAR_DATASETS:
            for e in T.SCAFFOLD_EXPLAINERS:
                r = T.scaffold_experiment(n, e, config=config)
                rows.append({"attacker": settings, "data set": DATASET_NAMES.get(n, n), "explainer": method_label(e),
                             "sensitive feature first (scaffold)": float(r["ranks_scaffold"][0]),
                             "flip test: decisions changed": float(r["flip_scaffold"]),
                             "first with real-row background": float(r["ranks_scaffold_rows"][0])
                             if "ranks_scaffold_rows" in r else math.nan,
                             "agreement with the biased model on probes": float(r["f_agree_queries"])})
    return pd.DataFrame(rows)
