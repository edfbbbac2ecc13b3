"""Presentation helpers of the chapters on interpreters (01) and input manipulation (02a): the
tables those pages show, built from results the pages compute, with reader labels and units.

Nothing here computes an explanation or an attack; every function only arranges numbers.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ..leaderboard import attack_label
from ..plot import method_label

__all__ = ["FAMILY", "taxonomy_table", "prediction_labels", "cam_grid", "cost_table",
           "definition2_table", "similarity_table", "target_map_table", "attack_cost_table",
           "transfer_table", "device_text"]

#: Reader names of the registry's families.
FAMILY = {"gradient": "gradient", "cam": "class activation map", "lrp": "relevance propagation",
          "perturbation": "perturbation"}


def taxonomy_table(methods) -> pd.DataFrame:
    """One row per registered interpreter (``xaifool.explain.METHODS``): access, scope, family and
    whether attacks can differentiate it. The papers are cited in the chapter's prose."""
    rows = [(method_label(name), "model-agnostic" if m.family == "perturbation" else "model-transparent",
             "local", FAMILY.get(m.family, m.family), "yes" if m.differentiable else "no")
            for name, m in methods.items()]
    return pd.DataFrame(rows, columns=["interpreter", "access", "scope", "family",
                                       "differentiable"]).set_index("interpreter")


def prediction_labels(classes, pred, score, truth) -> list[str]:
    """"class\\nscore" above each image, with the true class where the prediction is wrong."""
    return [f"{classes[p]}\n{s:.0%}" + ("" if p == y else f" (true: {classes[y]})")
            for p, s, y in zip(pred.tolist(), score.tolist(), truth.tolist())]


def cam_grid(model, x) -> str:
    """"H × W" of the layer Grad-CAM reads (``model.cam_layer``) for inputs like ``x``."""
    shapes = []
    hook = model.get_submodule(model.cam_layer).register_forward_hook(
        lambda m, i, o: shapes.append(tuple(o.shape[-2:])))
    try:
        with torch.no_grad():
            model(x[:1])
    finally:
        hook.remove()
    return f"{shapes[0][0]} × {shapes[0][1]}"


def cost_table(seconds: dict, P):
    """Interpreter, model passes per image and milliseconds per image (a styled table)."""
    ops = {"gradient": "1 backward", "grad_x_input": "1 backward",
           "smoothgrad": f"{P.smoothgrad_samples} backward", "integrated_gradients": f"{P.ig_steps} backward",
           "gradcam": "1 backward (to last conv)", "lrp": "1 modified backward",
           "guided_backprop": "1 modified backward", "guided_gradcam": "2 backward",
           "lime": f"{P.lime_image_samples} forward", "kernel_shap": f"{P.lime_image_samples} forward"}
    frame = pd.DataFrame({"interpreter": [method_label(m) for m in seconds],
                          "model passes per image": [ops.get(m, "–") for m in seconds],
                          "time per image (ms)": [1000 * s for s in seconds.values()]}).set_index("interpreter")
    return frame.style.format({"time per image (ms)": "{:.0f}"})


def device_text(device) -> str:
    """"`cpu` with 2 threads": where the timings of a page were measured."""
    n = torch.get_num_threads()
    return f"`{device}` with {n} thread{'s' if n != 1 else ''}"


# --------------------------------------------------------------------------------------
# Input manipulation (02a)
# --------------------------------------------------------------------------------------

D2_COLUMNS = {"max_linf_over_eps": "largest ‖δ‖∞ / ε", "in_range": "x_adv in [0, 1]",
              "label_kept": "labels kept", "success": "improved", "confidence_change": "mean Δ confidence",
              "seconds": "time per image (s)"}


def definition2_table(results: dict) -> pd.DataFrame:
    """Definition 2's three conditions per attack ({reader name: AttackResult}), with reader columns;
    the random-sign row has no objective, so "improved" is empty there."""
    d2 = pd.DataFrame({name: r.definition2() for name, r in results.items()}).T
    d2["seconds"] = [r.seconds / len(r) for r in results.values()]
    d2["in_range"] = d2["in_range"].map(lambda v: "yes" if v else "no")
    if "random sign" in d2.index:
        d2.loc["random sign", "success"] = float("nan")
    return d2.rename(columns=D2_COLUMNS).rename_axis("attack")


def style_definition2(d2: pd.DataFrame):
    return d2.style.format(na_rep="–", formatter={
        D2_COLUMNS["max_linf_over_eps"]: "{:.4f}", D2_COLUMNS["label_kept"]: "{:.0%}",
        D2_COLUMNS["success"]: "{:.0%}", D2_COLUMNS["confidence_change"]: "{:+.3f}",
        D2_COLUMNS["seconds"]: "{:.2f}"})


def similarity_table(pm: pd.DataFrame, methods, attacks=("random", "topk", "center")) -> pd.DataFrame:
    """Mean top-k intersection and Spearman ρ per interpreter (rows) and attack (columns) from one
    budget's part of :func:`xaifool.attacks.summary.attack_table`."""
    t = (pm.groupby(["method", "attack"])[["topk", "spearman"]].mean().unstack("attack")
         .reindex(list(methods)))
    t = t[[(m, a) for m in ("topk", "spearman") for a in attacks]]
    t.columns = [f"{'top-k' if m == 'topk' else 'ρ'} / {attack_label(a)}" for m, a in t.columns]
    return t.rename(index=method_label).rename_axis("interpreter")


def target_map_table(results: dict, metrics) -> pd.DataFrame:
    """Dombrowski's target-map attack ({interpreter: AttackResult}): SSIM, Pearson and MSE between the
    map and the target before and after, the largest change of a class probability and the labels kept."""
    rows = {}
    for method, res in results.items():
        label = method_label(method)
        for when, h in (("h(x) vs target", res.heatmap), ("h(x_adv) vs target", res.heatmap_adv)):
            rows[(label, when)] = {"SSIM": float(metrics.ssim(h, res.target_map).mean()),
                                   "Pearson": float(metrics.pearson(h, res.target_map).mean()),
                                   "MSE": float(metrics.mse(h, res.target_map).mean())}
        prob, prob_adv = res.logits.softmax(1), res.logits_adv.softmax(1)
        rows[(label, "h(x_adv) vs target")]["largest Δ probability"] = float(
            (prob_adv - prob).abs().amax(1).mean())
        rows[(label, "h(x_adv) vs target")]["labels kept"] = float(res.label_kept.float().mean())
    return pd.DataFrame(rows).T.rename_axis(["interpreter", "maps compared"])


def style_target_map(t: pd.DataFrame):
    return t.style.format({"SSIM": "{:.3f}", "Pearson": "{:.3f}", "MSE": "{:.2e}",
                           "largest Δ probability": "{:.4f}", "labels kept": "{:.0%}"}, na_rep="–")


def attack_cost_table(pm: pd.DataFrame, methods, targets: dict, n_images: int) -> pd.DataFrame:
    """Seconds per image of each iterative attack (columns) on each interpreter (rows);
    ``targets`` = {interpreter: target-map AttackResult}."""
    cost = (pm[pm.attack != "random"].groupby(["method", "attack"]).seconds_per_image.first()
            .unstack("attack").reindex(list(methods)))
    cost["target"] = [targets[m].seconds / n_images if m in targets else np.nan for m in methods]
    cost.columns = [f"{attack_label(a)} (s per image)" for a in cost.columns]
    return cost.rename(index=method_label).rename_axis("interpreter")


def transfer_table(moved: dict, noise: dict) -> pd.DataFrame:
    """Top-k intersection and ρ of each interpreter after the attack on the gradient and after
    random-sign noise ({interpreter: similarity frame})."""
    return pd.DataFrame({method_label(m): {
        "top-k (attack on gradient)": float(moved[m]["topk"].mean()),
        "top-k (random sign)": float(noise[m]["topk"].mean()),
        "ρ (attack on gradient)": float(moved[m]["spearman"].mean()),
        "ρ (random sign)": float(noise[m]["spearman"].mean())} for m in moved}).T.rename_axis("interpreter")
