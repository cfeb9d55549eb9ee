"""The live view stays cheap and readable with thousands of jobs."""

from __future__ import annotations

import io

from rich.console import Console

from mmgen.report.progress import MAX_ROWS, RunProgress
from mmgen.run.outcomes import JobEvent


def test_live_table_counts_states_and_shows_the_latest_jobs_only() -> None:
    console = Console(file=io.StringIO(), force_terminal=True, width=120)
    progress = RunProgress(console, live=True)
    with progress:
        for n in range(3000):
            progress.on_event(JobEvent(f"job{n}", "submit", "planned"))
        for n in range(3000):
            progress.on_event(JobEvent(f"job{n}", "submit", "waiting", f"t{n}", "Processing"))
        for n in range(100):
            progress.on_event(JobEvent(f"job{n}", "submit", "finished", ok=n % 10 != 0))
        table = progress._table()
    assert table.row_count == MAX_ROWS
    assert table.caption is not None
    assert "90 done" in str(table.caption) and "10 failed" in str(table.caption)
    assert "2900 waiting" in str(table.caption)
    rendered = io.StringIO()
    Console(file=rendered, width=120).print(table)
    assert "job99" in rendered.getvalue() and "job2999" not in rendered.getvalue()


def test_plain_lines_in_logs_one_per_change() -> None:
    out = io.StringIO()
    progress = RunProgress(Console(file=out, width=200), live=False)
    with progress:
        progress.on_event(JobEvent("a", "submit", "submitting"))
        progress.on_event(JobEvent("a", "submit", "waiting", "t1", "Processing"))
        progress.on_event(JobEvent("a", "submit", "waiting", "t1", "Processing"))
        progress.on_event(JobEvent("a", "submit", "finished", "t1", ok=True, message="downloaded"))
    lines = out.getvalue().splitlines()
    assert lines == [
        "a: submitting",
        "a: waiting (Processing) task t1",
        "a: finished task t1 - downloaded",
    ]
