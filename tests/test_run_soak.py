"""Crash soak (issue 9): SIGKILL `mmgen run` at random instants under chaos; nothing is lost.

The CI size of ``bench/soak.py`` (which runs 500 jobs and 20 kills): 100 jobs, 5 kills, the
mock in its own process with every fault of the chaos profile on. Whatever instants the kills
land at, each job must end ``success`` with the video the mock serves, and no job's task may
be created twice except when an ``unknown`` job was explicitly resubmitted.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"

JOBS = 100
KILLS = 5


@pytest.fixture
def soak(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    monkeypatch.syspath_prepend(str(BENCH))
    module = importlib.import_module("soak")
    yield module
    sys.modules.pop("soak", None)
    sys.modules.pop("_harness", None)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_sigkilled_runs_lose_nothing_and_pay_nothing_twice(
    soak: ModuleType, tmp_path: Path
) -> None:
    lines: list[str] = []
    result = soak.run_soak(
        tmp_path,
        jobs=JOBS,
        kills=KILLS,
        seed=9,
        concurrency=25,
        generation_seconds=1.0,
        final_cap=240,
        log=lines.append,
    )
    report = "\n".join([*lines, str(result.to_json())])
    # the soak did what it claims: runs were killed mid-flight, faults fired
    assert result.kills_landed >= 1, report
    assert result.faults_fired > 0, report
    # the verdict
    assert result.duplicates == [], report
    assert result.lost == [], report
    assert result.mismatched == [], report
    assert result.states == {"success": JOBS}, report
    assert result.tasks_created <= JOBS + sum(result.resubmitted.values()), report


def test_soak_check_catches_a_duplicate_a_loss_and_a_wrong_sha(
    soak: ModuleType, tmp_path: Path
) -> None:
    """The verdict itself can fail: a prompt created twice, a job not done, a bad video."""
    names, prompts = ["a", "b", "c"], ["pa", "pb", "pc"]
    (tmp_path / "a.mp4").write_bytes(b"video a")
    tasks = [
        {"task_id": "1", "file_id": "11", "request": {"prompt": "pa"}},
        {"task_id": "2", "file_id": "12", "request": {"prompt": "pa"}},  # a, created twice
        {"task_id": "3", "file_id": "13", "request": {"prompt": "pb"}},
        {"task_id": "4", "file_id": "14", "request": {"prompt": "pc"}},
    ]
    records = {
        "a": {
            "job": "a",
            "state": "success",
            "task_id": "1",
            "file_id": "11",
            "video": "a.mp4",
            "sha256": "0" * 64,  # not the file's
            "bytes": 7,
        },
        "b": {"job": "b", "state": "unknown", "error": None},
        # c: no record at all
    }
    result = soak.SoakResult(jobs=3)
    soak.check(result, records, tasks, names, prompts, tmp_path, "http://127.0.0.1:9")
    assert [d.split(":")[0] for d in result.duplicates] == ["a"]
    assert [lost.split(":")[0] for lost in result.lost] == ["b", "c"]
    assert [m.split(":")[0] for m in result.mismatched] == ["a"]
    assert not result.ok
    # an explicit resubmit of a is allowed one more task
    allowed = soak.SoakResult(jobs=3)
    allowed.resubmitted["a"] = 1
    soak.check(allowed, records, tasks, names, prompts, tmp_path, "http://127.0.0.1:9")
    assert allowed.duplicates == []


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_sigkilled_runs_on_a_bucket_lose_nothing_and_pay_nothing_twice(
    soak: ModuleType, tmp_path: Path, bucket: str
) -> None:
    """The same soak with the out dir in an S3 bucket (moto on loopback), smaller."""
    lines: list[str] = []
    jobs = 40
    result = soak.run_soak(
        tmp_path,
        jobs=jobs,
        kills=4,
        seed=9,
        concurrency=20,
        generation_seconds=1.0,
        final_cap=240,
        log=lines.append,
        store=bucket,
    )
    report = "\n".join([*lines, str(result.to_json())])
    assert result.kills_landed >= 1, report
    assert result.duplicates == [], report
    assert result.lost == [], report
    assert result.mismatched == [], report
    assert result.states == {"success": jobs}, report
    assert result.tasks_created <= jobs + sum(result.resubmitted.values()), report
