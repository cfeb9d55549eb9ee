"""A whole ``mmgen run``: lock the out dir, tidy what a killed run left, plan, build the client
and the callback listener, run the plan (:class:`mmgen.run.runner.Runner`), drain the records.

The target is any MiniMax-compatible base URL: the real API, or a mock that the command line
started (the core never imports the mock).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from mmgen.errors import OutDirFullError, UsageError
from mmgen.run.outcomes import EventSink, RunResult
from mmgen.run.runner import RunConfig, Runner
from mmgen.serving import LOOPBACK_HOSTS
from mmgen.state.planning import plan, refuse_rehearsal_over_real_records
from mmgen.state.pricing import enforce_max_tasks
from mmgen.state.records import Record, RecordError, RecordStore, refuse_nested_out_dirs

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
                            "the run stopped after the create request left and before a task "
                            "id came back: the task may exist",
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
    from mmgen.api.client import MiniMaxClient
    from mmgen.api.ratelimit import RateLimiter
    from mmgen.run.listener import CallbackListener

    with_listener = needs_listener(target, settings)
    await asyncio.to_thread(refuse_nested_out_dirs, settings.config.out_dir)
    store = RecordStore(settings.config.out_dir)
    with store.lock():
        refuse_rehearsal_over_real_records(jobs, store, settings.config.api)
        mark_interrupted_submits(store)
        await asyncio.to_thread(remove_partial_downloads, store.out_dir)
        items = await asyncio.to_thread(
            plan,
            jobs,
            store,
            replace=settings.replace,
            resubmit_unknown=settings.resubmit_unknown,
            api=settings.config.api,
        )
        enforce_max_tasks(items, settings.max_tasks, resubmit_unknown=settings.resubmit_unknown)
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
            runner = Runner(client, store, settings.config, listener=listener, on_event=on_event)
            return await runner.run(items)
