"""The mock's saved state (``state_dir``): its tasks and id counters survive a restart.

``mmgen run --mock`` starts a fresh in-process mock each run; with a ``state_dir`` (e.g. the out
dir's ``.mock/``) a run interrupted and resumed finds its tasks again, on the same timeline (a
task created 5 s before a restart with 6 s of generation finishes about 1 s after it, since the
times are epoch seconds of the clock) and with the same videos.

Layout of the folder:

- ``journal.jsonl``: one JSON object per line, appended and fsync'd: ``{"kind": "task", ...}``
  (every field of :meth:`mock_server.tasks.Task.to_record`) or ``{"kind": "reset", "task_id":
  ..., "file_id": ..., "seq": ...}`` (``POST /_mock/reset`` forgets the tasks, not the ids). A
  torn last line (the mock killed mid-write) is ignored.
- ``subjects/<sha256>.txt``: each distinct subject image (URL or data URL) once, written before
  the first line that names it.

Writes happen on one writer thread with group commit: whatever was appended while the previous
fsync ran goes out in one write and one fsync, and :meth:`StateJournal.append` resolves when its
line is durable. The create handler awaits it before answering, so a task id a client has seen
is never lost, and thousands of creates cost a few fsyncs, none of them on the event loop.
Queries, downloads and callback journals are not saved (they are inspection data). One mock at
a time owns the folder (an exclusive ``flock`` on ``lock``): a second one is refused.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import fcntl
import hashlib
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmgen.errors import UsageError

JOURNAL = "journal.jsonl"
SUBJECTS = "subjects"


@dataclass
class SavedState:
    """What a journal holds: the live task records in creation order and the id watermarks."""

    tasks: list[dict[str, Any]] = field(default_factory=list)
    task_id: int = 0
    file_id: int = 0
    seq: int = 0


class StateJournal:
    """An append-only, fsync'd JSON-lines journal of the mock's tasks in ``directory``."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        try:
            (self.directory / SUBJECTS).mkdir(parents=True, exist_ok=True)
            self._lock = os.open(self.directory / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise UsageError(
                f"cannot keep the mock's state in {self.directory}: {err.strerror or err}"
            ) from None
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock)
            raise UsageError(
                f"another mock is using the state folder {self.directory}",
                hint="stop it, or give this one another state_dir",
            ) from None
        self.path = self.directory / JOURNAL
        self._queue: list[tuple[bytes, tuple[str, str] | None, concurrent.futures.Future[None]]]
        self._queue = []
        self._cond = threading.Condition()
        self._closed = False
        self._known_subjects: set[str] = {p.stem for p in (self.directory / SUBJECTS).iterdir()}
        self._thread = threading.Thread(target=self._write_loop, name="mock-state", daemon=True)
        self._thread.start()

    # --- reading ---------------------------------------------------------------------------

    def load(self) -> SavedState:
        """Replay the journal (resets included); a torn or unreadable line ends it."""
        state = SavedState()
        live: dict[str, dict[str, Any]] = {}
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return state
        for line in raw.splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                break  # the last line of a mock killed mid-write
            if record.get("kind") == "reset":
                live.clear()
            elif record.get("kind") == "task":
                record.pop("kind")
                live[record["task_id"]] = record
                record_seq = int(record["seq"]) + 1
                state.seq = max(state.seq, record_seq)
            state.task_id = max(state.task_id, int(record.get("task_id") or 0))
            state.file_id = max(state.file_id, int(record.get("file_id") or 0))
            state.seq = max(state.seq, int(record.get("seq_next") or 0))
        state.tasks = list(live.values())
        return state

    def subject(self, ref: str | None) -> str | None:
        """The subject image saved under ``ref`` (None when missing)."""
        if ref is None:
            return None
        try:
            return (self.directory / SUBJECTS / f"{ref}.txt").read_text(encoding="utf-8")
        except OSError:
            return None

    # --- writing ---------------------------------------------------------------------------

    @staticmethod
    def subject_ref(subject: str | None) -> str | None:
        if subject is None:
            return None
        return hashlib.sha256(subject.encode("utf-8", "surrogatepass")).hexdigest()

    def append(
        self, record: dict[str, Any], subject: str | None = None
    ) -> concurrent.futures.Future[None]:
        """Queue one record (and the subject it names); the future resolves once durable."""
        ref = self.subject_ref(subject)
        extra = None
        if subject is not None and ref is not None and ref not in self._known_subjects:
            self._known_subjects.add(ref)
            extra = (ref, subject)
        line = json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
        future: concurrent.futures.Future[None] = concurrent.futures.Future()
        with self._cond:
            if self._closed:
                raise RuntimeError("the mock's state journal is closed")
            self._queue.append((line, extra, future))
            self._cond.notify()
        return future

    async def append_async(self, record: dict[str, Any], subject: str | None = None) -> None:
        await asyncio.wrap_future(self.append(record, subject))

    def close(self) -> None:
        """Write what is queued, then stop the writer thread."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout=30)
        with contextlib.suppress(OSError):
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            os.close(self._lock)

    def _write_loop(self) -> None:
        with open(self.path, "ab") as journal:
            while True:
                with self._cond:
                    while not self._queue and not self._closed:
                        self._cond.wait()
                    batch, self._queue = self._queue, []
                    if not batch and self._closed:
                        return
                try:
                    for _, extra, _ in batch:
                        if extra is not None:
                            self._write_subject(*extra)
                    journal.write(b"".join(line for line, _, _ in batch))
                    journal.flush()
                    os.fsync(journal.fileno())
                except OSError as err:
                    for _, _, future in batch:
                        future.set_exception(err)
                    continue
                for _, _, future in batch:
                    future.set_result(None)

    def _write_subject(self, ref: str, subject: str) -> None:
        final = self.directory / SUBJECTS / f"{ref}.txt"
        temp = final.with_suffix(".tmp")
        with open(temp, "w", encoding="utf-8") as out:
            out.write(subject)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, final)
        fd = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
