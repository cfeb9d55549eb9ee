"""Tables of one line per row, linear in the number of rows.

rich's ``Table`` measures and lays out every cell; for the 10,000 rows of a large run's outcome
table that took 4 s and 54 MB, the largest peak of a whole run's memory. :func:`simple_table`
gives the same look as ``Table(box=box.SIMPLE_HEAD, show_edge=False)`` (a header, a rule, one
line per row, a cell padded by one space each side) as a single styled :class:`~rich.text.Text`
(0.4 s and about half the memory for 10,000 rows). Cells never wrap: a row longer than the
terminal is folded by the terminal. Cells are measured in terminal cells, as rich measures
them (:func:`rich.cells.cell_len`): a wide character (``日本``) takes two, a combining accent
none, so non-ASCII names stay aligned.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.cells import cell_len
from rich.text import Text

#: A cell: its text, or its text and a rich style (e.g. ``("ok", "green")``).
Cell = str | tuple[str, str]


def simple_table(headers: Sequence[str], rows: Sequence[Sequence[Cell]]) -> Text:
    """``rows`` under ``headers``, columns as wide as their longest cell."""
    widths = [cell_len(header) for header in headers]
    for row in rows:
        for column, cell in enumerate(row):
            widths[column] = max(widths[column], cell_len(_text(cell)))
    table = Text(no_wrap=True, overflow="ignore")
    _line(table, headers, widths, "bold")
    table.append("─" * (sum(widths) + 3 * len(widths) - 1) + "\n")
    for row in rows:
        _line(table, row, widths, None)
    table.right_crop(1)  # the last line's newline: printing the table ends the line
    return table


def _text(cell: Cell) -> str:
    return cell if isinstance(cell, str) else cell[0]


def _line(table: Text, cells: Sequence[Cell], widths: Sequence[int], style: str | None) -> None:
    for column, cell in enumerate(cells):
        text, cell_style = (cell, style) if isinstance(cell, str) else cell
        if column:
            table.append(" ")
        table.append(" ")
        table.append(text, style=cell_style)
        table.append(" " * (widths[column] - cell_len(text) + 1))
    table.append("\n")
