"""The live view stays cheap and readable with thousands of jobs."""

from __future__ import annotations

import io
import re

from rich.console import Console

from mmgen.report.progress import MAX_ROWS, RunProgress
from mmgen.run.outcomes import JobEvent


def _last_frame(terminal: str) -> list[str]:
    """The lines of the live view's last frame, as a terminal shows it."""
    frame = re.split(r"\x1b\[2K", terminal)[-1]
    return [re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", line).rstrip() for line in frame.splitlines()]


def test_live_table_counts_states_and_shows_the_latest_jobs_only() -> None:
    terminal = io.StringIO()
    console = Console(file=terminal, force_terminal=True, width=200, color_system=None)
    with RunProgress(console, live=True) as progress:
        for n in range(3000):
            progress.on_event(JobEvent(f"job{n}", "submit", "planned"))
        for n in range(3000):
            progress.on_event(JobEvent(f"job{n}", "submit", "waiting", f"t{n}", "Processing"))
        for n in range(100):
            progress.on_event(JobEvent(f"job{n}", "submit", "finished", ok=n % 10 != 0))
    lines = _last_frame(terminal.getvalue())
    assert lines[0].split() == ["job", "action", "state", "elapsed", "task", "id", "progress"]
    rows = [line.split()[0] for line in lines[2:] if line.startswith(" job")]
    assert rows == [f"job{n}" for n in range(100 - MAX_ROWS, 100)]  # the latest changed only
    caption = " ".join(" ".join(lines[2 + MAX_ROWS :]).split())
    assert "90 done" in caption and "10 failed" in caption and "2900 waiting" in caption
    assert "showing the 20 jobs that changed last" in caption


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
