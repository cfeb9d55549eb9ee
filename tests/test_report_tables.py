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


def test_non_ascii_cells_stay_aligned() -> None:
    from rich.cells import cell_len

    rows: list[list[Cell]] = [
        ["日本語の動画", ("success", "green"), "動画/日本語.mp4"],  # wide: two cells each
        ["cafe\u0301", ("failed", "red"), "e\u0301te\u0301.mp4"],  # combining accents: none
        ["plain", ("ok", "green"), "plain.mp4"],
    ]
    lines = plain(simple_table(("job", "state", "video"), rows)).splitlines()
    starts = {
        word: cell_len(line[: line.index(word)])
        for line in lines
        for word in ("state", "success", "failed", "ok", "video", "動画/", "e\u0301te", "plain.")
        if word in line
    }
    assert starts["state"] == starts["success"] == starts["failed"] == starts["ok"]
    assert starts["video"] == starts["動画/"] == starts["e\u0301te"] == starts["plain."]
