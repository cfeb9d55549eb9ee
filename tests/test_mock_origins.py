"""The mock's two origins: the API, and the CDN host its download URLs point at."""

from __future__ import annotations

import io
import time
import tracemalloc
from typing import Any

import av
import httpx
import pytest

from mock_server import MockConfig
from mock_server.config import VideoOptions
from mock_server.server import MockServers

SEED_BODY = {
    "model": "S2V-01",
    "prompt": "A girl runs toward the camera and winks with a smile.",
    "subject_reference": [{"type": "character", "image": ["https://example.org/face.jpg"]}],
}
AUTH = {"Authorization": "Bearer sk-test"}


def http(base_url: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, trust_env=False, verify=False, timeout=10)


def finished_file(c: httpx.Client, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """Create a task, poll it to Success, retrieve its file (the MCP client's flow)."""
    created = c.post("/v1/video_generation", json=body or SEED_BODY, headers=AUTH).json()
    deadline = time.monotonic() + 10
    while True:
        query = c.get(
            "/v1/query/video_generation", params={"task_id": created["task_id"]}, headers=AUTH
        ).json()
        if query["status"] == "Success":
            break
        assert query["status"] in ("Preparing", "Queueing", "Processing"), query
        assert time.monotonic() < deadline, "the task never finished"
        time.sleep(0.02)
    file: dict[str, Any] = c.get(
        "/v1/files/retrieve", params={"file_id": query["file_id"]}, headers=AUTH
    ).json()["file"]
    file["query"] = query
    return file


@pytest.fixture
def servers():
    started: list[MockServers] = []

    def start(config: MockConfig | None = None, **options: Any) -> MockServers:
        mock = MockServers(config or MockConfig(generation_seconds=0.1), **options).start()
        started.append(mock)
        return mock

    yield start
    for mock in started:
        mock.stop()


def test_download_urls_point_at_the_cdn_origin(servers):
    mock = servers()
    assert mock.cdn_url is not None and mock.cdn_url != mock.url
    with http(mock.url) as c:
        file = finished_file(c)
    url = httpx.URL(file["download_url"])
    assert f"{url.scheme}://{url.host}:{url.port}" == mock.cdn_url
    assert url.path == f"/video/{file['file_id']}/output_aigc.mp4"
    with http(mock.cdn_url) as cdn:
        video = cdn.get(file["download_url"])
        assert video.status_code == 200
        assert cdn.get("/v1/files/retrieve").status_code == 404  # the CDN serves videos only
        assert cdn.get("/_mock/stats").status_code == 404
    with av.open(io.BytesIO(video.content), mode="r") as container:
        frame = next(container.decode(video=0))
    assert (frame.width, frame.height) == (
        file["query"]["video_width"],
        file["query"]["video_height"],
    )
    stats = mock.api.store.stats
    assert stats["downloads"] == 1 and stats["downloads_with_authorization"] == 0


def test_a_key_sent_to_the_cdn_is_journaled(servers):
    mock = servers()
    with http(mock.url) as c:
        file = finished_file(c)
        httpx.get(file["download_url"], headers=AUTH, trust_env=False).raise_for_status()
        httpx.get(file["download_url"], trust_env=False).raise_for_status()
        stats = c.get("/_mock/stats").json()
        downloads = [
            r for r in c.get("/_mock/requests").json()["requests"] if r["endpoint"] == "download"
        ]
        (task,) = c.get("/_mock/tasks").json()["tasks"]
    assert stats["downloads_with_authorization"] == 1
    assert stats["downloads_completed"] == 2
    assert [d["authorization"] for d in downloads] == [True, False]
    assert [d["authorization"] for d in task["download_log"]] == [True, False]
    assert "sk-test" not in str(task) + str(downloads)


def test_without_a_cdn_origin_downloads_stay_on_the_api_origin(servers):
    mock = servers(cdn_port=None)
    assert mock.cdn_url is None
    with http(mock.url) as c:
        file = finished_file(c)
        assert file["download_url"].startswith(mock.url + "/cdn/video/")
        assert c.get(file["download_url"]).status_code == 200


def test_geometry_of_the_served_file_matches_the_query(servers):
    mock = servers()
    body = {"model": "MiniMax-Hailuo-02", "prompt": "x", "resolution": "1080P", "duration": 6}
    with http(mock.url) as c:
        file = finished_file(c, body)
        video = c.get(file["download_url"]).content
    with av.open(io.BytesIO(video), mode="r") as container:
        frames = list(container.decode(video=0))
    assert (file["query"]["video_width"], file["query"]["video_height"]) == (1920, 1080)
    assert {(f.width, f.height) for f in frames} == {(1920, 1080)}
    assert file["bytes"] == 0


def test_report_file_bytes_gives_the_real_size(servers):
    mock = servers(MockConfig(generation_seconds=0, report_file_bytes=True))
    with http(mock.url) as c:
        file = finished_file(c)
        assert file["bytes"] == len(c.get(file["download_url"]).content) > 0


def test_a_padded_video_streams_without_loading_it(servers):
    size = 64 * 1024 * 1024
    mock = servers(MockConfig(generation_seconds=0, video=VideoOptions(min_bytes=size)))
    with http(mock.url) as c:
        file = finished_file(c)
        tracemalloc.start()
        try:
            received = 0
            head = b""
            with c.stream("GET", file["download_url"]) as response:
                assert response.headers["content-length"] == str(size)
                for chunk in response.iter_raw(1024 * 1024):
                    if len(head) < 2_000_000:
                        head += chunk
                    received += len(chunk)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        ranged = c.get(file["download_url"], headers={"Range": f"bytes={size - 10}-"})
    assert received == size
    assert peak < 16 * 1024 * 1024  # both ends of the transfer hold chunks, never the file
    assert ranged.status_code == 206 and ranged.content == bytes(10)
    with av.open(io.BytesIO(head + bytes(size - len(head))), mode="r") as container:
        assert len(list(container.decode(video=0))) == 60


def test_the_official_mcp_clients_video_flow(servers):
    """The MiniMax MCP server's flow with plain sync httpx: create, poll the query every few
    seconds (here 20 ms), retrieve, then a plain GET of download_url without the key, the whole
    body in memory."""
    mock = servers(MockConfig(generation_seconds=0.2))
    with httpx.Client(base_url=mock.url, headers=AUTH, trust_env=False, timeout=30) as api:
        task_id = api.post("/v1/video_generation", json=SEED_BODY).json()["task_id"]
        statuses = []
        while not statuses or statuses[-1] not in ("Success", "Fail"):
            time.sleep(0.02)
            body = api.get("/v1/query/video_generation", params={"task_id": task_id}).json()
            assert body["base_resp"]["status_code"] == 0
            statuses.append(body["status"])
        assert statuses[-1] == "Success"
        file_id = body["file_id"]
        url = api.get("/v1/files/retrieve", params={"file_id": file_id}).json()["file"][
            "download_url"
        ]
    video = httpx.get(url, trust_env=False).content
    assert video[4:8] == b"ftyp"
    assert mock.api.store.stats["downloads_with_authorization"] == 0
