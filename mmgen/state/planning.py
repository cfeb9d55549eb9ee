"""Plan: compare job files with the outcome records, spending nothing (``mmgen plan``).

Each job gets an :data:`~mmgen.run.outcomes.Action`:

- ``submit``: new, failed before, lost by the API, or ``--replace``/``--resubmit-unknown``;
- ``changed``: an earlier version of the job was run; this version is new (a task);
- ``resume``: a task is in flight, or a finished video must be downloaded again (no task);
- ``skip``: this version's video is on disk with the recorded sha256 (nothing, or a local
  copy to make it the current ``NAME.mp4`` again: going back to an earlier version is free);
- ``unknown``: a submit was interrupted before its task id came back: the task may exist.

Every version of a job keeps its own video, ``NAME.<hash8>.mp4`` (:func:`version_path`), and
``NAME.mp4`` (the job's ``output``) is a link to (or copy of) the current version.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Protocol

from mmgen.run.outcomes import Action
from mmgen.state.records import Record, RecordStore
from mmgen.state.store import Entry

if TYPE_CHECKING:
    from mmgen.jobfile.spec import JobSpec


@dataclass(frozen=True)
class PlanItem:
    """What a run will do with one job, and why. ``record`` is the record the action
    continues from (skip/resume/unknown) or the previous version's (changed); ``video`` is,
    for ``skip``, the file (inside the out dir) holding this version's verified video."""

    job: JobSpec
    action: Action
    reason: str
    record: Record | None = None
    video: str | None = None
    #: ``skip`` only: ``output`` (``NAME.mp4``) must become this version again (a local copy)
    restore: bool = False


def version_path(output: str, spec_hash: str) -> str:
    """The video file of one version of a job: ``dir/NAME.mp4`` -> ``dir/NAME.<hash8>.mp4``."""
    path = PurePosixPath(output)
    return str(path.with_name(f"{path.stem}.{spec_hash[:8]}{path.suffix}"))


def file_sha256(path: Path) -> str | None:
    """sha256 of a file, streamed; None when it does not exist."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    return digest.hexdigest()


def plan(
    jobs: Sequence[JobSpec],
    store: RecordStore,
    *,
    replace: Collection[str] = (),
    resubmit_unknown: bool = False,
) -> list[PlanItem]:
    """Decide, per job, what a run does. Reads files (sha256 of existing videos): call it off
    the event loop (``asyncio.to_thread``) inside a run."""
    videos = store.videos()
    return [_plan_one(job, store, videos, replace, resubmit_unknown) for job in jobs]


def _plan_one(
    job: JobSpec,
    store: RecordStore,
    videos: Videos,
    replace: Collection[str],
    resubmit_unknown: bool,
) -> PlanItem:
    record = store.get(job.name, job.spec_hash)
    if job.name in replace:
        return PlanItem(job, "submit", "--replace: generate again", record)
    if record is None:
        others = [r for r in store.for_job(job.name) if r.spec_hash != job.spec_hash]
        if others:
            return PlanItem(job, "changed", changed_reason(job, others[-1]), others[-1])
        return PlanItem(job, "submit", "new job")
    if record.state == "success":
        return _plan_success(job, videos, record)
    if record.state == "submitted":
        reason = f"in flight: re-attach to task {record.task_id}"
        if record.error is not None:
            reason = f"task {record.task_id} not finished last time ({record.error.message})"
        return PlanItem(job, "resume", reason, record)
    if record.state in ("submitting", "unknown"):
        if resubmit_unknown:
            return PlanItem(job, "submit", "--resubmit-unknown", record)
        return PlanItem(
            job,
            "unknown",
            "a submit was interrupted: the task may exist; "
            "use --resubmit-unknown to submit it again",
            record,
        )
    message = record.error.message if record.error else "failed"
    return PlanItem(job, "submit", f"retry after failure: {message}", record)


def changed_reason(job: JobSpec, previous: Record) -> str:
    """Why this version differs from the last one: the job file, or only what it pulled in
    (an environment variable, a local image)."""
    if previous.source_hash == job.source_hash:
        pulled = [f"${{{name}}}" for name in job.env_vars]
        pulled += [str(path) for path in job.local_images]
        what = ", ".join(pulled) or "an environment variable or a local image"
        return f"the job file is unchanged, but what it reads changed: {what}"
    return "job file changed since the last run"


class Videos(Protocol):
    """How plan checks the videos of recorded successes: a folder's files, or an object
    store's listing (:meth:`RecordStore.videos`)."""

    def intact(self, path: str, record: Record) -> bool:
        """Whether ``path`` holds the video ``record`` describes."""

    def holds(self, current: str, version: str, record: Record) -> bool:
        """Whether ``current`` (``NAME.mp4``) already is the video at ``version``."""


class FolderVideos:
    """The videos of a local out dir, checked by their sha256."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir

    def intact(self, path: str, record: Record) -> bool:
        return file_sha256(self.out_dir / path) == record.sha256

    def holds(self, current: str, version: str, record: Record) -> bool:
        return _holds(self.out_dir / current, self.out_dir / version, record)


class ListedVideos:
    """The videos of an object store, checked against one listing (size and ETag): a bounded
    number of requests, whatever the number of jobs."""

    def __init__(self, listing: Mapping[str, Entry]) -> None:
        self.listing = listing

    def intact(self, path: str, record: Record) -> bool:
        entry = self.listing.get(path)
        return entry is not None and (record.bytes is None or entry.size == record.bytes)

    def holds(self, current: str, version: str, record: Record) -> bool:
        now, wanted = self.listing.get(current), self.listing.get(version)
        return now is not None and wanted is not None and now.fingerprint == wanted.fingerprint


def _plan_success(job: JobSpec, videos: Videos, record: Record) -> PlanItem:
    """A recorded success is skipped when this version's video is intact: in its version file,
    or (records of older mmgen versions, a moved ``output``) where the record says it is."""
    wanted = version_path(job.output, job.spec_hash)
    candidates = [wanted] + [p for p in (record.video,) if p and p != wanted]
    for candidate in candidates:
        if videos.intact(candidate, record):
            if candidate != job.output and not videos.holds(job.output, candidate, record):
                why = f"done; {job.output} becomes this version again (a local copy)"
                return PlanItem(job, "skip", why, record, video=candidate, restore=True)
            return PlanItem(job, "skip", "done", record, video=candidate)
    return PlanItem(
        job, "resume", f"video missing or altered: download file {record.file_id} again", record
    )


def _holds(current: Path, version: Path, record: Record) -> bool:
    """Whether ``current`` (``NAME.mp4``) already is this version: the same file, or a copy."""
    try:
        if current.samefile(version):
            return True
    except OSError:
        return False
    return file_sha256(current) == record.sha256
