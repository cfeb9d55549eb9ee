"""The live view of a run: a rich table on a terminal, plain lines in logs.

The table is rebuilt by rich's refresh thread at most 4 times a second (not on every event:
with thousands of jobs that would cost O(jobs) per event), and shows a count per state plus the
:data:`MAX_ROWS` jobs that changed last, so it stays readable and cheap at any size.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich import box
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from mmgen.report.units import size

if TYPE_CHECKING:
    from mmgen.run.outcomes import JobEvent

#: Jobs shown in the live table (the most recently changed; the rest are counted).
MAX_ROWS = 20


@dataclass
class _JobLine:
    action: str
    phase: str = "planned"
    status: str = ""
    task_id: str = ""
    started: float | None = None
    ended: float | None = None
    done_bytes: int = 0
    total_bytes: int | None = None
    message: str = ""
    ok: bool | None = None


class RunProgress:
    """Shows a run as it goes: a live table per job on a terminal, plain lines otherwise.

    Feed it :class:`~mmgen.run.runner.JobEvent` via :meth:`on_event`; use as a context manager.
    """

    def __init__(self, console: Console, *, live: bool | None = None, quiet: bool = False) -> None:
        self.console = console
        self.quiet = quiet
        self.live_enabled = console.is_terminal if live is None else live
        self.lines: dict[str, _JobLine] = {}
        self._live: Live | None = None

    def __enter__(self) -> RunProgress:
        if self.live_enabled and not self.quiet:
            self._live = Live(
                console=self.console,
                refresh_per_second=4,
                transient=False,
                auto_refresh=True,
                get_renderable=self._table,
            )
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.refresh()
            self._live.__exit__(None, None, None)
            self._live = None

    def on_event(self, event: JobEvent) -> None:
        line = self.lines.pop(event.job, None) or _JobLine(event.action)
        self.lines[event.job] = line  # the most recently changed job last
        previous = (line.phase, line.status)
        line.phase = event.phase
        if event.status:
            line.status = event.status
        if event.task_id:
            line.task_id = event.task_id
        if event.phase not in ("planned", "finished") and line.started is None:
            line.started = event.at
        if event.phase == "downloading":
            line.done_bytes, line.total_bytes = event.done_bytes, event.total_bytes
        if event.message:
            line.message = event.message
        if event.phase == "finished":
            line.ended = event.at
            line.ok = event.ok
        if self._live is not None:
            return  # rich's refresh thread redraws the table from self.lines
        if not self.quiet and (line.phase, line.status) != previous:
            if event.phase == "downloading" and previous[0] == "downloading":
                return
            self.console.print(self._plain(event.job, line), highlight=False, markup=False)

    def _plain(self, job: str, line: _JobLine) -> str:
        parts = [f"{job}:", line.phase]
        if line.status and line.phase in ("waiting", "downloading"):
            parts.append(f"({line.status})")
        if line.task_id:
            parts.append(f"task {line.task_id}")
        if line.phase in ("planned", "finished") and line.message:
            parts.append(f"- {line.message}")
        return " ".join(parts)

    def _table(self) -> Table:
        lines = list(self.lines.items())  # a copy: events keep coming while rich draws
        states = Counter(
            ("done" if line.ok else "failed") if line.phase == "finished" else line.phase
            for _, line in lines
        )
        shown = lines[-MAX_ROWS:]
        caption = ", ".join(f"{count} {state}" for state, count in sorted(states.items()))
        if len(lines) > len(shown):
            caption += f" (showing the {len(shown)} jobs that changed last)"
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, caption=caption)
        for column in ("job", "action", "state", "elapsed", "task id", "progress"):
            table.add_column(column)
        now = time.monotonic()
        for job, line in shown:
            if line.phase == "finished":
                state = "[green]done[/]" if line.ok else f"[red]{escape(line.message)[:60]}[/]"
            elif line.phase == "waiting" and line.status:
                state = line.status
            else:
                state = line.phase
            elapsed = ""
            if line.started is not None:
                elapsed = f"{(line.ended or now) - line.started:5.0f} s"
            progress = ""
            if line.phase == "downloading" or (line.phase == "finished" and line.done_bytes):
                total = f"/{size(line.total_bytes)}" if line.total_bytes else ""
                progress = f"{size(line.done_bytes)}{total}"
            table.add_row(job, line.action, state, elapsed, line.task_id, progress)
        return table
