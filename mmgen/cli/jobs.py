"""Commands that read job files and records and spend nothing: validate, plan, status, schema,
init."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from mmgen.cli.app import (
    BASE_URL_OPTION,
    OUT_OPTION,
    PATHS_ARGUMENT,
    REPLACE_OPTION,
    RESUBMIT_OPTION,
    VERIFY_OPTION,
    Settings,
    format_option,
    handle_errors,
    main,
    show,
)
from mmgen.errors import EXIT_USAGE, UsageError
from mmgen.report.problems import PROBLEM_FORMATS


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
    from mmgen.project.scaffold import next_steps, write_scaffold

    files = write_scaffold(directory)
    if settings.verbosity >= 0:
        for item in files:
            click.echo(f"  {directory / item.path}  ({item.purpose})")
        click.echo("Next:")
        for step in next_steps(directory):
            click.echo(f"  {step}")
        click.echo("  then add the repository secret MINIMAX_API_KEY (GitHub: Settings > Secrets)")


MODELS_OPTION = click.option(
    "--models",
    "models_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Project file declaring models mmgen does not know yet (default: the mmgen.yaml next "
    "to the job files or in a parent folder).",
)


@main.command("validate")
@PATHS_ARGUMENT
@format_option(PROBLEM_FORMATS)
@MODELS_OPTION
@click.option(
    "--strict",
    is_flag=True,
    help="Treat warnings (a camera command the model ignores, an old model name) as problems: "
    "exit 2 when there is any.",
)
@click.pass_obj
@handle_errors
def validate_command(
    settings: Settings, paths: tuple[Path, ...], fmt: str, models_file: Path | None, strict: bool
) -> None:
    """Check job files and folders (*.yaml, *.yml); report every problem, spend nothing.

    Problems go to stdout, one per line (or the JSON list, or GitHub annotations); warnings too
    in every format (text: to stderr, unless --strict). The summary line goes to stdout when
    all is valid and to stderr otherwise. Exit 0 when all is valid, 2 when not; warnings never
    change the exit code unless --strict.
    """
    from mmgen.jobfile.spec import validate_paths
    from mmgen.report import render_problems, validation_summary

    result = validate_paths(list(paths), models=models_file)
    failing = sorted(result.problems + result.warnings) if strict else result.problems
    advice = [] if strict else result.warnings
    summary = validation_summary(len(result.files), len(result.jobs), failing, len(advice))
    if fmt == "text" and settings.verbosity >= 0:
        for warning in advice:  # advice only: never changes the exit code
            click.echo(str(warning), err=True)
    shown = failing if fmt == "text" else sorted(failing + advice)
    if fmt == "json" or shown:  # json: always the list, `[]` when there is nothing to say
        click.echo(render_problems(shown, fmt))
    elif settings.verbosity >= 0:
        click.echo(summary)
    if failing:
        if settings.verbosity >= 0:
            click.echo(f"mmgen: {summary}", err=True)
        sys.exit(EXIT_USAGE)


@main.command("plan")
@PATHS_ARGUMENT
@OUT_OPTION
@BASE_URL_OPTION
@click.option(
    "--mock", is_flag=True, help="Plan for `run --mock` (records made against the bundled mock)."
)
@REPLACE_OPTION
@RESUBMIT_OPTION
@VERIFY_OPTION
@format_option(
    {
        "text": "a table",
        "json": "a list of objects",
        "markdown": "a pull-request comment: cost, subject images, prompt diffs",
    }
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
    help="YAML/JSON price table merged over mmgen's default (for the estimated cost).",
)
@MODELS_OPTION
@handle_errors
def plan_command(
    paths: tuple[Path, ...],
    out: str,
    base_url: str,
    mock: bool,
    replace: tuple[str, ...],
    resubmit_unknown: bool,
    verify: bool,
    fmt: str,
    detailed_exitcode: bool,
    prices_file: Path | None,
    models_file: Path | None,
) -> None:
    """Show what `run` would do per job (submit, skip, resume, changed, unknown), with the
    estimated cost and what changed; spends nothing.

    The plan is for a run against --base-url (or --mock): records made against another API
    are never resumed nor skipped on. In GitHub Actions the markdown comment shows repository
    images at the pull request's head commit (GITHUB_SERVER_URL, GITHUB_REPOSITORY,
    GITHUB_SHA, GITHUB_EVENT_PATH)."""
    from mmgen.jobfile.spec import load_jobs
    from mmgen.report import render_plan
    from mmgen.report.plans import RepoLinks
    from mmgen.state.outdir import reading_ahead
    from mmgen.state.planning import plan
    from mmgen.state.pricing import load_prices, plan_exit_code
    from mmgen.state.records import MOCK_API, api_identity

    prices = load_prices(prices_file) if fmt != "json" or prices_file else None
    with reading_ahead(out, verify=verify) as opened:  # read while the job files load
        jobs = load_jobs(list(paths), models=models_file)
        check_replace(replace, [job.name for job in jobs])
        out_dir, videos = opened()
    items = plan(
        jobs,
        out_dir.records,
        replace=set(replace),
        resubmit_unknown=resubmit_unknown,
        videos=videos,
        api=MOCK_API if mock else api_identity(base_url),
    )
    links = RepoLinks.from_github(os.environ, Path.cwd())
    show(render_plan(items, fmt, prices=prices, resubmit_unknown=resubmit_unknown, links=links))
    if detailed_exitcode:
        sys.exit(plan_exit_code(items))


def check_replace(replace: tuple[str, ...], names: list[str]) -> None:
    unknown = [name for name in replace if name not in set(names)]
    if unknown:
        raise UsageError(f"--replace: no job named {', '.join(unknown)} in these files")


@main.command("status")
@OUT_OPTION
@format_option(
    {
        "text": "a table",
        "json": "a list of record objects",
        "html": "the gallery page (also written to OUT/index.html by every run)",
    }
)
@click.option(
    "--all", "show_all", is_flag=True, help="Every version of every job, not only the current."
)
@handle_errors
def status_command(out: str, fmt: str, show_all: bool) -> None:
    """Show the outcome records of an out dir: the current version of each job (--all: every
    version, the current one marked; JSON: `current: true`). Exit 2 when the out dir has no
    records."""
    from mmgen.report import render_records
    from mmgen.state.outdir import open_out

    out_dir = open_out(out)
    if not out_dir.has_records():
        raise UsageError(
            f"no outcome records in {out}",
            hint="give the --out of an earlier `mmgen run` (default mmgen-out; "
            "with --mock, mmgen-mock-out)",
        )
    store = out_dir.records
    every = show_all or fmt == "html"  # the gallery shows each job's version history
    current = store.current()
    chosen = {record.key for record in current}
    show(render_records(store.records() if every else current, fmt, current=chosen))
