"""Streaming one video to disk: to a temp file next to its destination, hashed on the way,
fsync'd and renamed over the destination only when verified. Never holds the video in memory;
never sends the API key (the URL is a CDN's).

Verified means: as many bytes as Content-Length said; the MP4's top-level boxes cover the file
exactly (:mod:`mmgen.api.mp4`: a truncated video's ``mdat`` runs past its end); and, where the
CDN answers a quoted 32-hex ``ETag`` (an object uploaded in one part, whose ETag is its MD5),
the MD5 of the bytes matches it. A failure is a :class:`~mmgen.errors.DownloadError` with no
HTTP status, which is retried (a fresh download), never a success."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import tempfile
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import IO

import httpx

from mmgen.api.mp4 import TopLevelBoxes
from mmgen.api.responses import Download, content_length
from mmgen.errors import DownloadError
from mmgen.state.files import commit

#: Bounded timeouts: httpx's read timeout applies to each network read, so for the streamed
#: download it is a per-chunk stall limit, not a limit on the whole transfer.
DOWNLOAD_TIMEOUT = httpx.Timeout(connect=10.0, read=60.0, write=60.0, pool=60.0)

_CHUNK = 1 << 16
_EXPIRED_HINT = "download URLs live one hour: retrieve the file again for a fresh URL"
#: A strong ETag that is an MD5 (a single-part object on S3, OSS, GCS...); multipart ETags
#: (``"<md5>-<parts>"``) and weak ones are not digests of the bytes.
_MD5_ETAG = re.compile(r'"([0-9a-fA-F]{32})"')


async def download_once(
    lane: Callable[[], AbstractAsyncContextManager[httpx.AsyncClient]],
    url: str,
    dest: Path,
    where: str,
    progress: Callable[[int, int | None], None] | None,
    expected_bytes: int | None,
    then: Callable[[Path], None] | None = None,
) -> Download:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise DownloadError(f"invalid download URL {where}: {exc}") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise DownloadError(f"invalid download URL {where}: not an absolute http(s) URL")
    tmp_path: Path | None = None
    try:
        # Opening the temp file, like the chunks' plain unbuffered writes, is one quick system
        # call on the loop (a thread hop per file cost more than it saved); the fsyncs and the
        # rename are off the loop (commit). The callback listener has a thread of its own.
        fd, name = _open_temp(dest)
        tmp_path = Path(name)
        with os.fdopen(fd, "wb", buffering=0) as tmp:
            async with lane() as http:  # a connection only while bytes flow, not for the fsync
                request = http.build_request("GET", parsed, timeout=DOWNLOAD_TIMEOUT)
                # The CDN URL must never see the API key, even if the client carries one.
                request.headers.pop("Authorization", None)
                digest, size = await _stream_to(http, request, tmp, where, progress, expected_bytes)
        await asyncio.to_thread(_commit, tmp_path, dest, then)
        tmp_path = None
        return Download(path=dest, sha256=digest, bytes=size)
    finally:
        if tmp_path is not None:  # anything went wrong, cancellation included
            tmp_path.unlink(missing_ok=True)


async def _stream_to(
    http: httpx.AsyncClient,
    request: httpx.Request,
    out: IO[bytes],
    where: str,
    progress: Callable[[int, int | None], None] | None,
    expected_bytes: int | None,
) -> tuple[str, int]:
    try:
        response = await http.send(request, stream=True, follow_redirects=True)
    except httpx.TransportError as exc:
        raise DownloadError(f"download {where}: {type(exc).__name__}: {exc}") from exc
    try:
        status = response.status_code
        if status in (403, 404, 410):
            raise DownloadError(
                f"download {where}: HTTP {status}, the URL has likely expired",
                hint=_EXPIRED_HINT,
                url_expired=True,
                http_status=status,
            )
        if status != 200:
            raise DownloadError(
                f"download {where}: HTTP {status} {response.reason_phrase}".rstrip(),
                http_status=status,
            )
        length = content_length(response)
        expected = expected_bytes if expected_bytes and expected_bytes > 0 else None
        encoded = response.headers.get("Content-Encoding", "identity").lower() != "identity"
        total = expected if expected is not None else (None if encoded else length)
        hasher = hashlib.sha256()
        boxes = TopLevelBoxes()
        etag = _MD5_ETAG.fullmatch(response.headers.get("ETag", "").strip())
        md5 = hashlib.md5(usedforsecurity=False) if etag and not encoded else None
        written = 0
        try:
            async for chunk in response.aiter_bytes(_CHUNK):
                out.write(chunk)
                hasher.update(chunk)
                boxes.feed(chunk)
                if md5 is not None:
                    md5.update(chunk)
                written += len(chunk)
                if progress is not None:
                    progress(written, total)
        except httpx.TransportError as exc:
            raise DownloadError(
                f"download {where}: broken off after {written} bytes ({type(exc).__name__}: {exc})"
            ) from exc
        # Content-Length counts the bytes on the wire: those written unless the body was
        # content-encoded (httpx counts the encoded bytes only as they stream in: a body a
        # test double hands over already read has none counted).
        on_wire = response.num_bytes_downloaded if encoded else written
        if length is not None and on_wire != length:
            raise DownloadError(
                f"download {where}: incomplete, {on_wire} of {length} bytes (Content-Length)"
            )
        if expected is not None and written != expected:
            raise DownloadError(
                f"download {where}: got {written} bytes, MiniMax announced {expected}"
            )
        if written == 0:
            raise DownloadError(f"download {where}: empty body")
        problem = boxes.problem()
        if problem is not None:
            raise DownloadError(f"download {where}: not a complete MP4: {problem}")
        if md5 is not None and etag is not None and md5.hexdigest() != etag.group(1).lower():
            raise DownloadError(
                f"download {where}: the bytes do not match the CDN's ETag (MD5 "
                f"{md5.hexdigest()}, ETag {etag.group(1).lower()}): damaged in transit"
            )
        out.flush()
        return hasher.hexdigest(), written
    finally:
        await response.aclose()


def _commit(tmp_path: Path, dest: Path, then: Callable[[Path], None] | None) -> None:
    commit(tmp_path, dest)
    if then is not None:
        then(dest)


def _open_temp(dest: Path) -> tuple[int, str]:
    """A new temp file next to ``dest`` (its folder made if needed): ``.NAME.*.part``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    os.chmod(name, 0o644)  # mkstemp's is 0600: readable like index.html, for a served gallery
    return fd, name


def download_retryable(error: BaseException) -> bool:
    if not isinstance(error, DownloadError) or error.url_expired:
        return False
    status = error.http_status
    return status is None or status == 429 or status >= 500
