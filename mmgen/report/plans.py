"""Plans (``mmgen plan``): a table, JSON, or a Markdown pull-request comment with the cost.

Both the table and the comment show what a reviewer must see for each job the merge will pay
for: the estimated cost, the prompt (a word diff for a changed job) and the field diff; the
comment also shows the subject image (or first frame): an http(s) URL as it is, an image of the
repository linked at the pull request's head commit (:class:`RepoLinks`, from GitHub Actions'
standard variables), otherwise its path.
"""

from __future__ import annotations

import html
import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from rich.console import Group, RenderableType
from rich.text import Text

from mmgen import __version__
from mmgen.report.tables import Cell, simple_table
from mmgen.report.units import money, plural
from mmgen.state.changes import (
    MISSING,
    FieldChange,
    diff_requests,
    request_snapshot,
    word_diff,
)
from mmgen.state.pricing import Estimate, PriceTable, estimate, load_prices, tasks_to_create

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
    links: RepoLinks | None = None,
) -> RenderableType:
    """What ``run`` would do: a table with the estimated cost and what changed, JSON text, or a
    Markdown comment (``prices``: the table the estimate uses, mmgen's default when None;
    ``links``: where repository images are shown from)."""
    if fmt == "json":
        return json.dumps(plan_to_json(items), indent=2, ensure_ascii=False)
    table = prices if prices is not None else load_prices()
    if fmt == "markdown":
        return plan_markdown(items, table, resubmit_unknown=resubmit_unknown, links=links)
    if fmt != "text":
        raise ValueError(f"unknown plan format {fmt!r}")
    cost = estimate(items, table, resubmit_unknown=resubmit_unknown)
    creating = {item.job.name for item in tasks_to_create(items, resubmit_unknown=resubmit_unknown)}
    rows: list[list[Cell]] = [
        [
            item.job.name,
            (item.action, ACTION_STYLES.get(item.action, "")),
            item.reason,
            _price_cell(item, creating, cost),
        ]
        for item in items
    ]
    rich_table = simple_table(("job", "action", "reason", "estimate"), rows)
    counts = Counter(str(item.action) for item in items)
    summary = ", ".join(f"{counts[a]} {a}" for a in ACTION_STYLES if counts[a])
    parts: list[RenderableType] = [rich_table]
    for item in items:
        if item.action == "changed":
            parts.append(_text_changes(item))
    parts.append(Text(f"Plan: {summary or 'nothing to do'}. {_cost_line(cost)}"))
    return Group(*parts)


def _price_cell(item: PlanItem, creating: set[str], cost: Estimate) -> str:
    if item.job.name not in creating:
        return ""
    value = cost.per_job.get(item.job.name)
    return money(value, cost.currency) if value is not None else "no price"


def _cost_line(cost: Estimate) -> str:
    if not cost.tasks:
        return "No new task: no cost."
    if len(cost.unpriced) == cost.tasks:
        return f"{plural(cost.tasks, 'new task')}: no price known (give one with --prices FILE)."
    approx = "at least " if cost.unpriced else ""
    total = money(cost.total, cost.currency)
    return (
        f"{plural(cost.tasks, 'new task')}: estimated cost {approx}{total} "
        "(estimates; MiniMax bills by its own price list)."
    )


def _text_changes(item: PlanItem) -> Text:
    """A changed job's field diff, the prompt as a word diff."""
    text = Text(f"{item.job.name}:", style="bold")
    record = item.record
    if record is None or record.request is None:
        text.append(" the fields that changed are unknown (no request snapshot)", style="")
        return text
    changes = diff_requests(record.request, request_snapshot(item.job.body))
    if not changes:
        text.append(" no request field differs", style="")
    for change in changes:
        text.append(f"\n  {change.field}: ", style="")
        if change.field == "prompt" and isinstance(change.old, str) and isinstance(change.new, str):
            for op, words in word_diff(change.old, change.new):  # git's --word-diff=plain
                core = words.rstrip()
                start, end = _WORD_MARKS[op]
                text.append(f"{start}{core}{end}" if op != "same" else core, _WORD_STYLES[op])
                text.append(words[len(core) :])
            continue
        if change.old is not MISSING:
            text.append(_value(change.old), style=_WORD_STYLES["removed"])
        if change.old is not MISSING and change.new is not MISSING:
            text.append(" -> ")
        if change.new is not MISSING:
            text.append(_value(change.new), style=_WORD_STYLES["added"])
    return text


_WORD_STYLES = {"same": "", "removed": "red", "added": "green"}
_WORD_MARKS = {"same": ("", ""), "removed": ("[-", "-]"), "added": ("{+", "+}")}


@dataclass(frozen=True)
class RepoLinks:
    """Where the repository's files are shown from: ``SERVER/REPOSITORY/raw/SHA/PATH`` for a
    path under ``root`` (the checkout)."""

    server: str
    repository: str
    sha: str
    root: Path

    def url(self, path: str) -> str | None:
        """The URL of a file of the checkout at :attr:`sha`; None when it is outside it."""
        try:
            relative = Path(path).resolve().relative_to(self.root.resolve())
        except ValueError:
            return None
        return f"{self.server}/{self.repository}/raw/{self.sha}/{quote(relative.as_posix())}"

    @classmethod
    def from_github(cls, env: Mapping[str, str], cwd: Path) -> RepoLinks | None:
        """From GitHub Actions' standard variables (``GITHUB_SERVER_URL``,
        ``GITHUB_REPOSITORY``, ``GITHUB_SHA``, ``GITHUB_WORKSPACE``); in a pull request, the
        head commit and repository of the pull request from ``GITHUB_EVENT_PATH`` (``GITHUB_SHA``
        is then a merge commit that nobody can open). None outside GitHub Actions."""
        server, repository = env.get("GITHUB_SERVER_URL"), env.get("GITHUB_REPOSITORY")
        sha = env.get("GITHUB_SHA")
        if not (server and repository and sha):
            return None
        head = _pull_request_head(env.get("GITHUB_EVENT_PATH"))
        if head is not None:
            head_repository, sha = head
            repository = head_repository or repository
        root = Path(env.get("GITHUB_WORKSPACE") or cwd)
        return cls(server.rstrip("/"), repository, sha, root)


def _pull_request_head(event_path: str | None) -> tuple[str, str] | None:
    """``(repository, sha)`` of a pull request's head from a GitHub event file, if it is one."""
    if not event_path:
        return None
    try:
        event = json.loads(Path(event_path).read_text(encoding="utf-8"))
        head = event["pull_request"]["head"]
        sha = head["sha"]
        repository = (head.get("repo") or {}).get("full_name")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{7,64}", sha):
        return None
    return (repository if isinstance(repository, str) else None) or "", sha


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


def _review_section(
    items: Sequence[PlanItem], creating: set[str], links: RepoLinks | None
) -> list[str]:
    """Per job the merge pays for: its subject image, its prompt (a word diff when changed) and,
    when changed, its field diff."""
    out: list[str] = []
    for item in items:
        if item.job.name not in creating:
            continue
        job = item.job
        kind = "changed" if item.action == "changed" else "new" if item.record is None else "again"
        out += [f"**{md_code(job.name)}** ({kind}, {md_text(str(job.body.get('model')))})", ""]
        image = _image_md(job.subject_image, links)
        if image:
            out += [image, ""]
        old = _recorded_prompt(item)
        prompt = job.body.get("prompt")
        if isinstance(prompt, str):
            out += [f"> {_prompt_md(old, prompt)}", ""]
        if item.action == "changed":
            out += _field_changes(item)
    return out


def _recorded_prompt(item: PlanItem) -> str | None:
    """The prompt of the version a changed job replaces (None when unknown or not changed)."""
    if item.action != "changed" or item.record is None or item.record.request is None:
        return None
    old = item.record.request.get("prompt", "")
    return old if isinstance(old, str) else None


def _prompt_md(old: str | None, new: str) -> str:
    """The prompt, inert in Markdown; with ``<del>``/``<ins>`` words when ``old`` is given."""
    if old is None or old == new:
        return _md_run(new).strip()
    tags = {"same": ("", ""), "removed": ("<del>", "</del>"), "added": ("<ins>", "</ins>")}
    parts = []
    for op, words in word_diff(old, new):
        text = _md_run(words)
        start, end = tags[op]
        core = text.strip(" ")
        lead, trail = text[: len(text) - len(text.lstrip(" "))], text[len(text.rstrip(" ")) :]
        parts.append(f"{lead}{start}{core}{end}{trail}" if core else text)
    return "".join(parts).strip()


def _md_run(text: str) -> str:
    """Like :func:`md_text`, keeping one space at either end."""
    flat = re.sub(r"\s+", " ", text)
    return _MD_SPECIAL.sub(r"\\\1", html.escape(flat, quote=False))


def _image_md(image: str | None, links: RepoLinks | None) -> str:
    """The subject image: a small picture of an http(s) URL or of a repository file (linked
    at the pull request's head), else its name."""
    if not image:
        return ""
    if image[:8].lower().startswith(("http://", "https://")):
        url: str | None = image
    else:
        url = links.url(image) if links is not None else None
    if url is None:
        return f"Subject image: {md_code(image)} (shown here when run in GitHub Actions)"
    src = html.escape(url, quote=True)
    return f'<a href="{src}"><img src="{src}" alt="subject image" height="120"></a>'


def _field_changes(item: PlanItem) -> list[str]:
    name = md_code(item.job.name)
    record = item.record
    if record is None or record.request is None:
        return [
            f"{name}: the fields that changed are unknown (its last record predates "
            "request snapshots).",
            "",
        ]
    changes = diff_requests(record.request, request_snapshot(item.job.body))
    since = f"task {md_code(record.task_id)}" if record.task_id else "the last record"
    if not changes:
        return [f"{name}: no request field differs from {since}.", ""]
    return [
        f"<details open><summary><code>{html.escape(item.job.name)}</code>: "
        f"{plural(len(changes), 'field')} changed since "
        f"{html.escape(since.replace('`', ''))}</summary>\n",
        _fenced("\n".join(diff_lines(changes)), "diff"),
        "\n</details>",
        "",
    ]


def plan_markdown(
    items: Sequence[PlanItem],
    prices: PriceTable,
    *,
    resubmit_unknown: bool = False,
    links: RepoLinks | None = None,
) -> str:
    """The plan as a pull-request comment: a summary line, one table row per job (job, action,
    reason, model, estimated price), what to review of every job the merge pays for (subject
    image, prompt or its word diff, field diff) and the estimated cost of the tasks the merge
    will create, saying where the prices come from."""
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
        lines.append(
            f"| {md_code(item.job.name)} | {item.action} | {md_text(item.reason)} "
            f"| {md_text(prices.describe(item.job.body))} | {_price_cell(item, creating, cost)} |"
        )
    review = _review_section(items, creating, links)
    if review:
        lines += ["", "#### What to review", "", *review[:-1]]
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
