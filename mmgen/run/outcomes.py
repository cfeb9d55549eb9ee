"""What a run reports: progress events, one outcome per job, and the run's result. Pure data;
:mod:`mmgen.report` renders it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from mmgen.errors import EXIT_FAILED, EXIT_LOCKED, EXIT_OK
from mmgen.state.records import Record

#: What a run does with a job (``claimed``: another run claimed this version first and has no
#: task id yet; the job is left to it).
Action = Literal["submit", "skip", "resume", "changed", "unknown", "claimed"]


@dataclass(frozen=True)
class JobEvent:
    """A step of one job, for progress displays. ``phase`` is one of: ``planned``,
    ``submitting``, ``submitted``, ``waiting``, ``downloading``, ``finished``."""

    job: str
    action: Action
    phase: str
    task_id: str | None = None
    status: str | None = None  # MiniMax's task status, when known
    done_bytes: int = 0
    total_bytes: int | None = None
    record: Record | None = None
    message: str | None = None
    ok: bool | None = None  # set on "finished"
    at: float = field(default_factory=time.monotonic)


EventSink = Callable[[JobEvent], None]


@dataclass(frozen=True)
class JobOutcome:
    """What happened to one job in this run."""

    job: str
    action: Action
    ok: bool
    record: Record | None
    message: str

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = dict(self.record.to_json()) if self.record else {"job": self.job}
        data.update({"action": self.action, "ok": self.ok, "message": self.message})
        return data


@dataclass
class RunResult:
    """Every job's outcome, in plan order. ``stopped`` is set when the run stopped submitting
    early (an account-level error: wrong key, empty balance, unreachable server...): one
    message for the whole run, the jobs it left unsent are untouched."""

    outcomes: list[JobOutcome]
    stopped: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.stopped is None and all(o.ok for o in self.outcomes)

    @property
    def exit_code(self) -> int:
        """0 all ok; 75 when the only jobs not done were left to other runs (claimed: try
        again later); 1 otherwise."""
        if self.ok:
            return EXIT_OK
        if self.stopped is None and all(o.ok or o.action == "claimed" for o in self.outcomes):
            return EXIT_LOCKED
        return EXIT_FAILED
