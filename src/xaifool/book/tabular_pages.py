"""Presentation helpers for chapters 06 (sanity checks) and 08 (tabular experiments): reader-facing
tables built from the frames and dicts the experiments return, so that the pages' visible cells stay
short and no internal key, raw Python value (``None``, tuples, ``True``) or unformatted fraction
reaches a table.
"""
from __future__ import annotations

import math

import pandas as pd

__all__ = ["yes_no", "percent", "sanity_manipulation_table", "config_text", "scaffold_settings_table",
           "CONFIG_ROWS", "CONFIG_VALUES", "percent_frame", "dataset_cards_table"]


def yes_no(value) -> str:
    """``True``/``False`` as "yes"/"no" (anything else unchanged)."""
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return "yes" if value else "no"
    return value


def percent(value, digits: int = 0) -> str:
    """A fraction in [0, 1] as a percentage text, "–" for a missing value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{100 * float(value):.{digits}f}"


def sanity_manipulation_table(checks: pd.DataFrame, accuracy: dict, base_accuracy: float) -> pd.DataFrame:
    """Chapter 06's manipulated-model table, narrow enough for the page.

    checks:   :func:`xaifool.sanity.manipulation_checks` (index: reader labels "attack × interpreter")
    accuracy: {row label: held-out accuracy of the manipulated model in [0, 1]}
    base_accuracy: the original model's held-out accuracy in [0, 1]
    """
    out = pd.DataFrame(index=list(checks.index))
    out["accuracy (%)"] = [f"{100 * base_accuracy:.1f} → {100 * accuracy[k]:.1f}" for k in checks.index]
    out["ρ to original's map"] = checks["similarity to original's map"].map("{:.2f}".format)
    out["ρ random, original"] = checks["randomisation, original"].map("{:.2f}".format)
    out["ρ random, manipulated"] = checks["randomisation, manipulated"].map("{:.2f}".format)
    out["passes"] = checks["manipulated passes"].map(yes_no)
    return out


#: the fields of :class:`xaifool.attacks.scaffold.ScaffoldConfig`, as chapter 08 names them
CONFIG_ROWS = {
    "background": "KernelSHAP background",
    "n_centres": "background centres",
    "detector": "detector trained on",
    "threshold": "detector threshold on P(real)",
    "pairs": "0/1 columns encoded as two columns",
    "rule": "rule of f and ψ",
    "decoys": "feature(s) of ψ",
    "lime_around_instance": "LIME samples around the row",
    "lime_multiplier": "detector data: copies per LIME noise draw",
    "shap_multiplier": "detector data: copies of the real rows",
    "n_substitutions": "detector data: substituted rows",
    "detector_max_rows": "detector training rows (cap)",
}
CONFIG_VALUES = {
    "kmeans": "shap.kmeans on raw units",
    "kmeans_std": "shap.kmeans on standardised features",
    "kmeans_unrounded": "k-means on standardised features, unrounded",
    "rows": "real training rows",
    "queries": "the explainer's recorded probes",
    "perturbations": "Slack et al.'s synthetic perturbations",
    "half": "x > 0.5",
    "mean": "x > its training mean",
}


def config_text(key: str, value, *, n_centres: int, keep_real: float) -> str:
    """One field of a scaffold configuration as reader text (``None``: the profile's default)."""
    if value is None:
        return {"n_centres": f"{n_centres} (the profile's)",
                "threshold": f"keeps ≥ {100 * keep_real:.0f} % of real rows with f, at most 0.5",
                "detector_max_rows": "no cap"}.get(key, "–")
    if isinstance(value, bool):
        return yes_no(value)
    if isinstance(value, (tuple, list)):
        return ", ".join(str(v).replace("_", " ") for v in value) or "none"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:g}"
    return CONFIG_VALUES.get(value, value)


def scaffold_settings_table(settings: dict, titles: dict, *, n_centres: int, keep_real: float) -> pd.DataFrame:
    """Chapter 08's table of the two attackers' settings: ``settings`` {config: ScaffoldConfig.as_dict()},
    ``titles`` {config: column title}."""
    return pd.DataFrame({titles[c]: {CONFIG_ROWS.get(k, k.replace("_", " ")):
                                     config_text(k, v, n_centres=n_centres, keep_real=keep_real)
                                     for k, v in d.items() if k != "name"}
                         for c, d in settings.items()}).rename_axis("setting (COMPAS)")


def percent_frame(frame: pd.DataFrame, columns=None, *, digits: int = 0) -> pd.DataFrame:
    """``frame`` with the fractions in ``columns`` (default: all) as percentage texts and " (%)"
    added to their headers; other columns are kept (integers with thousands separators)."""
    columns = list(frame.columns if columns is None else columns)
    out = pd.DataFrame(index=frame.index)
    for c in frame.columns:
        if c in columns:
            out[f"{c} (%)"] = frame[c].map(lambda v: percent(v, digits))
        elif pd.api.types.is_integer_dtype(frame[c]):
            out[c] = frame[c].map("{:,}".format)
        else:
            out[c] = frame[c]
    return out


def dataset_cards_table(cards: pd.DataFrame, titles: dict) -> pd.DataFrame:
    """Chapter 08's data-set cards (:func:`xaifool.attacks.scaffold.dataset_card` rows, indexed by
    data set): shares and base rates in percent, counts with thousands separators. Transposed —
    one column per data set — so that the table fits the page."""
    frac = [c for c in cards.columns if "rate" in c or "share" in c]
    out = percent_frame(cards.rename(index=titles), frac).T
    out.columns.name = None
    return out.rename_axis("data-set card")
