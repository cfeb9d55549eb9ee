"""The mock's memory: tasks, files, counters and the request log, and their inspection views.

Everything here lives in one event loop (the API server's; the CDN origin, when served on its own
thread, hands its bookkeeping to that loop). ``POST /_mock/reset`` forgets the tasks, the counters
and the request log and re-seeds the fault streams, but never the ids: task and file ids only
grow, within a process and (with a ``state_dir``) across restarts. Views never echo
multi-megabyte values: strings longer than :data:`CLIP_AT` characters (data URLs) are shortened,
with their length and sha256; each task also keeps the sha256 of its whole body.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections import Counter, deque
from collections.abc import Iterable
from typing import Any

from mock_server.config import MockConfig
from mock_server.faults import Dice, IdSource, RpmBudget
from mock_server.tasks import STATUSES, SUCCESS, Task

CLIP_AT = 256
REQUEST_LOG_SIZE = 10_000

#: Counters always present in ``GET /_mock/stats`` (0 until something happens).
COUNTERS = (
    "queries",
    "retrieves",
    "downloads",
    "downloads_completed",
    "downloads_expired",
    "downloads_truncated",
    "rejected",
    "challenges_sent",
    "challenges_ok",
    "challenges_failed",
    "challenges_skipped",
    "downloads_with_authorization",
    "callbacks_sent",
    "callbacks_delivered",
    "callbacks_failed",
    "callbacks_dropped",
    "videos_rendered",
)


def clip(value: Any, limit: int = CLIP_AT) -> Any:
    """A copy of JSON data with long strings shortened (length and sha256 kept)."""
    if isinstance(value, str):
        if len(value) <= limit:
            return value
        digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
        return f"{value[:64]}…[{len(value)} chars, sha256 {digest}]"
    if isinstance(value, dict):
        return {k: clip(v, limit) for k, v in value.items()}
    if isinstance(value, list):
        return [clip(v, limit) for v in value]
    return value


class MockStore:
    """Tasks by id, files by id, stats and the request log; seeded id and fault streams."""

    def __init__(self, config: MockConfig, seed: int) -> None:
        self.config = config
        self.seed = seed
        self.task_ids = IdSource(random.Random(f"{seed}:task_ids"), 100_000_000_000_000)
        self.file_ids = IdSource(random.Random(f"{seed}:file_ids"), 170_000_000_000_000)
        self.stats: Counter[str] = Counter()
        self.reset()

    def reset(self) -> None:
        """Forget tasks, counters and the log; re-seed the fault streams; keep the ids going."""
        self.tasks: dict[str, Task] = {}
        self.files: dict[str, Task] = {}
        self.stats.clear()  # the same Counter: the callback dispatcher holds it too
        self.challenge_latencies: deque[float] = deque(maxlen=REQUEST_LOG_SIZE * 10)
        self.requests: deque[dict[str, Any]] = deque(maxlen=REQUEST_LOG_SIZE)
        self.dice = Dice(self.seed)
        self.next_seq = 0
        rpm = self.config.faults.rate_limit.rpm
        self.rpm = RpmBudget(rpm) if rpm is not None else None
        self._interned: dict[str, str] = {}

    def intern(self, text: str) -> str:
        """One copy of equal (large) strings, e.g. the same subject image in many tasks."""
        return self._interned.setdefault(text, text)

    def add(self, task: Task) -> None:
        self.tasks[task.task_id] = task
        self.files[task.file_id] = task
        self.stats["created"] += 1

    def restore(self, task: Task) -> None:
        """A task loaded from saved state: known again, its ids never handed out again."""
        self.tasks[task.task_id] = task
        self.files[task.file_id] = task
        self.task_ids.at_least(int(task.task_id))
        self.file_ids.at_least(int(task.file_id))
        self.next_seq = max(self.next_seq, task.seq + 1)

    def log(self, entry: dict[str, Any]) -> None:
        self.requests.append(entry)

    # --- views ---------------------------------------------------------------------------

    def stats_view(self, now: float) -> dict[str, Any]:
        """``GET /_mock/stats``: see the module docs of :mod:`mock_server.app`."""
        by_status = dict.fromkeys(STATUSES, 0)
        for task in self.tasks.values():
            by_status[task.status_at(now)] += 1
        view: dict[str, Any] = {"created": len(self.tasks), **by_status}
        for name in COUNTERS:
            view[name] = self.stats[name]
        groups: dict[str, dict[str, int]] = {"requests": {}, "errors": {}, "faults": {}}
        for key, count in sorted(self.stats.items()):
            group, _, name = key.partition(".")
            if group in groups and name:
                groups[group][name] = count
        view.update(groups)
        view["callbacks_pending"] = 0
        view["challenge_latency_ms"] = latency_summary(self.challenge_latencies)
        return view

    def task_view(self, task: Task, now: float) -> dict[str, Any]:
        """One task as ``GET /_mock/tasks`` shows it."""
        status = task.status_at(now)
        return {
            "task_id": task.task_id,
            "seq": task.seq,
            "created_at": task.created_at,
            "model": task.request.get("model"),
            "status": status,
            "history": task.history(now),
            "file_id": task.file_id if status == SUCCESS else None,
            "planned": {
                "outcome": task.outcome,
                "ends_at": task.ends_at,
                "base_resp_code": task.fail_code,
                "faults": task.faults,
                "challenge_fault": task.challenge_fault,
                "callbacks": [
                    {"status": e.status, "due": e.due, "faults": e.faults}
                    for e in task.callback_plan
                ]
                if task.callback_url
                else [],
            },
            "request": task.request,
            "request_sha256": task.request_sha256,
            "request_bytes": task.request_bytes,
            "ignored_fields": task.ignored_fields,
            "callback_url": task.callback_url,
            "callbacks": task.deliveries,
            "queries": task.queries,
            "retrieves": task.retrieves,
            "downloads": task.downloads,
            "download_log": task.download_log,
            "trace_id": task.trace_id,
            "owner": task.owner,
        }


def latency_summary(values: Iterable[float]) -> dict[str, float | None]:
    """p50, p99 and max of latencies in ms (nearest rank); None each when there are none."""
    ordered = sorted(values)
    if not ordered:
        return {"p50": None, "p99": None, "max": None}

    def rank(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]

    return {"p50": rank(0.5), "p99": rank(0.99), "max": ordered[-1]}
