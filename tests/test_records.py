"""Outcome records: durability, torn tails, locking, compaction."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest

from mmgen.errors import StateError
from mmgen.state.journal import JOURNAL, RecordStore
from mmgen.state.records import Record, RecordError


def make(job: str = "a", spec_hash: str = "h1", **kw) -> Record:
    return Record(job=job, spec="specs/a.yaml", spec_hash=spec_hash, state="submitting", **kw)


def test_put_is_visible_to_a_fresh_reader(tmp_path: Path) -> None:
    store = RecordStore(tmp_path)
    with store.lock():
        record = store.put(make())
        store.put(record.evolve(state="submitted", task_id="123"))
    again = RecordStore(tmp_path)
    [only] = again.records()
    assert only.state == "submitted"
    assert only.task_id == "123"
    assert len((tmp_path / JOURNAL).read_text().splitlines()) == 2


def test_error_roundtrips_as_object(tmp_path: Path) -> None:
    store = RecordStore(tmp_path)
    with store.lock():
        store.put(make(error=RecordError(1026, "sensitive")).evolve(state="failed"))
    [record] = RecordStore(tmp_path).records()
    assert record.error == RecordError(1026, "sensitive")
    line = json.loads((tmp_path / JOURNAL).read_text())
    assert line["error"] == {"code": 1026, "message": "sensitive"}


def test_torn_last_line_is_dropped_and_cut_on_next_write(tmp_path: Path) -> None:
    store = RecordStore(tmp_path)
    with store.lock():
        store.put(make())
    with (tmp_path / JOURNAL).open("ab") as handle:
        handle.write(b'{"job": "b", "spec": "x", "spec_h')  # a crash mid-write
    reader = RecordStore(tmp_path)
    assert [r.job for r in reader.records()] == ["a"]
    with reader.lock():
        reader.put(make("c"))
    lines = (tmp_path / JOURNAL).read_text().splitlines()
    assert [json.loads(line)["job"] for line in lines] == ["a", "c"]


def test_corrupt_line_in_the_middle_is_an_error_not_silence(tmp_path: Path) -> None:
    good = json.dumps(make().to_json())
    (tmp_path / JOURNAL).write_text(f"{good}\nnot json\n{good}\n")
    with pytest.raises(StateError, match=r"records.jsonl:2: corrupt outcome record: Expecting"):
        RecordStore(tmp_path)


def test_put_without_lock_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StateError, match="no lock"):
        RecordStore(tmp_path).put(make())


def _hold_lock(out: str, ready, release) -> None:
    with RecordStore(Path(out)).lock():
        ready.set()
        release.wait(10)


def test_a_second_writer_shares_the_out_dir_and_leaves_its_upkeep_alone(tmp_path: Path) -> None:
    """Runners share a folder (claims keep them off each other's jobs): the second one may
    write, but is not ``alone``, so it never cuts or compacts the journal under the first."""
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(str(tmp_path), ready, release))
    holder.start()
    try:
        assert ready.wait(20)
        second = RecordStore(tmp_path)
        with second.lock():
            assert not second.alone
            second.put(make("second"))
    finally:
        release.set()
        holder.join(10)
    alone = RecordStore(tmp_path)
    with alone.lock():  # alone again once the holder is gone
        assert alone.alone
    assert alone.get("second", "h1") is not None


def _append_forever(out: str, ready) -> None:
    store = RecordStore(Path(out))
    with store.lock():
        record = store.put(make("k"))
        ready.set()
        n = 0
        while True:
            n += 1
            record = store.put(record.evolve(task_id=str(n)))


def test_sigkill_mid_writes_leaves_a_readable_journal(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    writer = ctx.Process(target=_append_forever, args=(str(tmp_path), ready))
    writer.start()
    assert ready.wait(20)
    time.sleep(0.3)
    assert writer.pid is not None
    os.kill(writer.pid, signal.SIGKILL)
    writer.join(10)
    store = RecordStore(tmp_path)
    [record] = store.records()
    assert int(record.task_id or 0) >= 1
    with store.lock():  # and it can be written again (the lock died with the process)
        store.put(record.evolve(state="submitted"))


def test_compaction_keeps_the_latest_of_each_record(tmp_path: Path) -> None:
    store = RecordStore(tmp_path)
    with store.lock():
        record = store.put(make("x"))
        for n in range(150):
            record = store.put(record.evolve(task_id=str(n)))
        store.put(make("y", "h2"))
    with RecordStore(tmp_path).lock() as reopened:  # reopening compacts a long journal
        assert len((tmp_path / JOURNAL).read_text().splitlines()) == 2
        assert reopened.get("x", "h1").task_id == "149"
        assert reopened.get("y", "h2") is not None


def _append_past_a_file_size_limit(out: str, results) -> None:
    """A disk that fills mid-append, for real: RLIMIT_FSIZE makes the write stop part-way."""
    import resource

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed
    store = RecordStore(Path(out))
    with store.lock():
        store.put(make("first"))
        size = (Path(out) / JOURNAL).stat().st_size
        _soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size + 40, hard))
        try:
            store.put(make("big", request={"prompt": "x" * 1000}))
        except OSError as err:
            results.put(f"refused: {err.strerror}")
        results.put((Path(out) / JOURNAL).stat().st_size == size)
        resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))  # space again
        store.put(make("after"))
    results.put("done")


def test_a_failed_partial_append_is_cut_back(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    writer = ctx.Process(target=_append_past_a_file_size_limit, args=(str(tmp_path), results))
    writer.start()
    writer.join(30)
    assert [results.get(timeout=5) for _ in range(3)] == ["refused: File too large", True, "done"]
    assert [r.job for r in RecordStore(tmp_path).records()] == ["after", "first"]
    lines = (tmp_path / JOURNAL).read_text().splitlines()
    assert [json.loads(line)["job"] for line in lines] == ["first", "after"]
