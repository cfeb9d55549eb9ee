"""Job-file problems and warnings (``mmgen validate``): text lines, a JSON list, GitHub
annotations. Every renderer takes errors and warnings alike (:attr:`Problem.severity`)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from mmgen.errors import Problem
from mmgen.report.units import plural

#: The formats of ``mmgen validate --format``, each with the phrase its help gives.
PROBLEM_FORMATS = {
    "text": "FILE:LINE:COL: FIELD: message lines",
    "json": "a list of objects",
    "github": "GitHub Actions ::error and ::warning annotations",
}
"""Output formats of ``mmgen validate --format``."""


def problems_text(problems: Sequence[Problem]) -> str:
    """One problem per line: ``FILE:LINE:COL: FIELD: message`` (``FIELD: warning: message``)."""
    return "\n".join(str(p) for p in problems)


def problems_json(problems: Sequence[Problem]) -> str:
    """A JSON list of ``{file, line, column, field, message, severity}`` (``[]`` when there is
    nothing to say); ``severity`` is ``error`` or ``warning``."""
    return json.dumps(
        [
            {
                "file": p.file,
                "line": p.line,
                "column": p.column,
                "field": p.field,
                "message": p.message,
                "severity": p.severity,
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
    """GitHub Actions annotations: ``::error file=F,line=L,col=C,title=FIELD::message`` (or
    ``::warning``)."""
    return "\n".join(
        f"::{'warning' if p.severity == 'warning' else 'error'} "
        f"file={_github_property(p.file)},line={p.line},col={p.column},"
        f"title={_github_property(p.field or '(document)')}::{_github_data(p.message)}"
        for p in problems
    )


def render_problems(problems: Sequence[Problem], fmt: str) -> str:
    """Render problems in one of :data:`PROBLEM_FORMATS`."""
    renderers = {"text": problems_text, "json": problems_json, "github": problems_github}
    if fmt not in renderers:
        raise ValueError(f"unknown problem format {fmt!r}")
    return renderers[fmt](problems)


def validation_summary(
    files: int, jobs: int, problems: Sequence[Problem], warnings: int = 0
) -> str:
    """One line: ``3 files, 7 jobs: ok`` or ``2 problems in 1 file (5 valid jobs)``, with
    ``, 1 warning`` when there are warnings."""
    more = f", {plural(warnings, 'warning')}" if warnings else ""
    if not problems:
        return f"{plural(files, 'file')}, {plural(jobs, 'job')}: ok{more}"
    bad_files = len({p.file for p in problems})
    return (
        f"{plural(len(problems), 'problem')} in {plural(bad_files, 'file')} "
        f"({plural(jobs, 'valid job')}{more})"
    )
