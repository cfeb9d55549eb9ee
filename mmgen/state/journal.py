"""The outcome records of a local out dir: the journal ``records.jsonl`` (records themselves:
:mod:`mmgen.state.records`).

Storage: ``<out>/records.jsonl``, an append-only journal. Each line is a complete snapshot of one
record (one job name at one ``spec_hash``); the latest line for a key wins. Every append is one
``write`` of a whole line followed by ``fsync``, so a record step, once :meth:`RecordStore.put`
returns, survives SIGKILL and power loss. A line torn by a crash in the middle of a write is
never acknowledged to anyone; it is dropped (and cut off the file) when the store is next opened
for writing.

Why a journal rather than SQLite: the records are an artifact users keep (CI artifacts, or
committed back to the repository). A JSON-lines file is readable, diffable and mergeable in
git, needs no tool to inspect, and an fsync'd append is exactly the durability the run needs.
The journal is compacted (one line per record, atomic rewrite) when it has grown well past the
number of records.

Many runners may write one out dir at once: each appends whole lines (one ``write`` per group
commit, ``O_APPEND``), and the version each one creates is decided by its claim
(:mod:`mmgen.state.claims`), taken in :meth:`RecordStore.write` right before a "submitting"
record. Each holds a shared ``flock`` on ``<out>/.lock`` while it writes; the journal's upkeep
(cutting a torn tail, compaction) and tidying temp files happen only in a runner that got the
lock exclusively (:attr:`RecordStore.alone`), so no live writer's line is ever cut.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from mmgen.errors import StateError
from mmgen.state import fingerprints
from mmgen.state.files import fsync_dir, link_or_copy
from mmgen.state.records import Record

if TYPE_CHECKING:
    from mmgen.state.claims import Claims
    from mmgen.state.planning import Videos

JOURNAL = "records.jsonl"
LOCK = ".lock"
#: Space held back for the journal while a run writes it (``OUT/.mmgen/reserve-PID``): when
#: the disk fills, the reserve is given up so the record that follows a paid create (its task
#: id) still fits. 1 MiB holds a few thousand records.
RESERVE_DIR = ".mmgen"
RESERVE_BYTES = 1024 * 1024


class RecordStore:
    """The outcome records of a local out dir (``records.jsonl``). Reads need no lock; writes
    need :meth:`lock`. :class:`mmgen.state.shared.SharedRecordStore` keeps them in an object
    store with the same interface."""

    def __init__(self, out_dir: Path, *, preview: bool = False) -> None:
        #: The out dir: the journal, the lock, the videos.
        self.home = Path(out_dir)
        #: Where the runner writes videos: the out dir, or with ``--preview`` a staging folder
        #: inside it (a finished preview's version file is moved in; ``NAME.mp4`` never is).
        self.out_dir = self.home
        #: ``--preview``: versions are generated but not made current (records say so).
        self.preview = preview
        if preview:
            self.out_dir = self.home / ".mmgen" / f"preview-{os.getpid()}-{id(self):x}"
        self.path = self.home / JOURNAL
        self._records: dict[tuple[str, str], Record] = {}
        self._lines = 0
        self._lock_fd: int | None = None
        self._fd: int | None = None
        self._writable = False
        self._batch: list[Record] = []
        self._batch_done: asyncio.Future[None] | None = None
        self._flusher: asyncio.Task[None] | None = None
        #: Set while writing: the claims taken before each create (:mod:`mmgen.state.claims`).
        self.claims: Claims | None = None
        #: Whether this writer holds the out dir alone (no other runner is writing it).
        self.alone = True
        self._fingerprints: fingerprints.Fingerprints = {}  # of the videos this run wrote
        self._cut_to: int | None = None  # the journal's good length, when a cut-back is owed
        self._reserve: Path | None = None  # space held back for the journal (RESERVE_BYTES)
        self._reserve_wanted = False
        self._load()

    # --- reading ---------------------------------------------------------------------------

    def _load(self) -> None:
        self._records.clear()
        self._lines = 0
        self._torn_tail = False
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as err:
            raise StateError(f"cannot read {self.path}: {err.strerror}") from err
        records, self._torn_tail = parse_journal(raw, str(self.path))
        for record in records:
            self._records[record.key] = record
            self._lines += 1

    def videos(self, *, verify: bool = False) -> Videos:
        """How plan checks this out dir's videos (``verify``: every byte, not fingerprints)."""
        from mmgen.state.planning import FolderVideos

        return FolderVideos(self.home, verify=verify)

    def records(self) -> list[Record]:
        """Every record (every version of every job), ordered by job name then submission time."""
        return sorted(self._records.values(), key=lambda r: (r.job, r.submitted_at or ""))

    def current(self) -> list[Record]:
        """One record per job: its most recently updated version (a preview only when the job
        has nothing else: previews are not current), ordered by job name."""
        latest: dict[str, Record] = {}
        for record in self._records.values():
            seen = latest.get(record.job)
            if (
                seen is None
                or (seen.preview and not record.preview)
                or (seen.preview == record.preview and record.updated_at >= seen.updated_at)
            ):
                latest[record.job] = record
        return [latest[name] for name in sorted(latest)]

    def get(self, job: str, spec_hash: str) -> Record | None:
        return self._records.get((job, spec_hash))

    def for_job(self, job: str) -> list[Record]:
        """All records of one job name, oldest update first."""
        return sorted(
            (r for r in self._records.values() if r.job == job), key=lambda r: r.updated_at
        )

    # --- writing ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self) -> Iterator[RecordStore]:
        """Open the out dir for writing. Other runners may write it too (a shared ``flock``);
        :attr:`alone` says whether this one got it exclusively (then it tidies)."""
        try:
            self.home.mkdir(parents=True, exist_ok=True)
            self.out_dir.mkdir(parents=True, exist_ok=True)
            lock_fd = os.open(self.home / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise StateError(f"cannot use out dir {self.home}: {err.strerror}") from err
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self.alone = True
        except BlockingIOError:
            fcntl.flock(lock_fd, fcntl.LOCK_SH)  # waits only for another's short upkeep
            self.alone = False
        self._lock_fd = lock_fd
        try:
            self._load()  # what the previous holder wrote
            self._open_journal()
            if self.alone:  # upkeep done: let other runners in beside this one
                remove_partial_downloads(self.home)
                fcntl.flock(lock_fd, fcntl.LOCK_SH)
            yield self
        finally:
            self._close_journal()
            fingerprints.save(self.home, self._fingerprints)
            if self.out_dir != self.home:
                shutil.rmtree(self.out_dir, ignore_errors=True)
            self._lock_fd = None
            fcntl.flock(lock_fd, fcntl.LOCK_UN)
            os.close(lock_fd)

    def refresh(self) -> None:
        """Read the records again (what other runners wrote meanwhile)."""
        self._load()

    def _open_journal(self) -> None:
        """Open the journal for appending; a new journal is created at the first write, so a
        run that records nothing (refused by the spending guard, nothing to do) leaves none."""
        self._writable = True
        self._reserve_wanted = True  # taken at the first append: a run that records nothing
        existed = self.path.exists()
        if not existed:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND, 0o644)
        if self._torn_tail and self.alone:  # cut off the half-written line of a crashed writer
            os.ftruncate(fd, self.path.read_bytes().rfind(b"\n") + 1)
            os.fsync(fd)
            self._torn_tail = False
        self._fd = fd
        if self.alone and self._lines > 2 * len(self._records) + 100:
            self.compact()

    def _close_journal(self) -> None:
        self._writable = False
        self._give_up_reserve()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def put(self, record: Record) -> Record:
        """Durably record ``record`` (append + fsync) before returning it."""
        self._append([record])
        self._records[record.key] = record
        self._lines += 1
        return record

    async def write(self, record: Record) -> Record:
        """Durably record ``record``, off the event loop, batched with concurrent writes.

        Group commit: every record handed in while a flush is running goes into the next
        flush, which is one ``write`` and one ``fsync`` in a worker thread. The call returns
        only once *its* record is on disk, so a caller's next network step still happens after
        the record is durable (the crash rule), while 10,000 jobs cost a few hundred fsyncs
        instead of 30,000, and the event loop never blocks on the disk. The record is durable
        even when the awaiting caller is cancelled meanwhile.
        """
        if not self._writable:
            raise StateError("outcome records are not open for writing (no lock held)")
        record = await self._before_write(record)
        if self._batch_done is None:
            self._batch_done = asyncio.get_running_loop().create_future()
        done = self._batch_done
        self._batch.append(record)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="mmgen-records-flush")
        await asyncio.shield(done)
        await self._after_write(record)
        return record

    async def _flush(self) -> None:
        while self._batch:
            batch, done = self._batch, self._batch_done
            self._batch, self._batch_done = [], None
            assert done is not None
            try:
                await asyncio.to_thread(self._append, batch)
            except BaseException as err:
                if not done.done():
                    done.set_exception(err if isinstance(err, Exception) else StateError(str(err)))
                    done.exception()  # retrieved: every waiter re-raises it
                raise
            for record in batch:
                self._records[record.key] = record
            self._lines += len(batch)
            done.set_result(None)

    async def _before_write(self, record: Record) -> Record:
        """Before a "submitting" record (the create comes next): claim the version, so no
        other runner creates it (:class:`~mmgen.errors.ClaimedError` when one holds it).
        Before a "success": its video is where the record says. Returns the record to write
        (a preview's is marked)."""
        if record.state == "submitting" and self.claims is not None:
            await asyncio.to_thread(self.claims.take, record.job, record.spec_hash)
        if self.preview and not record.preview:
            record = record.evolve(preview=True, updated_at=record.updated_at)
        if record.state == "success" and record.video and self.out_dir != self.home:
            await asyncio.to_thread(self._move_in, record)
        if record.state == "success" and record.video and record.sha256:
            # the video was just written and hashed: the next plan trusts it without reading
            known = fingerprints.of_file(self.home / record.video, record.sha256)
            if known is not None:
                self._fingerprints[record.video] = known
        return record

    def _move_in(self, record: Record) -> None:
        """A preview's video: from the staging folder into the out dir (never ``NAME.mp4``)."""
        from mmgen.state.planning import current_path

        assert record.video is not None
        staged = self.out_dir / record.video
        if staged.is_file():
            link_or_copy(staged, self.home / record.video)
        for name in (record.video, current_path(record.video, record.spec_hash)):
            (self.out_dir / name).unlink(missing_ok=True)

    async def _after_write(self, record: Record) -> None:
        """Once a record is durable, its claim follows (in the caller's task, so the claims
        of many jobs are written side by side, not in the group commit's thread): a created
        task's id goes into its claim; a failed version's claim is released (it may be tried
        again). Skipped when the caller is cancelled: the record holds the task id anyway."""
        if self.claims is None:
            return
        if record.state == "submitted" and record.task_id:
            await asyncio.to_thread(
                self.claims.record_task, record.job, record.spec_hash, record.task_id
            )
        elif record.state == "failed":
            await asyncio.to_thread(
                self.claims.release, record.job, record.spec_hash, record.task_id
            )

    async def drain(self) -> None:
        """Wait until every record handed to :meth:`write` is on disk."""
        while self._flusher is not None and not self._flusher.done():
            await asyncio.shield(self._flusher)

    def _append(self, records: list[Record]) -> None:
        if not self._writable:
            raise StateError("outcome records are not open for writing (no lock held)")
        # encoded first: a record that cannot be (a non-UTF-8 name) never leaves an empty journal
        data = "".join(_journal_line(record) for record in records).encode("utf-8")
        if self._reserve_wanted:  # before the first record, so before anything is paid for
            self._reserve_wanted = False
            self._reserve = _hold_reserve(self.home, tidy=self.alone)
        if self._fd is None:  # the first record of this out dir: create the journal
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
            fsync_dir(self.home)
        if self._cut_to is not None:  # an earlier failed append could not be cut back yet
            self._cut_back(self._fd, self._cut_to)
        if self._torn_tail:  # another runner is writing: never cut; start on a line of our own
            data = b"\n" + data
            self._torn_tail = False
        good = os.fstat(self._fd).st_size
        view = memoryview(data)
        written = 0
        try:
            while written < len(data):
                written += os.write(self._fd, view[written:])
            os.fsync(self._fd)
        except OSError as err:
            if err.errno in _FULL and self._give_up_reserve():
                # the disk filled: the reserve's space takes this append (a task id, maybe)
                self._after_failed_append(good)
                self._append(records)
                return
            self._after_failed_append(good)
            raise

    def _give_up_reserve(self) -> bool:
        """Delete the journal's reserve file, freeing its space; False when there was none."""
        reserve, self._reserve = self._reserve, None
        if reserve is None:
            return False
        with contextlib.suppress(OSError):
            reserve.unlink()
        return True

    def _after_failed_append(self, good: int) -> None:
        assert self._fd is not None
        # Part of a line may be in the file (disk full mid-write): cut it off, so the next
        # append does not join the fragment (one corrupt line in the middle of the journal).
        if not self.alone:  # another runner may have appended since: never cut its line
            self._torn_tail = True  # the next append starts a line of its own
            return
        with contextlib.suppress(OSError):  # else cut before the next append, or never
            self._cut_to = good
            self._cut_back(self._fd, good)

    def _cut_back(self, fd: int, size: int) -> None:
        """Truncate the journal to ``size``, its length after the last good append."""
        os.ftruncate(fd, size)
        os.fsync(fd)
        self._cut_to = None

    def compact(self) -> None:
        """Rewrite the journal with one line per record, atomically."""
        if not self._writable:
            raise StateError("outcome records are not open for writing (no lock held)")
        fd, tmp = tempfile.mkstemp(dir=self.home, prefix=".records.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                for record in self.records():
                    handle.write(_journal_line(record))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        fsync_dir(self.home)
        if self._fd is not None:
            os.close(self._fd)
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND)
        self._lines = len(self._records)
        self._cut_to = None  # the rewrite holds no fragment


def refuse_nested_out_dirs(out_dir: Path) -> None:
    """Refuse an out dir inside another out dir, or holding one (each found by its journal).

    A run owns its whole out dir: it tidies what a killed run left there (``.part`` files of
    unfinished downloads) and its lock covers only that folder, so a run on ``nest`` deleted
    the downloads in progress of a concurrent run on ``nest/sub``. Raises :class:`StateError`.
    """
    here = Path(out_dir).resolve()
    for parent in here.parents:
        if (parent / JOURNAL).is_file():
            raise StateError(
                f"out dir {out_dir} is inside the out dir {parent} (it holds {JOURNAL})",
                hint="use a folder outside it: out dirs must not contain each other",
            )
    for folder, _dirs, files in os.walk(here):
        if JOURNAL in files and Path(folder) != here:
            raise StateError(
                f"out dir {out_dir} holds the out dir {folder} (it holds {JOURNAL})",
                hint="use another folder: out dirs must not contain each other",
            )


#: errno values of a full disk or quota
_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


def _hold_reserve(home: Path, *, tidy: bool) -> Path | None:
    """Allocate this process's journal reserve (:data:`RESERVE_BYTES` of real blocks); with
    ``tidy`` (no other runner), first remove the reserves that killed runs left. None when the
    space cannot be had: the run's room check then refuses to pay for anything."""
    folder = home / RESERVE_DIR
    path = folder / f"reserve-{os.getpid()}"
    try:
        folder.mkdir(exist_ok=True)
        if tidy:
            for stale in folder.glob("reserve-*"):
                stale.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    except OSError:
        return None
    try:
        os.posix_fallocate(fd, 0, RESERVE_BYTES)
        os.fsync(fd)
    except OSError:
        os.close(fd)
        path.unlink(missing_ok=True)
        return None
    os.close(fd)
    return path


def remove_partial_downloads(out_dir: Path) -> list[Path]:
    """Delete the temp files a killed run left behind (``.NAME.*.part``). Only while holding
    the out dir alone: then no other runner is downloading into it."""
    removed = []
    for part in out_dir.rglob(".*.part"):
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
            removed.append(part)
    return removed


def parse_journal(raw: bytes, where: str) -> tuple[list[Record], bool]:
    """The records of a journal's bytes, in order, and whether its last line is torn (a write
    that did not finish: never acknowledged, so dropped). ``where`` names it in errors."""
    lines = raw.split(b"\n")
    records = []
    for number, line in enumerate(lines[:-1], start=1):
        if not line.strip():
            continue
        try:
            records.append(Record.from_json(json.loads(line)))
        except (ValueError, RecursionError) as err:  # UnicodeDecodeError is a ValueError
            what = "nested too deeply" if isinstance(err, RecursionError) else err
            raise StateError(
                f"{where}:{number}: corrupt outcome record: {what}",
                hint="fix or remove that line; the other records are intact",
            ) from err
    return records, lines[-1] != b""


def journal_bytes(records: list[Record]) -> bytes:
    """Records as journal lines (the format of ``records.jsonl``)."""
    return "".join(_journal_line(record) for record in records).encode("utf-8")


def _journal_line(record: Record) -> str:
    """One record as one compact JSON line of the journal."""
    return json.dumps(record.to_json(), ensure_ascii=False, separators=(",", ":")) + "\n"
