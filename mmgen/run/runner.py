"""Run a plan: many jobs at once against one MiniMax API (real or mock), each one

    wait for a slot and the RPM limiter ─▶ record "submitting" ─▶ create ─▶ record the task id
    ─▶ wait (callback pushes, each terminal one confirmed by a query; and/or polling)
    ─▶ retrieve + stream the video to its version file (sha256, fsync,
    atomic rename) ─▶ make it the current ``NAME.mp4`` ─▶ record the outcome (with the file id)

Every record step is durable before the next network step that spends or commits anything
(:meth:`RecordStore.write`, group commit off the event loop), so a run killed at any instant is
resumed by the next one without paying for a task twice. The file id is not recorded on its own:
retrieving and downloading spend nothing, and a resumed job queries its task again.
"submitting" is written after the rate limiter let the request through, right before it
leaves: a job still queued when the run stops was never sent and stays as it was.

One owner per retry loop, so retries never stack. For one job, at most:

- create: the client's retries of a retryable answer (``RetryPolicy.attempts``, 6), at most
  3 when the connection cannot be made; never after the request may have reached MiniMax;
- wait: one query per poll (:data:`QUERY_ATTEMPTS` tries); the wait loop is the retry, its
  interval backing off to ``max_poll_interval``, bounded by ``--timeout``;
- download: :data:`DOWNLOAD_ROUNDS` rounds, each one retrieve for a fresh URL
  (:data:`RETRIEVE_ATTEMPTS` tries) and one streamed GET (:data:`DOWNLOAD_ATTEMPTS` tries,
  each from the first byte); a round ends early only on an expired URL: 24 requests at worst
  (it was about 90 when client, runner and retrieve retries nested).

The run stops submitting at the first account-level error (wrong key, empty balance, spent
quota, unreachable server: :func:`~mmgen.errors.is_account_error`): one message, the jobs not
yet sent untouched. A create refused because MiniMax could not check the callback URL (no task
was created) is sent again without ``callback_url`` in ``--wait auto`` and that job is polled;
after :data:`CALLBACK_REFUSALS` such refusals callbacks are no longer offered in this run.

The runner reports progress as :class:`~mmgen.run.outcomes.JobEvent` data and returns a
:class:`~mmgen.run.outcomes.RunResult`; it never prints.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from mmgen.api.responses import TERMINAL_STATUSES, id_or_none, normalize_status
from mmgen.errors import (
    AmbiguousSubmitError,
    CallbackCheckError,
    ContentError,
    DownloadError,
    InvalidRequestError,
    MmgenError,
    NotSentError,
    OutDirFullError,
    StateError,
    is_account_error,
    is_transient,
)
from mmgen.run.listener import Pushes
from mmgen.run.outcomes import EventSink, JobEvent, JobOutcome, RunResult
from mmgen.state.files import publish
from mmgen.state.journal import RecordStore
from mmgen.state.planning import PlanItem, version_path
from mmgen.state.records import (
    DEFAULT_API,
    Record,
    RecordError,
    record_error,
    request_snapshot,
    utc_now,
)

if TYPE_CHECKING:
    from mmgen.api.responses import Download, FileInfo, TaskStatus
    from mmgen.run.listener import CallbackListener

log = logging.getLogger(__name__)

WaitMode = Literal["auto", "callback", "poll"]

#: How long an interrupted run waits for create calls in flight (so their task ids are kept).
SUBMIT_GRACE_SECONDS = 15.0
#: Tries of one status query inside the wait loop (the loop itself is the retry).
QUERY_ATTEMPTS = 2
#: Rounds of retrieve (fresh URL) + download; tries of each inside one round.
DOWNLOAD_ROUNDS = 4
RETRIEVE_ATTEMPTS = 3
DOWNLOAD_ATTEMPTS = 3
#: Creates refused for the callback URL after which callbacks are no longer offered.
CALLBACK_REFUSALS = 3
#: How long a create whose answer was ambiguous waits for a push on its own callback path
#: naming the task it created (then adopted, once a query confirms it), before it is left
#: ``unknown``.
ADOPT_SECONDS = 120.0
#: Waits between the prompt retries of a query confirming a terminal push (then the poll
#: interval takes over again).
CONFIRM_WAITS = (0.25, 0.5, 1.0, 2.0, 4.0)
#: Jobs that may be inside a create call at once. The client's connections bound the requests
#: anyway; waiting here, a job holds a semaphore slot rather than a whole client call (retry
#: state, frames): a few hundred bytes instead of kilobytes.
CREATES_IN_FLIGHT = 64


class ApiClient(Protocol):
    """What the runner needs of :class:`mmgen.api.client.MiniMaxClient` (tests fake it)."""

    async def create_task(
        self,
        body: dict[str, Any],
        *,
        before_send: Callable[[], Awaitable[None]] | None = None,
        abort: asyncio.Event | None = None,
    ) -> str: ...

    async def query_task(self, task_id: str, *, attempts: int | None = None) -> TaskStatus: ...

    async def retrieve_file(self, file_id: str, *, attempts: int | None = None) -> FileInfo: ...

    async def download(
        self,
        url: str,
        dest: Path,
        *,
        progress: Callable[[int, int | None], None] | None = None,
        expected_bytes: int | None = None,
        attempts: int | None = None,
        then: Callable[[Path], None] | None = None,
    ) -> Download: ...


@dataclass(frozen=True)
class RunConfig:
    """How to run (the CLI fills it from options)."""

    out_dir: Path
    concurrency: int = 8
    wait: WaitMode = "auto"
    poll_interval: float = 10.0
    max_poll_interval: float = 60.0
    timeout: float = 1800.0  # per job, from submit (or resume) to a downloaded video
    #: The API the run talks to, as records name it (:func:`mmgen.state.records.api_identity`).
    api: str = DEFAULT_API


class _Lost(Exception):
    """The API no longer knows the task or file (expired, another key, a restarted mock)."""

    def __init__(self, what: str, error: MmgenError) -> None:
        super().__init__(what)
        self.error = error


class Runner:
    """Carries out a plan against one MiniMax API (real or mock)."""

    def __init__(
        self,
        client: ApiClient,
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
        self._creating = asyncio.Semaphore(CREATES_IN_FLIGHT)
        self._stopped: str | None = None
        self._waiting: set[Pushes] = set()  # pushes of waiting jobs
        # job name -> (token, pushes) of the callback path its create was given
        self._callbacks: dict[str, tuple[str, Pushes]] = {}
        self._stop_event = asyncio.Event()
        self._offer_callbacks = listener is not None
        self._callback_refusals = 0
        self._polled: set[str] = set()  # jobs whose task was created without our callback
        self._warnings: list[str] = []

    # --- the run ---------------------------------------------------------------------------

    async def run(self, items: Sequence[PlanItem]) -> RunResult:
        """Run every item of a plan; returns one outcome per job, in plan order."""
        for item in items:
            self._emit(JobEvent(item.job.name, item.action, "planned", message=item.reason))
        outcomes: list[JobOutcome | None] = [None] * len(items)

        async def one(index: int, item: PlanItem) -> None:
            outcomes[index] = await self._run_one(item)

        failure: BaseException | None = None
        try:
            async with asyncio.TaskGroup() as group:
                for index, item in enumerate(items):
                    group.create_task(one(index, item))
        except ExceptionGroup as errors:
            # a record or a file could not be written (disk full, permissions): every job
            # stops, and one message says why (what is recorded stays recorded)
            failure = _one_error(errors)
        except BaseException:  # interrupted: what was handed in is written first
            await self._drain()  # a failed write is not hidden: it replaces the Ctrl-C
            raise
        try:
            await self._drain()
        except MmgenError as err:
            failure = failure or err
        if failure is not None:
            raise failure
        done = [o for o in outcomes if o is not None]
        return RunResult(done, stopped=self._stopped, warnings=list(self._warnings))

    async def _drain(self) -> None:
        try:
            await self.store.drain()
        except OSError as err:
            raise _state_error(err, self.store.out_dir) from err

    def stop(self, error: MmgenError) -> None:
        """Stop submitting: an error that every further create would repeat."""
        if self._stopped is None:
            self._stopped = f"stopped submitting: {error.one_line()}"
            log.warning("%s", self._stopped)
            for pushes in self._waiting:
                pushes.put_nowait({})  # wakes the job; it sees the run stopped
            self._stop_event.set()  # creates waiting for the limiter or a retry give up

    def _warn_once(self, message: str) -> None:
        if message not in self._warnings:
            self._warnings.append(message)
            log.warning("%s", message)

    async def _run_one(self, item: PlanItem) -> JobOutcome:
        if item.action == "skip":
            outcome = await self._skip(item)
        elif item.action == "unknown":
            outcome = JobOutcome(item.job.name, "unknown", False, item.record, item.reason)
        else:
            async with self._slots:
                if self._stopped is not None:
                    outcome = self._not_sent(item)
                else:
                    try:
                        async with asyncio.timeout(self.config.timeout):
                            outcome = await self._work(item)
                    except TimeoutError:
                        outcome = await self._timed_out(item)
        self._finish(item, outcome)
        return outcome

    def _not_sent(self, item: PlanItem) -> JobOutcome:
        return JobOutcome(item.job.name, item.action, False, item.record, NotSentError.MESSAGE)

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

    async def _timed_out(self, item: PlanItem) -> JobOutcome:
        current = self.store.get(item.job.name, item.job.spec_hash)
        message = f"not finished after {self.config.timeout:g} s; the next run resumes it"
        if current is not None and current.state == "submitted":
            current = await self.store.write(current.evolve(error=RecordError("timeout", message)))
        elif current is not None and current.state == "submitting":  # an answer never came
            message = (
                f"no task id after {self.config.timeout:g} s (the create's answer was lost): "
                "the task may exist; check, then --resubmit-unknown"
            )
            current = await self.store.write(
                current.evolve(state="unknown", error=RecordError("ambiguous_submit", message))
            )
        return JobOutcome(item.job.name, item.action, False, current, message)

    # --- one job ---------------------------------------------------------------------------

    async def _work(self, item: PlanItem) -> JobOutcome:
        record = item.record if item.action == "resume" else None
        fresh = record is None
        if record is None:
            try:
                submitted = await self._submit(item)
            except BaseException:
                self._forget_callback(item.job.name)
                raise
            if isinstance(submitted, JobOutcome):
                self._forget_callback(item.job.name)
                return submitted
            record = submitted
        try:
            return await self._finish_work(item, record, fresh)
        finally:
            self._forget_callback(item.job.name)

    async def _finish_work(self, item: PlanItem, record: Record, fresh: bool) -> JobOutcome:
        job = item.job
        if record.state == "success" and record.file_id:
            return await self._download(item, record)  # re-download a recorded success
        try:
            status = await self._wait(item, record, fresh=fresh)
        except _Lost as lost:
            return await self._lost(item, record, lost)
        except ContentError as err:  # 1026/1027 reported while querying: the task is over
            failed = await self.store.write(
                record.evolve(state="failed", error=record_error(err), finished_at=utc_now())
            )
            return JobOutcome(job.name, item.action, False, failed, err.one_line())
        except MmgenError as err:  # auth trouble, or the run stopped: resume next run
            if is_account_error(err):
                self.stop(err)
            kept = await self.store.write(record.evolve(error=record_error(err)))
            return JobOutcome(job.name, item.action, False, kept, err.one_line())
        if status is None:  # the run stopped while this job waited
            return JobOutcome(job.name, item.action, False, record, "waiting stopped: resume later")
        if status.status != "Success":
            failed = await self.store.write(
                record.evolve(
                    state="failed",
                    error=RecordError(
                        "task_failed", f"MiniMax reported task status {status.status}"
                    ),
                    finished_at=utc_now(),
                )
            )
            return JobOutcome(job.name, item.action, False, failed, "task failed on MiniMax")
        # Not written yet: retrieving and downloading spend nothing and are repeated after a
        # crash (the task is queried again), so the file id is recorded with the outcome.
        record = record.evolve(file_id=status.file_id, width=status.width, height=status.height)
        return await self._download(item, record)

    async def _lost(self, item: PlanItem, record: Record, lost: _Lost) -> JobOutcome:
        message = (
            f"MiniMax no longer knows {lost} ({lost.error.message}): it expired, was made "
            "with another API key, or the mock was restarted; the next run submits the job again"
        )
        failed = await self.store.write(
            record.evolve(
                state="failed", error=RecordError("task_lost", message), finished_at=utc_now()
            )
        )
        return JobOutcome(item.job.name, item.action, False, failed, message)

    # --- submit ----------------------------------------------------------------------------

    async def _submit(self, item: PlanItem) -> Record | JobOutcome:
        job = item.job
        body = dict(job.body)
        callback = self._offer_callbacks and self._own_callback(item)
        if callback and self.listener is not None:
            # this create's own path: its pushes name the job even before the answer is read
            token = secrets.token_urlsafe(12)
            self._callbacks[job.name] = (token, self.listener.watch(token))
            body["callback_url"] = self.listener.url_for(token)
        pending = Record(
            job=job.name,
            spec=job.file,
            spec_hash=job.spec_hash,
            state="submitting",
            video=version_path(job.output, job.spec_hash),
            request=request_snapshot(job.body),
            image=job.subject_image,
            source_hash=job.source_hash,
            api=self.config.api,
        )
        written: list[Record] = []

        async def before_send() -> None:
            if self._stopped is not None:
                raise NotSentError
            if not written:
                self._emit(JobEvent(job.name, item.action, "submitting"))
                written.append(await self.store.write(pending.evolve(submitted_at=utc_now())))

        try:
            try:
                async with self._creating:
                    task_id = await self._create(written, body, before_send)
            except CallbackCheckError as err:
                if not callback or self.config.wait != "auto":
                    raise
                self._callback_refused(err)
                body.pop("callback_url", None)
                self._forget_callback(job.name)
                self._polled.add(job.name)
                async with self._creating:
                    task_id = await self._create(written, body, before_send)
        except NotSentError:
            if written:  # an earlier try failed (not sent) and the run stopped before the next
                kept = await self.store.write(
                    written[0].evolve(
                        state="failed",
                        error=RecordError("not_sent", "the run stopped before a retry"),
                        finished_at=utc_now(),
                    )
                )
                return JobOutcome(job.name, item.action, False, kept, "not sent: the run stopped")
            return self._not_sent(item)
        except AmbiguousSubmitError as err:
            adopted = await self._adopt(item, err) if written else None
            if adopted is not None:
                record = await self._record_task_id(written[0], adopted)
                self._emit(JobEvent(job.name, item.action, "submitted", task_id=adopted))
                return record
            unknown = await self.store.write(
                written[0].evolve(state="unknown", error=record_error(err))
            )
            message = f"{err.one_line()}; the task may exist: check, then --resubmit-unknown"
            return JobOutcome(job.name, item.action, False, unknown, message)
        except MmgenError as err:  # refused (or never reached MiniMax): nothing was created
            if is_account_error(err) or (
                isinstance(err, CallbackCheckError) and self.config.wait == "callback"
            ):
                self.stop(err)
            if not written:
                return JobOutcome(job.name, item.action, False, item.record, err.one_line())
            failed = await self.store.write(
                written[0].evolve(state="failed", error=record_error(err), finished_at=utc_now())
            )
            return JobOutcome(job.name, item.action, False, failed, err.one_line())
        record = await self._record_task_id(written[0], task_id)
        self._emit(JobEvent(job.name, item.action, "submitted", task_id=task_id))
        return record

    async def _record_task_id(self, pending: Record, task_id: str) -> Record:
        """Record the task a create made (and paid for); if that cannot be written, the error
        names the task and the job, so the user can still find the video."""
        try:
            return await self.store.write(
                pending.evolve(state="submitted", task_id=task_id, error=None)
            )
        except (OSError, StateError) as err:
            reason = err.strerror if isinstance(err, OSError) else err.message
            raise OutDirFullError(
                f"job {pending.job}: MiniMax created task {task_id} (billed), but its id could "
                f"not be recorded in {self.store.out_dir}: {reason}",
                hint="keep this task id: the next run reports the job unknown; free the disk, "
                "then query the task before --resubmit-unknown",
            ) from err

    async def _adopt(self, item: PlanItem, err: AmbiguousSubmitError) -> str | None:
        """The task an ambiguous create made, learnt from a push on the create's own callback
        path (confirmed by a query) within :data:`ADOPT_SECONDS`; None without callbacks, when
        none came, or when the run stopped. Never sends the create again."""
        entry = self._callbacks.get(item.job.name)
        if entry is None:
            return None
        pushes = entry[1]
        log.info("%s: %s; waiting for a push naming its task", item.job.name, err.one_line())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ADOPT_SECONDS
        self._waiting.add(pushes)  # stop() wakes it
        try:
            while self._stopped is None and (left := deadline - loop.time()) > 0:
                pushed = await _next_push(pushes, left)
                task_id = id_or_none(pushed.get("task_id")) if pushed else None
                if pushed is None or task_id is None:
                    continue
                try:
                    status = await self._confirm(item, task_id)
                except (_Lost, MmgenError) as failed:  # no such task (forged), or auth trouble
                    log.info("%s: a push named task %s: %s", item.job.name, task_id, failed)
                    continue
                if status is None:
                    continue
                pushes.put_nowait(pushed)  # the wait that follows sees it again
                log.info("%s: adopted task %s (its push and a query)", item.job.name, task_id)
                return task_id
            return None
        finally:
            self._waiting.discard(pushes)

    def _forget_callback(self, job_name: str) -> None:
        entry = self._callbacks.pop(job_name, None)
        if entry is not None and self.listener is not None:
            self.listener.unwatch(entry[0])

    def _callback_refused(self, err: CallbackCheckError) -> None:
        self._callback_refusals += 1
        self._warn_once(
            "MiniMax could not check the callback URL (its challenge went unanswered): "
            "those jobs are sent again without a callback and polled; give --public-url "
            "(a tunnel to --listen) for callbacks"
        )
        if self._callback_refusals >= CALLBACK_REFUSALS and self._offer_callbacks:
            self._offer_callbacks = False
            log.warning("callbacks are no longer offered in this run (%s)", err.status_msg)

    async def _create(
        self, written: list[Record], body: dict[str, Any], before_send: Callable[[], Any]
    ) -> str:
        """The create call, shielded: if the run is interrupted while it is in flight, it is
        given a short grace period to come back so its task id is recorded, not lost."""
        if self._stopped is not None:
            raise NotSentError
        create = asyncio.ensure_future(
            self.client.create_task(body, before_send=before_send, abort=self._stop_event)
        )
        try:
            return await asyncio.shield(create)
        except asyncio.CancelledError:
            if not written:  # still queued for the rate limiter: nothing left, nothing to keep
                create.cancel()
                raise
            task_id = None
            with contextlib.suppress(Exception):  # the answer may never come: keep waiting short
                task_id = await asyncio.wait_for(create, SUBMIT_GRACE_SECONDS)
            if task_id is not None:  # a failed write is not hidden: it replaces the Ctrl-C
                await self._record_task_id(written[0], task_id)
            create.cancel()
            raise

    # --- wait ------------------------------------------------------------------------------

    def _own_callback(self, item: PlanItem) -> bool:
        """Callbacks reach this run only when the job file does not set its own callback_url."""
        return "callback_url" not in item.job.body and item.job.name not in self._polled

    async def _wait(self, item: PlanItem, record: Record, *, fresh: bool) -> TaskStatus | None:
        """Wait for a terminal status: callback pushes (confirmed by a query) and/or polling.
        None when the run stopped meanwhile."""
        task_id = record.task_id
        assert task_id is not None
        entry = self._callbacks.get(item.job.name) if fresh else None
        watched = entry is not None
        pushes: Pushes = entry[1] if entry else Pushes()
        # a resumed task's callback_url was an earlier run's listener: poll it, whatever --wait
        polling = self.config.wait != "callback" or not watched or not fresh
        interval = self.config.poll_interval
        if watched and polling and fresh:
            interval = max(interval, self.config.poll_interval * 3)  # polling is the fallback
        self._waiting.add(pushes)  # stop() wakes it
        try:
            # On resume the task may be long finished: ask at once. A fresh task is asked
            # after the first interval (or when a push says it is done).
            status = None if fresh else await self._poll(item, task_id)
            while status is None or not status.terminal:
                if self._stopped is not None:
                    return None
                pushed = await _next_push(pushes, interval if polling else None)
                if pushed is not None and id_or_none(pushed.get("task_id")) != task_id:
                    continue  # another task's, forged, or stop()'s wake-up
                if pushed is not None:
                    pushed_status = normalize_status(str(pushed.get("status", "")))
                    self._emit(
                        JobEvent(item.job.name, item.action, "waiting", task_id, pushed_status)
                    )
                    if pushed_status not in TERMINAL_STATUSES:
                        continue
                    # a push is a hint, never the truth: confirm with the query endpoint
                    status = await self._confirm(item, task_id)
                    if status is not None and not status.terminal:
                        log.info("task %s: ignored an unconfirmed %r push", task_id, pushed_status)
                    continue
                status = await self._poll(item, task_id)
                interval = min(interval * 1.5, max(self.config.max_poll_interval, interval))
            return status
        finally:
            self._waiting.discard(pushes)

    async def _confirm(self, item: PlanItem, task_id: str) -> TaskStatus | None:
        """The query confirming a push, retried promptly (:data:`CONFIRM_WAITS`) when MiniMax
        could not be asked: a job whose task ended does not wait for the next poll."""
        status = await self._poll(item, task_id)
        for pause in CONFIRM_WAITS:
            if status is not None or self._stopped is not None:
                break
            await asyncio.sleep(pause)
            status = await self._poll(item, task_id)
        return status

    async def _poll(self, item: PlanItem, task_id: str) -> TaskStatus | None:
        """The task's status, or None when MiniMax could not be asked right now (a transient
        failure): waiting goes on until the job's timeout. A task the API does not know
        raises :class:`_Lost`; other errors (auth, sensitive output...) end the wait."""
        try:
            status = await self.client.query_task(task_id, attempts=QUERY_ATTEMPTS)
        except InvalidRequestError as err:
            raise _Lost(f"task {task_id}", err) from err
        except MmgenError as err:
            if not is_transient(err) or is_account_error(err):
                raise
            log.info("task %s: status query failed (%s); still waiting", task_id, err)
            return None
        self._emit(JobEvent(item.job.name, item.action, "waiting", task_id, status.status))
        return status

    # --- download --------------------------------------------------------------------------

    async def _download(self, item: PlanItem, record: Record) -> JobOutcome:
        job = item.job
        file_id = record.file_id
        assert file_id is not None
        version = version_path(job.output, job.spec_hash)
        dest = self.store.out_dir / version
        last_error: MmgenError | None = None
        for _round in range(DOWNLOAD_ROUNDS):
            try:
                info = await self.client.retrieve_file(file_id, attempts=RETRIEVE_ATTEMPTS)

                def progress(done: int, total: int | None) -> None:
                    self._emit(
                        JobEvent(
                            job.name,
                            item.action,
                            "downloading",
                            record.task_id,
                            "Success",
                            done,
                            total,
                        )
                    )

                def make_current(_path: Path) -> None:  # in the thread that committed it
                    publish(self.store.out_dir, version, job.output, durable=False)

                progress(0, None)
                # never rely on `bytes`: the real API answers 0; Content-Length is checked
                got = await self.client.download(
                    info.download_url,
                    dest,
                    progress=progress,
                    attempts=DOWNLOAD_ATTEMPTS,
                    then=make_current,
                )
            except StateError:  # the out dir cannot be written: not the download's fault
                raise
            except InvalidRequestError as err:
                return await self._lost(item, record, _Lost(f"file {file_id}", err))
            except MmgenError as err:
                last_error = err
                if is_account_error(err):
                    self.stop(err)
                    break
                if not (isinstance(err, DownloadError) or is_transient(err)):
                    break
                log.info("download of %s failed (%s); retrieving a fresh URL", job.name, err)
                continue
            done = await self.store.write(
                record.evolve(
                    state="success",
                    sha256=got.sha256,
                    bytes=got.bytes,
                    video=version,
                    error=None,
                    finished_at=utc_now(),
                )
            )
            return JobOutcome(job.name, item.action, True, done, "downloaded")
        assert last_error is not None
        kept = await self.store.write(record.evolve(error=record_error(last_error)))
        return JobOutcome(job.name, item.action, False, kept, last_error.one_line())

    async def _skip(self, item: PlanItem) -> JobOutcome:
        """A verified video: make it this version's file and the current ``NAME.mp4`` again
        when needed (local copies only: no task, no download)."""
        record = item.record
        assert record is not None
        job = item.job
        version = version_path(job.output, job.spec_hash)
        source = item.video or version
        if source != version or item.restore:
            await asyncio.to_thread(publish, self.store.out_dir, source, version)
            await asyncio.to_thread(publish, self.store.out_dir, version, job.output, durable=False)
            record = await self.store.write(record.evolve(video=version))
        message = item.reason if item.restore else "already done"
        return JobOutcome(job.name, "skip", True, record, message)


async def _next_push(pushes: Pushes, timeout: float | None) -> dict[str, Any] | None:
    """The next push; None after ``timeout`` seconds (no task made per wait)."""
    try:
        async with asyncio.timeout(timeout):
            return await pushes.get()
    except TimeoutError:
        return None


def _one_error(errors: ExceptionGroup[Exception]) -> BaseException:
    """The error a run that failed as a whole reports: the first of mmgen's errors, else the
    first OSError as a :class:`StateError` of one line; anything else stays as it was."""
    ours = errors.subgroup(lambda e: isinstance(e, MmgenError))
    if ours is not None:
        return _first_leaf(ours)
    disk = errors.subgroup(lambda e: isinstance(e, OSError))
    if disk is not None:
        first = _first_leaf(disk)
        assert isinstance(first, OSError)
        return _state_error(first, None)
    return errors


def _state_error(err: Exception, out_dir: Path | None) -> Exception:
    if not isinstance(err, OSError):
        return err
    where = err.filename or out_dir or "the out dir"
    error = OutDirFullError(f"cannot write {where}: {err.strerror or err}")
    error.__cause__ = err
    return error


def _first_leaf(group: BaseExceptionGroup[Any]) -> BaseException:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first
