"""``mmgen run``: parse the options, build the run's parts (the rehearsal mock with ``--mock``),
call :func:`mmgen.run.execute.execute`, render the outcomes, exit with the run's code."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from click.core import ParameterSource

from mmgen.cli.app import (
    BASE_URL_OPTION,
    OUT_OPTION,
    PATHS_ARGUMENT,
    REPLACE_OPTION,
    RESUBMIT_OPTION,
    VERIFY_OPTION,
    BaseUrl,
    HostPort,
    Seconds,
    Settings,
    console,
    format_option,
    handle_errors,
    main,
    show,
)
from mmgen.cli.jobs import MODELS_OPTION, check_replace
from mmgen.errors import UsageError

if TYPE_CHECKING:
    from mmgen.run.execute import Target
    from mmgen.state.outdir import OutDir

T = TypeVar("T")

#: The key ``run --mock`` uses with its bundled mock (any key works there).
MOCK_API_KEY = "mmgen-mock-key"


@main.command("run")
@PATHS_ARGUMENT
@click.option(
    "--mock",
    is_flag=True,
    help="Rehearse against the bundled mock server (no API key); without --out the results go "
    "to mmgen-mock-out/, never mixed with the real API's records.",
)
@click.option(
    "--mock-config",
    "mock_config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="With --mock: the mock's config file (timing, faults), as for `mmgen mock --config`.",
)
@MODELS_OPTION
@BASE_URL_OPTION
@OUT_OPTION
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Jobs in flight.",
)
@click.option(
    "--rpm",
    type=click.IntRange(min=0),
    help="Most task creations per minute (default 5, MiniMax's published limit; "
    "unlimited with --mock; 0 = unlimited).",
)
@click.option(
    "--wait",
    type=click.Choice(["auto", "callback", "poll"]),
    default="auto",
    show_default=True,
    help="How to learn that a video is ready: callbacks (with polling as fallback in auto), "
    "callbacks only, or polling only. auto polls when no callback can reach this machine.",
)
@click.option(
    "--listen",
    type=HostPort(),
    default="127.0.0.1:0",
    show_default=True,
    help="Where the callback listener binds (port 0: any free port).",
)
@click.option(
    "--public-url",
    type=BaseUrl(),
    help="Public base URL forwarding to --listen (a tunnel or public host) for callbacks.",
)
@click.option(
    "--poll-interval",
    type=Seconds(min=0, min_open=True),
    help="Seconds between status queries at first; it backs off to 60 s "
    "(default 10, or 1 with --mock).",
)
@click.option(
    "--timeout",
    type=Seconds(min=0, min_open=True),
    default=1800.0,
    show_default=True,
    help="Seconds one job may take from submit to downloaded video; the next run resumes it.",
)
@RESUBMIT_OPTION
@REPLACE_OPTION
@VERIFY_OPTION
@click.option(
    "--preview",
    is_flag=True,
    help="Generate new and changed versions without making them current (no NAME.mp4; "
    "for pull requests); a later run adopts them without paying again.",
)
@click.option(
    "--max-tasks",
    type=click.IntRange(min=0),
    envvar="MMGEN_MAX_TASKS",
    help="Refuse (exit 2, nothing submitted) a run that would create more than N tasks "
    "(env MMGEN_MAX_TASKS).",
)
@format_option({"text": "a table", "json": "the outcome records, each with action, ok, message"})
@click.pass_context
@handle_errors
def run_command(
    ctx: click.Context,
    paths: tuple[Path, ...],
    mock: bool,
    mock_config_file: Path | None,
    models_file: Path | None,
    base_url: str,
    out: str,
    concurrency: int,
    rpm: int | None,
    wait: str,
    listen: tuple[str, int],
    public_url: str | None,
    poll_interval: float | None,
    timeout: float,
    resubmit_unknown: bool,
    replace: tuple[str, ...],
    verify: bool,
    preview: bool,
    max_tasks: int | None,
    fmt: str,
) -> None:
    """Submit what is new or changed, wait for it, download the videos, record the outcomes.

    A reconcile: jobs already done are skipped, jobs in flight are re-attached, nothing is
    paid for twice. Exit 0 when every job succeeded, 1 when any failed, 2 for bad input,
    75 when jobs were left to another run that claimed them first (and nothing failed),
    130 when interrupted (the next run resumes).
    """
    from mmgen.jobfile.spec import load_jobs
    from mmgen.report import RunProgress, render_outcomes
    from mmgen.run.execute import RunSettings, Target, execute
    from mmgen.run.runner import RunConfig
    from mmgen.state.outdir import open_out
    from mmgen.state.records import MOCK_API, api_identity
    from mmgen.state.store import is_object_url

    settings: Settings = ctx.obj
    if mock_config_file is not None and not mock:
        raise UsageError("--mock-config needs --mock")
    jobs = load_jobs(list(paths), models=models_file)
    check_replace(replace, [job.name for job in jobs])
    if mock and ctx.get_parameter_source("out") == ParameterSource.DEFAULT:
        from mmgen.project.rehearsal import rehearsal_out_dir

        out = str(rehearsal_out_dir())
    poll = poll_interval or (1.0 if mock else 10.0)
    from_flag = ctx.get_parameter_source("base_url") == ParameterSource.COMMANDLINE
    target = Target(
        base_url=base_url,
        api_key=os.environ.get("MINIMAX_API_KEY"),
        base_url_source="--base-url" if from_flag else "MINIMAX_BASE_URL",
    )
    run_settings = RunSettings(
        config=RunConfig(
            out_dir=Path(out),  # an object store's: a staging folder, chosen by the run
            concurrency=concurrency,
            wait=wait,  # type: ignore[arg-type]
            poll_interval=poll,
            max_poll_interval=max(60.0, poll),
            timeout=timeout,
            api=MOCK_API if mock else api_identity(base_url),
        ),
        rpm=(0 if mock else 5) if rpm is None else rpm,
        listen_host=listen[0],
        listen_port=listen[1],
        public_url=public_url,
        replace=frozenset(replace),
        resubmit_unknown=resubmit_unknown,
        max_tasks=max_tasks,  # the spending guard, checked under the out dir's lock
        out=out,
        verify=verify,
        preview=preview,
    )
    progress = RunProgress(console(stderr=True), quiet=settings.verbosity < 0)
    with contextlib.ExitStack() as stack:
        if mock:  # the rehearsal mock, its tasks kept in OUT/.mock/ so a resumed run finds them
            state = None if is_object_url(out) else Path(out) / ".mock"
            target = stack.enter_context(rehearsal_mock(mock_config_file, state))
        with progress, run_process_settings(), asyncio.Runner() as runner:
            result = runner.run(
                stopped_by_sigterm(execute(jobs, target, run_settings, on_event=progress.on_event))
            )
    for warning in result.warnings:
        click.echo(f"mmgen: warning: {warning}", err=True)
    if result.stopped:
        click.echo(f"mmgen: error: {result.stopped}", err=True)
    out_dir = open_out(out)
    gallery = None
    if out_dir.records.records():
        prompts = {job.name: str(job.body.get("prompt", "")) for job in jobs}
        gallery = save_gallery(out_dir, prompts)
    show(render_outcomes(result, fmt))
    if gallery is not None and settings.verbosity >= 0:  # stderr: stdout may be the JSON list
        where = out.rstrip("/")
        click.echo(f"mmgen: videos and records in {where}/, gallery {gallery}", err=True)
    sys.exit(result.exit_code)


def save_gallery(out: OutDir, prompts: dict[str, str]) -> str:
    """Write the gallery page into the out dir: ``index.html`` beside the videos (its links
    are relative, so a bucket or a static site serves it as it is); returns where it is."""
    from mmgen.report.gallery import gallery_parts, write_gallery
    from mmgen.state.store import LocalStore

    records = out.records.records()
    current = {record.key for record in out.records.current()}  # previews are not current
    if isinstance(out.store, LocalStore):
        return str(write_gallery(out.store.root, records, prompts, current=current))
    page = "".join(gallery_parts(records, prompts, current=current))
    out.store.put("index.html", page.encode("utf-8"))
    return f"{out.store.url}/index.html"


#: The interpreter's thread switch interval while ``mmgen run`` runs (Python's default: 5 ms).
SWITCH_INTERVAL = 0.001


@contextlib.contextmanager
def run_process_settings() -> Iterator[None]:
    """What ``mmgen run`` sets for its whole process, restored on exit (the CLI is the only
    place that touches it; the core, as a library, never does): the thread switch interval,
    1 ms instead of 5, so the callback listener's thread gets the GIL back quickly while
    thousands of jobs keep the run's loop busy, and MiniMax's 3 s challenge is answered
    (bench/inflight.py, 10,000 jobs in flight: 0 challenges lost). The garbage collector is
    left alone: freezing it measured no better, and higher thresholds cost 50 MB of peak RSS
    (256 against 206 MB) for 25% less CPU."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(min(interval, SWITCH_INTERVAL))
    try:
        yield
    finally:
        sys.setswitchinterval(interval)


async def stopped_by_sigterm(work: Coroutine[Any, Any, T]) -> T:
    """Await ``work`` with SIGTERM (a CI pipeline being cancelled) stopping it like Ctrl-C:
    records stay durable, the exit code is 130. The handler is removed when ``work`` ends."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    installed = False
    if task is not None:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not main thread
            loop.add_signal_handler(signal.SIGTERM, task.cancel)
            installed = True
    try:
        return await work
    finally:
        if installed:
            loop.remove_signal_handler(signal.SIGTERM)


@contextlib.contextmanager
def rehearsal_mock(config_file: Path | None, state_dir: Path | None) -> Iterator[Target]:
    """Serve the bundled mock on loopback for ``run --mock`` (its own thread), persisting its
    tasks in ``OUT/.mock/`` so an interrupted rehearsal resumes like a real run."""
    from mmgen.run.execute import Target
    from mock_server.config import command_line_config
    from mock_server.server import MockServers

    config = command_line_config(config_file)
    if config.state_dir is None:
        config.state_dir = state_dir
    with MockServers(config) as mock:  # the API origin and, like MiniMax, a separate CDN one
        yield Target(base_url=mock.url, api_key=MOCK_API_KEY, base_url_source="--mock")
