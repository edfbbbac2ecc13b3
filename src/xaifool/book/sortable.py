"""The leaderboard as a static HTML table a reader can sort (``book/_static/sortable.js``, no server)
and download as CSV (a ``data:`` link: no file is written next to the book)."""
from __future__ import annotations

import base64
import html
import math

from ..leaderboard import COLUMNS, Standings

__all__ = ["board_html", "digits"]


def digits(column: str) -> int:
    """Decimals shown for a column: none for percentages, one for milliseconds, three for noise scores
    (Local Lipschitz estimates are hundredths), two for the rest."""
    c = COLUMNS[column]
    return 0 if c.scale == 100 else 1 if c.scale == 1000 else 3 if c.group == "natural robustness" else 2


def _td(cell, column, label) -> str:
    if cell.empty:
        return f'<td class="xf-empty" data-sort="">—<br><small>{html.escape(cell.why)}</small></td>'
    d = digits(column)
    text = f"{cell.estimate:.{d}f}"
    if cell.verdict:
        text = f"{cell.verdict}<br>{text}"
    lines = [text] + ([] if math.isnan(cell.low) else [f"<small>[{cell.low:.{d}f}, {cell.high:.{d}f}]</small>"])
    lines.append(f"<small>n={cell.n}</small>")
    cls = ""
    if cell.how == "transfer":
        lines.append(f"<small>via {html.escape(label(cell.source))}</small>")
        cls = ' class="xf-transfer"'
    return f'<td{cls} data-sort="{cell.estimate:.6g}">{"<br>".join(lines)}</td>'


def board_html(st: Standings, label=str, *, groups=None, csv_name: str | None = "leaderboard.csv") -> str:
    """The standings as one HTML block: two header rows (group with its metric, column), a row per
    interpreter, every cell with its estimate, interval, n and how it was obtained; sortable by
    clicking a column header; and (with ``csv_name``) a link that downloads :meth:`Standings.long` —
    every cell, whichever ``groups`` (column groups, default all) the table shows — as CSV."""
    columns = [c for c in st.columns if groups is None or COLUMNS[c].group in groups]
    if not columns:
        raise ValueError(f"groups must name at least one column group of the standings, got {groups!r}")
    groups: list[list] = []
    for c in columns:
        g = COLUMNS[c].group
        if groups and groups[-1][0] == g:
            groups[-1][1].append(c)
        else:
            groups.append([g, [c]])

    def group_head(g, cols):
        metrics = {COLUMNS[c].metric for c in cols}
        unit = f"<br><small>{html.escape(metrics.pop())}</small>" if len(metrics) == 1 else ""
        return f'<th colspan="{len(cols)}">{html.escape(g)}{unit}</th>'

    shared = {c for g, cols in groups if len({COLUMNS[x].metric for x in cols}) == 1 for c in cols}
    head1 = '<tr><th rowspan="2">interpreter</th>' + "".join(group_head(g, cols) for g, cols in groups) + "</tr>"
    head2 = "<tr>" + "".join(
        f'<th title="{html.escape(COLUMNS[c].metric)}">{html.escape(COLUMNS[c].label)}'
        + ("" if c in shared else f"<br><small>{html.escape(COLUMNS[c].metric)}</small>") + "</th>"
        for c in columns) + "</tr>"
    body = "".join(
        f'<tr><th data-sort="{html.escape(label(i))}">{html.escape(label(i))}</th>'
        + "".join(_td(st.cells[i][c], c, label) for c in columns) + "</tr>"
        for i in st.interpreters)
    out = f'<div class="xf-board"><table class="xf-sortable"><thead>{head1}{head2}</thead><tbody>{body}</tbody></table></div>'
    if csv_name:
        csv = st.long(label).to_csv(index=False).encode()
        out += (f'<p><a download="{csv_name}" href="data:text/csv;base64,{base64.b64encode(csv).decode()}">'
                f"Download the whole leaderboard as CSV ({len(st.interpreters) * len(st.columns)} cells)</a>.</p>")
    return out
