"""The command line: click commands only.

Parse options, build the parts, call the core, map :class:`~mmgen.errors.MmgenError` to exit
codes. Nothing here holds business logic; everything below this module is free of click.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ParamSpec, TypeVar

import click
from click.core import ParameterSource
from rich.console import Console, RenderableType

from mmgen import __version__
from mmgen.errors import EXIT_FAILED, EXIT_INTERRUPTED, MmgenError, SpecError, UsageError

if TYPE_CHECKING:
    from mmgen.execute import Target
    from mmgen.spec import JobSpec

#: The key ``run --mock`` uses with its bundled mock (any key works there).
MOCK_API_KEY = "mmgen-mock-key"

P = ParamSpec("P")
R = TypeVar("R")


@dataclass
class Settings:
    """Global options, set before the command (``mmgen -v run ...``)."""

    verbosity: int = 0  # -1 quiet, 0 normal, 1+ verbose


def _report_error(err: MmgenError) -> None:
    if isinstance(err, SpecError):
        for problem in err.problems:
            click.echo(str(problem), err=True)
    click.echo(f"mmgen: error: {err.one_line()}", err=True)


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Map mmgen's error tree to exit codes at the edge; never show a traceback for them."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except MmgenError as err:
            _report_error(err)
            sys.exit(err.exit_code)
        except (KeyboardInterrupt, asyncio.CancelledError):
            click.echo("mmgen: interrupted; the next run resumes where this one stopped", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except OSError as err:
            click.echo(f"mmgen: error: {err.strerror or err}: {err.filename or ''}", err=True)
            sys.exit(EXIT_FAILED)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More output (repeat for debug logs).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors and the final result.")
@click.version_option(__version__, "--version", prog_name="mmgen", help="Show the version.")
@click.pass_context
def main(ctx: click.Context, verbose: int, quiet: bool) -> None:
    """mmgen: turn reviewed YAML job files into MiniMax subject-reference videos.

    Validate job files, plan and run them against the MiniMax API (or the bundled mock),
    and keep durable outcome records so that a second run does only what is left.
    """
    settings = Settings(verbosity=-1 if quiet else verbose)
    ctx.obj = settings
    level = logging.WARNING if settings.verbosity <= 0 else logging.INFO
    if settings.verbosity >= 2:
        level = logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


@main.command()
@handle_errors
def schema() -> None:
    """Print the job-file JSON Schema, self-contained (for editors and other tools).

    Save it and point your editor at it, e.g. first line of a job file:
    `# yaml-language-server: $schema=./job.schema.json`.
    """
    from mmgen.schemas import bundled_schema

    click.echo(json.dumps(bundled_schema(), indent=2, ensure_ascii=False))


@main.command("init")
@click.argument("directory", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.pass_obj
@handle_errors
def init_command(settings: Settings, directory: Path) -> None:
    """Scaffold an mmgen project in DIRECTORY (default: here): an example job with a local
    image, a GitHub Actions workflow, a pre-commit config and the job schema for editors.

    Never overwrites: if any of these files exists, nothing is written (exit 2).
    """
    from mmgen.scaffold import write_scaffold

    files = write_scaffold(directory)
    if settings.verbosity >= 0:
        for item in files:
            click.echo(f"  {directory / item.path}  ({item.purpose})")
        click.echo(
            f"Next: cd {directory} && mmgen validate specs/ && mmgen run --mock specs/, "
            "then add the MINIMAX_API_KEY secret to the repository."
        )


@main.command("validate")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "github"]),
    default="text",
    show_default=True,
    help="text: FILE:LINE:COL: FIELD: message lines; json: a list of objects; "
    "github: GitHub Actions ::error annotations.",
)
@click.pass_obj
@handle_errors
def validate_command(settings: Settings, paths: tuple[Path, ...], fmt: str) -> None:
    """Check job files and folders (*.yaml, *.yml); report every problem, spend nothing.

    Problems go to stdout, one per line (or the JSON list); the summary line goes to stdout
    when all is valid and to stderr otherwise. Exit 0 when all is valid, 2 when not.
    """
    from mmgen.errors import EXIT_USAGE
    from mmgen.report import render_problems, validation_summary
    from mmgen.spec import validate_paths

    result = validate_paths(list(paths))
    if fmt == "text" and settings.verbosity >= 0:
        for warning in result.warnings:  # advice only: never changes the exit code
            click.echo(str(warning), err=True)
    summary = validation_summary(len(result.files), len(result.jobs), result.problems)
    if fmt == "json" or result.problems:  # json: always the list, `[]` when all is valid
        click.echo(render_problems(result.problems, fmt))
    elif settings.verbosity >= 0:
        click.echo(summary)
    if result.problems:
        if settings.verbosity >= 0:
            click.echo(f"mmgen: {summary}", err=True)
        sys.exit(EXIT_USAGE)


# --- plan / run / status ---------------------------------------------------------------------

OUT_OPTION = click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("mmgen-out"),
    show_default=True,
    help="Folder of the videos and the outcome records.",
)
PATHS_ARGUMENT = click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))


def _console(stderr: bool = False) -> Console:
    console = Console(stderr=stderr, highlight=False, soft_wrap=False)
    if not console.is_terminal:  # a log or a pipe: do not cut task ids and paths at 80 columns
        console.width = max(console.width, 160)
    return console


def _show(rendered: RenderableType) -> None:
    """Print a renderer's result to stdout: text verbatim (JSON, HTML), tables via rich."""
    if isinstance(rendered, str):
        click.echo(rendered)
    else:
        _console().print(rendered)


def _load(paths: tuple[Path, ...]) -> list[JobSpec]:
    from mmgen.spec import load_jobs

    return load_jobs(list(paths))


def _parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"--listen {value!r}: expected HOST:PORT, e.g. 127.0.0.1:8787")
    return host.strip("[]") or "127.0.0.1", int(port)


def _positive(name: str, value: float | None, *, allow_zero: bool = False) -> None:
    if value is not None and (value < 0 or (value == 0 and not allow_zero)):
        raise UsageError(f"{name} must be {'0 or more' if allow_zero else 'positive'}")


@main.command("plan")
@PATHS_ARGUMENT
@OUT_OPTION
@click.option("--replace", multiple=True, metavar="NAME", help="Treat job NAME as to regenerate.")
@click.option("--resubmit-unknown", is_flag=True, help="Plan interrupted submits as submit.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "markdown"]),
    default="text",
    show_default=True,
    help="A table, JSON, or a Markdown pull-request comment with the estimated cost.",
)
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    help="Exit 0 when there is nothing to do, 3 when work is pending (2 bad input, 1 error).",
)
@click.option(
    "--prices",
    "prices_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="YAML/JSON price table merged over mmgen's default (for --format markdown's estimate).",
)
@handle_errors
def plan_command(
    paths: tuple[Path, ...],
    out_dir: Path,
    replace: tuple[str, ...],
    resubmit_unknown: bool,
    fmt: str,
    detailed_exitcode: bool,
    prices_file: Path | None,
) -> None:
    """Show what `run` would do per job (submit, skip, resume, changed, unknown); spends nothing."""
    from mmgen.planning import plan
    from mmgen.pricing import load_prices, plan_exit_code
    from mmgen.records import RecordStore
    from mmgen.report import render_plan

    prices = load_prices(prices_file) if fmt == "markdown" or prices_file else None
    jobs = _load(paths)
    _check_replace(replace, jobs)
    items = plan(
        jobs, RecordStore(out_dir), replace=set(replace), resubmit_unknown=resubmit_unknown
    )
    _show(render_plan(items, fmt, prices=prices, resubmit_unknown=resubmit_unknown))
    if detailed_exitcode:
        sys.exit(plan_exit_code(items))


def _check_replace(replace: tuple[str, ...], jobs: list[JobSpec]) -> None:
    names = {job.name for job in jobs}
    unknown = [name for name in replace if name not in names]
    if unknown:
        raise UsageError(f"--replace: no job named {', '.join(unknown)} in these files")


@main.command("run")
@PATHS_ARGUMENT
@click.option("--mock", is_flag=True, help="Run against the bundled mock server (no API key).")
@click.option(
    "--mock-config",
    "mock_config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="With --mock: the mock's config file (timing, faults), as for `mmgen mock --config`.",
)
@click.option(
    "--base-url",
    envvar="MINIMAX_BASE_URL",
    default="https://api.minimax.io",
    show_default=True,
    help="MiniMax API base URL (env MINIMAX_BASE_URL; mainland China: https://api.minimaxi.com).",
)
@OUT_OPTION
@click.option("--concurrency", type=int, default=8, show_default=True, help="Jobs in flight.")
@click.option(
    "--rpm",
    type=int,
    default=None,
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
    default="127.0.0.1:0",
    show_default=True,
    metavar="HOST:PORT",
    help="Where the callback listener binds (port 0: any free port).",
)
@click.option(
    "--public-url",
    metavar="URL",
    help="Public base URL forwarding to --listen (a tunnel or public host) for callbacks.",
)
@click.option(
    "--poll-interval",
    type=float,
    default=None,
    help="Seconds between status queries at first; it backs off to 60 s "
    "(default 10, or 1 with --mock).",
)
@click.option(
    "--timeout",
    type=float,
    default=1800.0,
    show_default=True,
    help="Seconds one job may take from submit to downloaded video; the next run resumes it.",
)
@click.option(
    "--resubmit-unknown",
    is_flag=True,
    help="Submit again jobs whose earlier submit was interrupted (may pay twice).",
)
@click.option("--replace", multiple=True, metavar="NAME", help="Regenerate job NAME (repeatable).")
@click.option(
    "--max-tasks",
    type=click.IntRange(min=0),
    envvar="MMGEN_MAX_TASKS",
    help="Refuse (exit 2, nothing submitted) a run that would create more than N tasks "
    "(env MMGEN_MAX_TASKS).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="A table, or JSON on stdout.",
)
@click.pass_context
@handle_errors
def run_command(
    ctx: click.Context,
    paths: tuple[Path, ...],
    mock: bool,
    mock_config_file: Path | None,
    base_url: str,
    out_dir: Path,
    concurrency: int,
    rpm: int | None,
    wait: str,
    listen: str,
    public_url: str | None,
    poll_interval: float | None,
    timeout: float,
    resubmit_unknown: bool,
    replace: tuple[str, ...],
    max_tasks: int | None,
    fmt: str,
) -> None:
    """Submit what is new or changed, wait for it, download the videos, record the outcomes.

    A reconcile: jobs already done are skipped, jobs in flight are re-attached, nothing is
    paid for twice. Exit 0 when every job succeeded, 1 when any failed, 2 for bad input,
    130 when interrupted (the next run resumes).
    """
    import os

    from mmgen.execute import RunSettings, Target, execute
    from mmgen.records import RecordStore
    from mmgen.report import RunProgress, render_outcomes, write_gallery
    from mmgen.runner import RunConfig

    settings: Settings = ctx.obj

    _positive("--concurrency", concurrency)
    _positive("--rpm", rpm, allow_zero=True)
    _positive("--poll-interval", poll_interval)
    _positive("--timeout", timeout)
    host, port = _parse_listen(listen)
    jobs = _load(paths)
    _check_replace(replace, jobs)
    if max_tasks is not None:  # the spending guard: before anything is submitted
        from mmgen.planning import plan
        from mmgen.pricing import enforce_max_tasks

        items = plan(jobs, RecordStore(out_dir), replace=replace, resubmit_unknown=resubmit_unknown)
        enforce_max_tasks(items, max_tasks, resubmit_unknown=resubmit_unknown)
    if rpm is None:
        rpm = 0 if mock else 5
    if poll_interval is None:
        poll_interval = 1.0 if mock else 10.0
    if mock_config_file is not None and not mock:
        raise UsageError("--mock-config needs --mock")
    source = ctx.get_parameter_source("base_url")
    target = Target(
        base_url=base_url,
        api_key=os.environ.get("MINIMAX_API_KEY"),
        base_url_source="--base-url"
        if source == click.core.ParameterSource.COMMANDLINE
        else "MINIMAX_BASE_URL",
    )
    run_settings = RunSettings(
        config=RunConfig(
            out_dir=out_dir,
            concurrency=concurrency,
            wait=wait,  # type: ignore[arg-type]
            poll_interval=poll_interval,
            max_poll_interval=max(60.0, poll_interval),
            timeout=timeout,
        ),
        rpm=rpm,
        listen_host=host,
        listen_port=port,
        public_url=public_url,
        replace=frozenset(replace),
        resubmit_unknown=resubmit_unknown,
        max_tasks=max_tasks,  # checked again under the out dir's lock
    )
    progress = RunProgress(_console(stderr=True), quiet=settings.verbosity < 0)
    with contextlib.ExitStack() as stack:
        if mock:  # the rehearsal mock, its tasks kept in OUT/.mock/ so a resumed run finds them
            target = stack.enter_context(_rehearsal_mock(mock_config_file, out_dir))
        with progress:
            result = asyncio.run(execute(jobs, target, run_settings, on_event=progress.on_event))
    for warning in result.warnings:
        click.echo(f"mmgen: warning: {warning}", err=True)
    if result.stopped:
        click.echo(f"mmgen: error: {result.stopped}", err=True)
    store = RecordStore(out_dir)
    if store.records():
        prompts = {job.name: str(job.body.get("prompt", "")) for job in jobs}
        write_gallery(out_dir, store.records(), prompts)
    _show(render_outcomes(result, fmt))
    sys.exit(result.exit_code)


@contextlib.contextmanager
def _rehearsal_mock(config_file: Path | None, out_dir: Path) -> Iterator[Target]:
    """Serve the bundled mock on loopback for ``run --mock`` (its own thread), persisting its
    tasks in ``OUT/.mock/`` so an interrupted rehearsal resumes like a real run."""
    from mmgen.execute import Target
    from mmgen.serving import ServerThread
    from mock_server import MockConfig, create_app, load_config

    config = load_config(config_file) if config_file else MockConfig()
    if hasattr(config, "state_dir") and getattr(config, "state_dir", None) is None:
        config.state_dir = out_dir / ".mock"
    with ServerThread(create_app(config), name="mmgen-mock") as server:
        yield Target(base_url=server.url, api_key=MOCK_API_KEY, base_url_source="--mock")


@main.command("status")
@OUT_OPTION
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "html"]),
    default="text",
    show_default=True,
    help="Table, JSON list of records, or HTML gallery.",
)
@click.option(
    "--all", "show_all", is_flag=True, help="Every version of every job, not only the current."
)
@handle_errors
def status_command(out_dir: Path, fmt: str, show_all: bool) -> None:
    """Show the outcome records of an out dir (JSON: a list of record objects; HTML: a
    gallery page of the videos, also written to OUT/index.html by every run)."""
    from mmgen.records import JOURNAL, RecordStore
    from mmgen.report import render_records

    if not (out_dir / JOURNAL).is_file():
        raise UsageError(
            f"no outcome records in {out_dir}",
            hint="give the --out of an earlier `mmgen run` (default mmgen-out)",
        )
    store = RecordStore(out_dir)
    every = show_all or fmt == "html"  # the gallery shows each job's version history
    _show(render_records(store.records() if every else store.current(), fmt))


@main.command("mock")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=int, default=8000, show_default=True, help="Port (0: any free one).")
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="YAML/JSON file of mock options and faults (see mock_server/config.py).",
)
@click.option(
    "--generation-seconds",
    type=float,
    help="Seconds from create to Success/Fail (default 6; overrides the config file).",
)
@click.option("--seed", type=int, help="Seed that makes every injected fault reproducible.")
@click.option("--api-key", help="Accept only this Bearer key (others get 2049); default: any key.")
@click.option(
    "--record",
    "record_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Instead of the mock: proxy to --upstream and record the traffic to this new file "
    "(videos in FILE.d/; keys redacted). See docs/record-replay.md.",
)
@click.option(
    "--upstream",
    envvar="MINIMAX_BASE_URL",
    show_envvar=True,
    metavar="URL",
    help="The API --record proxies to.",
)
@click.option(
    "--public-url",
    metavar="URL",
    help="With --record: the base URL under which the upstream reaches this proxy for "
    "callbacks (a tunnel); default: the URL the client used.",
)
@click.option(
    "--replay",
    "replay_file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Instead of the mock: serve this recording offline (callbacks replayed).",
)
@click.pass_obj
@handle_errors
def mock_command(
    settings: Settings,
    host: str,
    port: int,
    config_file: Path | None,
    generation_seconds: float | None,
    seed: int | None,
    api_key: str | None,
    record_file: Path | None,
    upstream: str | None,
    public_url: str | None,
    replay_file: Path | None,
) -> None:
    """Serve the bundled mock MiniMax API in the foreground until Ctrl-C.

    Point mmgen (or any client) at it with MINIMAX_BASE_URL=<the printed URL>; any API key
    works unless --api-key is given. Inspect it at /_mock/tasks and /_mock/stats.

    With --record FILE it is a proxy to a real API that records everything; with --replay
    FILE it serves such a recording offline (its journal at /_replay/journal).
    """
    level = "warning" if settings.verbosity < 0 else "debug" if settings.verbosity > 1 else "info"
    source = click.get_current_context().get_parameter_source("upstream")
    if source == ParameterSource.ENVIRONMENT and record_file is None:
        upstream = None  # MINIMAX_BASE_URL only matters to --record
    if record_file or replay_file or upstream or public_url:
        mock_options = (config_file, generation_seconds, seed, api_key)
        _record_or_replay(
            host, port, level, settings.verbosity >= 0, record_file, upstream, public_url,
            replay_file, any(option is not None for option in mock_options),
        )  # fmt: skip
        return
    from mock_server import MockConfig, load_config
    from mock_server.server import serve

    config = load_config(config_file) if config_file is not None else MockConfig()
    if generation_seconds is not None:
        config.generation_seconds = generation_seconds
    if seed is not None:
        config.seed = seed
    if api_key is not None:
        config.api_key = api_key
    config.validate()

    def ready(url: str) -> None:
        click.echo(f"mmgen mock: serving the MiniMax API on {url} (Ctrl-C to stop)")
        click.echo(f"  export MINIMAX_BASE_URL={url}")

    try:
        serve(
            config,
            host=host,
            port=port,
            on_ready=ready,
            log_level=level,
            access_log=settings.verbosity >= 0,
        )
    except KeyboardInterrupt:  # Ctrl-C is how a foreground server is meant to stop
        click.echo("mmgen mock: stopped", err=True)


def _record_or_replay(
    host: str,
    port: int,
    level: str,
    access_log: bool,
    record_file: Path | None,
    upstream: str | None,
    public_url: str | None,
    replay_file: Path | None,
    mock_options: bool,
) -> None:
    """``mmgen mock --record`` / ``--replay``: build the proxy or the replay, serve it."""
    import os

    from mmgen.serving import serve_forever
    from mock_server.recording import build_app

    app, what = build_app(
        record=record_file,
        upstream=upstream,
        public_url=public_url,
        replay=replay_file,
        mock_options=mock_options,
        secrets_=[os.environ.get("MINIMAX_API_KEY")],
    )

    def ready(url: str) -> None:
        click.echo(f"mmgen mock: {what} on {url} (Ctrl-C to stop)")
        click.echo(f"  export MINIMAX_BASE_URL={url}")

    try:
        serve_forever(app, host, port, on_ready=ready, log_level=level, access_log=access_log)
    except KeyboardInterrupt:  # Ctrl-C is how a foreground server is meant to stop
        click.echo("mmgen mock: stopped", err=True)
