"""Renderers: turn mmgen's data (problems, plans, outcomes) into text, JSON, HTML or annotations.

Each renderer returns a string or a rich renderable; ``cli.py`` decides where it goes.
:class:`RunProgress` is the one live view: it renders run events as they come.
"""

from __future__ import annotations

import html
import json
import os
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from mmgen.errors import Problem
from mmgen.records import Record

if TYPE_CHECKING:
    from mmgen.outcomes import JobEvent, RunResult
    from mmgen.planning import PlanItem

# --- job-file problems (`mmgen validate`) -----------------------------------------------------

PROBLEM_FORMATS = ("text", "json", "github")
"""Output formats of ``mmgen validate --format``."""


def problems_text(problems: Sequence[Problem]) -> str:
    """One problem per line: ``FILE:LINE:COL: FIELD: message``."""
    return "\n".join(str(p) for p in problems)


def problems_json(problems: Sequence[Problem]) -> str:
    """A JSON list of ``{file, line, column, field, message}`` (``[]`` when all is valid)."""
    return json.dumps(
        [
            {
                "file": p.file,
                "line": p.line,
                "column": p.column,
                "field": p.field,
                "message": p.message,
            }
            for p in problems
        ],
        indent=2,
        ensure_ascii=False,
    )


def _github_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _github_property(text: str) -> str:
    return _github_data(text).replace(":", "%3A").replace(",", "%2C")


def problems_github(problems: Sequence[Problem]) -> str:
    """GitHub Actions annotations: ``::error file=F,line=L,col=C,title=FIELD::message``."""
    return "\n".join(
        f"::error file={_github_property(p.file)},line={p.line},col={p.column},"
        f"title={_github_property(p.field or '(document)')}::{_github_data(p.message)}"
        for p in problems
    )


def render_problems(problems: Sequence[Problem], fmt: str) -> str:
    """Render problems in one of :data:`PROBLEM_FORMATS`."""
    if fmt == "json":
        return problems_json(problems)
    if fmt == "github":
        return problems_github(problems)
    if fmt == "text":
        return problems_text(problems)
    raise ValueError(f"unknown problem format {fmt!r}")


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def validation_summary(files: int, jobs: int, problems: Sequence[Problem]) -> str:
    """One line: ``3 files, 7 jobs: ok`` or ``2 problems in 1 file (5 valid jobs)``."""
    if not problems:
        return f"{_plural(files, 'file')}, {_plural(jobs, 'job')}: ok"
    bad_files = len({p.file for p in problems})
    return (
        f"{_plural(len(problems), 'problem')} in {_plural(bad_files, 'file')} "
        f"({_plural(jobs, 'valid job')})"
    )


# --- plans, outcomes and progress (mmgen plan / run / status) -----------------------------

ACTION_STYLES = {
    "submit": "green",
    "changed": "yellow",
    "resume": "cyan",
    "skip": "dim",
    "unknown": "red",
}
STATE_STYLES = {
    "success": "green",
    "failed": "red",
    "unknown": "red",
    "submitted": "cyan",
    "submitting": "yellow",
}


def plan_to_json(items: Sequence[PlanItem]) -> list[dict[str, Any]]:
    """The plan as data: one object per job."""
    return [
        {
            "job": item.job.name,
            "spec": item.job.file,
            "spec_hash": item.job.spec_hash,
            "action": item.action,
            "reason": item.reason,
            "task_id": item.record.task_id if item.record else None,
        }
        for item in items
    ]


def render_plan(items: Sequence[PlanItem], fmt: str) -> RenderableType:
    """What ``run`` would do: a table with a summary line, or JSON text."""
    if fmt == "json":
        return json.dumps(plan_to_json(items), indent=2, ensure_ascii=False)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False)
    for column in ("job", "action", "reason"):
        table.add_column(column)
    for item in items:
        style = ACTION_STYLES.get(item.action, "")
        table.add_row(item.job.name, f"[{style}]{item.action}[/]", escape(item.reason))
    counts = Counter(str(item.action) for item in items)
    summary = ", ".join(f"{counts[a]} {a}" for a in ACTION_STYLES if counts[a])
    return Group(table, Text(f"Plan: {summary or 'nothing to do'}."))


def render_records(records: Sequence[Record], fmt: str) -> RenderableType:
    """Outcome records (``mmgen status``): a table, the JSON list, or the HTML gallery."""
    if fmt == "json":
        return json.dumps([r.to_json() for r in records], indent=2, ensure_ascii=False)
    if fmt == "html":
        return render_gallery(records)
    if not records:
        return Text("No outcome records yet.")
    table = Table(box=box.SIMPLE_HEAD, show_edge=False)
    for column in ("job", "state", "task id", "video", "size", "finished", "error"):
        table.add_column(column)
    for record in records:
        style = STATE_STYLES.get(record.state, "")
        table.add_row(
            record.job,
            f"[{style}]{record.state}[/]",
            record.task_id or "",
            (record.video or "") if record.state == "success" else "",
            _size(record.bytes) if record.bytes else "",
            record.finished_at or "",
            escape(record.error.message) if record.error else "",
        )
    return table


def render_outcomes(result: RunResult, fmt: str) -> RenderableType:
    """The result of a run: a summary table, or the JSON list of outcome records (each record
    plus ``action``, ``ok`` and ``message``)."""
    if fmt == "json":
        return json.dumps([o.to_json() for o in result.outcomes], indent=2, ensure_ascii=False)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False)
    for column in ("job", "action", "result", "task id", "video", "message"):
        table.add_column(column)
    for outcome in result.outcomes:
        record = outcome.record
        if outcome.ok:
            verdict = "[green]ok[/]"
        elif record is not None and record.state == "unknown":
            verdict = "[red]unknown[/]"
        else:
            verdict = "[red]failed[/]"
        table.add_row(
            outcome.job,
            outcome.action,
            verdict,
            (record.task_id if record else None) or "",
            (record.video if record and record.state == "success" else None) or "",
            escape(outcome.message),
        )
    ok = sum(o.ok for o in result.outcomes)
    failed = len(result.outcomes) - ok
    return Group(table, Text(f"{ok} ok, {failed} failed" if failed else f"{ok} ok"))


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"  # pragma: no cover


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

    Feed it :class:`~mmgen.runner.JobEvent` via :meth:`on_event`; use as a context manager.
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
                console=self.console, refresh_per_second=4, transient=False, auto_refresh=True
            )
            self._live.update(self._table())
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.update(self._table())
            self._live.__exit__(None, None, None)
            self._live = None

    def on_event(self, event: JobEvent) -> None:
        line = self.lines.setdefault(event.job, _JobLine(event.action))
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
            self._live.update(self._table())
        elif not self.quiet and (line.phase, line.status) != previous:
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
        table = Table(box=box.SIMPLE_HEAD, show_edge=False)
        for column in ("job", "action", "state", "elapsed", "task id", "progress"):
            table.add_column(column)
        now = time.monotonic()
        for job, line in self.lines.items():
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
                total = f"/{_size(line.total_bytes)}" if line.total_bytes else ""
                progress = f"{_size(line.done_bytes)}{total}"
            table.add_row(job, line.action, state, elapsed, line.task_id, progress)
        return table


def render_gallery(records: Sequence[Record], prompts: Mapping[str, str] | None = None) -> str:
    """A self-contained HTML page showing every recorded video (``<out>/index.html``).

    Video paths are relative to the out dir, so the page works wherever the folder is copied.
    """
    prompts = prompts or {}
    cards = []
    for record in records:
        state = html.escape(record.state)
        title = html.escape(record.job)
        if record.state == "success" and record.video:
            src = html.escape(quote(record.video))
            media = f'<video controls preload="metadata" src="{src}"></video>'
        else:
            media = f'<div class="empty">{state}</div>'
        details = [f"<b>{title}</b> <span class='{state}'>{state}</span>"]
        if record.job in prompts:
            details.append(f"<p>{html.escape(prompts[record.job])}</p>")
        if record.width and record.height:
            details.append(f"<small>{record.width}x{record.height}</small>")
        if record.task_id:
            details.append(f"<small>task {html.escape(record.task_id)}</small>")
        if record.error:
            details.append(f"<p class='failed'>{html.escape(record.error.message)}</p>")
        cards.append(f"<figure>{media}<figcaption>{' '.join(details)}</figcaption></figure>")
    body = "\n".join(cards) or "<p>No outcome records yet.</p>"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mmgen gallery</title>
<style>
body{{font-family:system-ui,sans-serif;margin:1.5rem;background:#fafafa}}
main{{display:grid;grid-template-columns:repeat(auto-fill,minmax(320px,1fr));gap:1rem}}
figure{{margin:0;background:#fff;border:1px solid #ddd;border-radius:8px;overflow:hidden}}
video,.empty{{width:100%;aspect-ratio:16/9;background:#111;color:#eee;display:grid;
place-items:center}}
figcaption{{padding:.6rem}} .success{{color:#080}} .failed,.unknown{{color:#b00}}
</style></head>
<body><h1>mmgen gallery</h1><main>
{body}
</main></body></html>
"""


def write_gallery(
    out_dir: Path, records: Sequence[Record], prompts: Mapping[str, str] | None = None
) -> Path:
    """Write ``<out>/index.html`` atomically; returns its path."""
    page = out_dir / "index.html"
    tmp = page.with_name(".index.html.tmp")
    tmp.write_text(render_gallery(records, prompts), encoding="utf-8")
    os.replace(tmp, page)
    return page
