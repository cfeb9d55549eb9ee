"""Outcome records in an object store (``--out s3://bucket/prefix``), shared by any number of
runners.

Layout (``aws s3 ls s3://bucket/prefix/``), the same names as a local out dir::

    records.jsonl                 the snapshot: one line per record (a local journal's format)
    records.d/<run>-<n>.jsonl     each group commit of a run: a new object, never rewritten
    claims/NAME/<spec_hash>.json  who creates which version (mmgen.state.claims)
    NAME.<hash8>.mp4              every version's video, once; NAME.mp4: the current one
    index.html                    the gallery (relative links)

Reading the state is a bounded number of requests whatever the number of jobs: one listing
of ``records.d/``, the snapshot, and the few deltas not yet merged. A writer puts one delta
object per group commit (every record step is in the store before the call returns, so before
the next network step); a success record's video is uploaded before the record. When a run
closes it merges every delta into the snapshot with a conditional write (``If-Match`` on the
ETag read; a lost race is tried again) and deletes the deltas it merged: a delta is never
rewritten, so merging it twice changes nothing. Two records of one version are merged by their
``updated_at``.

Videos are downloaded into a local staging folder (the runner's ``out_dir``), uploaded, then
removed from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from mmgen.errors import StateError
from mmgen.state.journal import JOURNAL, RecordStore, journal_bytes, parse_journal
from mmgen.state.planning import current_path
from mmgen.state.records import Record
from mmgen.state.store import Entry, Store, check_conditional_writes

if TYPE_CHECKING:
    from mmgen.state.planning import Videos

log = logging.getLogger(__name__)

DELTAS = "records.d/"
#: Tries of the snapshot's conditional write when other runners keep winning the race.
COMPACT_TRIES = 5


class SharedRecordStore(RecordStore):
    """The outcome records of an out dir in an object store (same interface as the local
    :class:`~mmgen.state.journal.RecordStore`; ``out_dir`` is the local staging folder)."""

    def __init__(
        self, store: Store, staging: Path | None = None, *, run_id: str = "", preview: bool = False
    ) -> None:
        self.store = store
        self.run_id = run_id or os.urandom(6).hex()
        self._seq = 0
        self._merged: list[str] = []
        staging = staging or Path(tempfile.gettempdir()) / f"mmgen-staging-{self.run_id}"
        super().__init__(staging)
        #: ``--preview``: videos are uploaded, ``NAME.mp4`` is never touched.
        self.preview = preview

    # --- reading ---------------------------------------------------------------------------

    def _load(self) -> None:
        self._records.clear()
        self._lines = 0
        self._torn_tail = False
        records, self._merged = read_state(self.store)
        for record in records:
            self._records[record.key] = record
            self._lines += 1

    def refresh(self) -> None:
        self._load()

    def videos(self, *, verify: bool = False) -> Videos:
        from mmgen.state.planning import ListedVideos

        return ListedVideos(self.listing(), self.store.sha256 if verify else None)

    def listing(self) -> dict[str, Entry]:
        """Every object of the out dir, by key (the plan's view of the videos)."""
        return {entry.key: entry for entry in self.store.list()}

    # --- writing ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self) -> Iterator[RecordStore]:
        check_conditional_writes(self.store, self.run_id)
        self._load()
        self.alone = False  # a bucket is never known to be ours alone
        self._writable = True
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            yield self
        finally:
            self._writable = False
            try:
                self.compact()
            except StateError as err:  # the deltas stay: the next run merges them
                log.warning("could not merge the records of this run: %s", err.one_line())
            with contextlib.suppress(OSError):
                _remove_tree(self.out_dir)

    async def _before_write(self, record: Record) -> Record:
        record = await super()._before_write(record)
        if record.state == "success" and record.video:
            await asyncio.to_thread(self._upload_video, record)
        return record

    def _upload_video(self, record: Record) -> None:
        """The video goes in before the record naming it; ``NAME.mp4`` becomes a copy of it
        (not with ``--preview``). A version already in the store is not uploaded again."""
        assert record.video is not None
        local = self.out_dir / record.video
        if local.is_file():
            self.store.upload(local, record.video)
        elif self.store.head(record.video) is None:
            raise StateError(f"{record.job}: no video {record.video} to upload")
        if not self.preview:
            self.store.copy(record.video, current_path(record.video, record.spec_hash))
        for name in (record.video, current_path(record.video, record.spec_hash)):
            with contextlib.suppress(OSError):
                (self.out_dir / name).unlink()

    def _append(self, records: list[Record]) -> None:
        if not self._writable:
            raise StateError("outcome records are not open for writing (no lock held)")
        self._seq += 1
        self.store.put(f"{DELTAS}{self.run_id}-{self._seq:06d}.jsonl", journal_bytes(records))

    def compact(self) -> None:
        """Merge every delta into the snapshot (conditional write), then delete them."""
        for _try in range(COMPACT_TRIES):
            deltas = [e.key for e in self.store.list(DELTAS)]
            if not deltas:
                return
            got = self.store.get_versioned(JOURNAL)
            merged: dict[tuple[str, str], Record] = {}
            if got is not None:
                _merge(merged, parse_journal(got[0], f"{self.store.url}/{JOURNAL}")[0])
            read = []
            for key in deltas:
                data = self.store.get(key)
                if data is not None:
                    _merge(merged, parse_journal(data, f"{self.store.url}/{key}")[0])
                    read.append(key)
            ordered = sorted(merged.values(), key=lambda r: (r.job, r.submitted_at or ""))
            data = journal_bytes(ordered)
            if got is None:
                won = self.store.create(JOURNAL, data) is not None
            else:
                won = self.store.replace(JOURNAL, data, got[1])
            if won:
                for key in read:
                    self.store.delete(key)
                return
        log.info("records not merged: other runners kept writing the snapshot")


def read_state(store: Store) -> tuple[list[Record], list[str]]:
    """Every record of an object-store out dir (merged), and the delta keys read.

    The deltas are listed *before* the snapshot is read: a delta that vanished meanwhile was
    merged into a snapshot at least as new as the one read next, which is then read again."""
    deltas = [e.key for e in store.list(DELTAS)]
    merged: dict[tuple[str, str], Record] = {}
    snapshot = store.get(JOURNAL)
    if snapshot is not None:
        _merge(merged, parse_journal(snapshot, f"{store.url}/{JOURNAL}")[0])
    missing = False
    read = []
    for key in deltas:
        data = store.get(key)
        if data is None:
            missing = True
            continue
        _merge(merged, parse_journal(data, f"{store.url}/{key}")[0])
        read.append(key)
    if missing:  # compacted meanwhile: the newer snapshot holds them
        snapshot = store.get(JOURNAL)
        if snapshot is not None:
            _merge(merged, parse_journal(snapshot, f"{store.url}/{JOURNAL}")[0])
    return list(merged.values()), read


def _merge(into: dict[tuple[str, str], Record], records: Iterable[Record]) -> None:
    for record in records:
        seen = into.get(record.key)
        if seen is None or record.updated_at >= seen.updated_at:
            into[record.key] = record


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
