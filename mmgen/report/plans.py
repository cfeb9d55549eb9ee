"""Plans (``mmgen plan``): a table, JSON, or a Markdown pull-request comment with the cost."""

from __future__ import annotations

import html
import json
import re
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Group, RenderableType
from rich.text import Text

from mmgen import __version__
from mmgen.report.tables import Cell, simple_table
from mmgen.report.units import money, plural
from mmgen.state.changes import MISSING, FieldChange, diff_requests, request_snapshot
from mmgen.state.pricing import PriceTable, estimate, load_prices, tasks_to_create

if TYPE_CHECKING:
    from mmgen.state.planning import PlanItem

PLAN_FORMATS = ("text", "json", "markdown")
"""Output formats of ``mmgen plan --format``."""

#: First line of the Markdown comment: lets a workflow find (and edit) its earlier comment.
COMMENT_MARKER = "<!-- mmgen-plan -->"

ACTION_STYLES = {
    "submit": "green",
    "changed": "yellow",
    "resume": "cyan",
    "skip": "dim",
    "unknown": "red",
    "claimed": "magenta",
}

#: How the summary line names each action's count.
_SUMMARY_WORDS = {
    "submit": "to submit",
    "changed": "changed",
    "resume": "to resume",
    "skip": "skipped (done)",
    "unknown": "unknown",
    "claimed": "claimed by another run",
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
            "model": item.job.body.get("model"),
            "task_id": item.record.task_id if item.record else None,
        }
        for item in items
    ]


def render_plan(
    items: Sequence[PlanItem],
    fmt: str,
    *,
    prices: PriceTable | None = None,
    resubmit_unknown: bool = False,
) -> RenderableType:
    """What ``run`` would do: a table with a summary line, JSON text, or a Markdown comment
    (``prices``: the table its cost estimate uses, mmgen's default when None)."""
    if fmt == "json":
        return json.dumps(plan_to_json(items), indent=2, ensure_ascii=False)
    if fmt == "markdown":
        table = prices if prices is not None else load_prices()
        return plan_markdown(items, table, resubmit_unknown=resubmit_unknown)
    if fmt != "text":
        raise ValueError(f"unknown plan format {fmt!r}")
    rows: list[list[Cell]] = [
        [item.job.name, (item.action, ACTION_STYLES.get(item.action, "")), item.reason]
        for item in items
    ]
    rich_table = simple_table(("job", "action", "reason"), rows)
    counts = Counter(str(item.action) for item in items)
    summary = ", ".join(f"{counts[a]} {a}" for a in ACTION_STYLES if counts[a])
    return Group(rich_table, Text(f"Plan: {summary or 'nothing to do'}."))


# --- Markdown ------------------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|~])")


def md_text(text: str) -> str:
    """User text made inert inside Markdown (a table cell, a paragraph): HTML and Markdown
    syntax escaped, line breaks folded to spaces."""
    flat = " ".join(str(text).split())
    return _MD_SPECIAL.sub(r"\\\1", html.escape(flat, quote=False))


def md_code(text: str) -> str:
    """``text`` as an inline code span (names, paths), safe whatever backticks it holds."""
    flat = " ".join(str(text).split())
    longest = max((len(run) for run in re.findall(r"`+", flat)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") else ""
    return f"{fence}{pad}{flat}{pad}{fence}"


def _fenced(body: str, info: str = "") -> str:
    longest = max((len(run) for run in re.findall(r"`{3,}", body)), default=2)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{body}\n{fence}"


def _value(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def diff_lines(changes: Sequence[FieldChange]) -> list[str]:
    """A field diff as the lines of a ``diff`` code block (``- field: old`` / ``+ field: new``)."""
    lines: list[str] = []
    for change in changes:
        if change.old is not MISSING:
            lines.append(f"- {change.field}: {_value(change.old)}")
        if change.new is not MISSING:
            lines.append(f"+ {change.field}: {_value(change.new)}")
    return lines


def _summary(items: Sequence[PlanItem]) -> str:
    counts = Counter(str(item.action) for item in items)
    if not items:
        return "No jobs."
    if counts["skip"] == len(items):
        jobs = "the job is" if len(items) == 1 else f"all {len(items)} jobs are"
        return f"Nothing to do: {jobs} done."
    return ", ".join(f"{counts[a]} {_SUMMARY_WORDS[a]}" for a in _SUMMARY_WORDS if counts[a]) + "."


def _changes_section(items: Sequence[PlanItem]) -> list[str]:
    out: list[str] = []
    for item in items:
        if item.action != "changed":
            continue
        name = md_code(item.job.name)
        record = item.record
        if record is None or record.request is None:
            out.append(
                f"- {name}: the fields that changed are unknown (its last record predates "
                "request snapshots)."
            )
            continue
        changes = diff_requests(record.request, request_snapshot(item.job.body))
        since = f"task {md_code(record.task_id)}" if record.task_id else "the last record"
        if not changes:
            out.append(f"- {name}: no request field differs from {since}.")
            continue
        out.append(
            f"<details open><summary><code>{html.escape(item.job.name)}</code>: "
            f"{plural(len(changes), 'field')} changed since "
            f"{html.escape(since.replace('`', ''))}</summary>\n"
        )
        out.append(_fenced("\n".join(diff_lines(changes)), "diff"))
        out.append("\n</details>")
    return out


def plan_markdown(
    items: Sequence[PlanItem], prices: PriceTable, *, resubmit_unknown: bool = False
) -> str:
    """The plan as a pull-request comment: a summary line, one table row per job (job, action,
    reason, model, estimated price), the field diff of every ``changed`` job, and the estimated
    cost of the tasks the merge will create, saying where the prices come from."""
    cost = estimate(items, prices, resubmit_unknown=resubmit_unknown)
    creating = {item.job.name for item in tasks_to_create(items, resubmit_unknown=resubmit_unknown)}
    lines = [COMMENT_MARKER, "### mmgen plan", "", f"**{_summary(items)}**"]
    if cost.tasks:
        total = money(cost.total, cost.currency)
        approx = "at least " if cost.unpriced else ""
        lines.append(
            f"Merging creates {plural(cost.tasks, 'new task')}: estimated cost **{approx}{total}**."
        )
    else:
        lines.append("Merging creates no new task: no cost.")
    lines += ["", "| job | action | reason | model | estimate |", "|---|---|---|---|---|"]
    for item in items:
        price = ""
        if item.job.name in creating:
            value = cost.per_job.get(item.job.name)
            price = money(value, cost.currency) if value is not None else "no price"
        lines.append(
            f"| {md_code(item.job.name)} | {item.action} | {md_text(item.reason)} "
            f"| {md_text(prices.describe(item.job.body))} | {price} |"
        )
    changes = _changes_section(items)
    if changes:
        lines += ["", "#### What changed", "", *changes]
    lines += ["", _price_note(prices, cost.unpriced, items, resubmit_unknown)]
    return "\n".join(lines).rstrip() + "\n"


def _price_note(
    prices: PriceTable, unpriced: Sequence[str], items: Sequence[PlanItem], resubmit_unknown: bool
) -> str:
    source = md_text(prices.source or "a price table")
    as_of = f" (as of {md_text(prices.as_of)})" if prices.as_of else ""
    files = f", with {', '.join(md_code(f) for f in prices.files)}" if prices.files else ""
    notes = [
        f"Costs are **estimates** from {source}{as_of}{files}; MiniMax bills by its own "
        "current price list. Keep your own table with `mmgen plan --prices FILE`."
    ]
    if unpriced:
        notes.append(f"No price known for {', '.join(md_code(n) for n in unpriced)}.")
    unknown = [item.job.name for item in items if item.action == "unknown"]
    if unknown and not resubmit_unknown:
        notes.append(
            f"{', '.join(md_code(n) for n in unknown)}: an interrupted submit may have created "
            "a task already; not counted (a run resubmits only with `--resubmit-unknown`)."
        )
    notes.append(f"mmgen {__version__}")
    return "<sub>" + " ".join(notes) + "</sub>"
