"""simple_table looks like the rich table it replaced, and stays linear for big runs."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from mmgen.report.tables import Cell, simple_table


def plain(renderable: object) -> str:
    console = Console(width=300, record=True, color_system=None)
    with console.capture() as capture:
        console.print(renderable)
    return "\n".join(line.rstrip() for line in capture.get().splitlines())


def test_same_look_as_the_rich_table_it_replaced() -> None:
    headers = ("job", "state", "error")
    rows = [["a", "success", ""], ["bbbbbbbb", "failed", "long message [with] brackets"]]
    table = Table(box=box.SIMPLE_HEAD, show_edge=False)
    for header in headers:
        table.add_column(header)
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    ours = simple_table(headers, [[r[0], (r[1], "green"), r[2]] for r in rows])
    assert plain(ours) == plain(table)


def test_user_text_is_not_markup_and_styles_apply() -> None:
    text = simple_table(("job", "result"), [["[bold]x[/]", ("ok", "green")]])
    assert "[bold]x[/]" in text.plain  # a job name is shown as written
    spans = [(text.plain[s.start : s.end], str(s.style)) for s in text.spans]
    assert ("ok", "green") in spans


def test_ten_thousand_rows_are_one_line_each() -> None:
    rows: list[list[Cell]] = [[f"job{i:05d}", ("ok", "green")] for i in range(10_000)]
    text = simple_table(("job", "result"), rows)
    assert text.plain.count("\n") == 10_001  # header, rule, rows: 10,002 lines
