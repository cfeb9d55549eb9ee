"""Callback delivery: the callback check (challenge), then one POST per status change.

What MiniMax does for a task created with a ``callback_url``, and how the mock does it at scale:

1. **The check.** POST ``{"challenge": "<token>"}`` and require ``{"challenge": "<token>"}`` back
   within ``challenge_timeout`` (3 s); anything else (timeout, refused, non-200, another value)
   fails it. With ``challenge_mode: sync`` (the default, as MiniMax) the create handler awaits
   :meth:`CallbackDispatcher.check` before answering, and a failed check refuses the create; with
   ``async`` the check is the first delivery of the created task and a failure stops its updates.
2. **Updates.** At each planned time (see :func:`mock_server.tasks.plan_task`) POST the update,
   shaped like the query response with a lower-case status, with ``callback_timeout`` and
   ``callback_retries``.

Scale: one scheduler coroutine owns a heap of due deliveries ordered by the clock (each task has
at most one entry: its next delivery, so its updates keep their planned order), and hands due ones
to a fixed pool of ``callback_concurrency`` worker coroutines through a queue; checks awaited by
creates are bounded the same way. Each POST borrows one of ``callback_concurrency``
keep-alive connections for checks, or as many for updates
(:class:`mmgen.connections.ConnectionPool`, as mmgen's own client). No task has a timer of
its own; with an injected clock the scheduler wakes when a
:class:`~mock_server.clock.ManualClock` moves (or re-reads another clock every 20 ms).

Every attempt and its result goes into the task's ``deliveries`` journal (``GET /_mock/tasks``)
and the stats; checks are journaled with ``latency_ms`` and ``ok``.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from mmgen.connections import ConnectionPool
from mock_server.clock import Clock
from mock_server.config import MockConfig
from mock_server.tasks import Task

log = logging.getLogger("mock_server.callbacks")

USER_AGENT = "mmgen-mock-callback/1"
CHECKS, UPDATES = 0, 1  # the two connection pools
CLOCK_POLL = 0.02  # seconds between reads of an injected clock that cannot tell it moved


@dataclass
class CheckResult:
    """The outcome of one callback check."""

    ok: bool
    result: str  # ok, timeout, wrong echo, http N, error: ..., skipped (fault)...
    latency_ms: float
    payload: dict[str, Any] | None
    http_status: int | None

    def journal(self, at: float, fault: str | None) -> dict[str, Any]:
        return {
            "kind": "challenge",
            "status": None,
            "at": at,
            "attempt": 1,
            "payload": self.payload,
            "result": self.result,
            "ok": self.ok,
            "http_status": self.http_status,
            "fault": fault,
            "latency_ms": self.latency_ms,
            "elapsed_ms": self.latency_ms,
        }


class CallbackDispatcher:
    """The scheduler, the worker pool and the HTTP client of every callback of one mock."""

    def __init__(
        self,
        *,
        config: MockConfig,
        clock: Clock,
        stats: Counter[str],
        on_check: Callable[[CheckResult], None] | None = None,
        injected_clock: bool = False,
    ) -> None:
        self.config = config
        self.clock = clock
        self.stats = stats
        self.on_check = on_check
        self.injected_clock = injected_clock
        self._pools: list[ConnectionPool] = []  # made on the loop that sends
        self._pools_loop: asyncio.AbstractEventLoop | None = None
        self._heap: list[tuple[float, int, Task]] = []
        self._order = itertools.count()
        self._next: dict[str, int] = {}  # task_id -> index of its next planned update
        self._queue: asyncio.Queue[Task] | None = None
        self._jobs: set[asyncio.Task[None]] = set()
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.in_flight = 0  # callback POSTs (checks and updates) under way now
        self.in_flight_max = 0  # the most there ever were at once (since the last reset)
        subscribe = getattr(clock, "subscribe", None)
        if callable(subscribe):
            subscribe(self._clock_moved)

    # --- state -----------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Tasks with deliveries still to come (waiting for their time, queued or in flight)."""
        return len(self._next)

    def _ensure_started(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is loop and self._jobs:
            return
        self._loop = loop
        size = self.config.callback_concurrency
        self._queue = asyncio.Queue()
        self._wake = asyncio.Event()
        self._spawn(self._schedule(), "mock-callback-scheduler")
        for index in range(size):
            self._spawn(self._work(), f"mock-callback-worker-{index}")

    def _spawn(self, coro: Any, name: str) -> None:
        job = asyncio.get_running_loop().create_task(coro, name=name)
        self._jobs.add(job)
        job.add_done_callback(self._finished)

    def _finished(self, job: asyncio.Task[None]) -> None:
        self._jobs.discard(job)
        if not job.cancelled() and (err := job.exception()) is not None:
            log.error("callback delivery crashed", exc_info=err)

    def _clock_moved(self) -> None:
        """Called by a ManualClock (from any thread) when it moves."""
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wake.set)

    # --- entry points ------------------------------------------------------------------------

    def start(self, task: Task, *, check_first: bool) -> None:
        """Plan the deliveries of a task created with a callback_url (needs a running loop).

        ``check_first``: the async mode's check comes first (at once); else the updates follow.
        """
        self._ensure_started()
        if task.callback_url is None:
            return
        if check_first:
            self._next[task.task_id] = -1
            self._push(self.clock(), task)
        else:
            self._advance(task, 0)

    def resume(self, task: Task, now: float) -> None:
        """Re-plan the updates still to come of a task loaded from saved state."""
        self._ensure_started()
        if task.callback_url is None:
            return
        later = [i for i, event in enumerate(task.callback_plan) if event.due > now]
        if later:
            self._advance(task, later[0])

    async def check(self, url: str, token: str, fault: str | None) -> CheckResult:
        """The callback check, awaited by a create in sync mode (also used by async mode)."""
        self._ensure_started()
        if fault == "skip":
            self.stats["challenges_skipped"] += 1
            return CheckResult(True, "skipped (fault)", 0.0, None, None)
        result = await self._challenge(url, token, fault)
        if self.on_check is not None:
            self.on_check(result)
        return result

    def cancel_all(self) -> None:
        """Forget every planned delivery and stop those in flight (reset)."""
        self._heap.clear()
        self._next.clear()
        self.in_flight_max = self.in_flight
        for job in list(self._jobs):
            job.cancel()
        self._jobs.clear()
        self._loop = None

    async def aclose(self) -> None:
        """Cancel the deliveries, wait for them, close the HTTP client (lifespan shutdown)."""
        jobs = list(self._jobs)
        self.cancel_all()
        if jobs:
            await asyncio.gather(*jobs, return_exceptions=True)
        pools, self._pools = self._pools, []
        for pool in pools:
            await pool.aclose()

    def _pool(self, index: int) -> ConnectionPool:
        """The connections for checks (0) or updates (1), of the running loop."""
        loop = asyncio.get_running_loop()
        if not self._pools or self._pools_loop is not loop:  # connections belong to a loop
            self._pools_loop = loop
            size = self.config.callback_concurrency
            tls = httpx.create_ssl_context()
            headers = {"User-Agent": USER_AGENT}
            self._pools = [
                ConnectionPool(size, tls=tls, trust_env=False, headers=headers) for _ in range(2)
            ]
        return self._pools[index]

    # --- the scheduler and the workers -------------------------------------------------------

    def _push(self, due: float, task: Task) -> None:
        heapq.heappush(self._heap, (due, next(self._order), task))
        if self._wake is not None and self._heap[0][2] is task:
            self._wake.set()  # an earlier deadline than the scheduler sleeps for

    def _advance(self, task: Task, index: int) -> None:
        """Make update ``index`` the task's next delivery (or finish the task)."""
        if index >= len(task.callback_plan):
            self._next.pop(task.task_id, None)
            return
        self._next[task.task_id] = index
        self._push(task.callback_plan[index].due, task)

    async def _schedule(self) -> None:
        assert self._wake is not None and self._queue is not None
        while True:
            now = self.clock()
            while self._heap and self._heap[0][0] <= now:
                _, _, task = heapq.heappop(self._heap)
                self._queue.put_nowait(task)
            self._wake.clear()
            timeout: float | None = None  # nothing planned: sleep until a push wakes us
            if self._heap and not self.injected_clock:
                timeout = self._heap[0][0] - now
            elif self._heap and not callable(getattr(self.clock, "subscribe", None)):
                timeout = CLOCK_POLL  # an injected clock that cannot say it moved
            try:
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def _work(self) -> None:
        assert self._queue is not None
        while True:
            task = await self._queue.get()
            index = self._next.get(task.task_id)
            if index is None:  # forgotten (reset)
                continue
            if index < 0:
                await self._async_check(task)
                continue
            event = task.callback_plan[index]
            if event.dropped:
                self._journal(
                    task,
                    kind="update",
                    payload=task.status_body(event.status, callback=True),
                    result="dropped (fault)",
                    fault=",".join(event.faults),
                )
                self.stats["callbacks_dropped"] += 1
            else:
                await self._deliver(task, index)
                continue
            self._advance(task, index + 1)

    async def _async_check(self, task: Task) -> None:
        assert task.callback_url is not None and task.challenge is not None
        result = await self.check(task.callback_url, task.challenge, task.challenge_fault)
        task.deliveries.append(result.journal(self.clock(), task.challenge_fault))
        if result.ok:
            self._advance(task, 0)
        else:
            self._next.pop(task.task_id, None)

    async def _post(
        self, kind: int, url: str, payload: dict[str, Any], timeout: float
    ) -> tuple[str, Any, float]:
        """POST JSON; returns (result, response, seconds) with result ``ok``, ``http N``,
        ``timeout``... The time and the timeout run from the moment a client is free: waiting
        for a slot is the mock's own queue, not the receiver's slowness."""
        async with self._pool(kind).client() as client:
            started = time.perf_counter()
            self.in_flight += 1
            self.in_flight_max = max(self.in_flight_max, self.in_flight)
            try:
                async with asyncio.timeout(timeout):
                    response = await client.post(url, json=payload, timeout=timeout)
            except (TimeoutError, httpx.TimeoutException):
                return "timeout", None, time.perf_counter() - started
            except httpx.HTTPError as err:
                message = f"error: {type(err).__name__}: {err}"[:200]
                return message, None, time.perf_counter() - started
            finally:
                self.in_flight -= 1
        elapsed = time.perf_counter() - started
        if not 200 <= response.status_code < 300:
            return f"http {response.status_code}", response, elapsed
        return "ok", response, elapsed

    async def _challenge(self, url: str, token: str, fault: str | None) -> CheckResult:
        payload: dict[str, Any] = {} if fault == "malformed" else {"challenge": token}
        self.stats["challenges_sent"] += 1
        result, response, elapsed = await self._post(
            CHECKS, url, payload, self.config.challenge_timeout
        )
        latency_ms = round(elapsed * 1000, 1)
        if result == "ok":
            try:
                echo = response.json().get("challenge")
            except (ValueError, AttributeError):
                echo = None
            if echo != token:
                result = "wrong echo"
        if fault == "reject":
            result = f"rejected (fault); receiver answered {result}"
        elif fault == "malformed":
            result = f"malformed challenge (fault); receiver answered {result}"
        ok = result == "ok"
        self.stats["challenges_ok" if ok else "challenges_failed"] += 1
        status = response.status_code if response is not None else None
        return CheckResult(ok, result, latency_ms, payload, status)

    async def _deliver(self, task: Task, index: int, attempt: int = 1) -> None:
        """Attempt update ``index``, retrying as configured (retries are off by default)."""
        assert task.callback_url is not None
        event = task.callback_plan[index]
        payload = task.status_body(event.status, callback=True)
        self.stats["callbacks_sent"] += 1
        result, response, elapsed = await self._post(
            UPDATES, task.callback_url, payload, self.config.callback_timeout
        )
        self._journal(
            task,
            kind="update",
            payload=payload,
            result=result,
            fault=",".join(event.faults) or None,
            http_status=response.status_code if response is not None else None,
            elapsed=elapsed,
            attempt=attempt,
        )
        if result == "ok":
            self.stats["callbacks_delivered"] += 1
        else:
            self.stats["callbacks_failed"] += 1
            if attempt <= self.config.callback_retries and task.task_id in self._next:
                await asyncio.sleep(self.config.callback_retry_delay)
                await self._deliver(task, index, attempt + 1)
                return
        if self._next.get(task.task_id) == index:
            self._advance(task, index + 1)

    def _journal(
        self,
        task: Task,
        *,
        kind: str,
        payload: dict[str, Any] | None,
        result: str,
        fault: str | None = None,
        http_status: int | None = None,
        elapsed: float | None = None,
        attempt: int = 1,
    ) -> None:
        task.deliveries.append(
            {
                "kind": kind,
                "status": payload.get("status") if payload and kind == "update" else None,
                "at": self.clock(),
                "attempt": attempt,
                "payload": payload,
                "result": result,
                "http_status": http_status,
                "fault": fault,
                "elapsed_ms": round(elapsed * 1000, 1) if elapsed is not None else None,
            }
        )
