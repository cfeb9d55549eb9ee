"""Outcome records and run results (``mmgen status``, the end of ``mmgen run``)."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.text import Text

from mmgen.report.tables import Cell, simple_table
from mmgen.report.units import size
from mmgen.state.records import Record

if TYPE_CHECKING:
    from mmgen.run.outcomes import RunResult

RECORD_FORMATS = ("text", "json", "html")
"""Output formats of ``mmgen status --format``."""

STATE_STYLES = {
    "success": "green",
    "failed": "red",
    "unknown": "red",
    "submitted": "cyan",
    "submitting": "yellow",
}


def current_versions(records: Sequence[Record]) -> set[tuple[str, str]]:
    """The ``(job, spec_hash)`` of each job's most recently updated record among ``records``."""
    latest: dict[str, Record] = {}
    for record in records:
        seen = latest.get(record.job)
        if seen is None or record.updated_at >= seen.updated_at:
            latest[record.job] = record
    return {record.key for record in latest.values()}


def render_records(
    records: Sequence[Record],
    fmt: str,
    *,
    current: Collection[tuple[str, str]] | None = None,
) -> RenderableType:
    """Outcome records (``mmgen status``): a table, the JSON list, or the HTML gallery.

    ``current`` holds the ``(job, spec_hash)`` of each job's current version (default: its most
    recently updated record here): JSON gives each record ``current: true|false``, the table
    marks the current version, the gallery shows it (and compares it with the one it replaced).
    """
    chosen = current_versions(records) if current is None else current
    if fmt == "json":
        return json.dumps(
            [dict(r.to_json(), current=r.key in chosen) for r in records],
            indent=2,
            ensure_ascii=False,
        )
    if fmt == "html":
        from mmgen.report.gallery import render_gallery

        return render_gallery(records, current=chosen)
    if not records:
        return Text("No outcome records yet.")
    several = len({r.job for r in records}) < len(records)  # some job shows more than one
    rows: list[list[Cell]] = [
        [
            record.job,
            _version_cell(record, several and record.key in chosen),
            (record.state, STATE_STYLES.get(record.state, "")),
            record.task_id or "",
            (record.video or "") if record.state == "success" else "",
            size(record.bytes) if record.bytes else "",
            record.finished_at or "",
            record.error.message if record.error else "",
        ]
        for record in records
    ]
    headers = ("job", "version", "state", "task id", "video", "size", "finished", "error")
    return simple_table(headers, rows)


def _version_cell(record: Record, mark: bool) -> Cell:
    hash8 = record.spec_hash[:8]
    return (f"{hash8} current", "bold") if mark else hash8


def render_outcomes(result: RunResult, fmt: str) -> RenderableType:
    """The result of a run: a summary table, or the JSON list of outcome records (each record
    plus ``action``, ``ok`` and ``message``)."""
    if fmt == "json":
        return json.dumps([o.to_json() for o in result.outcomes], indent=2, ensure_ascii=False)
    rows: list[list[Cell]] = []
    for outcome in result.outcomes:
        record = outcome.record
        if outcome.ok:
            verdict = ("ok", "green")
        elif outcome.action == "claimed":
            verdict = ("left to another run", "magenta")
        elif record is not None and record.state == "unknown":
            verdict = ("unknown", "red")
        else:
            verdict = ("failed", "red")
        rows.append(
            [
                outcome.job,
                outcome.action,
                verdict,
                (record.task_id if record else None) or "",
                (record.video if record and record.state == "success" else None) or "",
                outcome.message,
            ]
        )
    table = simple_table(("job", "action", "result", "task id", "video", "message"), rows)
    ok = sum(o.ok for o in result.outcomes)
    failed = len(result.outcomes) - ok
    return Group(table, Text(f"{ok} ok, {failed} failed" if failed else f"{ok} ok"))
