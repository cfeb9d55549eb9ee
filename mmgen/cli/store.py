"""Commands about the out dir itself: ``claims``, ``unlock`` and ``store copy``."""

from __future__ import annotations

import json
import sys

import click

from mmgen.cli.app import OUT_OPTION, Settings, format_option, handle_errors, main, show
from mmgen.errors import EXIT_FAILED, UsageError


@main.command("claims")
@OUT_OPTION
@format_option({"text": "a table", "json": "a list of claim objects"})
@handle_errors
def claims_command(out: str, fmt: str) -> None:
    """List the claims held in the out dir: which run creates which job version (who, since
    when, its task id). A done version's claim is not shown (it only stops a second create)."""
    from mmgen.report.tables import simple_table
    from mmgen.state.claims import Claims
    from mmgen.state.outdir import open_out

    out_dir = open_out(out)
    done = {r.key for r in out_dir.records.records() if r.state == "success"}
    claims = Claims(out_dir.store)
    held = [
        claim
        for job, spec_hash in sorted(claims.keys() - done)  # a done version's is not read
        if (claim := claims.read(job, spec_hash)) is not None
    ]
    if fmt == "json":
        rows = [dict(claim.to_json(), dead=claims.is_dead(claim)) for claim in held]
        click.echo(json.dumps(rows, indent=2))
        return
    if not held:
        click.echo(f"No claims held in {out}.")
        return
    table = [
        [
            c.job,
            c.spec_hash[:8],
            c.run_id,
            f"{c.pid} on {c.host}" + (" (gone)" if claims.is_dead(c) else ""),
            c.claimed_at,
            c.task_id or "",
        ]
        for c in held
    ]
    show(simple_table(("job", "version", "run", "process", "since", "task id"), table))


@main.command("unlock")
@click.argument("job")
@click.option("--version", "spec_hash", metavar="HASH", help="The version (spec hash or prefix).")
@OUT_OPTION
@handle_errors
def unlock_command(job: str, spec_hash: str | None, out: str) -> None:
    """Clear the claim on JOB (after showing who holds it), when the run that holds it is gone.

    A claim without a task id then leaves the job `unknown` (the create may have reached
    MiniMax): `mmgen run --resubmit-unknown` submits it again. With several claimed versions
    of JOB, say which with --version."""
    from mmgen.state.claims import Claims
    from mmgen.state.outdir import open_out

    claims = Claims(open_out(out).store)
    mine = [c for c in claims.all() if c.job == job]
    if spec_hash:
        mine = [c for c in mine if c.spec_hash.startswith(spec_hash)]
    if not mine:
        raise UsageError(f"no claim on {job}{' ' + spec_hash if spec_hash else ''} in {out}")
    if len(mine) > 1:
        versions = ", ".join(c.spec_hash[:12] for c in mine)
        raise UsageError(f"{job} has claims on {len(mine)} versions ({versions})", hint="--version")
    claim = mine[0]
    task = f", task {claim.task_id}" if claim.task_id else ", no task id"
    click.echo(f"{job} {claim.spec_hash[:8]}: claimed by {claim.holder()}{task}", err=True)
    claims.unlock(claim.job, claim.spec_hash)
    click.echo(f"unlocked {job} {claim.spec_hash[:8]}", err=True)


@main.group("store")
def store_group() -> None:
    """Work on out dirs as a whole (`mmgen store copy`)."""


@store_group.command("copy")
@click.argument("source", metavar="SRC")
@click.argument("target", metavar="DST")
@click.pass_obj
@handle_errors
def store_copy_command(settings: Settings, source: str, target: str) -> None:
    """Copy the out dir SRC into DST (folders or object-store URLs): every version's video
    (its sha256 checked against its record), the records, the claims.

    Run it again after an interruption: videos already in DST with the recorded sha256 are
    not copied again. Exit 0 when every video was copied or present, 1 when a video's bytes
    in SRC do not match its record (that one is not copied)."""
    from mmgen.state.copy import copy_out_dir
    from mmgen.state.outdir import open_out

    src, dst = open_out(source), open_out(target)
    if not src.has_records():
        raise UsageError(f"no outcome records in {source}")
    report = copy_out_dir(src, dst)
    if settings.verbosity >= 0:
        click.echo(
            f"{len(report.copied)} videos copied, {len(report.present)} already there, "
            f"{report.records} records, {report.claims} claims",
            err=True,
        )
    for key in report.missing:
        click.echo(f"mmgen: warning: {source}: no video {key} (its record is copied)", err=True)
    for key in report.mismatched:
        click.echo(f"mmgen: error: {source}: {key} does not have its recorded sha256", err=True)
    if not report.ok:
        sys.exit(EXIT_FAILED)
