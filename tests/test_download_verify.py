"""Every video is verified before it counts: the byte count against Content-Length, the MP4's
top-level boxes covering the file exactly, and a single-part object's MD5 ETag. A failure is
a download retry, never a success (issue 18: truncated videos were recorded as success and
skipped forever after)."""

from __future__ import annotations

import hashlib
import json
import ssl
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from click.testing import CliRunner

from mmgen.api.client import MiniMaxClient, RetryPolicy
from mmgen.api.mp4 import TopLevelBoxes
from mmgen.cli import main
from mmgen.errors import DownloadError
from tests.fakes import Sleeps, mp4

URL = "https://cdn.test.invalid/output_aigc.mp4?Expires=1&Signature=abc"
VIDEO = mp4(bytes(range(256)) * 600)
TLS = ssl.create_default_context()


def box(kind: bytes, body: bytes, *, large: bool = False, to_end: bool = False) -> bytes:
    if large:
        return struct.pack(">I4sQ", 1, kind, 16 + len(body)) + body
    return struct.pack(">I4s", 0 if to_end else 8 + len(body), kind) + body


@pytest.mark.parametrize("step", [1, 3, 7, 16, 4096])
def test_the_box_walk_follows_headers_across_chunks(step: int) -> None:
    data = (
        box(b"ftyp", b"isom" * 3)
        + box(b"moov", b"m" * 50)
        + box(b"mdat", b"v" * 3000, large=True)  # 64-bit largesize
        + box(b"free", b"f" * 10, to_end=True)  # size 0: to the end of the file
    )
    walk = TopLevelBoxes()
    for at in range(0, len(data), step):
        walk.feed(data[at : at + step])
    assert walk.problem() is None
    assert walk.boxes == ["ftyp", "moov", "mdat", "free"]


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (VIDEO[: len(VIDEO) // 2], "box 'mdat' at byte 36 runs"),  # truncated: mdat past the end
        (VIDEO[:-1], "runs 1 bytes past the end"),
        (VIDEO[:36], "no 'mdat' box"),  # cut at a box boundary
        (VIDEO + b"\0\0", "the file ends inside a box header"),
        (VIDEO + bytes(8), "no MP4 box at byte"),  # zeros: not a box type
        (b"<html><body>503</body></html>", "runs"),  # an error page
        (box(b"ftyp", b"") + struct.pack(">I4s", 4, b"moov"), "box 'moov' at byte 8 has size 4"),
    ],
)
def test_the_box_walk_refuses(data: bytes, problem: str) -> None:
    walk = TopLevelBoxes()
    walk.feed(data)
    found = walk.problem()
    assert found is not None and problem in found


@pytest.fixture
def router() -> Any:
    with respx.mock(assert_all_called=False) as mock:
        yield mock


@pytest.fixture
async def client(router: Any) -> AsyncIterator[MiniMaxClient]:
    retry = RetryPolicy(download_attempts=3, jitter=False)
    async with (
        httpx.AsyncClient(verify=TLS) as http,
        MiniMaxClient(
            "sk-key", "https://api.test.invalid", http=http, retry=retry, sleep=Sleeps()
        ) as c,
    ):
        yield c


def answer(data: bytes, **headers: str) -> httpx.Response:
    return httpx.Response(200, headers={"Content-Length": str(len(data)), **headers}, content=data)


@pytest.mark.anyio
async def test_a_complete_looking_short_video_is_retried_never_kept(client, router, tmp_path):
    short = VIDEO[: len(VIDEO) // 2]  # Content-Length says the short size: it agrees
    route = router.get(URL).mock(side_effect=lambda request: answer(short))
    with pytest.raises(DownloadError, match=r"not a complete MP4: box 'mdat' .* cut short"):
        await client.download(URL, tmp_path / "v.mp4")
    assert route.call_count == 3  # a retryable failure: every try was made
    assert list(tmp_path.iterdir()) == []


@pytest.mark.anyio
async def test_the_md5_etag_of_a_single_part_object_is_checked(client, router, tmp_path):
    good = hashlib.md5(VIDEO).hexdigest().upper()
    damaged = VIDEO[:-1] + b"\x00"  # the right structure, a wrong byte
    route = router.get(URL)
    route.side_effect = [answer(damaged, ETag=f'"{good}"'), answer(VIDEO, ETag=f'"{good}"')]
    got = await client.download(URL, tmp_path / "v.mp4")
    assert got.sha256 == hashlib.sha256(VIDEO).hexdigest() and route.call_count == 2
    route.side_effect = [answer(damaged, ETag=f'"{good}"')] * 3
    with pytest.raises(DownloadError, match="do not match the CDN's ETag"):
        await client.download(URL, tmp_path / "w.mp4")


@pytest.mark.anyio
@pytest.mark.parametrize("etag", ['"0123456789abcdef0123456789abcdef-3"', 'W/"x"', '"abc"'])
async def test_other_etags_are_not_digests(client, router, tmp_path, etag: str) -> None:
    router.get(URL).mock(side_effect=lambda request: answer(VIDEO, ETag=etag))
    got = await client.download(URL, tmp_path / "v.mp4")
    assert got.bytes == len(VIDEO)


def test_a_truncated_video_is_never_a_success_end_to_end(tmp_path: Path) -> None:
    """The mock serves every video cut in half with a matching Content-Length."""
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "seed.yaml").write_text(
        "name: seed\nmodel: S2V-01\nprompt: A cat.\nsubject_reference:\n"
        "  - {type: character, image: [https://example.org/face.jpg]}\n"
    )
    config = tmp_path / "mock.yaml"
    config.write_text(
        "generation_seconds: 0.1\n"
        "faults: {downloads: {truncate_probability: 1, truncate_mode: short}}\n"
    )
    out = tmp_path / "out"
    cli = CliRunner()
    args = ["run", "--mock", "--mock-config", str(config), str(specs), "--out", str(out)]
    run = cli.invoke(main, [*args, "--format", "json"], env={"MINIMAX_BASE_URL": None})
    assert run.exit_code == 1, run.output
    [outcome] = json.loads(run.stdout)
    assert outcome["ok"] is False and outcome["state"] == "submitted"
    assert "not a complete MP4" in outcome["error"]["message"]
    assert not list(out.glob("seed*.mp4"))
    plan = cli.invoke(main, ["plan", "--mock", str(specs), "--out", str(out), "--format", "json"])
    [item] = json.loads(plan.stdout)
    assert item["action"] == "resume"  # never "skip"
