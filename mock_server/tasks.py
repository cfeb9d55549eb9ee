"""Tasks and their life cycle on the clock.

A task's whole future is decided when it is created (duration, outcome, callback plan), from its
own seeded random stream; its status at any moment is then a pure function of the clock:

    Preparing (first 10 %) -> Queueing (next 20 %) -> Processing (last 70 %) -> Success | Fail

so querying needs no background work and a :class:`~mock_server.clock.ManualClock` can move a
task to any point of its life.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
from dataclasses import dataclass, field
from typing import Any

from mock_server.config import MockConfig
from mock_server.media.video import VideoSpec

PREPARING = "Preparing"
QUEUEING = "Queueing"
PROCESSING = "Processing"
SUCCESS = "Success"
FAIL = "Fail"
STATUSES = (PREPARING, QUEUEING, PROCESSING, SUCCESS, FAIL)

#: Status names in callbacks (lower case, and ``failed`` rather than ``Fail``).
CALLBACK_STATUS = {PROCESSING: "processing", SUCCESS: "success", FAIL: "failed"}

PREPARING_SHARE = 0.1
QUEUEING_SHARE = 0.2

OK_RESP = {"status_code": 0, "status_msg": "success"}


def base_resp(code: int, message: str) -> dict[str, Any]:
    return {"status_code": code, "status_msg": message}


def owner_of(key: str) -> str:
    """Who owns a task: a digest of the caller's API key (the key itself is never kept)."""
    return hashlib.sha256(f"mmgen-mock-owner:{key}".encode()).hexdigest()[:24]


@dataclass
class CallbackEvent:
    """One planned status-update callback."""

    status: str  # Processing, Success or Fail
    due: float  # clock time it is to be sent
    faults: list[str] = field(default_factory=list)  # delayed, reordered, duplicate, dropped

    @property
    def dropped(self) -> bool:
        return "dropped" in self.faults


@dataclass
class Task:
    """One video generation task and everything the mock journals about it."""

    seq: int
    task_id: str
    file_id: str
    owner: str  # owner_of(the caller's key)
    created_at: float
    request: dict[str, Any]
    request_sha256: str
    request_bytes: int
    ignored_fields: list[str]
    trace_id: str
    duration: float
    outcome: str  # Success or Fail
    fail_code: int
    fail_message: str
    width: int
    height: int
    video: VideoSpec
    faults: list[str] = field(default_factory=list)
    callback_url: str | None = None
    challenge: str | None = None
    challenge_fault: str | None = None  # reject, malformed or skip
    callback_plan: list[CallbackEvent] = field(default_factory=list)
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    download_log: list[dict[str, Any]] = field(default_factory=list)
    queries: int = 0
    retrieves: int = 0
    downloads: int = 0

    @property
    def queueing_at(self) -> float:
        return self.created_at + self.duration * PREPARING_SHARE

    @property
    def processing_at(self) -> float:
        return self.created_at + self.duration * (PREPARING_SHARE + QUEUEING_SHARE)

    @property
    def ends_at(self) -> float:
        return self.created_at + self.duration

    def status_at(self, now: float) -> str:
        if now >= self.ends_at:
            return self.outcome
        if now >= self.processing_at:
            return PROCESSING
        if now >= self.queueing_at:
            return QUEUEING
        return PREPARING

    def history(self, now: float) -> list[dict[str, Any]]:
        """Statuses reached by ``now``, with the clock time each began."""
        steps = [
            (PREPARING, self.created_at),
            (QUEUEING, self.queueing_at),
            (PROCESSING, self.processing_at),
            (self.outcome, self.ends_at),
        ]
        seen: list[dict[str, Any]] = []
        for status, at in steps:
            if at <= now or status == PREPARING:
                seen.append({"status": status, "at": at})
        return seen

    def to_record(self, subject_ref: str | None) -> dict[str, Any]:
        """What :mod:`mock_server.persistence` keeps of the task (not its counters or journal);
        the subject image is kept apart (``subject_ref``), once for all tasks that share it."""
        record = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in _NOT_SAVED
        }
        record["video"] = {**dataclasses.asdict(self.video), "subject": subject_ref}
        record["callback_plan"] = [dataclasses.asdict(e) for e in self.callback_plan]
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any], subject: str | None) -> Task:
        data = {k: v for k, v in record.items() if k not in _NOT_SAVED}
        data["video"] = VideoSpec(**{**record["video"], "subject": subject})
        data["callback_plan"] = [CallbackEvent(**e) for e in record["callback_plan"]]
        return cls(**data)

    def succeeded(self, now: float) -> bool:
        return self.status_at(now) == SUCCESS

    def status_body(self, status: str, *, callback: bool = False) -> dict[str, Any]:
        """The query response (or, with ``callback``, the update callback) for ``status``."""
        body: dict[str, Any] = {
            "task_id": self.task_id,
            "status": CALLBACK_STATUS.get(status, status.lower()) if callback else status,
        }
        if status == SUCCESS:
            body["file_id"] = self.file_id
            body["video_width"] = self.width
            body["video_height"] = self.height
        body["base_resp"] = (
            base_resp(self.fail_code, self.fail_message)
            if status == FAIL and self.fail_code
            else dict(OK_RESP)
        )
        return body


_NOT_SAVED = frozenset({"deliveries", "download_log", "queries", "retrieves", "downloads"})


def plan_task(
    *,
    config: MockConfig,
    rng: random.Random,
    request: dict[str, Any],
    now: float,
) -> dict[str, Any]:
    """Decide a new task's future from its own random stream (always drawing the same numbers,
    whatever the config, so one fault's probability does not shift the others)."""
    faults = config.faults
    jitter = rng.uniform(-1.0, 1.0) * config.generation_jitter
    slow = rng.random() < faults.tasks.slow_probability
    fail = rng.random() < faults.tasks.fail_probability
    sensitive_draw = rng.random() < faults.sensitive.output_probability
    challenge_draw = rng.random() < faults.challenge.probability
    challenge = f"{rng.getrandbits(128):032x}"

    duration = max(0.0, config.generation_seconds + jitter)
    task_faults: list[str] = []
    if slow:
        duration *= faults.tasks.slow_factor
        task_faults.append("slow")
    prompt = str(request.get("prompt") or "").lower()
    outcome, fail_code, fail_message = SUCCESS, 0, "success"
    if sensitive_draw or any(w.lower() in prompt for w in faults.sensitive.output_words if w):
        outcome, fail_code, fail_message = FAIL, 1027, "output new_sensitive"
        task_faults.append("sensitive_output")
    elif fail:
        outcome = FAIL
        fail_code = faults.tasks.fail_code
        fail_message = "success" if fail_code == 0 else "video generation failed"
        task_faults.append("fail")

    created = now
    events = [
        CallbackEvent(PROCESSING, created + duration * (PREPARING_SHARE + QUEUEING_SHARE)),
        CallbackEvent(outcome, created + duration),
    ]
    cb = faults.callbacks
    for event in events:  # four draws per event, always
        drop, dup, reorder, delay = (rng.random() for _ in range(4))
        if drop < cb.drop:
            event.faults.append("dropped")
        if dup < cb.duplicate:
            event.faults.append("duplicate")
        if reorder < cb.reorder:
            event.faults.append("reordered")
        if delay < cb.delay:
            event.faults.append("delayed")
            event.due += cb.delay_seconds
    if "reordered" in events[-1].faults:  # nothing comes after the last update
        events[-1].faults.remove("reordered")
    for i, event in enumerate(events[:-1]):
        if "reordered" in event.faults:  # held back: arrives right after the next update
            event.due = max(event.due, events[i + 1].due)
    plan: list[CallbackEvent] = []
    for event in sorted(events, key=lambda e: (e.due, "reordered" in e.faults)):
        plan.append(event)
        if "duplicate" in event.faults:
            plan.append(CallbackEvent(event.status, event.due, [*event.faults, "copy"]))
    return {
        "duration": duration,
        "outcome": outcome,
        "fail_code": fail_code,
        "fail_message": fail_message,
        "faults": task_faults,
        "challenge": challenge,
        "challenge_fault": faults.challenge.mode if challenge_draw else None,
        "callback_plan": plan,
    }
