"""`mmgen mock --record` / `--replay` from the command line: usage errors, downloads passed
through (ranges, broken-off bodies), and a recorder process killed with SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from mmgen.serving import ServerThread
from mock_server import MockConfig, create_app
from mock_server.recording import create_recorder_app, load_recording
from mock_server.recording.format import folder_of
from tests.test_mock_record import CANARY, run, wait_for_downloads


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--record", "{tmp}/r.jsonl", "--replay", "{rec}"], "cannot be combined"),
        (["--upstream", "http://127.0.0.1:9"], "--upstream only makes sense with --record"),
        (["--public-url", "http://127.0.0.1:9"], "--public-url only makes sense with --record"),
        (["--record", "{tmp}/r.jsonl"], "--record needs the API to proxy to"),
        (["--record", "{tmp}/r.jsonl", "--upstream", "ftp://x"], "absolute http(s) URL"),
        (
            ["--record", "{tmp}/r.jsonl", "--upstream", "http://x", "--seed", "3"],
            "configure the bundled mock",
        ),
        (["--replay", "{rec}", "--generation-seconds", "1"], "configure the bundled mock"),
        (["--record", "{rec}", "--upstream", "http://127.0.0.1:9"], "already exists"),
        (["--replay", "{tmp}/specs.yaml"], "not an mmgen recording"),
    ],
)
def test_mock_mode_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    rec = tmp_path / "rec.jsonl"
    rec.write_text(
        json.dumps({"kind": "recording", "format": "mmgen-recording", "version": 1}) + "\n"
    )
    (tmp_path / "specs.yaml").write_text("jobs: []\n")
    argv = ["mock", *(a.format(tmp=tmp_path, rec=rec) for a in args)]
    result = run(argv)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def video_url(http: httpx.Client) -> str:
    """Create a task on a mock with generation_seconds=0 (through ``http``); its download URL."""
    image = {"type": "character", "image": ["https://example.org/face.jpg"]}
    body = {"model": "S2V-01", "prompt": "A cat.", "subject_reference": [image]}
    task = http.post("/v1/video_generation", json=body).json()["task_id"]
    status: dict[str, Any] = {}
    for _ in range(400):  # done at the first or second query
        status = http.get("/v1/query/video_generation", params={"task_id": task}).json()
        if status.get("status") == "Success":
            break
        threading.Event().wait(0.05)
    info = http.get("/v1/files/retrieve", params={"file_id": status["file_id"]}).json()
    url: str = info["file"]["download_url"]
    return url


def test_ranges_and_broken_off_downloads_pass_through_but_are_not_kept(tmp_path: Path) -> None:
    from mock_server.config import DownloadFaults, Faults

    slow = Faults(downloads=DownloadFaults(slow_probability=1.0, bytes_per_second=32768.0))
    recording = tmp_path / "dl.jsonl"
    auth = {"Authorization": f"Bearer {CANARY}"}
    upstream = ServerThread(create_app(MockConfig(generation_seconds=0.0, faults=slow)))
    with upstream, ServerThread(create_recorder_app(recording, upstream.url)) as recorder:
        with httpx.Client(base_url=recorder.url, trust_env=False, headers=auth) as http:
            url = video_url(http)
            assert url.startswith(f"{recorder.url}/_recording/downloads/")
            part = http.get(url, headers={"Range": "bytes=0-99"})
            assert part.status_code == 206 and len(part.content) == 100
            with http.stream("GET", url) as video:  # the client gives up after one chunk
                assert video.status_code == 200
                next(video.iter_raw())
        downloads = wait_for_downloads(recording, 2)
    assert [(d["status"], d["complete"], d["video"]) for d in downloads] == [
        (206, True, None),
        (200, False, None),
    ]
    assert not list((folder_of(recording) / "videos").iterdir())  # no partial file left


def test_a_download_the_upstream_breaks_off_breaks_off_for_the_client_and_is_not_kept(
    tmp_path: Path,
) -> None:
    from mock_server.config import DownloadFaults, Faults

    cut = Faults(downloads=DownloadFaults(truncate_probability=1.0, truncate_mode="abort"))
    recording = tmp_path / "cut.jsonl"
    upstream = ServerThread(create_app(MockConfig(generation_seconds=0.0, faults=cut)))
    with upstream, ServerThread(create_recorder_app(recording, upstream.url)) as recorder:
        auth = {"Authorization": f"Bearer {CANARY}"}
        with httpx.Client(base_url=recorder.url, trust_env=False, headers=auth) as http:
            with pytest.raises(httpx.RemoteProtocolError):  # not a silently short video
                http.get(video_url(http))
            downloads = wait_for_downloads(recording, 1)
    assert [(d["status"], d["complete"], d["video"]) for d in downloads] == [(200, False, None)]
    assert not list((folder_of(recording) / "videos").iterdir())


def serve_cli(args: list[str]) -> tuple[subprocess.Popen[str], str]:
    """``mmgen mock ARGS --port 0`` in a child process; returns it and the URL it printed."""
    env = {**os.environ, "MINIMAX_API_KEY": CANARY, "PYTHONUNBUFFERED": "1"}
    env.pop("MINIMAX_BASE_URL", None)
    child = subprocess.Popen(
        [sys.executable, "-m", "mmgen", "-q", "mock", *args, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert child.stdout is not None
    for line in child.stdout:  # ends when the child exits (a start-up failure)
        if "export MINIMAX_BASE_URL=" in line:
            return child, line.split("=", 1)[1].strip()
    child.wait()
    raise AssertionError(f"mmgen mock did not start (exit {child.returncode})")


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_a_recorder_killed_with_sigkill_keeps_what_it_recorded(tmp_path: Path) -> None:
    recording = tmp_path / "killed.jsonl"
    with ServerThread(create_app(MockConfig(generation_seconds=0.0))) as upstream:
        child, url = serve_cli(["--record", str(recording), "--upstream", upstream.url])
        try:
            auth = {"Authorization": f"Bearer {CANARY}"}
            with httpx.Client(base_url=url, trust_env=False, headers=auth) as http:
                download = http.get(video_url(http))
                assert download.status_code == 200
                wait_for_downloads(recording, 1)
        finally:
            child.kill()  # SIGKILL: no shutdown, no flush, no lifespan
            child.wait()
            assert child.stdout is not None
            child.stdout.close()
    loaded = load_recording(recording)
    assert loaded.warnings == []
    assert sum(len(v) for v in loaded.exchanges.values()) >= 3  # create, query(s), retrieve
    (video,) = [d for ds in loaded.downloads.values() for d in ds]
    assert loaded.video_path(video).read_bytes() == download.content
    assert CANARY not in recording.read_text()

    # and the CLI serves it back until Ctrl-C
    child, url = serve_cli(["--replay", str(recording)])
    try:
        created = httpx.post(
            f"{url}/v1/video_generation",
            json={
                "model": "S2V-01",
                "prompt": "A cat.",
                "subject_reference": [
                    {"type": "character", "image": ["https://example.org/face.jpg"]}
                ],
            },
            trust_env=False,
        )
        task_ids = {e["task_id"] for es in loaded.exchanges.values() for e in es if "task_id" in e}
        assert created.json()["task_id"] in task_ids
    finally:
        child.send_signal(signal.SIGINT)
        assert child.wait(timeout=30) == 0
        assert child.stdout is not None
        child.stdout.close()
