"""Reader-facing tables of chapters 06 and 08 (xaifool.book.tabular_pages): no raw Python values."""
import math

import pandas as pd

from xaifool.book import tabular_pages as TP


def test_yes_no_and_percent():
    assert TP.yes_no(True) == "yes" and TP.yes_no(False) == "no" and TP.yes_no("x") == "x"
    assert TP.percent(0.123, 1) == "12.3" and TP.percent(None) == "–" and TP.percent(math.nan) == "–"


def test_config_text_has_no_python_values():
    kw = dict(n_centres=20, keep_real=0.97)
    assert TP.config_text("threshold", None, **kw) == "keeps ≥ 97 % of real rows with f, at most 0.5"
    assert TP.config_text("pairs", ("felony_charge", "male"), **kw) == "felony charge, male"
    assert TP.config_text("pairs", (), **kw) == "none"
    assert TP.config_text("lime_around_instance", True, **kw) == "yes"
    assert TP.config_text("rule", "half", **kw) == "x > 0.5"
    assert TP.config_text("n_substitutions", 20000, **kw) == "20,000"


def test_percent_frame_headers_and_cells():
    f = pd.DataFrame({"fidelity": [0.95, 1.0], "rows": [1235, 20], "name": ["a", "b"]})
    out = TP.percent_frame(f, ["fidelity"], digits=1)
    assert list(out.columns) == ["fidelity (%)", "rows", "name"]
    assert list(out["fidelity (%)"]) == ["95.0", "100.0"] and list(out["rows"]) == ["1,235", "20"]


def test_sanity_manipulation_table():
    checks = pd.DataFrame({"similarity to original's map": [0.2], "randomisation, original": [0.1],
                           "randomisation, manipulated": [0.12], "manipulated passes": [True],
                           "original, logits random": [0.3], "method": ["gradcam"]},
                          index=["top-k × Grad-CAM"])
    out = TP.sanity_manipulation_table(checks, {"top-k × Grad-CAM": 0.9}, 0.91)
    assert out.loc["top-k × Grad-CAM", "passes"] == "yes"
    assert out.loc["top-k × Grad-CAM", "accuracy (%)"] == "91.0 → 90.0"
    assert out.index.name is None and len(out.columns) == 5
    assert not any("True" in str(v) or "None" in str(v) for v in out.to_numpy().ravel())


def test_scaffold_settings_table():
    d = {"name": "slack", "pairs": ("felony_charge", "male"), "threshold": 0.5, "n_centres": None}
    t = TP.scaffold_settings_table({"slack": d}, {"slack": "Slack et al."}, n_centres=20, keep_real=0.97)
    assert t.loc["0/1 columns encoded as two columns", "Slack et al."] == "felony charge, male"
    assert t.loc["background centres", "Slack et al."] == "20 (the profile's)"


def test_dataset_cards_table_is_one_column_per_data_set():
    cards = pd.DataFrame({"rows": [6172, 1000], "features": [8, 38], "share sensitive = 1": [0.51, 0.69],
                          "base rate (sensitive = 0)": [0.38, 0.65]}, index=["compas", "german"])
    t = TP.dataset_cards_table(cards, {"compas": "COMPAS", "german": "German"})
    assert list(t.columns) == ["COMPAS", "German"]
    assert t.loc["rows", "COMPAS"] == "6,172" and t.loc["share sensitive = 1 (%)", "German"] == "69"
