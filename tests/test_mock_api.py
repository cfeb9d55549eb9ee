"""The mock speaks the documented API over real HTTP: plain httpx, no mmgen client code."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import time
from typing import Any

import av
import httpx
import pytest
from PIL import Image

from mock_server import MockConfig
from mock_server.config import VideoOptions

#: The body of the seed's curl example (docs/minimax-api.md), minus the unreachable callback.
SEED_BODY = {
    "model": "S2V-01",
    "prompt": "A girl runs toward the camera and winks with a smile.",
    "prompt_optimizer": True,
    "subject_reference": [{"type": "character", "image": ["https://example.org/face.jpg"]}],
}
AUTH = {"Authorization": "Bearer test-key"}


def client(base_url: str, **headers: str) -> httpx.Client:
    return httpx.Client(
        base_url=base_url, headers={**AUTH, **headers}, trust_env=False, verify=False, timeout=10
    )


def create(c: httpx.Client, body: dict[str, Any] | None = None) -> dict[str, Any]:
    response = c.post("/v1/video_generation", json=body or SEED_BODY)
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


def wait_terminal(
    c: httpx.Client, task_id: str, timeout: float = 10
) -> tuple[dict[str, Any], list[str]]:
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = c.get("/v1/query/video_generation", params={"task_id": task_id}).json()
        if not seen or seen[-1] != body["status"]:
            seen.append(body["status"])
        if body["status"] in ("Success", "Fail"):
            return body, seen
        time.sleep(0.01)
    raise AssertionError(f"task {task_id} never finished: {seen}")


def test_seed_request_end_to_end(mock_api):
    with client(mock_api.base_url) as c:
        created = c.post("/v1/video_generation", json=SEED_BODY)
        assert created.headers["Trace-Id"]
        body = created.json()
        assert body["base_resp"] == {"status_code": 0, "status_msg": "success"}
        task_id = body["task_id"]
        assert task_id.isdigit() and len(task_id) >= 15

        done, seen = wait_terminal(c, task_id)
        assert seen[0] in ("Preparing", "Queueing", "Processing")
        assert seen[-1] == "Success"
        assert done["file_id"].isdigit() and isinstance(done["file_id"], str)
        assert (done["video_width"], done["video_height"]) == (1280, 720)  # S2V-01: 720P

        retrieved = c.get("/v1/files/retrieve", params={"file_id": done["file_id"]})
        assert retrieved.headers["Trace-Id"]
        file = retrieved.json()["file"]
        assert file["file_id"] == int(done["file_id"])
        assert file["filename"] == "output_aigc.mp4"
        assert file["purpose"] == "video_generation"
        assert isinstance(file["created_at"], int)

    # the download URL needs no auth, like the CDN
    video = httpx.get(file["download_url"], trust_env=False, verify=False, timeout=10)
    assert video.status_code == 200
    assert video.headers["Trace-Id"]
    assert file["bytes"] == 0  # as the real API answers: never rely on it
    with av.open(io.BytesIO(video.content), mode="r") as container:
        frames = list(container.decode(video=0))
    assert len(frames) == 60
    assert (frames[0].width, frames[0].height) == (1280, 720)

    stats = mock_api.stats()
    assert stats["created"] == 1
    assert stats["Success"] == 1
    assert stats["downloads"] == stats["downloads_completed"] == 1
    assert stats["queries"] >= 1 and stats["retrieves"] == 1
    assert stats["rejected"] == 0


def test_life_cycle_follows_the_clock(start_mock, manual_clock):
    mock = start_mock(MockConfig(generation_seconds=10), clock=manual_clock)
    with client(mock.base_url) as c:
        task_id = create(c)["task_id"]

        def status() -> dict[str, Any]:
            result: dict[str, Any] = c.get(
                "/v1/query/video_generation", params={"task_id": task_id}
            ).json()
            return result

        assert status()["status"] == "Preparing"
        assert "file_id" not in status()
        manual_clock.advance(1)
        assert status()["status"] == "Queueing"
        manual_clock.advance(2)
        assert status()["status"] == "Processing"
        manual_clock.advance(6.9)
        assert status()["status"] == "Processing"
        manual_clock.advance(0.1)
        assert status()["status"] == "Success"
    task = mock.task(task_id)
    assert [h["status"] for h in task["history"]] == [
        "Preparing",
        "Queueing",
        "Processing",
        "Success",
    ]
    assert task["history"][-1]["at"] - task["created_at"] == pytest.approx(10)


@pytest.mark.parametrize(
    "body",
    [
        {"model": "T2V-01", "prompt": "a cat", "duration": 6, "resolution": "720P"},
        {"model": "T2V-01-Director", "prompt": "a cat [Pan left]"},
        {"model": "video-01", "prompt": "a cat"},
        {"model": "video-01", "first_frame_image": "https://example.org/a.png"},
        {"model": "MiniMax-Hailuo-2.3", "prompt": "a cat", "duration": 10, "resolution": "768P"},
        {"model": "MiniMax-Hailuo-02", "prompt": "a cat", "resolution": "1080P"},
        {"model": "I2V-01", "first_frame_image": "https://example.org/a.png"},
        {"model": "I2V-01-live", "first_frame_image": "https://example.org/a.png"},
        {"model": "I2V-01-Director", "first_frame_image": "https://example.org/a.png"},
        {"model": "MiniMax-Hailuo-2.3-Fast", "first_frame_image": "https://example.org/a.png"},
        {
            "model": "MiniMax-Hailuo-02",
            "first_frame_image": "https://e.org/a.png",
            "resolution": "512P",
        },
        {
            "model": "MiniMax-Hailuo-02",
            "first_frame_image": "https://example.org/a.png",
            "last_frame_image": "https://example.org/b.png",
        },
        SEED_BODY,
    ],
    ids=lambda body: body["model"],
)
def test_every_documented_model_is_accepted(mock_api, body):
    with client(mock_api.base_url) as c:
        assert create(c, body)["base_resp"]["status_code"] == 0


def test_unused_fields_are_accepted_and_journaled(mock_api):
    body = {**SEED_BODY, "duration": 6, "resolution": "1080P"}
    with client(mock_api.base_url) as c:
        task_id = create(c, body)["task_id"]
    task = mock_api.task(task_id)
    assert task["ignored_fields"] == ["duration", "resolution"]
    assert task["request"]["duration"] == 6


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"model": "S2V-01", "prompt": "x"}, "subject_reference"),
        ({**SEED_BODY, "model": "S2V-02"}, "model"),
        ({**SEED_BODY, "prompt": "x" * 2001}, "prompt"),
        ({**SEED_BODY, "prompt_optimizer": "yes"}, "prompt_optimizer"),
        ({**SEED_BODY, "callback_url": "not a url"}, "callback_url"),
        (
            {**SEED_BODY, "subject_reference": [{"type": "character", "image": ["a", "b"]}]},
            "subject_reference.0.image",
        ),
        (
            {**SEED_BODY, "subject_reference": [{"type": "object", "image": ["https://e.org/a"]}]},
            "subject_reference.0.type",
        ),
        ({"model": "T2V-01"}, "prompt"),
        ({"model": "I2V-01", "prompt": "x"}, "first_frame_image"),
        ({"model": "T2V-01", "prompt": "x", "duration": 10}, "duration"),
        ({"prompt": "x"}, "model"),
    ],
)
def test_invalid_bodies_get_2013_naming_the_field(mock_api, body, field):
    with client(mock_api.base_url) as c:
        response = create(c, body)
    assert response["task_id"] == ""
    assert response["base_resp"]["status_code"] == 2013
    assert field in response["base_resp"]["status_msg"]
    assert len(response["base_resp"]["status_msg"]) < 400
    assert mock_api.stats()["created"] == 0


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b'"text"'])
def test_bodies_that_are_not_objects_get_2013(mock_api, raw):
    with client(mock_api.base_url, **{"Content-Type": "application/json"}) as c:
        body = c.post("/v1/video_generation", content=raw).json()
    assert body["base_resp"]["status_code"] == 2013


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": ""}, {"Authorization": "Bearer"}, {"Authorization": "Basic abc"}],
)
def test_missing_or_malformed_bearer_gets_1004(mock_api, headers):
    with httpx.Client(
        base_url=mock_api.base_url, headers=headers, trust_env=False, verify=False
    ) as c:
        for response in (
            c.post("/v1/video_generation", json=SEED_BODY),
            c.get("/v1/query/video_generation", params={"task_id": "1"}),
            c.get("/v1/files/retrieve", params={"file_id": "1"}),
        ):
            assert response.status_code == 200
            assert response.json()["base_resp"]["status_code"] == 1004
            assert response.headers["Trace-Id"]
    assert mock_api.stats()["errors"] == {"1004": 3}


def test_configured_key_refuses_others_with_2049(start_mock):
    mock = start_mock(MockConfig(generation_seconds=0, api_key="sk-right"))
    with client(mock.base_url, Authorization="Bearer sk-wrong") as c:
        assert create(c)["base_resp"]["status_code"] == 2049
    with client(mock.base_url, Authorization="Bearer sk-right") as c:
        assert create(c)["base_resp"]["status_code"] == 0


def test_tasks_belong_to_the_key_that_created_them(mock_api):
    with client(mock_api.base_url) as c:
        task_id = create(c)["task_id"]
    with client(mock_api.base_url, Authorization="Bearer someone-else") as other:
        body = other.get("/v1/query/video_generation", params={"task_id": task_id}).json()
    assert body["base_resp"]["status_code"] == 2013


def test_query_errors(mock_api):
    with client(mock_api.base_url) as c:
        missing = c.get("/v1/query/video_generation").json()
        unknown = c.get("/v1/query/video_generation", params={"task_id": "123"}).json()
    assert missing["base_resp"]["status_code"] == 2013
    assert "task_id" in missing["base_resp"]["status_msg"]
    assert unknown["base_resp"]["status_code"] == 2013


def test_retrieve_takes_file_id_as_string_or_number_and_ignores_group_id(start_mock):
    mock = start_mock(MockConfig(generation_seconds=0))
    with client(mock.base_url) as c:
        task_id = create(c)["task_id"]
        file_id = c.get("/v1/query/video_generation", params={"task_id": task_id}).json()["file_id"]
        for value in (file_id, int(file_id), f'"{file_id}"', f"00{file_id}"):
            body = c.get(
                "/v1/files/retrieve", params={"file_id": value, "GroupId": "1234567"}
            ).json()
            assert body["base_resp"]["status_code"] == 0, value
            assert body["file"]["file_id"] == int(file_id)
        for bad in ("", "abc", "999"):
            body = c.get("/v1/files/retrieve", params={"file_id": bad}).json()
            assert body["base_resp"]["status_code"] == 2013


def test_no_file_before_success(start_mock, manual_clock):
    mock = start_mock(MockConfig(generation_seconds=5), clock=manual_clock)
    with client(mock.base_url) as c:
        task_id = create(c)["task_id"]
        file_id = mock.tasks()[0]["file_id"]
        assert file_id is None  # not revealed before Success
        manual_clock.advance(5)
        file_id = c.get("/v1/query/video_generation", params={"task_id": task_id}).json()["file_id"]
        assert c.get("/v1/files/retrieve", params={"file_id": file_id}).json()["file"]


def _download_url(c: httpx.Client) -> str:
    task_id = create(c)["task_id"]
    file_id = c.get("/v1/query/video_generation", params={"task_id": task_id}).json()["file_id"]
    file = c.get("/v1/files/retrieve", params={"file_id": file_id}).json()["file"]
    return str(file["download_url"])


def test_download_urls_expire_and_cannot_be_forged(start_mock, manual_clock):
    mock = start_mock(MockConfig(generation_seconds=0, download_url_ttl=60), clock=manual_clock)
    with client(mock.base_url) as c:
        url = _download_url(c)
        assert url.startswith(mock.base_url + "/")
        assert httpx.get(url, trust_env=False, verify=False).status_code == 200
        forged = url.replace("Expires=", "Expires=9")
        refused = httpx.get(forged, trust_env=False, verify=False)
        assert refused.status_code == 403
        assert b"SignatureDoesNotMatch" in refused.content
        manual_clock.advance(61)
        expired = httpx.get(url, trust_env=False, verify=False)
        assert expired.status_code == 403
        assert b"Request has expired" in expired.content
        assert expired.headers["Trace-Id"]
        fresh = _download_url(c)  # a new retrieve gives a new hour
        assert httpx.get(fresh, trust_env=False, verify=False).status_code == 200
    stats = mock.stats()
    assert stats["downloads_expired"] == 1
    assert stats["downloads"] == 2


def test_download_honours_ranges(start_mock):
    mock = start_mock(MockConfig(generation_seconds=0))
    with client(mock.base_url) as c:
        url = _download_url(c)
    whole = httpx.get(url, trust_env=False, verify=False).content
    part = httpx.get(url, headers={"Range": "bytes=100-"}, trust_env=False, verify=False)
    assert part.status_code == 206
    assert part.content == whole[100:]
    assert part.headers["Content-Range"] == f"bytes 100-{len(whole) - 1}/{len(whole)}"
    tail = httpx.get(url, headers={"Range": "bytes=-10"}, trust_env=False, verify=False)
    assert tail.content == whole[-10:]
    beyond = httpx.get(
        url, headers={"Range": f"bytes={len(whole)}-"}, trust_env=False, verify=False
    )
    assert beyond.status_code == 416


def test_the_host_of_download_urls_is_the_one_the_client_used(start_mock):
    mock = start_mock(MockConfig(generation_seconds=0))
    localhost = mock.base_url.replace("127.0.0.1", "localhost")
    with client(localhost) as c:
        assert _download_url(c).startswith(localhost + "/cdn/")


def test_journal_keeps_large_data_urls_short_but_hashed(mock_api):
    buf = io.BytesIO()
    Image.effect_noise((600, 600), 64).convert("RGB").save(buf, "PNG")
    image = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    assert len(image) > 100_000
    body = {**SEED_BODY, "subject_reference": [{"type": "character", "image": [image]}]}
    raw = json.dumps(body).encode()
    with client(mock_api.base_url, **{"Content-Type": "application/json"}) as c:
        response = c.post("/v1/video_generation", content=raw).json()
    assert response["base_resp"]["status_code"] == 0
    task = mock_api.task(response["task_id"])
    shown = task["request"]["subject_reference"][0]["image"][0]
    assert len(shown) < 300
    assert hashlib.sha256(image.encode()).hexdigest() in shown
    assert task["request_sha256"] == hashlib.sha256(raw).hexdigest()
    assert task["request_bytes"] == len(raw)
    listing = httpx.get(mock_api.base_url + "/_mock/tasks", trust_env=False, verify=False)
    assert len(listing.content) < 10_000


def test_trace_id_on_every_response(mock_api):
    with client(mock_api.base_url) as c:
        responses = [
            c.get("/nowhere"),
            c.get("/v1/video_generation"),  # wrong method
            c.get("/_mock/stats"),
            c.post("/v1/video_generation", json={}),
        ]
    ids = [r.headers["Trace-Id"] for r in responses]
    assert all(len(i) == 32 for i in ids)
    assert len(set(ids)) == len(ids)


def test_inspection_reset_and_request_log(mock_api):
    with client(mock_api.base_url) as c:
        create(c)
        create(c, {"model": "S2V-01"})
    log = mock_api.requests()
    assert [(r["endpoint"], r["code"]) for r in log] == [("create", None), ("create", 2013)]
    assert all(r["trace_id"] for r in log)
    stats = mock_api.stats()
    assert stats["created"] == 1
    assert stats["rejected"] == 1
    assert stats["requests"] == {"create": 2}
    assert stats["errors"] == {"2013": 1}
    config = httpx.get(mock_api.base_url + "/_mock/config", trust_env=False, verify=False).json()
    assert isinstance(config["effective_seed"], int)
    assert (
        httpx.get(mock_api.base_url + "/_mock/tasks/42", trust_env=False, verify=False).status_code
        == 404
    )
    mock_api.reset()
    assert mock_api.tasks() == []
    assert mock_api.stats()["created"] == 0
    assert mock_api.requests() == []


def test_video_size_is_configurable_and_reported(start_mock):
    mock = start_mock(
        MockConfig(generation_seconds=0, video=VideoOptions(width=128, height=72, fps=5, seconds=1))
    )
    with client(mock.base_url) as c:
        task_id = create(c)["task_id"]
        done = c.get("/v1/query/video_generation", params={"task_id": task_id}).json()
        url = c.get("/v1/files/retrieve", params={"file_id": done["file_id"]}).json()["file"][
            "download_url"
        ]
    assert (done["video_width"], done["video_height"]) == (128, 72)
    with av.open(
        io.BytesIO(httpx.get(url, trust_env=False, verify=False).content), mode="r"
    ) as container:
        frames = list(container.decode(video=0))
    assert len(frames) == 5
    assert (frames[0].width, frames[0].height) == (128, 72)
