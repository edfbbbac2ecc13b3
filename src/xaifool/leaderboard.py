"""The robustness leaderboard: every interpreter against every attack, noise score and check of the book.

The leaderboard is built from *outcomes*, the raw per-image values of one (interpreter, column) pair
that the chapters have already computed (and cached); building it runs no attack. Its columns are a
registry (:data:`COLUMNS`): a new attack or metric is one :class:`Column` entry, and its outcomes.

``Outcome``      per-image values of one cell, and how they were obtained (``direct``: the interpreter
                 was attacked itself; ``transfer``: an attack on ``source`` was measured on it; …), or
                 why the cell is empty
``standings``    the table: one :class:`Cell` per (interpreter, column), with the estimate, its
                 bootstrap interval and n
``Standings.robustness_vs_attacks``  the rank correlation between a natural-robustness column and
                 the mean over attack columns, across interpreters, with a bootstrap interval
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .detection import mean_ci, spearman_ci
from .entries import Registry
from .validate import check_choice, check_fraction, check_int

__all__ = ["GROUPS", "HOW", "Column", "COLUMNS", "ATTACK_LABELS", "attack_label", "Outcome", "Cell", "Standings", "standings", "column_names"]

#: Column groups, in the table's order. Attacks are worst cases, the noise scores Monte Carlo
#: estimates of an average case: they are kept apart (as OpenXAI keeps faithfulness, stability and
#: fairness apart).
GROUPS = ("input attack", "model attack", "natural robustness", "sanity check", "cost")
#: How a cell's values were obtained.
HOW = ("direct", "transfer", "noise", "estimate", "verdict", "timed")


@dataclass(frozen=True)
class Column:
    """One column of the leaderboard.

    name:   key (an identifier)
    label:  header shown to readers
    group:  one of :data:`GROUPS`
    metric: what a cell's number is (one agreed metric per column), e.g. "FSR (%)"
    scale:  factor from the outcome's values to the number shown (100 for a share shown in %)
    higher_is_worse: True when a larger number means a less trustworthy interpreter
    """

    name: str
    label: str
    group: str
    metric: str
    scale: float = 1.0
    higher_is_worse: bool = True

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"name must be an identifier-like string, got {self.name!r}")
        check_choice(self.group, "group", GROUPS)


#: Readers' names of the attacks, input and model attacks sharing their objectives' keys (a registered
#: attack without one is shown by its key, "_" → " ").
ATTACK_LABELS = {"random": "random sign", "topk": "top-k", "center": "centre of mass", "region": "targeted region",
                 "target": "target map", "location": "location", "swap": "class swap"}


def attack_label(name: str) -> str:
    return ATTACK_LABELS.get(name, name.replace("_", " "))


def _attack_columns() -> list:
    """One column per input attack of the attack grid and per target-map attack, and one per registered
    model attack (so that a new attack in either registry is a new column)."""
    from .attacks.heo.registry import MODEL_ATTACKS
    from .attacks.input import DOMBROWSKI_KINDS, GRID_ATTACKS

    cols = [Column(f"input_{a}", attack_label(a), "input attack", "FSR (%)", 100.0)
            for a in GRID_ATTACKS + DOMBROWSKI_KINDS]
    return cols + [Column(f"model_{a}", attack_label(a), "model attack", "FSR (%)", 100.0) for a in MODEL_ATTACKS]


#: The leaderboard's columns, in order. Input attacks: FSR at τ = 0.5 on the top-k intersection with
#: the original map, label kept, ε = 8/255; model attacks: Heo et al.'s FSR by each attack's own rule
#: on held-out images; noise scores by Quantus; the sanity check: similarity of the maps after the
#: upper layers are randomised; cost: milliseconds per explanation.
COLUMNS = Registry("leaderboard column", Column, [
    *_attack_columns(),
    Column("max_sensitivity", "Max-Sensitivity", "natural robustness", "Quantus score"),
    Column("local_lipschitz", "Local Lipschitz", "natural robustness", "Quantus score"),
    Column("sanity", "randomisation", "sanity check", "similarity after the upper layers"),
    Column("cost", "cost", "cost", "ms per image", 1000.0),
])


def column_names(group: str | None = None) -> tuple[str, ...]:
    """The registered columns' names, in order (only those of ``group`` when given)."""
    if group is not None:
        check_choice(group, "group", GROUPS)
    return tuple(n for n, c in COLUMNS.items() if group is None or c.group == group)


@dataclass(frozen=True)
class Outcome:
    """The raw values behind one cell.

    values:  (n,) per-image values (a fooled flag 0/1, a score, a similarity, seconds); None for an
             empty cell
    how:     one of :data:`HOW`
    source:  for ``transfer``: the interpreter that was attacked
    verdict: for ``verdict``: "passes" / "fails"
    why:     for an empty cell: why it is empty (required then)
    n:       for one aggregate value (e.g. seconds per image timed over a batch): the images behind it
    """

    values: np.ndarray | None = None
    how: str = "direct"
    source: str | None = None
    verdict: str | None = None
    why: str | None = None
    n: int | None = None

    def __post_init__(self):
        check_choice(self.how, "how", HOW)
        if self.n is not None:
            check_int(self.n, "n", 1)
        if self.values is None:
            if not self.why:
                raise ValueError("why must say why the cell is empty when values is None")
            return
        v = np.asarray(self.values, dtype=np.float64).reshape(-1)
        if v.size == 0:
            raise ValueError("values must hold at least one value (None, with why, for an empty cell)")
        if not np.isfinite(v).all():
            raise ValueError("values must be finite")
        object.__setattr__(self, "values", v)
        if self.how == "transfer" and not self.source:
            raise ValueError("source must name the attacked interpreter when how='transfer'")

    @classmethod
    def empty(cls, why: str) -> "Outcome":
        return cls(None, "direct", why=why)


@dataclass(frozen=True)
class Cell:
    """One cell: the estimate (mean of the values × the column's scale), its bootstrap interval and n."""

    estimate: float
    low: float
    high: float
    n: int
    how: str
    source: str | None = None
    verdict: str | None = None
    why: str | None = None

    @property
    def empty(self) -> bool:
        return self.n == 0

    def text(self, digits: int = 0, label=str) -> str:
        """The cell as a reader sees it: "12 [5, 20] n=16 (via Grad-CAM)", or why it is empty."""
        if self.empty:
            return f"— ({self.why})"
        fmt = f"{{:.{digits}f}}"
        s = fmt.format(self.estimate)
        if not math.isnan(self.low):
            s += f" [{fmt.format(self.low)}, {fmt.format(self.high)}]"
        s += f" n={self.n}"
        if self.verdict:
            s = f"{self.verdict}, {s}"
        if self.how == "transfer":
            s += f" (via {label(self.source)})"
        return s


def _cell(outcome: Outcome, column: Column, n_boot: int, level: float, seed: int) -> Cell:
    if outcome.values is None:
        return Cell(math.nan, math.nan, math.nan, 0, outcome.how, why=outcome.why)
    v = outcome.values * column.scale
    if v.size >= 2:
        est, low, high = mean_ci(v, n_boot=n_boot, level=level, seed=seed)
    else:
        est, low, high = float(v[0]), math.nan, math.nan
    n = int(v.size) if outcome.n is None else int(outcome.n)
    return Cell(float(est), float(low), float(high), n, outcome.how, outcome.source, outcome.verdict)


@dataclass
class Standings:
    """The leaderboard: ``cells[interpreter][column]``, in the order of ``interpreters`` and ``columns``."""

    interpreters: tuple
    columns: tuple
    cells: dict
    level: float
    notes: dict = field(default_factory=dict)

    def estimates(self):
        """DataFrame of the estimates (NaN for empty cells), interpreters × columns."""
        import pandas as pd

        return pd.DataFrame({c: [self.cells[i][c].estimate for i in self.interpreters] for c in self.columns},
                            index=list(self.interpreters))

    def table(self, label=str, digits: dict | None = None):
        """DataFrame of the cells' texts with two header rows (group, column label)."""
        import pandas as pd

        digits = digits or {}
        cols = pd.MultiIndex.from_tuples([(COLUMNS[c].group, COLUMNS[c].label) for c in self.columns])
        rows = [[self.cells[i][c].text(digits.get(c, 0), label) for c in self.columns] for i in self.interpreters]
        return pd.DataFrame(rows, index=[label(i) for i in self.interpreters], columns=cols)

    def long(self, label=str):
        """One row per cell (for the CSV download): interpreter, group, column, metric, estimate, low, high, n, how, source, verdict, why."""
        import pandas as pd

        rows = []
        for i in self.interpreters:
            for c in self.columns:
                cell, col = self.cells[i][c], COLUMNS[c]
                rows.append({"interpreter": label(i), "group": col.group, "column": col.label, "metric": col.metric,
                             "estimate": cell.estimate, "low": cell.low, "high": cell.high, "n": cell.n,
                             "how": cell.how if not cell.empty else "empty",
                             "source": label(cell.source) if cell.source else "", "verdict": cell.verdict or "",
                             "why empty": cell.why or ""})
        return pd.DataFrame(rows)

    def robustness_vs_attacks(self, natural: str, attacks=None, *, n_boot: int = 2000, seed: int = 0) -> dict:
        """Spearman's ρ across interpreters between column ``natural`` and the mean of the ``attacks``
        columns (default: every input- and model-attack column but random noise), over the interpreters
        that have both; with a bootstrap interval over interpreters.
        Returns {"rho", "low", "high", "n", "interpreters"}."""
        natural = check_choice(natural, "natural", column_names("natural robustness"))
        attacks = tuple(attacks) if attacks is not None else tuple(
            c for c in self.columns if COLUMNS[c].group in ("input attack", "model attack") and c != "input_random")
        for a in attacks:
            check_choice(a, "attacks", tuple(c for c in self.columns
                                             if COLUMNS[c].group in ("input attack", "model attack")))
        if not attacks:
            raise ValueError("attacks must name at least one attack column")
        xs, ys, names = [], [], []
        for i in self.interpreters:
            nat = self.cells[i][natural]
            adv = [self.cells[i][a].estimate for a in attacks if not self.cells[i][a].empty]
            if nat.empty or not adv:
                continue
            xs.append(nat.estimate)
            ys.append(float(np.mean(adv)))
            names.append(i)
        if len(names) < 3:
            raise ValueError(f"natural: fewer than 3 interpreters have both {natural!r} and an attack column")
        est, low, high = spearman_ci(np.asarray(xs), np.asarray(ys), n_boot=n_boot, level=self.level, seed=seed)
        return {"rho": est, "low": low, "high": high, "n": len(names), "interpreters": tuple(names)}


def standings(outcomes: dict, interpreters=None, columns=None, *, level: float = 0.95, n_boot: int = 2000,
              seed: int = 0) -> Standings:
    """The leaderboard from ``outcomes`` ``{(interpreter, column): Outcome}``.

    interpreters: rows, in order (default: every interpreter that has an outcome, in first-seen order)
    columns:      registered column names, in order (default: every column of :data:`COLUMNS` that has
                  an outcome)
    A (row, column) pair without an outcome becomes an empty cell saying "not run". Bootstrap
    intervals are percentile intervals over images (``n_boot`` resamples, seeded), widened to contain
    their estimate.
    """
    if not isinstance(outcomes, dict) or not outcomes:
        raise ValueError("outcomes must be a non-empty dict {(interpreter, column): Outcome}")
    for key, o in outcomes.items():
        if not (isinstance(key, tuple) and len(key) == 2):
            raise ValueError(f"outcomes keys must be (interpreter, column) pairs, got {key!r}")
        if key[1] not in COLUMNS:
            raise ValueError(f"columns: {key[1]!r} in outcomes is not a registered column; registered: {tuple(COLUMNS)}")
        if not isinstance(o, Outcome):
            raise ValueError(f"outcomes[{key!r}] must be an Outcome, got {type(o).__name__}")
    seen = tuple(dict.fromkeys(i for i, _ in outcomes))
    if interpreters is None:
        interpreters = seen
    else:
        interpreters = tuple(interpreters)
        for i in interpreters:
            check_choice(i, "interpreters", seen)
    if columns is None:
        present = {c for _, c in outcomes}
        columns = tuple(c for c in COLUMNS if c in present)
    else:
        columns = tuple(columns)
        for c in columns:
            check_choice(c, "columns", tuple(COLUMNS))
    if not interpreters or not columns:
        raise ValueError("interpreters and columns must each name at least one entry")
    check_fraction(level, "level")
    n_boot = check_int(n_boot, "n_boot", 100)
    cells = {i: {c: _cell(outcomes.get((i, c), Outcome.empty("not run")), COLUMNS[c], n_boot, level, seed)
                 for c in columns} for i in interpreters}
    return Standings(interpreters, columns, cells, level)
