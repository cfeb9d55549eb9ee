"""The ``mmgen`` group, its global options, the shared options and the error edge.

Every command is ``@handle_errors``: an :class:`~mmgen.errors.MmgenError` becomes its one-line
message on stderr and its exit code (see :mod:`mmgen.errors`); Ctrl-C and SIGTERM give 130.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import click
from rich.console import Console, RenderableType

from mmgen import DEFAULT_BASE_URL, DISTRIBUTION, __version__
from mmgen.errors import EXIT_FAILED, EXIT_INTERRUPTED, MmgenError, SpecError

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
@click.version_option(
    __version__,
    "--version",
    prog_name="mmgen",
    message=f"%(prog)s %(version)s (distribution {DISTRIBUTION})",
    help="Show the version and the distribution (`pip show " + DISTRIBUTION + "`).",
)
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


# --- options several commands share ----------------------------------------------------------

OUT_OPTION = click.option(
    "--out",
    "out",
    envvar="MMGEN_OUT",
    default="mmgen-out",
    show_default=True,
    metavar="DIR|URL",
    help="Where the videos and the outcome records are: a folder, or an object store "
    "(s3://bucket/prefix, gs://..., az://...; credentials and endpoint from the cloud's "
    "standard environment, e.g. AWS_ENDPOINT_URL). Env MMGEN_OUT.",
)
PATHS_ARGUMENT = click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
REPLACE_OPTION = click.option(
    "--replace", multiple=True, metavar="NAME", help="Regenerate job NAME (repeatable)."
)
VERIFY_OPTION = click.option(
    "--verify",
    is_flag=True,
    help="Hash every finished video again instead of trusting its recorded fingerprint "
    "(size and mtime in a folder; size in an object store).",
)
RESUBMIT_OPTION = click.option(
    "--resubmit-unknown",
    is_flag=True,
    help="Submit again jobs whose earlier submit was interrupted (may pay twice).",
)


def format_option(choices: dict[str, str], default: str = "text") -> Callable[[Any], Any]:
    """``--format`` with one help phrase per choice."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(list(choices)),
        default=default,
        show_default=True,
        help="; ".join(f"{name}: {what}" for name, what in choices.items()) + ".",
    )


class Seconds(click.FloatRange):
    """A finite number of seconds: NaN and infinity are refused (``float()`` takes both, and
    no comparison refuses NaN), as are values out of range."""

    name = "seconds"

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number of seconds", param, ctx)
        return number


class BaseUrl(click.ParamType):  # type: ignore[type-arg]  # generic only in click>=8.2
    """An API base URL: ``http(s)://HOST[:PORT][/PATH]``, refused in one line otherwise."""

    name = "URL"

    def convert(self, value: Any, param: Any, ctx: Any) -> str:
        from mmgen.state.records import api_identity

        try:
            api_identity(str(value))
        except ValueError as err:
            self.fail(f"{value!r}: {err} (e.g. https://api.minimax.io)", param, ctx)
        return str(value).strip()


BASE_URL_OPTION = click.option(
    "--base-url",
    type=BaseUrl(),
    envvar="MINIMAX_BASE_URL",
    default=DEFAULT_BASE_URL,
    show_default=True,
    help="MiniMax API base URL (env MINIMAX_BASE_URL; mainland China: https://api.minimaxi.com).",
)


class HostPort(click.ParamType):  # type: ignore[type-arg]  # generic only in click>=8.2
    """``HOST:PORT`` (port 0: any free port; IPv6 hosts in brackets)."""

    name = "HOST:PORT"

    def convert(self, value: Any, param: Any, ctx: Any) -> tuple[str, int]:
        if isinstance(value, tuple):
            return value
        host, sep, port = str(value).rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
            self.fail(f"{value!r}: expected HOST:PORT, e.g. 127.0.0.1:8787", param, ctx)
        return host.strip("[]") or "127.0.0.1", int(port)


# --- output ----------------------------------------------------------------------------------


def console(stderr: bool = False) -> Console:
    """A rich console; in a log or a pipe, wide enough not to cut task ids and paths."""
    out = Console(stderr=stderr, highlight=False, soft_wrap=False)
    if not out.is_terminal:
        out.width = max(out.width, 160)
    return out


def show(rendered: RenderableType) -> None:
    """Print a renderer's result to stdout: text verbatim (JSON, HTML), tables via rich."""
    if isinstance(rendered, str):
        click.echo(rendered)
    else:
        console().print(rendered)
