"""A runner killed at a bad moment (SIGKILL) or interrupted (Ctrl-C / SIGTERM) is resumed by the
next run: no task is created twice, every job finishes, every video is the one the mock served."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from mock_server import MockConfig
from mock_server.config import DownloadFaults, Faults

KEY = "sk-crash-test-key"
JOBS = 4


def write_specs(folder: Path) -> Path:
    folder.mkdir()
    lines = [
        "defaults:",
        "  model: S2V-01",
        "  subject_reference: [{type: character, image: [https://example.org/face.jpg]}]",
        "jobs:",
    ]
    for n in range(JOBS):
        lines += [f"  - name: job{n}", f"    prompt: Scene number {n}."]
    (folder / "jobs.yaml").write_text("\n".join(lines) + "\n")
    return folder


def start_run(specs: Path, out: Path, base_url: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINIMAX_")}
    env["MINIMAX_API_KEY"] = KEY
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mmgen",
            "run",
            str(specs),
            "--out",
            str(out),
            "--base-url",
            base_url,
            "--rpm",
            "0",
            "--poll-interval",
            "0.2",
            "--timeout",
            "60",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def journal(out: Path) -> list[dict[str, Any]]:
    try:
        text = (out / "records.jsonl").read_text()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines() if line.endswith("}")]


def wait_until(predicate: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition never met")
        time.sleep(0.02)


def latest(out: Path) -> dict[str, dict[str, Any]]:
    state: dict[str, dict[str, Any]] = {}
    for record in journal(out):
        state[record["job"]] = record
    return state


def check_finished(out: Path, mock: Any) -> None:
    records = latest(out)
    assert len(records) == JOBS
    assert mock.stats()["created"] == JOBS  # nothing was paid for twice
    assert len({r["task_id"] for r in records.values()}) == JOBS
    with httpx.Client(trust_env=False, timeout=10) as http:
        for record in records.values():
            assert record["state"] == "success", record
            local = hashlib.sha256((out / record["video"]).read_bytes()).hexdigest()
            assert local == record["sha256"]
            info = http.get(
                f"{mock.base_url}/v1/files/retrieve",
                params={"file_id": record["file_id"]},
                headers={"Authorization": f"Bearer {KEY}"},
            ).json()
            served = http.get(info["file"]["download_url"]).content
            assert hashlib.sha256(served).hexdigest() == local
    assert not list(out.glob("*.part")) and not list(out.glob(".*.part"))


def finish(specs: Path, out: Path, mock: Any) -> subprocess.CompletedProcess[bytes]:
    rerun = start_run(specs, out, mock.base_url)
    stdout, stderr = rerun.communicate(timeout=90)
    assert rerun.returncode == 0, (stdout + stderr).decode()
    return subprocess.CompletedProcess(rerun.args, 0, stdout, stderr)


@pytest.mark.parametrize("moment", ["all-submitted", "mid-download"])
def test_sigkill_then_rerun(start_mock: Any, tmp_path: Path, moment: str) -> None:
    # slow downloads (~1.5 s per video) so that "mid-download" is a wide window
    downloads = DownloadFaults(slow_probability=1.0, bytes_per_second=80_000)
    config = MockConfig(generation_seconds=1.5, seed=11, faults=Faults(downloads=downloads))
    mock = start_mock(config)
    specs, out = write_specs(tmp_path / "specs"), tmp_path / "out"

    runner = start_run(specs, out, mock.base_url)
    try:
        if moment == "all-submitted":
            wait_until(lambda: sum(r["state"] == "submitted" for r in latest(out).values()) == JOBS)
        else:
            wait_until(lambda: mock.stats().get("downloads", 0) >= 1)
            time.sleep(0.3)  # bytes are flowing into temp files
        os.kill(runner.pid, signal.SIGKILL)
    finally:
        runner.communicate(timeout=10)  # reaps it and closes the pipes
    assert runner.returncode == -signal.SIGKILL
    assert any(r["state"] != "success" for r in latest(out).values())

    done = finish(specs, out, mock)
    assert b"resume" in done.stdout
    check_finished(out, mock)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_exits_130_and_keeps_task_ids(start_mock: Any, tmp_path: Path, sig: int) -> None:
    mock = start_mock(MockConfig(generation_seconds=5, seed=5))
    specs, out = write_specs(tmp_path / "specs"), tmp_path / "out"
    runner = start_run(specs, out, mock.base_url)
    wait_until(lambda: sum(r["state"] == "submitted" for r in latest(out).values()) == JOBS)
    runner.send_signal(sig)
    stdout, stderr = runner.communicate(timeout=30)
    assert runner.returncode == 130, (stdout + stderr).decode()
    assert b"Traceback" not in stderr
    assert b"interrupted" in stderr
    assert {r["state"] for r in latest(out).values()} == {"submitted"}

    finish(specs, out, mock)
    check_finished(out, mock)
