"""Callback delivery: the challenge handshake, then one POST per status change.

For each task created with a ``callback_url`` a background asyncio task (never the request
handler) does what MiniMax does:

1. POST ``{"challenge": "<token>"}`` and require ``{"challenge": "<token>"}`` back within
   ``challenge_timeout`` (3 s). Anything else (timeout, non-200, another value) fails the
   handshake: it is journaled and no updates are sent.
2. At each planned time (see :func:`mock_server.tasks.plan_task`), POST the update, shaped like
   the query response with a lower-case status (``processing``, ``success``, ``failed``),
   with ``callback_timeout`` and ``callback_retries``.

Every attempt and its result goes into the task's ``deliveries`` journal (``GET /_mock/tasks``)
and the stats. Faults (dropped, duplicated, reordered, delayed updates; rejected, malformed or
skipped handshakes) are planned per task and labelled in the journal.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import Any

import httpx

from mock_server.clock import Clock
from mock_server.config import MockConfig
from mock_server.tasks import CallbackEvent, Task

log = logging.getLogger("mock_server.callbacks")

USER_AGENT = "mmgen-mock-callback/1"


class CallbackDispatcher:
    """Runs the deliveries of every task as background tasks of the running event loop."""

    def __init__(
        self,
        *,
        config: MockConfig,
        clock: Clock,
        stats: Counter[str],
        poll_interval: float | None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.stats = stats
        self.poll_interval = poll_interval  # re-read an injected clock this often (real s)
        self._client: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._tick: asyncio.Future[None] | None = None
        self._ticker: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        """Deliveries still running (waiting for their time or for the receiver)."""
        return len(self._tasks)

    def start(self, task: Task) -> None:
        """Begin the deliveries of a task created with a callback_url (needs a running loop)."""
        job = asyncio.get_running_loop().create_task(
            self._run(task), name=f"callbacks-{task.task_id}"
        )
        self._tasks.add(job)
        job.add_done_callback(self._finished)

    def _finished(self, job: asyncio.Task[None]) -> None:
        self._tasks.discard(job)
        if not job.cancelled() and (err := job.exception()) is not None:
            log.error("callback delivery crashed", exc_info=err)

    def cancel_all(self) -> None:
        """Stop every delivery (reset); they end at their next await."""
        for job in list(self._tasks):
            job.cancel()

    async def aclose(self) -> None:
        """Cancel the deliveries, wait for them, close the HTTP client (lifespan shutdown)."""
        jobs = list(self._tasks)
        if self._ticker is not None:
            jobs.append(self._ticker)
            self._ticker = None
        for job in jobs:
            job.cancel()
        if jobs:
            await asyncio.gather(*jobs, return_exceptions=True)
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                trust_env=False,
                follow_redirects=False,
                headers={"User-Agent": USER_AGENT},
                limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
            )
        return self._client

    async def _sleep_until(self, when: float) -> None:
        if self.poll_interval is None:
            while (remaining := when - self.clock()) > 0:
                await asyncio.sleep(remaining)
            return
        while when > self.clock():  # an injected clock: wake up when it moves
            await asyncio.shield(self._next_tick())

    def _next_tick(self) -> asyncio.Future[None]:
        """A future resolved the next time the injected clock is seen to change.

        One ticker polls the clock for all deliveries, so a thousand waiting deliveries cost one
        wake-up per ``poll_interval``, not a thousand.
        """
        loop = asyncio.get_running_loop()
        if self._tick is None or self._tick.done():
            self._tick = loop.create_future()
        if self._ticker is None or self._ticker.done():
            self._ticker = loop.create_task(self._run_ticker(), name="mock-clock-ticker")
        return self._tick

    async def _run_ticker(self) -> None:
        assert self.poll_interval is not None
        last = self.clock()
        while self._tasks:
            await asyncio.sleep(self.poll_interval)
            now = self.clock()
            if now != last:
                last = now
                if self._tick is not None and not self._tick.done():
                    self._tick.set_result(None)

    async def _run(self, task: Task) -> None:
        assert task.callback_url is not None
        if task.challenge_fault == "skip":
            self._journal(
                task, kind="challenge", payload=None, result="skipped (fault)", fault="skip"
            )
            self.stats["challenges_skipped"] += 1
        elif not await self._handshake(task):
            return
        for event in task.callback_plan:
            await self._sleep_until(event.due)
            if event.dropped:
                self._journal(
                    task,
                    kind="update",
                    payload=task.status_body(event.status, callback=True),
                    result="dropped (fault)",
                    fault=",".join(event.faults),
                )
                self.stats["callbacks_dropped"] += 1
                continue
            await self._deliver(task, event)

    async def _post(self, url: str, payload: dict[str, Any], timeout: float) -> tuple[str, Any]:
        """POST JSON; returns (result, response) with result ``ok``, ``http N``, ``timeout``..."""
        try:
            async with asyncio.timeout(timeout):
                response = await self._http().post(url, json=payload, timeout=timeout)
        except (TimeoutError, httpx.TimeoutException):
            return "timeout", None
        except httpx.HTTPError as err:
            return f"error: {type(err).__name__}: {err}"[:200], None
        if not 200 <= response.status_code < 300:
            return f"http {response.status_code}", response
        return "ok", response

    async def _handshake(self, task: Task) -> bool:
        assert task.callback_url is not None and task.challenge is not None
        malformed = task.challenge_fault == "malformed"
        payload: dict[str, Any] = {} if malformed else {"challenge": task.challenge}
        started = time.perf_counter()
        self.stats["challenges_sent"] += 1
        result, response = await self._post(
            task.callback_url, payload, self.config.challenge_timeout
        )
        if result == "ok":
            try:
                echo = response.json().get("challenge")
            except (ValueError, AttributeError):
                echo = None
            if echo != task.challenge:
                result = "wrong echo"
        if task.challenge_fault == "reject":
            result = f"rejected (fault); receiver answered {result}"
        elif malformed:
            result = f"malformed challenge (fault); receiver answered {result}"
        self._journal(
            task,
            kind="challenge",
            payload=payload,
            result=result,
            fault=task.challenge_fault,
            http_status=response.status_code if response is not None else None,
            elapsed=time.perf_counter() - started,
        )
        ok = result == "ok"
        self.stats["challenges_ok" if ok else "challenges_failed"] += 1
        return ok

    async def _deliver(self, task: Task, event: CallbackEvent) -> None:
        assert task.callback_url is not None
        payload = task.status_body(event.status, callback=True)
        for attempt in range(1, self.config.callback_retries + 2):
            started = time.perf_counter()
            self.stats["callbacks_sent"] += 1
            result, response = await self._post(
                task.callback_url, payload, self.config.callback_timeout
            )
            self._journal(
                task,
                kind="update",
                payload=payload,
                result=result,
                fault=",".join(event.faults) or None,
                http_status=response.status_code if response is not None else None,
                elapsed=time.perf_counter() - started,
                attempt=attempt,
            )
            if result == "ok":
                self.stats["callbacks_delivered"] += 1
                return
            self.stats["callbacks_failed"] += 1
            if attempt <= self.config.callback_retries:
                await asyncio.sleep(self.config.callback_retry_delay)

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
