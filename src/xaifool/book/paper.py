"""The "paper vs this book" tables: one function, :func:`paper_table`, builds every chapter's table from
rows of cells, and the chapters' row builders turn their numbers — of this build or of a recorded
full-profile run (:mod:`xaifool.book.full_results`) — into those cells. A cell whose numbers a partial
record does not hold yet reads :data:`NOT_RECORDED`."""
from __future__ import annotations

from ..leaderboard import attack_label

__all__ = ["NOT_RECORDED", "NO_RUN", "paper_table", "recorded_cell", "INPUT_CLAIMS", "input_paper_rows", "DATASET_TITLES", "rows_text",
           "tabular_recorded_cells", "recorded_comparison", "matched_accuracy_text", "matched_accuracy_cell"]

#: A cell of the recorded column whose part the record does not hold (yet).
NOT_RECORDED = "not recorded yet"
#: The recorded column where no full-profile run was recorded.
NO_RUN = "no full-profile run recorded yet"


def recorded_cell(record: dict | None, cell) -> str:
    """``cell(numbers)`` of a recorded run, :data:`NOT_RECORDED` where the record lacks what it reads
    (a ``KeyError`` or a ``None`` cell: an unfinished run), :data:`NO_RUN` where there is no record."""
    if record is None:
        return NO_RUN
    try:
        out = cell(record["numbers"])
    except (KeyError, TypeError):
        return NOT_RECORDED
    return NOT_RECORDED if out is None else out


def paper_table(rows, columns, *, index: str | None = None, caption: str | None = None):
    """Every chapter's "paper vs this book" table: ``rows`` (sequences of cells, one per column, or dicts
    by column name) under ``columns``; ``index``: the column that labels the rows (else they are
    unlabelled); returns a pandas Styler (no row numbers) ready to display."""
    import pandas as pd

    columns = list(columns)
    if not columns:
        raise ValueError("columns must name at least one column")
    rows = [dict(r) if isinstance(r, dict) else dict(zip(columns, r)) for r in rows]
    if not rows:
        raise ValueError("rows must hold at least one row")
    bad = [r for r in rows if set(r) != set(columns)]
    if bad:
        raise ValueError(f"rows must have one cell per column {columns}; got a row with {sorted(bad[0])}")
    frame = pd.DataFrame(rows, columns=columns)
    if index is not None:
        if index not in columns:
            raise ValueError(f"index must be one of the columns {columns}, got {index!r}")
        style = frame.set_index(index).style
    else:
        style = frame.style.hide(axis="index")
    return style.set_caption(caption) if caption else style


def _grad_cam_noise(n):
    c = n["curves"]
    return (f"Grad-CAM: top-k {c['gradcam']['random']['8']['topk']:.2f} after noise (ε = 8/255); gradient: "
            f"{c['gradient']['random']['8']['topk']:.2f}")


def _grad_cam_attacks(n):
    c = n["curves"]["gradcam"]
    return (f"Grad-CAM top-k {c['topk']['8']['topk']:.2f} / {c['center']['8']['topk']:.2f}, ρ {c['topk']['8']['spearman']:.2f}"
            + (f"; ImageNet gradient top-k {n['imagenet']['gradient']['topk']['topk']:.2f} "
               f"(noise {n['imagenet']['gradient']['random']['topk']:.2f})" if "gradient" in n.get("imagenet", {}) else ""))


def _dombrowski(m):
    def cell(n):
        d = n["dombrowski"][m]
        return (f"SSIM {d['ssim_before']:.2f} → {d['ssim_after']:.2f}, Pearson {d['pearson_before']:.2f} → "
                f"{d['pearson_after']:.2f}; labels kept {d['label_kept']:.0%}")
    return cell


#: The input chapter's claims: (paper, headline finding, cell(numbers) → what the numbers show).
INPUT_CLAIMS = (
    ("Ghorbani et al. 2019", "random sign noise barely moves the top-k intersection", _grad_cam_noise),
    ("Ghorbani et al. 2019", "top-k / centre attacks at ε = 8/255 drop top-k sharply, Spearman falls too",
     _grad_cam_attacks),
    ("Dombrowski et al. 2019", "manipulated map close to the target, output almost unchanged", _dombrowski("gradient")),
    ("Dombrowski et al. 2019", "LRP can be steered to a target map like the gradient-based maps", _dombrowski("lrp")),
)


def input_paper_rows(n: dict) -> list[tuple[str, str, str | None]]:
    """(paper, headline finding, what these numbers show) for the input chapter's "paper vs this
    book" table, one row per claim of :data:`INPUT_CLAIMS`, from :func:`xaifool.book.experiments.input_numbers`
    — of the build itself or of a recorded full-profile run; the last cell is None where the numbers
    do not hold the attacks it reads (an unfinished run)."""
    rows = []
    for paper, finding, cell in INPUT_CLAIMS:
        try:
            text = cell(n)
        except KeyError:
            text = None
        rows.append((paper, finding, text))
    return rows


#: How the prose names the data sets.
DATASET_TITLES = {"compas": "COMPAS", "german": "German", "adult": "Adult"}


def rows_text(counts: dict) -> str:
    """The explained rows per data set as prose: ``"20"`` where every data set has the same count,
    else ``"1,235 (COMPAS), 200 (German) and 603 (Adult)"`` (the full profile explains shares of
    the test splits). ``counts``: data set → rows."""
    if not counts:
        raise ValueError("counts must name at least one data set")
    values = [int(v) for v in counts.values()]
    if len(set(values)) == 1:
        return f"{values[0]:,}"
    parts = [f"{v:,} ({DATASET_TITLES.get(n, n)})" for n, v in zip(counts, values)]
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def tabular_recorded_cells(rec: dict | None) -> list[str]:
    """Chapter 08's "paper vs this book" rows (COMPAS: Slack with LIME, with KernelSHAP — under Slack's
    settings, then under the book's; Dimanov) as
    read from a recorded full-profile run (:func:`xaifool.book.full_results.load`); parts the run did not
    finish read "not recorded"."""
    if rec is None:
        return ["no full-profile run recorded"] * 5
    dim = rec["numbers"].get("dimanov", {})
    where = f" ({rec['device_name']}, {rec['date'][:10]})"
    cells = []
    for key in ("slack_settings", "slack"):
        for e in ("lime", "kernel_shap"):
            r = rec["numbers"].get(key, {}).get("compas", {}).get(e)
            cells.append(f"{r['top1_f']:.0%} → {r['top1_scaffold']:.0%} on {r['n_explain']:,} rows, fidelity "
                         f"{r['fidelity']:.0%}{where}" if r else "not recorded")
    d = dim.get("compas")
    cells.append(f"gradient share {d['before']['share_gradient']:.2f} → {d['after']['share_gradient']:.2f}, "
                 f"accuracy {d['before']['accuracy']:.1%} → {d['after']['accuracy']:.1%}{where}" if d
                 else "not recorded")
    return cells


def recorded_comparison(build: dict, record: dict | None):
    """This build's verdicts next to a recorded full-profile run's (:mod:`xaifool.book.full_results`).

    build:  ``{base_key: verdict DataFrame}`` (``"mobilenet_v2"``, ``"cifar_resnet20"``), as :func:`xaifool.sanity.verdict` returns
    record: the chapter's full-results record (``numbers[base_key]["methods"][method]`` as
            :func:`xaifool.book.experiments.verdict_numbers` writes it), or None
    returns one row per interpreter, columns (base_key, "upper, build" / "upper, recorded" /
            "passes, build" / "passes, recorded"); recorded cells are NaN / "–" where the record lacks them.
    """
    import pandas as pd

    if not isinstance(build, dict) or not build:
        raise ValueError("build must be a non-empty dict {base_key: verdict DataFrame}")
    numbers = (record or {}).get("numbers", {})
    cols = {}
    for key, v in build.items():
        rec = numbers.get(key, {}).get("methods", {})
        cols[(key, "upper, build")] = v["upper layers (mean)"].astype(float)
        cols[(key, "upper, recorded")] = pd.Series({m: rec[m]["upper"] if m in rec else float("nan") for m in v.index})
        cols[(key, "passes, build")] = v["passes"].map({True: "yes", False: "no"})
        cols[(key, "passes, recorded")] = pd.Series(
            {m: ("yes" if rec[m]["passes"] else "no") if m in rec else "–" for m in v.index})
    return pd.DataFrame(cols)


def matched_accuracy_text(best: dict, max_drop: float, labels=None) -> str:
    """What the sweep says about Heo et al.'s claim, from numbers only: ``best`` maps an (attack,
    interpreter) pair to :func:`xaifool.attacks.heo.best_within`'s row (None where no run kept the
    accuracy within ``max_drop``); ``labels`` names the interpreters (default: the keys)."""
    if not best:
        raise ValueError("best must hold at least one (attack, interpreter) pair")
    name = lambda pair: f"{attack_label(pair[0])} × {(labels or {}).get(pair[1], pair[1])}"  # noqa: E731
    points = f"{100 * max_drop:g} points"
    kept = {p: r for p, r in best.items() if r is not None}
    parts = []
    for pair, r in kept.items():
        parts.append(f"{name(pair)} reaches an FSR of {r['fsr']:.0%} at λ = {r['lam']:g} and learning rate "
                     f"{r['lr']:g} ({100 * r['accuracy']:.1f} % → {100 * r['accuracy_adv']:.1f} %)")
    lost = [name(p) for p, r in best.items() if r is None]
    text = ""
    if parts:
        text += f"Within {points} of held-out accuracy, " + "; ".join(parts) + ". "
    if lost:
        text += (f"No run of {', '.join(lost)} keeps the accuracy within {points}: on this network the sweep "
                 "buys fooling with accuracy. ")
    low = [name(p) for p, r in kept.items() if r["fsr"] < 0.5]
    if low:
        text += (f"For {', '.join(low)} fewer than half of the held-out images are fooled at matched accuracy, "
                 "so Heo et al.'s claim — fooled explanations while top-1 barely moves — does not carry over "
                 "to it here.")
    elif kept and not lost:
        text += "At matched accuracy the attack still fools most held-out images, as Heo et al. claim."
    return text.strip()


def matched_accuracy_cell(record: dict | None, best: dict, pair, shown) -> str:
    """A recorded sweep's cell of the paper table for ``pair``: ``shown(row)`` of its best run within the
    accuracy bound (``best``: pair → row or None, as :func:`xaifool.attacks.heo.best_within` gives),
    :data:`NO_RUN` without a record, :data:`NOT_RECORDED` where the record has not reached the pair."""
    if record is None:
        return NO_RUN
    if tuple(pair) not in best:
        return NOT_RECORDED
    row = best[tuple(pair)]
    return "no run of the sweep keeps the accuracy" if row is None else shown(row)
