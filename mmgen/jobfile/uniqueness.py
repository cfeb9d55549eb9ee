"""Across all files of a run: job names (case-insensitively) and outputs must be unique."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from mmgen.errors import Problem
from mmgen.jobfile.jobs import JobSpec

__all__ = ["Candidate", "clashes"]


@dataclass
class Candidate:
    """A job that was expanded (valid or not) with where its name and output are written."""

    spec: JobSpec | None
    """None when the job has problems."""
    name: Any
    name_at: Problem
    """Where the name is written (``message`` unused)."""
    output: str | None
    output_at: Problem


def clashes(candidates: list[Candidate]) -> list[Problem]:
    """A problem per repeated name or output; the repeating candidates lose their spec."""
    names: dict[str, Candidate] = {}
    outputs: dict[str, Candidate] = {}
    found: list[Problem] = []
    for cand in candidates:
        problem = _name_clash(cand, names)
        output_problem = _output_clash(cand, outputs)
        problem = problem or output_problem
        if problem is not None:
            found.append(problem)
            cand.spec = None
    return found


def _name_clash(cand: Candidate, names: dict[str, Candidate]) -> Problem | None:
    first = names.setdefault(str(cand.name).casefold(), cand)
    if first is cand:
        return None
    where = f"{first.name_at.file}:{first.name_at.line}"
    return _at(cand.name_at, f"duplicate job name {cand.name!r} (also at {where})")


def _output_clash(cand: Candidate, outputs: dict[str, Candidate]) -> Problem | None:
    if cand.output is None:
        return None
    other = outputs.setdefault(os.path.normpath(cand.output).casefold(), cand)
    if other is cand:
        return None
    where = f"{other.output_at.file}:{other.output_at.line}"
    message = f"output {cand.output!r} is also the output of job {other.name!r} ({where})"
    return _at(cand.output_at, message)


def _at(place: Problem, message: str) -> Problem:
    return Problem(place.file, place.line, place.column, place.field, message)
