"""`mmgen mock --record` / `--replay`: record real traffic once through a proxy, replay it offline.

The bundled mock plays the real API (the upstream); the recorder and the replay are served with
:class:`mmgen.serving.ServerThread`, and ``mmgen run`` goes through them in-process (CliRunner).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from mmgen.cli import main
from mmgen.errors import UsageError
from mmgen.serving import ServerThread
from mock_server import MockConfig, create_app
from mock_server.recording import create_recorder_app, create_replay_app, load_recording
from mock_server.recording.format import folder_of
from tests.fakes import write_jobs

CANARY = "sk-canary-7f3a9c1e5b2d4068"
FAST = ["--rpm", "0", "--wait", "auto", "--poll-interval", "0.2", "--timeout", "60"]


def run(args: list[str], key: str = CANARY) -> Any:
    result = CliRunner().invoke(main, args, env={"MINIMAX_API_KEY": key, "MINIMAX_BASE_URL": None})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def outcomes(out: Path) -> dict[str, dict[str, Any]]:
    result = run(["status", "--out", str(out), "--format", "json"])
    assert result.exit_code == 0, result.output
    return {r["job"]: r for r in json.loads(result.stdout)}


def events(recording: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in recording.read_text().splitlines()]


def wait_for_downloads(recording: Path, count: int) -> list[dict[str, Any]]:
    for _ in range(400):
        downloads = [e for e in events(recording) if e["kind"] == "download"]
        if len(downloads) >= count:
            return downloads
        threading.Event().wait(0.05)
    raise AssertionError(f"fewer than {count} downloads recorded")


def every_file(recording: Path) -> list[Path]:
    return [recording, *(p for p in folder_of(recording).rglob("*") if p.is_file())]


def test_record_then_replay_offline_gives_identical_videos(tmp_path: Path) -> None:
    spec = write_jobs(tmp_path / "specs", {"a": "A cat.", "b": "A dog.", "c": "A cow."})
    recording = tmp_path / "rec" / "traffic.jsonl"
    upstream_app = create_app(MockConfig(generation_seconds=0.3))
    with ServerThread(upstream_app) as upstream:
        with ServerThread(create_recorder_app(recording, upstream.url)) as recorder:
            first = run(
                ["run", str(spec), "--base-url", recorder.url, "--out", str(tmp_path / "o1"), *FAST]
            )
            assert first.exit_code == 0, first.output
            # written as it happens, not when the recorder stops
            assert len(wait_for_downloads(recording, 3)) == 3
        stats = httpx.get(f"{upstream.url}/_mock/stats", trust_env=False).json()
    lines = events(recording)
    recorded = outcomes(tmp_path / "o1")
    assert {r["state"] for r in recorded.values()} == {"success"}
    # the callbacks went upstream -> recorder -> the run's listener, and were recorded
    assert stats["challenges_ok"] == 3
    assert sum(e["kind"] == "callback" and not e["challenge"] for e in lines) >= 3
    kinds = [e["kind"] for e in lines]
    assert kinds[0] == "recording" and {"exchange", "callback", "download"} <= set(kinds)
    assert sum(1 for e in lines if e["kind"] == "callback" and e["challenge"]) == 3
    challenges = [e for e in lines if e["kind"] == "callback" and e["challenge"]]
    assert all(e["receiver"]["body"] == e["payload"] for e in challenges)  # echoed
    # (a push may come after the run's listener closed: its receiver outcome is an error)
    videos = {e["sha256"] for e in lines if e["kind"] == "download" and e["video"]}
    assert videos == {r["sha256"] for r in recorded.values()}
    # the key appears nowhere: not in the recording, not in a video, not in a file name
    for path in every_file(recording):
        assert CANARY.encode() not in path.read_bytes(), path
        assert CANARY not in str(path)
    exchanges = [e for e in lines if e["kind"] == "exchange"]
    assert all(e["request"]["headers"]["authorization"] == "REDACTED" for e in exchanges)

    # the upstream is gone: the replay serves the recording alone, with a fresh out dir
    with ServerThread(create_replay_app(recording)) as replay:
        second = run(
            ["run", str(spec), "--base-url", replay.url, "--out", str(tmp_path / "o2"), *FAST]
        )
        assert second.exit_code == 0, second.output
        journal = httpx.get(f"{replay.url}/_replay/journal", trust_env=False).json()
        replayed = outcomes(tmp_path / "o2")
        assert {r["state"] for r in replayed.values()} == {"success"}
        for job, record in recorded.items():
            assert replayed[job]["sha256"] == record["sha256"]
            video = tmp_path / "o2" / replayed[job]["video"]
            assert hashlib.sha256(video.read_bytes()).hexdigest() == record["sha256"]
        assert journal["unmatched"] == 0
        entries = journal["entries"]
        assert sum(e.get("challenge") == "ok" for e in entries) == 3  # synchronous, during create
        # every recorded push is replayed in the end (to a listener that may be gone by then)
        pushes = sum(1 for e in lines if e["kind"] == "callback" and not e["challenge"])
        for _ in range(400):
            if sum(e["kind"] == "callback" for e in entries) == pushes:
                break
            threading.Event().wait(0.05)
            entries = httpx.get(f"{replay.url}/_replay/journal", trust_env=False).json()["entries"]
        assert sum(e["kind"] == "callback" for e in entries) == pushes >= 6

        # a request that is not in the recording: a clear error, listed in the journal
        answer = httpx.post(
            f"{replay.url}/v1/video_generation",
            json={"model": "S2V-01", "prompt": "A horse.", "subject_reference": []},
            headers={"Authorization": "Bearer x"},
            trust_env=False,
        )
        assert answer.status_code == 404
        message = answer.json()["base_resp"]["status_msg"]
        assert answer.json()["base_resp"]["status_code"] == 2013
        assert "POST /v1/video_generation" in message and "'A horse.'" in message
        lost = httpx.get(f"{replay.url}/v1/query/video_generation?task_id=999", trust_env=False)
        assert lost.status_code == 404 and "task_id=999" in lost.json()["base_resp"]["status_msg"]
        journal = httpx.get(f"{replay.url}/_replay/journal", trust_env=False).json()
        assert journal["unmatched"] == 2
        assert [e["path"] for e in journal["entries"] if e.get("matched") is False] == [
            "/v1/video_generation",
            "/v1/query/video_generation",
        ]


OK = {"status_code": 0, "status_msg": "success"}


class Receiver:
    """A callback receiver on loopback: echoes challenges (or a wrong value), keeps every POST."""

    def __init__(self, echo: bool = True) -> None:
        self.echo = echo
        self.received: list[dict[str, Any]] = []
        self.got = threading.Condition()

        async def hook(request: Request) -> JSONResponse:
            payload = await request.json()
            with self.got:
                self.received.append(payload)
                self.got.notify_all()
            if "challenge" in payload:
                return JSONResponse({"challenge": payload["challenge"] if self.echo else "nope"})
            return JSONResponse({"status": "ok"})

        self.server = ServerThread(Starlette(routes=[Route("/hook", hook, methods=["POST"])]))
        self.url = f"{self.server.url}/hook"

    def wait_for(self, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        with self.got:
            assert self.got.wait_for(lambda: len(self.received) >= count, timeout), self.received
            return list(self.received)

    def __enter__(self) -> Receiver:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()


def sync_challenge_upstream() -> Starlette:
    """An API that challenges the callback_url during the create, as the real one does."""
    created: list[str] = []

    async def create(request: Request) -> JSONResponse:
        body = await request.json()
        if body.get("callback_url"):
            async with httpx.AsyncClient(trust_env=False) as http:
                echo = await http.post(body["callback_url"], json={"challenge": "c-123"}, timeout=3)
            if echo.json().get("challenge") != "c-123":
                fail = {
                    "status_code": 2013,
                    "status_msg": "invalid params, fail to check callback url",
                }
                return JSONResponse({"task_id": "", "base_resp": fail})
        created.append(f"T{len(created) + 1}")
        return JSONResponse({"task_id": created[-1], "base_resp": OK})

    return Starlette(routes=[Route("/v1/video_generation", create, methods=["POST"])])


def test_a_challenge_sent_during_the_create_is_forwarded_recorded_and_replayed(
    tmp_path: Path,
) -> None:
    recording = tmp_path / "sync.jsonl"
    body = {"model": "S2V-01", "prompt": "A cat.", "subject_reference": []}
    auth = {"Authorization": f"Bearer {CANARY}"}
    upstream = ServerThread(sync_challenge_upstream())
    with (
        Receiver() as receiver,
        upstream,
        ServerThread(create_recorder_app(recording, upstream.url)) as recorder,
    ):
        for _ in range(2):
            answer = httpx.post(
                f"{recorder.url}/v1/video_generation",
                json={**body, "callback_url": receiver.url},
                headers=auth,
                trust_env=False,
            )
            assert answer.json()["base_resp"] == OK
        assert [r["challenge"] for r in receiver.received] == ["c-123", "c-123"]
    lines = events(recording)
    assert [(e["kind"], e.get("task_id")) for e in lines[1:]] == [
        ("callback", None),
        ("exchange", "T1"),
        ("callback", None),
        ("exchange", "T2"),
    ]
    assert lines[1]["token"] == lines[2]["callback"]["token"] != lines[4]["callback"]["token"]

    with ServerThread(create_replay_app(recording)) as replay:
        # a receiver that echoes the wrong value costs the create, and nothing is created
        with Receiver(echo=False) as wrong:
            refused = httpx.post(
                f"{replay.url}/v1/video_generation",
                json={**body, "callback_url": wrong.url},
                trust_env=False,
            ).json()
        assert refused["base_resp"]["status_code"] == 2013
        assert "fail to check callback url" in refused["base_resp"]["status_msg"]
        with Receiver() as good:
            answer = httpx.post(
                f"{replay.url}/v1/video_generation",
                json={**body, "callback_url": good.url},
                trust_env=False,
            ).json()
            # the challenge reached the receiver before the create answered
            assert good.received == [{"challenge": "c-123"}]
        assert answer["task_id"] == "T1"  # the refused create did not use up T1


def recording_lines(key_of: Any) -> list[dict[str, Any]]:
    """A small hand-written recording: create (challenge, one push), three queries."""
    create = json.dumps({"model": "S2V-01", "prompt": "p"}).encode()
    query = [("task_id", "T1")]

    def exchange(seq: int, at: float, method: str, path: str, q: Any, raw: bytes, body: Any):
        return {
            "kind": "exchange",
            "seq": seq,
            "at": at,
            "elapsed_ms": 10.0,
            "request": {
                "method": method,
                "path": path,
                "query": q,
                "key": key_of(method, path, q, raw),
            },
            "response": {
                "status": 200,
                "headers": {"content-type": "application/json"},
                "body": body,
            },
        }

    def status(value: str) -> dict[str, Any]:
        return {"task_id": "T1", "status": value, "base_resp": OK}

    path = "/v1/query/video_generation"
    return [
        {"kind": "recording", "format": "mmgen-recording", "version": 1, "upstream": "x"},
        {
            **exchange(
                1,
                1.0,
                "POST",
                "/v1/video_generation",
                [],
                create,
                {"task_id": "T1", "base_resp": OK},
            ),
            "callback": {"token": "t1"},
            "task_id": "T1",
        },
        {
            "kind": "callback",
            "seq": 2,
            "at": 1.005,
            "token": "t1",
            "challenge": True,
            "payload": {"challenge": "abc"},
        },
        exchange(3, 2.0, "GET", path, query, b"", status("Processing")),
        exchange(4, 3.0, "GET", path, query, b"", status("Processing")),
        {
            "kind": "callback",
            "seq": 5,
            "at": 3.5,
            "token": "t1",
            "challenge": False,
            "task_id": "T1",
            "payload": {**status("success"), "file_id": "F1"},
        },
        exchange(6, 4.0, "GET", path, query, b"", {**status("Success"), "file_id": "F1"}),
    ]


def write_recording(path: Path, lines: list[dict[str, Any]], tail: str = "") -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines) + tail)
    return path


def test_replay_serves_repeats_in_order_then_the_last_and_never_goes_back(tmp_path: Path) -> None:
    from mock_server.recording.format import request_key

    recording = write_recording(tmp_path / "hand.jsonl", recording_lines(request_key))
    create = {"model": "S2V-01", "prompt": "p"}
    query = "/v1/query/video_generation?task_id=T1"
    with (
        ServerThread(create_replay_app(recording)) as replay,
        httpx.Client(base_url=replay.url, trust_env=False) as http,
    ):
        assert http.post("/v1/video_generation", json=create).json()["task_id"] == "T1"
        statuses = [http.get(query).json()["status"] for _ in range(4)]
        assert statuses == ["Processing", "Processing", "Success", "Success"]
        http.post("/_replay/reset").raise_for_status()
        assert http.get(query).json()["status"] == "Processing"  # from the start again

    with (
        ServerThread(create_replay_app(recording, max_callback_gap=0.01)) as replay,
        httpx.Client(base_url=replay.url, trust_env=False) as http,
        Receiver() as receiver,
    ):
        created = http.post("/v1/video_generation", json={**create, "callback_url": receiver.url})
        assert created.json()["task_id"] == "T1"
        assert receiver.received == [{"challenge": "abc"}]  # before the create answered
        pushed = receiver.wait_for(2)[1]
        assert pushed["status"] == "success" and pushed["file_id"] == "F1"
        # the push was replayed: the answers recorded before it are stale, Success comes first
        assert http.get(query).json()["status"] == "Success"


def test_a_killed_recorder_leaves_a_usable_recording(tmp_path: Path) -> None:
    from mock_server.recording.format import request_key

    lines = recording_lines(request_key)
    cut = write_recording(tmp_path / "cut.jsonl", lines, tail='{"kind":"exchange","seq":7,"at')
    loaded = load_recording(cut)
    assert sum(len(v) for v in loaded.exchanges.values()) == 4
    assert loaded.warnings == [f"{cut}:8: skipped a cut-short last line"]
    with ServerThread(create_replay_app(cut)) as replay:
        journal = httpx.get(f"{replay.url}/_replay/journal", trust_env=False).json()
        assert journal["entries"][0]["message"] == loaded.warnings[0]

    broken = write_recording(tmp_path / "broken.jsonl", lines[:2], tail="not json\n")
    broken.write_text(broken.read_text() + json.dumps(lines[2]) + "\n")
    with pytest.raises(UsageError, match=r"broken\.jsonl:3: not a JSON line"):
        load_recording(broken)
    missing = {"kind": "download", "seq": 9, "at": 5.0, "id": "1", "file_id": "F1", "status": 200,
               "video": "videos/" + "0" * 64 + ".mp4", "complete": True}  # fmt: skip
    lost = write_recording(tmp_path / "lost.jsonl", [*lines, missing])
    with pytest.raises(UsageError, match="is missing"):
        load_recording(lost)
    with pytest.raises(UsageError, match="already exists"):
        create_recorder_app(lost, "http://127.0.0.1:9")


def test_replay_challenges_a_callback_url_even_when_the_recording_has_no_callbacks(
    tmp_path: Path,
) -> None:
    from mock_server.recording.format import request_key

    lines = recording_lines(request_key)
    del lines[1]["callback"]  # recorded with --wait poll: no callback_url, no callbacks
    recording = write_recording(tmp_path / "poll.jsonl", [lines[0], lines[1], *lines[3:5]])
    with ServerThread(create_replay_app(recording)) as replay, Receiver() as receiver:
        created = httpx.post(
            f"{replay.url}/v1/video_generation",
            json={"model": "S2V-01", "prompt": "p", "callback_url": receiver.url},
            trust_env=False,
        )
        assert created.json()["task_id"] == "T1"
        assert len(receiver.received) == 1 and receiver.received[0]["challenge"]


def echo_upstream() -> Starlette:
    """An API that echoes back whatever credentials it was sent (body, query, URL)."""

    async def echo(request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "authorization": request.headers.get("authorization"),
                "url": str(request.url),
                "body": (await request.body()).decode(),
                "base_resp": OK,
            },
            headers={"X-Echo-Key": request.headers.get("authorization", "")},
        )

    return Starlette(routes=[Route("/{path:path}", echo, methods=["GET", "POST"])])


def test_the_key_is_redacted_wherever_it_appears(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    recording = tmp_path / "echo.jsonl"
    env_key = "sk-env+key/with=odd&chars"  # known from the start (MINIMAX_API_KEY)
    with (
        ServerThread(echo_upstream()) as upstream,
        ServerThread(create_recorder_app(recording, upstream.url, secrets_=[env_key])) as recorder,
        httpx.Client(base_url=recorder.url, trust_env=False) as http,
    ):
        answer = http.post(
            "/v1/video_generation",
            params={"api_key": CANARY, "other": env_key},
            json={"prompt": f"my key is {CANARY} and {env_key}", CANARY: 1},
            headers={"Authorization": f"Bearer {CANARY}", "X-Api-Key": env_key},
        )
        assert CANARY in answer.text  # the client gets the upstream's answer untouched
        hook = {"callback_url": "http://127.0.0.1:1/hook"}
        echoed = http.post("/v1/video_generation", json=hook).json()["body"]
        assert json.loads(echoed)["callback_url"].startswith(
            f"{recorder.url}/_recording/callbacks/"
        )
        assert http.get("/v1/query/video_generation", headers={"Cookie": "s=1"}).status_code == 200
        # a recorder whose upstream is itself answers 508 instead of looping
        assert http.get("/x", headers={"x-mmgen-recorder": "1"}).status_code == 508
        # uvicorn's access log prints query strings: the secrets are scrubbed there too
        access = logging.getLogger("uvicorn.access")
        access.addHandler(caplog.handler)  # uvicorn's loggers do not propagate
        try:
            with caplog.at_level(logging.INFO, logger="uvicorn.access"):
                access.info('%s - "%s %s" %d', "127.0.0.1", "GET", f"/x?k={CANARY}", 200)
        finally:
            access.removeHandler(caplog.handler)
        assert caplog.records and CANARY not in caplog.text and "k=REDACTED" in caplog.text
    text = recording.read_text()
    for secret in (CANARY, env_key, "sk-env%2Bkey", "sk-env+key", "s=1"):
        assert secret not in text, secret
    assert text.count("REDACTED") >= 6
    tunnel = "https://tunnel.example.org/abc"
    with (
        ServerThread(echo_upstream()) as upstream,
        ServerThread(
            create_recorder_app(tmp_path / "tunnel.jsonl", upstream.url, public_url=tunnel)
        ) as recorder,
    ):
        answer = httpx.post(
            f"{recorder.url}/v1/video_generation",
            json={"callback_url": "http://127.0.0.1:1/hook"},
            trust_env=False,
        )
        callback_url = json.loads(answer.json()["body"])["callback_url"]
        assert callback_url.startswith(f"{tunnel}/_recording/callbacks/")
    exchange = events(recording)[1]
    assert exchange["request"]["headers"]["authorization"] == "REDACTED"
    assert exchange["request"]["body"] == {
        "prompt": "my key is REDACTED and REDACTED",
        "REDACTED": 1,
    }
