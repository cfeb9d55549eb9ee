"""Faults a run meets, end to end against the mock on loopback: creates whose answer was lost
after the task was made (adopted from the task's pushes, never paid twice), and an out dir
that cannot take what the run writes (one line, exit 1, what is recorded kept)."""

from __future__ import annotations

import errno
import json
import os
import resource
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from mmgen.cli import main
from mock_server import MockConfig
from mock_server.config import DropFaults, Faults, ServerErrorFaults
from tests.fakes import write_jobs

KEY = "sk-faults-test-key"
FAST = ["--poll-interval", "0.2", "--timeout", "60", "--rpm", "0"]
PROMPTS = {f"job{n}": f"A cat, take {n}." for n in range(12)}


def run(args: list[str]) -> Any:
    return CliRunner().invoke(main, args, env={"MINIMAX_API_KEY": KEY, "MINIMAX_BASE_URL": None})


def tasks_per_job(mock: Any) -> Counter[str]:
    return Counter(task["request"]["prompt"] for task in mock.tasks())


def records(out: Path) -> dict[str, dict[str, Any]]:
    result = run(["status", "--out", str(out), "--format", "json"])
    return {r["job"]: r for r in json.loads(result.stdout)}


AMBIGUOUS = {
    "500": Faults(server_errors=ServerErrorFaults(create=0.5, status=500, create_commits=True)),
    "502": Faults(server_errors=ServerErrorFaults(create=0.5, status=502, create_commits=True)),
    "503": Faults(server_errors=ServerErrorFaults(create=0.5, status=503, create_commits=True)),
    "504": Faults(server_errors=ServerErrorFaults(create=0.5, status=504, create_commits=True)),
    "reset": Faults(drops=DropFaults(create=0.5, create_commits=True)),
}


@pytest.mark.parametrize("answer", sorted(AMBIGUOUS))
def test_a_create_whose_answer_was_lost_adopts_its_task_and_never_pays_twice(
    start_mock: Any, tmp_path: Path, answer: str
) -> None:
    """The task was made but the answer was a gateway's 5xx page or a dropped connection: the
    task's pushes on the job's own callback path name it, the job adopts it (no second task,
    no job left unknown)."""
    mock = start_mock(MockConfig(generation_seconds=0.3, seed=5, faults=AMBIGUOUS[answer]))
    spec = write_jobs(tmp_path / "specs", PROMPTS)
    out = tmp_path / "out"
    result = run(["run", str(spec), "--base-url", mock.base_url, "--out", str(out), *FAST])
    assert sum(mock.stats()["faults"].values()) > 0  # some creates did get the bad answer
    assert max(tasks_per_job(mock).values()) == 1  # no (job, version) with two tasks
    assert result.exit_code == 0, result.output
    assert {r["state"] for r in records(out).values()} == {"success"}


@pytest.mark.parametrize("answer", ["503", "reset"])
def test_without_callbacks_a_lost_answer_leaves_the_job_unknown(
    start_mock: Any, tmp_path: Path, answer: str
) -> None:
    mock = start_mock(MockConfig(generation_seconds=0.3, seed=5, faults=AMBIGUOUS[answer]))
    spec = write_jobs(tmp_path / "specs", PROMPTS)
    out = tmp_path / "out"
    args = ["run", str(spec), "--base-url", mock.base_url, "--out", str(out), "--wait", "poll"]
    result = run([*args, *FAST])
    assert result.exit_code == 1
    states = Counter(r["state"] for r in records(out).values())
    assert states["unknown"] > 0 and states["unknown"] + states["success"] == len(PROMPTS)
    again = run([*args, *FAST])  # the next run pays for nothing
    assert again.exit_code == 1
    assert max(tasks_per_job(mock).values()) == 1


# --- the out dir cannot take it ----------------------------------------------------------------


def _file_size_limit(limit: int) -> Any:
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def run_limited(args: list[str], limit: int) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MINIMAX_API_KEY": KEY}
    env.pop("MINIMAX_BASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "mmgen", "-q", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_file_size_limit(limit),
    )


def assert_one_clear_line(stderr: str) -> None:
    assert "Traceback" not in stderr and "never retrieved" not in stderr, stderr
    assert "ExceptionGroup" not in stderr and "TaskGroup" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("mmgen: error:")]
    assert len(errors) == 1, stderr


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_FSIZE and SIGXFSZ as on Linux")
def test_an_out_dir_that_cannot_take_a_video_is_refused_before_anything_is_paid(
    start_mock: Any, tmp_path: Path
) -> None:
    mock = start_mock(MockConfig(generation_seconds=0.2))
    spec = write_jobs(tmp_path / "specs", PROMPTS)
    out = tmp_path / "out"
    args = ["run", str(spec), "--base-url", mock.base_url, "--out", str(out), *FAST]
    done = run_limited(args, 16 * 1024)
    assert done.returncode == 1, done.stderr
    assert_one_clear_line(done.stderr)
    assert "cannot take a video" in done.stderr and "nothing was submitted" in done.stderr
    assert mock.stats()["created"] == 0


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_FSIZE and SIGXFSZ as on Linux")
def test_a_write_failing_mid_run_ends_it_with_one_line_and_keeps_the_records(
    start_mock: Any, tmp_path: Path
) -> None:
    """Videos of 1 MiB under a 512 KiB file size limit: every download's write fails (EFBIG).
    One line, exit 1, no traceback; the task ids recorded stay recorded, and the next run
    (without the limit) finishes the work without paying again (a create cut off in flight is
    left unknown)."""
    config = MockConfig(generation_seconds=0.2)
    config.video.min_bytes = 1024 * 1024
    mock = start_mock(config)
    spec = write_jobs(tmp_path / "specs", PROMPTS)
    out = tmp_path / "out"
    args = ["run", str(spec), "--base-url", mock.base_url, "--out", str(out), *FAST]
    done = run_limited(args, 512 * 1024)
    assert done.returncode == 1, done.stderr
    assert_one_clear_line(done.stderr)
    assert "File too large" in done.stderr
    recorded = records(out)
    assert recorded and all(r["task_id"] for r in recorded.values() if r["state"] == "submitted")
    run(args)  # the next run, without the limit, finishes what it can without paying again
    states = Counter(r["state"] for r in records(out).values())
    assert states["success"] > 0 and states["success"] + states["unknown"] == len(PROMPTS)
    assert max(tasks_per_job(mock).values()) == 1


def test_a_task_id_that_cannot_be_recorded_is_named_in_the_error(
    start_mock: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mmgen.state.journal import RecordStore

    real_write = RecordStore.write

    async def disk_full_for_task_ids(self: RecordStore, record: Any) -> Any:
        if record.state == "submitted":
            raise OSError(errno.ENOSPC, "No space left on device")
        return await real_write(self, record)

    monkeypatch.setattr(RecordStore, "write", disk_full_for_task_ids)
    mock = start_mock(MockConfig(generation_seconds=0.2))
    spec = write_jobs(tmp_path / "specs", {"only": "A cat."})
    out = tmp_path / "out"
    result = run(["run", str(spec), "--base-url", mock.base_url, "--out", str(out), *FAST])
    assert result.exit_code == 1
    (task,) = mock.tasks()
    assert f"job only: MiniMax created task {task['task_id']} (billed)" in result.stderr
    assert "No space left on device" in result.stderr and "Traceback" not in result.output
