"""Plan and run: reconcile job files with the outcome records, like ``terraform apply``.

:func:`plan` sorts every job into an :data:`Action` without spending anything.
:class:`Runner` carries the plan out: many jobs at once (``concurrency``), each one

    record "submitting" ─▶ create ─▶ record task id ─▶ wait (callbacks and/or polling; a
    terminal push is confirmed by one query) ─▶ record file id ─▶ retrieve ─▶ stream the
    video to a temp file, sha256, atomic rename ─▶ record the outcome

where every record step is durable before the next network step, so a run killed at any
instant is resumed by the next one without paying for a task twice.

The runner reports progress as :class:`JobEvent` data to a callback and returns
:class:`RunResult` data; it never prints.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import signal
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import httpx

from mmgen.client import TERMINAL_STATUSES, normalize_status
from mmgen.errors import (
    EXIT_FAILED,
    EXIT_OK,
    AmbiguousSubmitError,
    ApiError,
    ContentError,
    DownloadError,
    MmgenError,
    TransportError,
    UsageError,
    is_transient,
)
from mmgen.records import Record, RecordError, RecordStore, utc_now

if TYPE_CHECKING:
    from mmgen.client import MiniMaxClient, TaskStatus
    from mmgen.listener import CallbackListener
    from mmgen.spec import JobSpec

log = logging.getLogger(__name__)

Action = Literal["submit", "skip", "resume", "changed", "unknown"]
WaitMode = Literal["auto", "callback", "poll"]

#: How long an interrupted run waits for create calls in flight (so their task ids are kept).
SUBMIT_GRACE_SECONDS = 15.0

#: How many times a download is retried with a fresh URL from the retrieve endpoint.
DOWNLOAD_ATTEMPTS = 5


# --- planning ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanItem:
    """What a run will do with one job, and why."""

    job: JobSpec
    action: Action
    reason: str
    record: Record | None = None  # the record the action continues from (skip/resume/unknown)


def file_sha256(path: Path) -> str | None:
    """sha256 of a file, streamed; None when it does not exist."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    except FileNotFoundError:
        return None
    return digest.hexdigest()


def plan(
    jobs: Sequence[JobSpec],
    store: RecordStore,
    *,
    replace: Collection[str] = (),
    resubmit_unknown: bool = False,
) -> list[PlanItem]:
    """Decide, per job, what a run does: submit, skip, resume, changed or unknown."""
    items: list[PlanItem] = []
    for job in jobs:
        record = store.get(job.name, job.spec_hash)
        others = [r for r in store.for_job(job.name) if r.spec_hash != job.spec_hash]
        if job.name in replace:
            items.append(PlanItem(job, "submit", "--replace: generate again", record))
        elif record is None:
            if others:
                items.append(
                    PlanItem(job, "changed", "job file changed since the last run", others[-1])
                )
            else:
                items.append(PlanItem(job, "submit", "new job"))
        elif record.state == "success":
            items.append(_plan_success(job, store.out_dir, record))
        elif record.state == "submitted":
            reason = "in flight: re-attach to task " + str(record.task_id)
            if record.error is not None:
                reason = f"task {record.task_id} not finished last time ({record.error.message})"
            items.append(PlanItem(job, "resume", reason, record))
        elif record.state in ("submitting", "unknown"):
            if resubmit_unknown:
                items.append(PlanItem(job, "submit", "--resubmit-unknown", record))
            else:
                items.append(
                    PlanItem(
                        job,
                        "unknown",
                        "a submit was interrupted: the task may exist; "
                        "use --resubmit-unknown to submit it again",
                        record,
                    )
                )
        else:  # failed
            message = record.error.message if record.error else "failed"
            items.append(PlanItem(job, "submit", f"retry after failure: {message}", record))
    return items


def _plan_success(job: JobSpec, out_dir: Path, record: Record) -> PlanItem:
    # job.output, not record.video: a changed `output` (not part of the spec hash) moves the
    # video by downloading it again, never by generating it again
    actual = file_sha256(out_dir / job.output)
    if actual is not None and actual == record.sha256:
        return PlanItem(job, "skip", "done", record)
    why = "video missing" if actual is None else "video differs from the recorded sha256"
    return PlanItem(job, "resume", f"{why}: download file {record.file_id} again", record)


# --- running -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunConfig:
    """How to run (the CLI fills it from options)."""

    out_dir: Path
    concurrency: int = 8
    wait: WaitMode = "auto"
    poll_interval: float = 10.0
    max_poll_interval: float = 60.0
    timeout: float = 1800.0  # per job, from submit (or resume) to a downloaded video


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
    outcomes: list[JobOutcome]

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outcomes)

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.ok else EXIT_FAILED


EventSink = Callable[[JobEvent], None]


def _error_of(err: MmgenError) -> RecordError:
    if isinstance(err, ApiError):
        return RecordError(code=err.code, message=err.one_line())
    if isinstance(err, AmbiguousSubmitError):
        return RecordError(code="ambiguous_submit", message=err.one_line())
    if isinstance(err, TransportError):
        return RecordError(code="transport", message=err.one_line())
    if isinstance(err, DownloadError):
        return RecordError(code="download", message=err.one_line())
    return RecordError(code="error", message=err.one_line())


def mark_interrupted_submits(store: RecordStore) -> list[Record]:
    """Records left in "submitting" by a run that died before it got a task id become
    "unknown": the task may or may not exist, and only the user may decide to pay again."""
    changed = []
    for record in store.records():
        if record.state == "submitting":
            changed.append(
                store.put(
                    record.evolve(
                        state="unknown",
                        error=RecordError(
                            "interrupted",
                            "the run stopped after submitting began and before a task id "
                            "came back: the task may exist",
                        ),
                    )
                )
            )
    return changed


def remove_partial_downloads(out_dir: Path) -> list[Path]:
    """Delete the temp files of downloads a killed run left behind (``.NAME.*.part``).

    Only call with the out dir's lock held: then no download of another run is in progress.
    """
    removed = []
    for part in out_dir.rglob(".*.part"):
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
            removed.append(part)
    return removed


class Runner:
    """Carries out a plan against one MiniMax API (real or mock)."""

    def __init__(
        self,
        client: MiniMaxClient,
        store: RecordStore,
        config: RunConfig,
        *,
        listener: CallbackListener | None = None,
        on_event: EventSink | None = None,
    ) -> None:
        self.client = client
        self.store = store
        self.config = config
        self.listener = listener
        self._emit: EventSink = on_event or (lambda _event: None)
        self._slots = asyncio.Semaphore(max(1, config.concurrency))

    async def run(self, items: Sequence[PlanItem]) -> RunResult:
        """Run every item of a plan; returns one outcome per job, in plan order."""
        for item in items:
            self._emit(JobEvent(item.job.name, item.action, "planned", message=item.reason))
        outcomes = await asyncio.gather(*(self._run_one(item) for item in items))
        return RunResult(list(outcomes))

    async def _run_one(self, item: PlanItem) -> JobOutcome:
        if item.action == "skip":
            outcome = JobOutcome(item.job.name, "skip", True, item.record, "already done")
            self._finish(item, outcome)
            return outcome
        if item.action == "unknown":
            outcome = JobOutcome(item.job.name, "unknown", False, item.record, item.reason)
            self._finish(item, outcome)
            return outcome
        async with self._slots:
            try:
                outcome = await asyncio.wait_for(self._work(item), self.config.timeout)
            except TimeoutError:
                outcome = self._timed_out(item)
        self._finish(item, outcome)
        return outcome

    def _finish(self, item: PlanItem, outcome: JobOutcome) -> None:
        self._emit(
            JobEvent(
                item.job.name,
                item.action,
                "finished",
                task_id=outcome.record.task_id if outcome.record else None,
                record=outcome.record,
                message=outcome.message,
                ok=outcome.ok,
            )
        )

    def _timed_out(self, item: PlanItem) -> JobOutcome:
        current = self.store.get(item.job.name, item.job.spec_hash)
        message = f"not finished after {self.config.timeout:g} s; the next run resumes it"
        if current is not None and current.state == "submitted":
            current = self.store.put(current.evolve(error=RecordError("timeout", message)))
        return JobOutcome(item.job.name, item.action, False, current, message)

    # --- one job ---------------------------------------------------------------------------

    async def _work(self, item: PlanItem) -> JobOutcome:
        job = item.job
        record = item.record if item.action == "resume" else None
        if record is None:
            submitted = await self._submit(item)
            if isinstance(submitted, JobOutcome):
                return submitted
            record = submitted
        assert record.task_id is not None or record.file_id is not None
        if record.state == "success" and record.file_id:
            return await self._download(item, record)  # re-download a recorded success
        try:
            status = await self._wait(item, record)
        except ContentError as err:  # 1026/1027 reported while querying: the task is over
            failed = self.store.put(
                record.evolve(state="failed", error=_error_of(err), finished_at=utc_now())
            )
            return JobOutcome(job.name, item.action, False, failed, err.one_line())
        except MmgenError as err:  # transport/auth trouble while waiting: resume next run
            kept = self.store.put(record.evolve(error=_error_of(err)))
            return JobOutcome(job.name, item.action, False, kept, err.one_line())
        if status.status != "Success":
            failed = self.store.put(
                record.evolve(
                    state="failed",
                    error=RecordError(
                        "task_failed", f"MiniMax reported task status {status.status}"
                    ),
                    finished_at=utc_now(),
                )
            )
            return JobOutcome(job.name, item.action, False, failed, "task failed on MiniMax")
        record = self.store.put(
            record.evolve(
                file_id=status.file_id,
                width=status.width,
                height=status.height,
                video=job.output,
            )
        )
        return await self._download(item, record)

    async def _submit(self, item: PlanItem) -> Record | JobOutcome:
        job = item.job
        self._emit(JobEvent(job.name, item.action, "submitting"))
        record = self.store.put(
            Record(
                job=job.name,
                spec=job.file,
                spec_hash=job.spec_hash,
                state="submitting",
                video=job.output,
                submitted_at=utc_now(),
            )
        )
        body = dict(job.body)
        if self.listener is not None and "callback_url" not in body:
            body["callback_url"] = self.listener.callback_url
        try:
            task_id = await self._create(record, body)
        except AmbiguousSubmitError as err:
            unknown = self.store.put(record.evolve(state="unknown", error=_error_of(err)))
            message = f"{err.one_line()}; the task may exist: check, then --resubmit-unknown"
            return JobOutcome(job.name, item.action, False, unknown, message)
        except MmgenError as err:  # refused (or never reached MiniMax): nothing was created
            failed = self.store.put(
                record.evolve(state="failed", error=_error_of(err), finished_at=utc_now())
            )
            return JobOutcome(job.name, item.action, False, failed, err.one_line())
        record = self.store.put(record.evolve(state="submitted", task_id=task_id))
        self._emit(JobEvent(job.name, item.action, "submitted", task_id=task_id))
        return record

    async def _create(self, record: Record, body: dict[str, Any]) -> str:
        """The create call, shielded: if the run is interrupted while it is in flight, it is
        given a short grace period to come back so its task id is recorded, not lost."""
        create = asyncio.ensure_future(self.client.create_task(body))
        try:
            return await asyncio.shield(create)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                task_id = await asyncio.wait_for(create, SUBMIT_GRACE_SECONDS)
                self.store.put(record.evolve(state="submitted", task_id=task_id))
            create.cancel()
            raise

    async def _wait(self, item: PlanItem, record: Record) -> TaskStatus:
        """Wait for a terminal status: callback pushes (confirmed by a query) and/or polling."""
        task_id = record.task_id
        assert task_id is not None
        queue = None
        if self.listener is not None and self._own_callback(item):
            queue = self.listener.watch(task_id)
        polling = self.config.wait != "callback" or queue is None
        interval = self.config.poll_interval
        if queue is not None and polling:
            interval = max(interval, self.config.poll_interval * 3)  # polling is the fallback
        try:
            # One query first: on resume the task may be long finished, and pushes sent before
            # the task id was known were refused.
            status = await self._poll(item, task_id)
            while status is None or not status.terminal:
                pushed = await self._next_push(queue, interval if polling else None)
                if pushed is not None:
                    pushed_status = normalize_status(str(pushed.get("status", "")))
                    self._emit(
                        JobEvent(item.job.name, item.action, "waiting", task_id, pushed_status)
                    )
                    if pushed_status not in TERMINAL_STATUSES:
                        continue
                    # a push is a hint, never the truth: confirm with the query endpoint
                    status = await self._poll(item, task_id)
                    if status is not None and not status.terminal:
                        log.warning("task %s: ignored an unconfirmed %r push", task_id, pushed)
                    continue
                status = await self._poll(item, task_id)
                interval = min(interval * 1.5, max(self.config.max_poll_interval, interval))
            return status
        finally:
            if queue is not None and self.listener is not None:
                self.listener.unwatch(task_id)

    def _own_callback(self, item: PlanItem) -> bool:
        """Callbacks reach this run only when the job file does not set its own callback_url."""
        return "callback_url" not in item.job.body

    async def _next_push(
        self, queue: asyncio.Queue[dict[str, Any]] | None, timeout: float | None
    ) -> dict[str, Any] | None:
        if queue is None:
            if timeout is None:  # pragma: no cover - guarded by _wait
                raise RuntimeError("nothing to wait on")
            await asyncio.sleep(timeout)
            return None
        try:
            return await asyncio.wait_for(queue.get(), timeout)
        except TimeoutError:
            return None

    async def _poll(self, item: PlanItem, task_id: str) -> TaskStatus | None:
        """The task's status, or None when MiniMax could not be asked right now (the client's
        retries are exhausted on a transient failure): waiting goes on until the job's
        timeout. Other errors (auth, sensitive output...) end the wait."""
        try:
            status = await self.client.query_task(task_id)
        except MmgenError as err:
            if not is_transient(err):
                raise
            log.warning("task %s: status query failed (%s); still waiting", task_id, err)
            return None
        self._emit(JobEvent(item.job.name, item.action, "waiting", task_id, status.status))
        return status

    async def _download(self, item: PlanItem, record: Record) -> JobOutcome:
        job = item.job
        assert record.file_id is not None
        dest = self.store.out_dir / job.output
        dest.parent.mkdir(parents=True, exist_ok=True)
        last_error: MmgenError | None = None
        for _attempt in range(DOWNLOAD_ATTEMPTS):
            try:
                info = await self.client.retrieve_file(record.file_id)

                def progress(done: int, total: int | None, size: int | None = info.bytes) -> None:
                    self._emit(
                        JobEvent(
                            job.name,
                            item.action,
                            "downloading",
                            record.task_id,
                            "Success",
                            done,
                            total or size or None,
                        )
                    )

                progress(0, None)
                got = await self.client.download(
                    info.download_url, dest, progress=progress, expected_bytes=info.bytes or None
                )
            except MmgenError as err:
                last_error = err
                if not (isinstance(err, DownloadError) or is_transient(err)):
                    break
                log.info("download of %s failed (%s); retrieving a fresh URL", job.name, err)
                continue
            done = self.store.put(
                record.evolve(
                    state="success",
                    sha256=got.sha256,
                    bytes=got.bytes,
                    video=str(dest.relative_to(self.store.out_dir)),
                    error=None,
                    finished_at=utc_now(),
                )
            )
            return JobOutcome(job.name, item.action, True, done, "downloaded")
        assert last_error is not None
        kept = self.store.put(record.evolve(error=_error_of(last_error)))
        return JobOutcome(job.name, item.action, False, kept, last_error.one_line())


# --- a whole run ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """Which API a run talks to: the real one (key + base URL) or the bundled mock."""

    base_url: str
    api_key: str | None
    mock: bool = False
    mock_config: Any = None  # a mock_server.MockConfig when mock is true


@dataclass(frozen=True)
class RunSettings:
    """Everything ``mmgen run`` decides before it starts (the CLI fills it from options)."""

    config: RunConfig
    rpm: int | None = None
    listen_host: str = "127.0.0.1"
    listen_port: int = 0
    public_url: str | None = None
    replace: frozenset[str] = frozenset()
    resubmit_unknown: bool = False


MOCK_API_KEY = "mmgen-mock-key"
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1", "[::1]")


def callbacks_reachable(target: Target, settings: RunSettings) -> bool:
    """Can MiniMax (or the mock) reach a listener of this run?"""
    if settings.public_url or target.mock:
        return True
    host = httpx.URL(target.base_url).host
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def needs_listener(target: Target, settings: RunSettings) -> bool:
    """Whether this run serves a callback listener (``--wait`` and reachability decide)."""
    if settings.config.wait == "poll":
        return False
    reachable = callbacks_reachable(target, settings)
    if settings.config.wait == "callback" and not reachable:
        raise UsageError(
            "--wait callback needs a callback URL MiniMax can reach",
            hint="give --public-url (a tunnel or public host forwarding to --listen), "
            "or use --wait poll",
        )
    return reachable


async def execute(
    jobs: Sequence[JobSpec],
    target: Target,
    settings: RunSettings,
    *,
    on_event: EventSink | None = None,
) -> RunResult:
    """Reconcile ``jobs`` with the out dir's records: plan, then run what is left.

    Holds the out dir's lock for the whole run. Starts the bundled mock (``target.mock``) and
    the callback listener only when there is work to do.
    """
    from mmgen.client import MiniMaxClient
    from mmgen.listener import CallbackListener, serve_app_in_loop
    from mmgen.ratelimit import RateLimiter

    with_listener = needs_listener(target, settings)
    store = RecordStore(settings.config.out_dir)
    # SIGTERM (a CI pipeline being cancelled) stops the run like Ctrl-C: records stay durable.
    current = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if current is not None:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGTERM, current.cancel)
    with store.lock():
        mark_interrupted_submits(store)
        remove_partial_downloads(store.out_dir)
        items = plan(
            jobs,
            store,
            replace=settings.replace,
            resubmit_unknown=settings.resubmit_unknown,
        )
        busy = any(item.action in ("submit", "changed", "resume") for item in items)
        if busy and not target.mock and not target.api_key:
            raise UsageError("no MiniMax API key", hint="set MINIMAX_API_KEY, or use --mock")
        async with contextlib.AsyncExitStack() as stack:
            # With nothing to do no call is made: a run that only skips needs no key.
            base_url, api_key = target.base_url, (target.api_key if busy else None) or "unused"
            listener = None
            if busy and target.mock:
                from mock_server import create_app

                served = await serve_app_in_loop(create_app(target.mock_config))
                stack.push_async_callback(served.stop)
                base_url, api_key = served.url, MOCK_API_KEY
            client = MiniMaxClient(
                api_key,
                base_url,
                rate_limiter=RateLimiter(settings.rpm),
                max_connections=settings.config.concurrency + 4,
            )
            stack.push_async_callback(client.aclose)
            if busy and with_listener:
                listener = CallbackListener(
                    settings.listen_host, settings.listen_port, public_url=settings.public_url
                )
                await listener.start()
                stack.push_async_callback(listener.stop)
            runner = Runner(client, store, settings.config, listener=listener, on_event=on_event)
            return await runner.run(items)
