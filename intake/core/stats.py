"""Figures for reports: small-cell suppression, charts as data, accessible SVG, percentiles.

Pure: values in, text out. Every count a report shows goes through
:func:`cell`, so a count below the minimum cell (``INTAKE_STATS_MIN_CELL``,
10 by default) is shown as "< 10" in the page, the chart, the CSV and
``intake stats`` alike (promise P1: summary statistics only).

Why our own SVG and not pygal: pygal's output carries an inline ``<style>``
element, ``style="..."`` attributes and an inline ``<script>`` (even with
``js=[]``), all of which the app's CSP (``style-src 'self'; script-src
'self'``) refuses; a chart here is a few ``<rect>`` and ``<text>`` elements
with presentation attributes, a ``<title>`` and a ``<desc>``, and the same
figures in a table beside it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

Value = int | float | None


def suppressed(n: int, min_cell: int) -> bool:
    """A count too small to show (0 is shown: it identifies no one)."""
    return 0 < n < min_cell


def cell(n: int, min_cell: int) -> str:
    """A count as a report shows it: the number, or "< min_cell"."""
    return f"< {min_cell}" if suppressed(n, min_cell) else str(n)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) by linear interpolation; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Row:
    """One bar: its label, the number drawn (None = not shown) and the cells of the table."""

    label: str
    value: Value
    cells: tuple[str, ...]


@dataclass(frozen=True)
class Chart:
    """A chart as data: what the SVG draws, what the table and the CSV hold."""

    id: str
    title: str
    description: str
    columns: tuple[str, ...]  # the table's headers, the label's column first
    rows: tuple[Row, ...] = ()
    note: str = ""
    unit: str = ""
    group: str = field(default="", compare=False)

    def table(self) -> list[list[str]]:
        """The header row, then one row per bar (label first): the table and the CSV."""
        return [list(self.columns), *([r.label, *r.cells] for r in self.rows)]


def count_row(label: str, n: int, min_cell: int) -> Row:
    """A bar of a count: not drawn, and shown as "< N", when it is too small."""
    return Row(label, None if suppressed(n, min_cell) else n, (cell(n, min_cell),))


BAR_COLOUR = "#1d5a8a"  # 7.3:1 on white
TEXT_COLOUR = "#1b1b1b"
WIDTH, LABEL_WIDTH, BAR_HEIGHT, GAP = 640, 200, 20, 8


def svg(chart: Chart) -> str:
    """A horizontal bar chart as inline SVG: role img, title, desc; no script, no style.

    Screen readers get the title and description from the SVG and the figures from
    the table that follows it on the page (``aria-describedby`` names it too).
    """
    drawn = [r.value for r in chart.rows if r.value is not None]
    top = max([float(v) for v in drawn] + [0.0])
    height = max(1, len(chart.rows)) * (BAR_HEIGHT + GAP) + GAP
    span = WIDTH - LABEL_WIDTH - 80
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" '
        f'aria-labelledby="{chart.id}-title {chart.id}-desc">',
        f'<title id="{chart.id}-title">{escape(chart.title)}</title>',
        f'<desc id="{chart.id}-desc">{escape(chart.description)}</desc>',
    ]
    if not chart.rows:
        parts.append(f'<text x="8" y="{BAR_HEIGHT}" fill="{TEXT_COLOUR}" font-size="14">'
                     'No data</text>')
    for i, row in enumerate(chart.rows):
        y = GAP + i * (BAR_HEIGHT + GAP)
        text_y = y + BAR_HEIGHT - 5
        parts.append(f'<text x="{LABEL_WIDTH - 8}" y="{text_y}" text-anchor="end" '
                     f'fill="{TEXT_COLOUR}" font-size="13">{escape(row.label[:30])}</text>')
        length = 0.0
        if row.value is not None and top > 0:
            length = max(1.0, span * float(row.value) / top) if row.value else 0.0
            parts.append(f'<rect x="{LABEL_WIDTH}" y="{y}" width="{length:.1f}" '
                         f'height="{BAR_HEIGHT}" fill="{BAR_COLOUR}"/>')
        shown = row.cells[0] if row.cells else ""
        parts.append(f'<text x="{LABEL_WIDTH + length + 6:.1f}" y="{text_y}" '
                     f'fill="{TEXT_COLOUR}" font-size="13">{escape(shown)}</text>')
    parts.append("</svg>")
    return "".join(parts)


__all__ = ["Chart", "Row", "cell", "count_row", "percentile", "suppressed", "svg"]
