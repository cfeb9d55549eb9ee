"""Open an out dir from what ``--out`` (or ``MMGEN_OUT``) says: a folder (the default,
``mmgen-out``) or an object-store URL. One place decides which record store and which byte
store serve it, so ``plan``, ``run``, ``status``, ``claims`` and ``unlock`` agree."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mmgen.state.journal import JOURNAL, RecordStore
from mmgen.state.store import LocalStore, Store, open_store

if TYPE_CHECKING:
    from mmgen.state.planning import Videos


@dataclass
class OutDir:
    """An out dir: where it is (``location``, for messages), its bytes and its records."""

    location: str
    store: Store
    records: RecordStore

    @property
    def local(self) -> bool:
        return self.store.local

    def has_records(self) -> bool:
        """Whether any run recorded anything here (``status`` refuses an empty out dir)."""
        if isinstance(self.store, LocalStore):
            return (self.store.root / JOURNAL).is_file()
        return bool(self.records.records())


def open_out(location: str | Path, *, run_id: str = "", preview: bool = False) -> OutDir:
    """The out dir at ``location``, its records read (a bounded number of requests)."""
    store = open_store(location)
    if isinstance(store, LocalStore):
        return OutDir(str(location), store, RecordStore(store.root, preview=preview))
    from mmgen.state.shared import SharedRecordStore

    records = SharedRecordStore(store, run_id=run_id, preview=preview)
    return OutDir(str(location), store, records)


@contextlib.contextmanager
def reading_ahead(
    location: str | Path, *, verify: bool = False
) -> Iterator[Callable[[], tuple[OutDir, Videos]]]:
    """Open the out dir and look at its videos in a thread while the caller does something
    else (loads the job files): an object store's requests wait on the network, not the CPU.
    The callable it yields returns both once ready (re-raising what reading raised)."""

    def read() -> tuple[OutDir, Videos]:
        out = open_out(location)
        return out, out.records.videos(verify=verify)

    with ThreadPoolExecutor(1, thread_name_prefix="mmgen-read-ahead") as reader:
        ready = reader.submit(read)
        yield ready.result
