"""The download URLs: signed, expiring, served like an object store (Alibaba OSS) on a CDN origin.

The retrieve endpoint hands out ``{origin}/video/{file_id}/output_aigc.mp4?Expires=...&
OSSAccessKeyId=...&Signature=...``. The origin is the mock's second listener (:func:`cdn_app`,
served by :class:`mock_server.server.MockServers`), a host:port of its own as MiniMax's CDN is;
when only the API app is served (``create_app`` in tests, the in-process ``mmgen run --mock``)
the same files are served on the API origin under ``/cdn/video/...``.

No auth: the signature is the credential; 403 once expired (``download_url_ttl``), Range
requests honoured, ``HEAD`` answered. A request that carries an ``Authorization`` header is
served all the same but journaled (``authorization: true`` in the request log and the task's
``download_log``, ``downloads_with_authorization`` in the stats): a client that sends its API key
to the CDN leaks it to a third party, which a tester wants to see.

The CDN origin may run on its own thread and event loop: its handler only reads the shared state
and hands every change (counters, journals) to the API's loop through ``MockApi.bookkeep``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mock_server.responses import (
    DroppedResponse,
    TraceIdMiddleware,
    VideoFile,
    VideoResponse,
    nginx_error,
    oss_error,
    parse_range,
)

if TYPE_CHECKING:
    from mock_server.app import MockApi

FILENAME = "output_aigc.mp4"
ACCESS_KEY_ID = "mmgen-mock"
CDN_PATH = "/video/{file_id:str}/" + FILENAME  # on the CDN origin
FALLBACK_PATH = "/cdn" + CDN_PATH  # on the API origin, when no CDN origin is served


def sign(key: bytes, file_id: str, expires: int) -> str:
    mac = hmac.new(key, f"{file_id}:{expires}".encode(), hashlib.sha256)
    return mac.hexdigest()[:28]


def download_url(api: MockApi, request: Request, file_id: str, expires: int) -> str:
    """The signed URL of a file, on the CDN origin when there is one."""
    if api.cdn_base_url:
        base = api.cdn_base_url.rstrip("/") + "/video"
    else:
        base = str(request.base_url).rstrip("/") + "/cdn/video"
    return (
        f"{base}/{file_id}/{FILENAME}?Expires={expires}"
        f"&OSSAccessKeyId={ACCESS_KEY_ID}&Signature={sign(api.url_key, file_id, expires)}"
    )


async def download(api: MockApi, request: Request) -> Response:
    """``GET {origin}/video/{file_id}/output_aigc.mp4?Expires=&OSSAccessKeyId=&Signature=``."""
    counts: list[str] = ["requests.download"]
    with_auth = "authorization" in request.headers
    if with_auth:
        counts.append("downloads_with_authorization")
    entry: dict[str, Any] = {
        "at": api.clock(),
        "method": request.method,
        "endpoint": "download",
        "path": request.url.path,
        "code": None,
        "fault": None,
        "authorization": with_auth,
        "trace_id": str(request.scope.get("mock.trace_id", "")),
    }

    def book(status: int, fault: str | None = None, task: Any = None, *more: str) -> None:
        entry.update(http_status=status, fault=fault)
        names = [*counts, *more, *([f"faults.{fault}"] if fault else [])]

        def apply() -> None:
            for name in names:
                api.store.stats[name] += 1
            api.store.log(entry)
            if task is not None:
                task.downloads += 1
                task.download_log.append(
                    {"at": entry["at"], "http_status": status, "authorization": with_auth}
                )

        api.bookkeep(apply)

    config = api.config
    dice = api.store.dice
    if dice.roll("drop:download", config.faults.drops.rate("download")):
        book(200, "drop")
        return DroppedResponse()
    if dice.roll("server_error:download", config.faults.server_errors.rate("download")):
        status = config.faults.server_errors.status
        book(status, "server_error")
        return nginx_error(status)
    file_id = request.path_params["file_id"]
    task = api.store.files.get(file_id)
    if task is None or not task.succeeded(api.clock()):
        book(404)
        return oss_error(404, "NoSuchKey", "The specified key does not exist.")
    expires_raw = request.query_params.get("Expires", "")
    signature = request.query_params.get("Signature", "")
    if not expires_raw.isdigit() or not hmac.compare_digest(
        signature, sign(api.url_key, file_id, int(expires_raw))
    ):
        book(403)
        return oss_error(
            403,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        )
    faults = config.faults.downloads
    expired_fault = dice.roll("download:expired", faults.expired_probability)
    if expired_fault or api.clock() > int(expires_raw):
        book(403, "expired" if expired_fault else None, None, "downloads_expired")
        return oss_error(403, "AccessDenied", "Request has expired.")
    file = VideoFile(await api.video(task), config.video.min_bytes)
    status, headers = 200, {"Accept-Ranges": "bytes"}
    start, end = 0, file.size
    range_header = request.headers.get("range")
    if range_header:
        span = parse_range(range_header, file.size)
        if span is None:
            book(416)
            return oss_error(416, "InvalidRange", "The requested range cannot be satisfied.")
        start, end = span[0], span[1] + 1
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{file.size}"
    digest = hashlib.md5(file.video).hexdigest().upper()
    headers["ETag"] = f'"{digest}"' if file.size == len(file.video) else f'"{digest}-{file.size}"'
    slow = dice.roll("download:slow", faults.slow_probability)
    truncate = dice.roll("download:truncate", faults.truncate_probability)
    fault = "slow_download" if slow else None
    abort_after = None
    extra: list[str] = ["downloads"]
    if truncate:
        fault = "truncated_download"
        extra.append("downloads_truncated")
        cut = int((end - start) * faults.truncate_fraction)
        if faults.truncate_mode == "short":
            end = start + cut
        else:
            abort_after = cut
    book(status, fault, task, *extra)

    def completed() -> None:
        api.bookkeep(lambda: api.store.stats.update(("downloads_completed",)))

    on_complete: Callable[[], None] | None = completed if abort_after is None else None
    return VideoResponse(
        file,
        status,
        headers,
        start=start,
        end=end,
        bytes_per_second=faults.bytes_per_second if slow else None,
        abort_after=abort_after,
        on_complete=on_complete,
    )


def cdn_app(api: MockApi) -> Starlette:
    """The CDN origin: only the video downloads (GET and HEAD), no inspection, no API."""

    async def handler(request: Request) -> Response:
        return await download(api, request)

    return Starlette(
        routes=[Route(CDN_PATH, handler, methods=["GET"])],
        middleware=[Middleware(TraceIdMiddleware)],
    )
