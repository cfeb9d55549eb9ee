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

import contextlib
import hashlib
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Protocol

from mmgen.errors import UsageError
from mmgen.run.outcomes import Action
from mmgen.state import fingerprints
from mmgen.state.journal import RecordStore
from mmgen.state.records import DEFAULT_API, MOCK_API, Record, describe_api
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


def current_path(video: str, spec_hash: str) -> str:
    """``NAME.<hash8>.mp4`` -> ``NAME.mp4`` (the inverse of :func:`version_path`)."""
    path = PurePosixPath(video)
    tag = f".{spec_hash[:8]}"
    if not path.stem.endswith(tag):
        return video
    return str(path.with_name(path.stem[: -len(tag)] + path.suffix))


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
    verify: bool = False,
    videos: Videos | None = None,
    api: str = DEFAULT_API,
) -> list[PlanItem]:
    """Decide, per job, what a run against ``api`` (a :attr:`Record.api` identity) does.
    Checks the videos of recorded successes (their fingerprints; ``verify``: their bytes),
    through ``videos`` when given (read ahead: ``store.videos(verify=...)``): call it off the
    event loop inside a run."""
    videos = videos or store.videos(verify=verify)
    items = [_plan_one(job, store, videos, replace, resubmit_unknown, api) for job in jobs]
    videos.save()
    return items


def refuse_rehearsal_over_real_records(
    jobs: Sequence[JobSpec], store: RecordStore, api: str
) -> None:
    """A run against the mock never writes over a real API's records: they may hold a paid
    task still in flight (or ``unknown``) and their videos are the real ones, both of which
    the rehearsal would replace. Raises :class:`~mmgen.errors.UsageError` naming the jobs."""
    if api != MOCK_API:
        return
    real = sorted(
        {job.name for job in jobs for record in store.for_job(job.name) if record.api != api}
    )
    if real:
        shown = ", ".join(real[:5]) + (f" and {len(real) - 5} more" if len(real) > 5 else "")
        raise UsageError(
            f"{store.out_dir}: {shown} recorded against a real API; a rehearsal on the mock "
            "would write over those records and videos",
            hint="rehearse in another --out; run --mock without --out uses mmgen-mock-out/",
        )


def _plan_one(
    job: JobSpec,
    store: RecordStore,
    videos: Videos,
    replace: Collection[str],
    resubmit_unknown: bool,
    api: str,
) -> PlanItem:
    record = store.get(job.name, job.spec_hash)
    if job.name in replace:
        return PlanItem(job, "submit", "--replace: generate again", record)
    if record is not None and record.api != api:  # its task ids mean nothing to this API
        why = f"recorded against {describe_api(record.api)}; this run uses {describe_api(api)}"
        return PlanItem(job, "submit", why, record)
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

    def save(self) -> None:
        """Keep what was learned (hashes of unchanged files) for the next plan."""


class FolderVideos:
    """The videos of a local out dir, checked by sha256; a video whose size and mtime match
    its fingerprint (:mod:`mmgen.state.fingerprints`) is not read again unless ``verify``."""

    def __init__(self, out_dir: Path, *, verify: bool = False) -> None:
        self.out_dir = out_dir
        self.verify = verify
        self.known = fingerprints.load(out_dir)
        self.learned: fingerprints.Fingerprints = {}

    def sha256(self, path: str, size: int | None = None) -> str | None:
        """The file's sha256 (trusted from its fingerprint when it is unchanged); None when
        it is missing, or not ``size`` bytes long (then it cannot be the recorded video)."""
        try:
            stat = (self.out_dir / path).stat()
        except OSError:
            return None
        if size is not None and stat.st_size != size:
            return None
        known = self.known.get(path)
        if not self.verify and known and known[:2] == (stat.st_size, stat.st_mtime_ns):
            return known[2]
        digest = file_sha256(self.out_dir / path)
        if digest is not None:
            self.learned[path] = self.known[path] = (stat.st_size, stat.st_mtime_ns, digest)
        return digest

    def intact(self, path: str, record: Record) -> bool:
        return record.sha256 is not None and self.sha256(path, record.bytes) == record.sha256

    def holds(self, current: str, version: str, record: Record) -> bool:
        with contextlib.suppress(OSError):
            if (self.out_dir / current).samefile(self.out_dir / version):
                return True
        return self.sha256(current, record.bytes) == record.sha256

    def save(self) -> None:
        fingerprints.save(self.out_dir, self.learned)
        self.learned = {}


class ListedVideos:
    """The videos of an object store, checked against one listing (size and ETag): a bounded
    number of requests, whatever the number of jobs."""

    def __init__(
        self, listing: Mapping[str, Entry], hasher: Callable[[str], str | None] | None = None
    ) -> None:
        self.listing = listing
        self.hasher = hasher  # --verify: each video's bytes, streamed

    def intact(self, path: str, record: Record) -> bool:
        entry = self.listing.get(path)
        if entry is None or (record.bytes is not None and entry.size != record.bytes):
            return False
        return self.hasher is None or self.hasher(path) == record.sha256

    def holds(self, current: str, version: str, record: Record) -> bool:
        now, wanted = self.listing.get(current), self.listing.get(version)
        return now is not None and wanted is not None and now.fingerprint == wanted.fingerprint

    def save(self) -> None:
        pass


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
