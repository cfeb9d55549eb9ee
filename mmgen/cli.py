"""The command line: click commands only.

Parse options, build the parts, call the core, map :class:`~mmgen.errors.MmgenError` to exit
codes. Nothing here holds business logic; everything below this module is free of click.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

import click

from mmgen import __version__
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
        except KeyboardInterrupt:
            click.echo("mmgen: interrupted", err=True)
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
    """Print the job-file JSON Schema (for editors and other tools)."""
    from mmgen.schemas import JOB_SCHEMA, load_schema

    click.echo(json.dumps(load_schema(JOB_SCHEMA), indent=2, ensure_ascii=False))
