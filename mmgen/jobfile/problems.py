"""Every problem of a run, once: deduplicated by place and field, naming the jobs concerned.

A value shared by several jobs (a default, a matrix job's field) fails once per job; it is
reported once, with the names of the jobs: ``... (in jobs a, b and 3 more)``.
"""

from __future__ import annotations

from collections import Counter

from mmgen.errors import Problem
from mmgen.schemas.messages import truncate

__all__ = ["ProblemLog"]

_Key = tuple[str, int, int, str]


class ProblemLog:
    """Problems by place; the first message at a place and field wins."""

    def __init__(self) -> None:
        self._entries: dict[_Key, tuple[str, list[str]]] = {}
        self._per_file: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, problem: Problem, job: str | None = None) -> None:
        key = (problem.file, problem.line, problem.column, problem.field)
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = (problem.message, [])
            self._per_file[problem.file] += 1
        if job is not None and job not in entry[1]:
            entry[1].append(job)

    def mentions(self, file: str) -> bool:
        """Whether any problem is located in ``file``."""
        return self._per_file[file] > 0

    def withdraw(self, problem: Problem) -> None:
        """Forget ``problem`` if it is still as added (its message, no job named since)."""
        key = (problem.file, problem.line, problem.column, problem.field)
        if self._entries.get(key) == (problem.message, []):
            del self._entries[key]
            self._per_file[problem.file] -= 1

    def problems(self) -> list[Problem]:
        out = []
        for (file, line, col, fld), (message, jobs) in self._entries.items():
            if jobs:
                more = f" and {len(jobs) - 2} more" if len(jobs) > 2 else ""
                label = "job" if len(jobs) == 1 else "jobs"
                names = ", ".join(truncate(job, 40) for job in jobs[:2])
                message = f"{message} (in {label} {names}{more})"
            out.append(Problem(file, line, col, fld, message))
        return sorted(out)
