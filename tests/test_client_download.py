"""MiniMaxClient.download: streamed, hashed, atomic, size-checked, never sends the key."""

from __future__ import annotations

import hashlib
import ssl
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from mmgen.api.client import MiniMaxClient, RetryPolicy
from mmgen.errors import DownloadError
from tests.fakes import Sleeps, mp4

BASE = "https://api.test.invalid"
KEY = "sk-test-key-0123456789"
URL = "https://cdn.test.invalid/output_aigc.mp4?Expires=1&Signature=abc"
VIDEO = mp4((bytes(range(256)) * 1024)[:-44])  # 256 KiB (44: the boxes' headers), several chunks

#: One TLS context for every test client (building one costs ~25 ms).
TLS = ssl.create_default_context()


class Stream(httpx.AsyncByteStream):
    """A response body delivered chunk by chunk, optionally broken off with an error."""

    def __init__(self, chunks: Iterable[bytes], error: Exception | None = None) -> None:
        self.chunks = list(chunks)
        self.error = error
        self.served = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            self.served += 1
            yield chunk
        if self.error is not None:
            raise self.error


def chunks(data: bytes, size: int = 64 * 1024) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def video_response(data: bytes = VIDEO, **headers: str) -> httpx.Response:
    return httpx.Response(
        200,
        headers={"Content-Length": str(len(data)), "Content-Type": "video/mp4", **headers},
        stream=Stream(chunks(data)),
    )


@pytest.fixture
def router() -> Any:
    with respx.mock(assert_all_called=False) as mock:
        yield mock


@pytest.fixture
async def client(router: Any) -> AsyncIterator[MiniMaxClient]:
    retry = RetryPolicy(download_attempts=3, jitter=False)
    async with (
        httpx.AsyncClient(verify=TLS) as http,
        MiniMaxClient(KEY, BASE, http=http, retry=retry, sleep=Sleeps()) as c,
    ):
        yield c


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.anyio
async def test_download_streams_hashes_and_renames(client, router, tmp_path) -> None:
    route = router.get(URL).mock(return_value=video_response())
    seen: list[tuple[int, int | None]] = []
    dest = tmp_path / "videos" / "teaser.mp4"  # folder created on demand
    result = await client.download(URL, dest, progress=lambda d, t: seen.append((d, t)))
    assert result.path == dest
    assert result.bytes == len(VIDEO)
    assert result.sha256 == hashlib.sha256(VIDEO).hexdigest()
    assert dest.read_bytes() == VIDEO
    assert leftovers(dest.parent) == ["teaser.mp4"]
    assert len(seen) == 4  # one call per chunk: streamed, not slurped
    assert [d for d, _ in seen] == [65536, 131072, 196608, 262144]
    assert {t for _, t in seen} == {len(VIDEO)}
    assert route.call_count == 1


@pytest.mark.anyio
async def test_download_never_sends_the_api_key(client, router, tmp_path) -> None:
    route = router.get(URL).mock(return_value=video_response())
    await client.download(URL, tmp_path / "v.mp4")
    assert "Authorization" not in route.calls.last.request.headers


@pytest.mark.anyio
async def test_download_strips_authorization_from_an_injected_client(router, tmp_path) -> None:
    route = router.get(URL).mock(return_value=video_response())
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {KEY}"}) as http:
        client = MiniMaxClient(KEY, BASE, http=http)
        await client.download(URL, tmp_path / "v.mp4")
    assert "Authorization" not in route.calls.last.request.headers


@pytest.mark.anyio
async def test_download_replaces_an_existing_file(client, router, tmp_path) -> None:
    dest = tmp_path / "v.mp4"
    dest.write_bytes(b"old corrupt video")
    router.get(URL).mock(return_value=video_response())
    await client.download(URL, dest)
    assert dest.read_bytes() == VIDEO


@pytest.mark.anyio
async def test_expected_bytes_is_the_progress_total(client, router, tmp_path) -> None:
    router.get(URL).mock(
        return_value=httpx.Response(200, stream=Stream(chunks(VIDEO)))  # no Content-Length
    )
    totals: set[int | None] = set()
    result = await client.download(
        URL, tmp_path / "v.mp4", progress=lambda d, t: totals.add(t), expected_bytes=len(VIDEO)
    )
    assert result.bytes == len(VIDEO)
    assert totals == {len(VIDEO)}


@pytest.mark.anyio
async def test_unknown_size_gives_none_total_and_zero_expected_is_ignored(
    client, router, tmp_path
) -> None:
    router.get(URL).mock(return_value=httpx.Response(200, stream=Stream(chunks(VIDEO))))
    totals: set[int | None] = set()
    result = await client.download(
        URL, tmp_path / "v.mp4", progress=lambda d, t: totals.add(t), expected_bytes=0
    )
    assert result.bytes == len(VIDEO)
    assert totals == {None}


@pytest.mark.anyio
async def test_connection_dropped_mid_body_is_a_download_error(client, router, tmp_path) -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            headers={"Content-Length": str(len(VIDEO))},
            stream=Stream(
                chunks(VIDEO)[:2],
                httpx.RemoteProtocolError("peer closed connection without sending complete body"),
            ),
        )

    route = router.get(URL).mock(side_effect=broken)
    dest = tmp_path / "v.mp4"
    with pytest.raises(DownloadError) as info:
        await client.download(URL, dest)
    assert not info.value.url_expired
    assert "131072" in info.value.message  # how far it got
    assert route.call_count == 3  # transient: retried from scratch
    assert leftovers(tmp_path) == []  # no dest, no temp file


@pytest.mark.anyio
async def test_short_body_against_content_length(client, router, tmp_path) -> None:
    def short(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            headers={"Content-Length": str(len(VIDEO))},
            stream=Stream(chunks(VIDEO[:1000])),
        )

    router.get(URL).mock(side_effect=short)
    with pytest.raises(DownloadError) as info:
        await client.download(URL, tmp_path / "v.mp4")
    assert "1000 of 262144" in info.value.message
    assert leftovers(tmp_path) == []


@pytest.mark.anyio
async def test_size_differs_from_expected_bytes(client, router, tmp_path) -> None:
    router.get(URL).mock(side_effect=lambda request: video_response())
    with pytest.raises(DownloadError) as info:
        await client.download(URL, tmp_path / "v.mp4", expected_bytes=len(VIDEO) + 1)
    assert "announced" in info.value.message
    assert leftovers(tmp_path) == []


@pytest.mark.anyio
async def test_failed_download_keeps_the_previous_file(client, router, tmp_path) -> None:
    dest = tmp_path / "v.mp4"
    dest.write_bytes(b"previous")
    router.get(URL).respond(500)
    with pytest.raises(DownloadError):
        await client.download(URL, dest)
    assert dest.read_bytes() == b"previous"
    assert leftovers(tmp_path) == ["v.mp4"]


@pytest.mark.parametrize("status", [403, 404, 410])
@pytest.mark.anyio
async def test_expired_url_is_flagged_and_not_retried(client, router, tmp_path, status) -> None:
    route = router.get(URL).respond(status, text="AccessDenied")
    with pytest.raises(DownloadError) as info:
        await client.download(URL, tmp_path / "v.mp4")
    assert info.value.url_expired
    assert info.value.http_status == status
    assert "Signature" not in info.value.one_line()  # the signed query string is not shown
    assert "cdn.test.invalid" in info.value.message
    assert route.call_count == 1
    assert leftovers(tmp_path) == []


@pytest.mark.anyio
async def test_other_client_error_is_not_retried_nor_expired(client, router, tmp_path) -> None:
    route = router.get(URL).respond(400)
    with pytest.raises(DownloadError) as info:
        await client.download(URL, tmp_path / "v.mp4")
    assert not info.value.url_expired
    assert route.call_count == 1


@pytest.mark.parametrize(
    "first",
    [
        httpx.Response(503),
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("stalled"),
    ],
)
@pytest.mark.anyio
async def test_transient_failure_then_success(client, router, tmp_path, first) -> None:
    route = router.get(URL)
    route.side_effect = [first, video_response()]
    result = await client.download(URL, tmp_path / "v.mp4")
    assert result.sha256 == hashlib.sha256(VIDEO).hexdigest()
    assert route.call_count == 2
    assert leftovers(tmp_path) == ["v.mp4"]


@pytest.mark.anyio
async def test_progress_restarts_on_retry(client, router, tmp_path) -> None:
    route = router.get(URL)
    route.side_effect = [
        httpx.Response(
            200,
            headers={"Content-Length": str(len(VIDEO))},
            stream=Stream(chunks(VIDEO)[:1], httpx.ReadError("reset")),
        ),
        video_response(),
    ]
    seen: list[int] = []
    await client.download(URL, tmp_path / "v.mp4", progress=lambda d, t: seen.append(d))
    assert seen == [65536, 65536, 131072, 196608, 262144]


@pytest.mark.anyio
async def test_empty_body_is_an_error(client, router, tmp_path) -> None:
    router.get(URL).mock(side_effect=lambda request: httpx.Response(200, content=b""))
    with pytest.raises(DownloadError):
        await client.download(URL, tmp_path / "v.mp4")
    assert leftovers(tmp_path) == []


@pytest.mark.anyio
async def test_failing_progress_callback_leaves_nothing_behind(client, router, tmp_path) -> None:
    router.get(URL).mock(return_value=video_response())

    def boom(done: int, total: int | None) -> None:
        raise RuntimeError("display crashed")

    with pytest.raises(RuntimeError):
        await client.download(URL, tmp_path / "v.mp4", progress=boom)
    assert leftovers(tmp_path) == []


@pytest.mark.anyio
async def test_invalid_url_is_a_download_error(client, tmp_path) -> None:
    with pytest.raises(DownloadError):
        await client.download("not a url", tmp_path / "v.mp4")
    assert leftovers(tmp_path) == []
