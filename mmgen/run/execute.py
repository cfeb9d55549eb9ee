"""A whole ``mmgen run``: open the out dir (a folder or an object store) for writing, tidy what a
killed run left, plan, meet the claims of other runs, build the client and the callback
listener, run the plan (:class:`mmgen.run.runner.Runner`), drain the records.

Claims (:mod:`mmgen.state.claims`) are taken by the record store right before each create;
here, before the run, a job another run has claimed is followed (its task id is known: resume
it, no create) or left to that run (no task id yet: outcome ``claimed``, exit 75 when nothing
else failed). A claim without a task id whose runner is gone is ``unknown``.

The target is any MiniMax-compatible base URL: the real API, or a mock that the command line
started (the core never imports the mock).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from mmgen.errors import OutDirFullError, UsageError
from mmgen.run.outcomes import EventSink, JobOutcome, RunResult
from mmgen.run.runner import RunConfig, Runner
from mmgen.serving import LOOPBACK_HOSTS
from mmgen.state.claims import LIVE_RUNS, Claim, Claims, RunIdentity
from mmgen.state.journal import RecordStore, refuse_nested_out_dirs
from mmgen.state.outdir import OutDir, open_out
from mmgen.state.planning import (
    PlanItem,
    plan,
    refuse_rehearsal_over_real_records,
    version_path,
)
from mmgen.state.pricing import enforce_max_tasks
from mmgen.state.records import DEFAULT_API, Record, RecordError

if TYPE_CHECKING:
    from mmgen.jobfile.spec import JobSpec


@dataclass(frozen=True)
class Target:
    """Which API a run talks to. ``base_url_source`` names where the URL came from
    (``--base-url`` or ``MINIMAX_BASE_URL``), for messages."""

    base_url: str
    api_key: str | None
    base_url_source: str = "MINIMAX_BASE_URL"


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
    #: Refuse the run when it would create more tasks than this (the spending guard).
    max_tasks: int | None = None
    #: ``--out`` as given: a folder or an object-store URL (None: ``config.out_dir``).
    out: str | None = None
    #: Hash every finished video again rather than trusting fingerprints.
    verify: bool = False
    #: ``--preview``: generate new and changed versions without making them current.
    preview: bool = False


def callbacks_reachable(target: Target, settings: RunSettings) -> bool:
    """Can MiniMax (or a local mock) reach a listener of this run?"""
    if settings.public_url:
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


#: Bytes a probe file writes (and fsyncs) in the out dir before a run pays for anything.
PROBE_BYTES = 64 * 1024
#: Free space the out dir must have before a run pays for anything: a few videos' worth.
MIN_FREE_BYTES = 64 * 1024 * 1024


def check_room(out_dir: Path) -> None:
    """Refuse, with one line, an out dir that cannot take a record and a video: a probe file is
    written, fsync'd and removed, and the file system must have :data:`MIN_FREE_BYTES` free."""
    probe = out_dir / f".mmgen-probe-{os.getpid()}.part"
    try:
        with open(probe, "wb") as handle:
            handle.write(b"\0" * PROBE_BYTES)
            handle.flush()
            os.fsync(handle.fileno())
        free = shutil.disk_usage(out_dir).free
    except OSError as err:
        raise OutDirFullError(
            f"out dir {out_dir} cannot take a video: {err.strerror or err}",
            hint="nothing was submitted; free space or fix permissions, then run again",
        ) from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()
    if free < MIN_FREE_BYTES:
        raise OutDirFullError(
            f"out dir {out_dir} has {free // (1024 * 1024)} MB free, "
            f"less than the {MIN_FREE_BYTES // (1024 * 1024)} MB a run needs",
            hint="nothing was submitted; free space, then run again",
        )


def mark_interrupted_submits(store: RecordStore, claims: Claims | None = None) -> list[Record]:
    """Records left in "submitting" by a run that died before it got a task id become
    "unknown": the task may or may not exist, and only the user may decide to pay again.
    With ``claims``, a record whose claim's runner may still be alive is left alone."""
    changed = []
    held = claims.keys() if claims is not None else set()
    for record in store.records():
        if record.state != "submitting":
            continue
        if claims is not None and record.key in held:
            claim = claims.read(record.job, record.spec_hash)
            if claim is not None and not claims.is_dead(claim):
                continue
        changed.append(
            store.put(
                record.evolve(
                    state="unknown",
                    error=RecordError(
                        "interrupted",
                        "the run stopped after the create request left and before a task "
                        "id came back: the task may exist",
                    ),
                )
            )
        )
    return changed


def meet_claims(
    items: list[PlanItem],
    store: RecordStore,
    claims: Claims,
    *,
    resubmit_unknown: bool,
    api: str = DEFAULT_API,
) -> tuple[list[PlanItem], dict[str, JobOutcome]]:
    """Follow or leave the jobs that other runs claimed (one listing, then one read per claimed
    job): returns the items to run and the outcomes of the jobs left to their holders."""
    held = claims.keys()
    run: list[PlanItem] = []
    left: dict[str, JobOutcome] = {}
    for item in items:
        job = item.job
        if item.action not in ("submit", "changed", "unknown") or (
            (job.name, job.spec_hash) not in held
        ):
            run.append(item)
            continue
        claim = claims.read(job.name, job.spec_hash)
        ended = store.get(job.name, job.spec_hash)
        if (
            claim is not None
            and ended is not None
            and ended.state in ("success", "failed")
            and claim.task_id == ended.task_id
        ):
            # the claim's task is over (failed, or done and --replace asks for a new one)
            claims.unlock(job.name, job.spec_hash)
            claim = None
        if claim is None:
            run.append(item)
        elif claim.task_id is not None:
            run.append(_follow(item, store, claim, api))
        elif claims.is_dead(claim) and store.get(job.name, job.spec_hash) is None:
            # its runner died before writing "submitting": the create never left
            claims.unlock(job.name, job.spec_hash)
            run.append(item)
        elif claims.is_dead(claim):
            if item.action == "unknown":
                run.append(item)
            elif not resubmit_unknown:
                why = (
                    f"claimed by {claim.holder()}, which is gone: the task may exist; "
                    "use --resubmit-unknown to submit it again"
                )
                run.append(replace(item, action="unknown", reason=why))
            else:
                claims.unlock(job.name, job.spec_hash)  # --resubmit-unknown: the user said so
                run.append(item)
        else:
            message = f"claimed by {claim.holder()} (no task id yet): left to that run"
            left[job.name] = JobOutcome(job.name, "claimed", False, item.record, message)
    return run, left


def _follow(item: PlanItem, store: RecordStore, claim: Claim, api: str) -> PlanItem:
    """A job another run created: wait for (or download) its task; never create it again."""
    job = item.job
    record = store.get(job.name, job.spec_hash) or Record(
        job=job.name,
        spec=job.file,
        spec_hash=job.spec_hash,
        state="submitted",
        video=version_path(job.output, job.spec_hash),
        image=job.subject_image,
        source_hash=job.source_hash,
        api=api,
    )
    record = record.evolve(state="submitted", task_id=claim.task_id, error=None)
    why = f"claimed by {claim.holder()}: follow its task {claim.task_id}"
    return PlanItem(job, "resume", why, record)


async def execute(
    jobs: Sequence[JobSpec],
    target: Target,
    settings: RunSettings,
    *,
    on_event: EventSink | None = None,
) -> RunResult:
    """Reconcile ``jobs`` with the out dir's records: plan, then run what is left.

    Holds the out dir's lock for the whole run. Serves the callback listener (on its own
    thread) only when there is work to do and callbacks can reach it.
    """
    with_listener = needs_listener(target, settings)
    runner_id = RunIdentity.this_process()
    out: OutDir = open_out(
        settings.out or settings.config.out_dir, run_id=runner_id.run_id, preview=settings.preview
    )
    LIVE_RUNS.add(runner_id.run_id)
    try:
        return await _execute_in(out, jobs, target, settings, runner_id, with_listener, on_event)
    finally:
        LIVE_RUNS.discard(runner_id.run_id)


async def _execute_in(
    out: OutDir,
    jobs: Sequence[JobSpec],
    target: Target,
    settings: RunSettings,
    runner_id: RunIdentity,
    with_listener: bool,
    on_event: EventSink | None,
) -> RunResult:
    from mmgen.api.client import MiniMaxClient
    from mmgen.api.ratelimit import RateLimiter
    from mmgen.run.listener import CallbackListener

    store = out.records
    config = replace(settings.config, out_dir=store.out_dir)
    if out.local:
        await asyncio.to_thread(refuse_nested_out_dirs, store.home)
    with store.lock():
        refuse_rehearsal_over_real_records(jobs, store, settings.config.api)
        claims = Claims(out.store, runner_id)
        await asyncio.to_thread(mark_interrupted_submits, store, claims)
        items = await asyncio.to_thread(
            plan,
            jobs,
            store,
            replace=settings.replace,
            resubmit_unknown=settings.resubmit_unknown,
            verify=settings.verify,
            api=settings.config.api,
        )
        items, left = await asyncio.to_thread(
            meet_claims,
            items,
            store,
            claims,
            resubmit_unknown=settings.resubmit_unknown,
            api=settings.config.api,
        )
        items = await asyncio.to_thread(_previews, store, items, settings.preview)
        if not out.local:
            items = await asyncio.to_thread(_restore_in_store, out, items)
        enforce_max_tasks(items, settings.max_tasks, resubmit_unknown=settings.resubmit_unknown)
        store.claims = claims
        busy = any(item.action in ("submit", "changed", "resume") for item in items)
        if busy and not target.api_key:
            raise UsageError("no MiniMax API key", hint="set MINIMAX_API_KEY, or use --mock")
        if busy:  # before anything is paid for
            await asyncio.to_thread(check_room, store.out_dir)
        async with contextlib.AsyncExitStack() as stack:
            # With nothing to do no call is made: a run that only skips needs no key.
            api_key = (target.api_key if busy else None) or "unused"
            client = MiniMaxClient(
                api_key,
                target.base_url,
                rate_limiter=RateLimiter(settings.rpm),
                base_url_source=target.base_url_source,
            )
            stack.push_async_callback(client.aclose)
            listener = None
            if busy and with_listener:
                listener = CallbackListener(
                    settings.listen_host, settings.listen_port, public_url=settings.public_url
                )
                await listener.start()
                stack.push_async_callback(listener.stop)
            runner = Runner(client, store, config, listener=listener, on_event=on_event)
            result = await runner.run(items)
        return _with_claimed(result, [job.name for job in jobs], left, claims)


def _previews(store: RecordStore, items: list[PlanItem], preview: bool) -> list[PlanItem]:
    """``--preview`` leaves every ``NAME.mp4`` as it is; a normal run adopts each reviewed
    preview it meets: its record stops being a preview and ``NAME.mp4`` becomes that video
    (a local or server-side copy: no task, no download)."""
    done = []
    for item in items:
        if item.action == "skip" and preview:
            version = version_path(item.job.output, item.job.spec_hash)
            item = replace(item, restore=False, video=item.video or version)
        elif item.action == "skip" and item.record is not None and item.record.preview:
            adopted = store.put(item.record.evolve(preview=False))
            why = "a reviewed preview becomes current (no task, no download)"
            item = replace(item, record=adopted, restore=True, reason=why)
        done.append(item)
    return done


def _restore_in_store(out: OutDir, items: list[PlanItem]) -> list[PlanItem]:
    """In an object store, a skipped version that must become ``NAME.mp4`` again (or move to
    its version file) is copied there server side; the runner then only skips it."""
    done = []
    for item in items:
        version = version_path(item.job.output, item.job.spec_hash)
        if item.action == "skip" and (item.restore or (item.video and item.video != version)):
            source = item.video or version
            if source != version:
                out.store.copy(source, version)
            if not out.records.preview:
                out.store.copy(version, item.job.output)
            item = replace(item, video=version, restore=False)
        done.append(item)
    return done


def _with_claimed(
    result: RunResult, names: list[str], left: dict[str, JobOutcome], claims: Claims
) -> RunResult:
    """The run's outcomes with the jobs left to other runs: those met before the run, and
    those whose claim another run took first, between plan and create."""
    outcomes = []
    for outcome in result.outcomes:
        met = claims.met.get(outcome.job)
        if met is not None and not outcome.ok:
            outcome = JobOutcome(outcome.job, "claimed", False, outcome.record, met.one_line())
        outcomes.append(outcome)
    outcomes += left.values()
    order = {name: index for index, name in enumerate(names)}
    outcomes.sort(key=lambda o: order.get(o.job, 0))
    return RunResult(outcomes, stopped=result.stopped, warnings=result.warnings)
