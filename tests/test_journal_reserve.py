"""The journal's reserve: when the disk fills during a run, the record that follows a paid
create (its task id) still fits. Tried on a real full file system (a small tmpfs, where the
machine lets the suite mount one), not an injected error."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from mmgen.state.journal import RESERVE_DIR, RecordStore
from mmgen.state.records import Record


def make(job: str = "a", **kw) -> Record:
    return Record(job=job, spec="specs/a.yaml", spec_hash="h1", state="submitting", **kw)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path) -> None:
    """Write a file until the file system is full."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError as err:
        assert err.errno == errno.ENOSPC
    finally:
        os.close(fd)


def test_the_task_id_fits_after_the_disk_filled(small_disk: Path) -> None:
    store = RecordStore(small_disk)
    with store.lock():
        submitting = store.put(make())  # before the create: the reserve is taken here
        assert list((small_disk / RESERVE_DIR).glob("reserve-*"))
        journal = store.path
        n = 0
        while 4096 - journal.stat().st_size % 4096 > 100:  # the next line needs a new block
            store.put(make(f"pad{n}"))
            n += 1
        fill(small_disk)  # another program filled the disk while the create was under way
        store.put(submitting.evolve(state="submitted", task_id="106916112212032"))
        with pytest.raises(OSError) as err:  # no reserve left: the next write fails as before
            for n in range(100_000):
                store.put(make(f"job{n}"))
        assert err.value.errno == errno.ENOSPC
    [record, *_] = RecordStore(small_disk).records()
    assert (record.job, record.state, record.task_id) == ("a", "submitted", "106916112212032")
    assert not list((small_disk / RESERVE_DIR).glob("reserve-*"))  # given back at the end


def test_a_run_that_records_nothing_holds_no_reserve(tmp_path: Path) -> None:
    store = RecordStore(tmp_path)
    with store.lock():
        pass
    assert not (tmp_path / RESERVE_DIR).exists()


def test_a_killed_runs_reserve_is_removed_by_the_next_run(tmp_path: Path) -> None:
    stale = tmp_path / RESERVE_DIR / "reserve-999999"
    stale.parent.mkdir()
    stale.write_bytes(b"\0" * 1024)
    store = RecordStore(tmp_path)
    with store.lock():
        store.put(make())
        assert not stale.exists()
