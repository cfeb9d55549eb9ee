"""state_dir: a restarted mock still knows its tasks, their timeline, ids and videos."""

from __future__ import annotations

import hashlib
import io
import time
from pathlib import Path
from typing import Any

import av
import httpx

from mock_server import ManualClock, MockConfig
from mock_server.persistence import JOURNAL
from mock_server.server import MockServers

KEY = "sk-canary-4f1b2c"
AUTH = {"Authorization": f"Bearer {KEY}"}
BODY = {
    "model": "S2V-01",
    "prompt": "rehearsal",
    "subject_reference": [{"type": "character", "image": ["data:image/png;base64,AAAA"]}],
}


def client(mock: MockServers) -> httpx.Client:
    return httpx.Client(base_url=mock.url, headers=AUTH, trust_env=False, timeout=10)


def status(c: httpx.Client, task_id: str) -> dict[str, Any]:
    body: dict[str, Any] = c.get("/v1/query/video_generation", params={"task_id": task_id}).json()
    return body


def test_a_restarted_mock_keeps_tasks_timeline_ids_and_videos(tmp_path):
    clock = ManualClock()
    config = MockConfig(generation_seconds=6, state_dir=str(tmp_path / "state"))
    with MockServers(config, clock=clock) as first, client(first) as c:
        task_id = c.post("/v1/video_generation", json=BODY).json()["task_id"]
        clock.advance(5)
        assert status(c, task_id)["status"] == "Processing"
    with MockServers(config, clock=clock) as second, client(second) as c:
        assert status(c, task_id)["status"] == "Processing"  # the same task, 5 s into 6
        clock.advance(1.5)
        done = status(c, task_id)
        assert done["status"] == "Success"
        file = c.get("/v1/files/retrieve", params={"file_id": done["file_id"]}).json()["file"]
        video = httpx.get(file["download_url"], trust_env=False).content
        later = c.post("/v1/video_generation", json=BODY).json()["task_id"]
        (task, _) = sorted(c.get("/_mock/tasks").json()["tasks"], key=lambda t: t["seq"])
    with av.open(io.BytesIO(video), mode="r") as container:
        assert len(list(container.decode(video=0))) == 60
    assert int(later) > int(task_id)
    assert task["request"]["subject_reference"][0]["image"] == ["data:image/png;base64,AAAA"]
    # a third life: the same video, byte for byte
    with MockServers(config, clock=clock) as third, client(third) as c:
        file = c.get("/v1/files/retrieve", params={"file_id": done["file_id"]}).json()["file"]
        again = httpx.get(file["download_url"], trust_env=False).content
    assert hashlib.sha256(again).digest() == hashlib.sha256(video).digest()
    for path in (tmp_path / "state").rglob("*"):
        if path.is_file():
            assert KEY not in path.read_text(errors="replace")


def test_other_keys_still_cannot_see_restored_tasks(tmp_path):
    config = MockConfig(generation_seconds=0, state_dir=str(tmp_path))
    with MockServers(config) as first, client(first) as c:
        task_id = c.post("/v1/video_generation", json=BODY).json()["task_id"]
    with MockServers(config) as second, client(second) as c:
        assert status(c, task_id)["status"] == "Success"
        other = c.get(
            "/v1/query/video_generation",
            params={"task_id": task_id},
            headers={"Authorization": "Bearer sk-someone-else"},
        ).json()
    assert other["base_resp"]["status_code"] == 2013


def test_reset_is_remembered_and_ids_still_grow(tmp_path):
    config = MockConfig(generation_seconds=0, state_dir=str(tmp_path))
    with MockServers(config) as first, client(first) as c:
        old = c.post("/v1/video_generation", json=BODY).json()["task_id"]
        c.post("/_mock/reset").raise_for_status()
    with MockServers(config) as second, client(second) as c:
        assert c.get("/_mock/tasks").json()["tasks"] == []
        assert status(c, old)["base_resp"]["status_code"] == 2013
        new = c.post("/v1/video_generation", json=BODY).json()["task_id"]
    assert int(new) > int(old)


def test_a_torn_last_line_is_ignored(tmp_path):
    config = MockConfig(generation_seconds=0, state_dir=str(tmp_path))
    with MockServers(config) as first, client(first) as c:
        task_id = c.post("/v1/video_generation", json=BODY).json()["task_id"]
    journal: Path = tmp_path / JOURNAL
    with journal.open("ab") as out:
        out.write(b'{"kind": "task", "task_id": "9')  # killed mid-write
    with MockServers(config) as second, client(second) as c:
        assert status(c, task_id)["status"] == "Success"


def test_without_state_dir_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with MockServers(MockConfig(generation_seconds=0)) as mock, client(mock) as c:
        c.post("/v1/video_generation", json=BODY).raise_for_status()
    assert list(tmp_path.iterdir()) == []


def test_updates_still_due_are_sent_after_a_restart(tmp_path, serve_app):
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    received: list[dict[str, Any]] = []

    async def hook(request: Request) -> Response:
        body = await request.json()
        received.append(body)
        return JSONResponse({"challenge": body.get("challenge")})

    url = serve_app(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) + "/hook"
    clock = ManualClock()
    config = MockConfig(generation_seconds=10, state_dir=str(tmp_path))
    with MockServers(config, clock=clock) as first, client(first) as c:
        task_id = c.post("/v1/video_generation", json={**BODY, "callback_url": url}).json()[
            "task_id"
        ]
    assert [set(b) for b in received] == [{"challenge"}]  # checked during the create
    with MockServers(config, clock=clock) as second, client(second) as c:
        clock.advance(10)
        deadline = time.monotonic() + 10
        while len(received) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert [(b.get("task_id"), b.get("status")) for b in received[1:]] == [
        (task_id, "processing"),
        (task_id, "success"),
    ]


def test_one_mock_at_a_time_owns_a_state_folder(tmp_path):
    import pytest

    from mmgen.errors import UsageError

    config = MockConfig(state_dir=str(tmp_path))
    busy = pytest.raises(UsageError, match="another mock is using the state folder")
    with MockServers(config), busy:
        MockServers(config)
    with MockServers(config):  # released when the first one stopped
        pass
