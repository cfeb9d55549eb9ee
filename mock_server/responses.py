"""The mock's special responses: trace ids, dropped connections, gateway and object-store
errors, and video bodies that are streamed (throttled, cut short, padded) without being copied."""

from __future__ import annotations

import asyncio
import logging
import secrets
import struct
from collections.abc import Callable, Iterator

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CHUNK = 64 * 1024
_ZEROS = bytes(CHUNK)

_REASONS = {
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Temporarily Unavailable",
    504: "Gateway Time-out",
}


class InjectedDisconnect(Exception):
    """Raised after the response started, so the server closes the connection (a fault)."""


class _QuietInjectedDisconnects(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, InjectedDisconnect)


_quiet_filter = _QuietInjectedDisconnects()


def install_log_filter() -> None:
    """Keep uvicorn from logging the injected disconnects as server errors."""
    logger = logging.getLogger("uvicorn.error")
    if _quiet_filter not in logger.filters:
        logger.addFilter(_quiet_filter)


class TraceIdMiddleware:
    """Adds a fresh ``Trace-Id`` header to every response (and puts it in the scope)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        trace_id = secrets.token_hex(16)
        scope["mock.trace_id"] = trace_id
        header = (b"trace-id", trace_id.encode())

        async def send_with_trace(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), header]}
            await send(message)

        await self.app(scope, receive, send_with_trace)


class DroppedResponse(Response):
    """Sends the status line and headers, then closes the connection without the body."""

    def __init__(self) -> None:
        super().__init__(b"", 200, media_type="application/json")
        self.headers["content-length"] = "512"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        raise InjectedDisconnect("connection dropped (fault)")


def nginx_error(status: int) -> Response:
    """A 5xx as a gateway sends it: an HTML page, not JSON."""
    title = f"{status} {_REASONS.get(status, 'Server Error')}"
    page = (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1>"
        "</center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    )
    return Response(page, status, media_type="text/html")


def oss_error(status: int, code: str, message: str) -> Response:
    """An error of the object store behind download URLs (XML, like Alibaba OSS)."""
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error>\n'
        f"  <Code>{code}</Code>\n  <Message>{message}</Message>\n"
        f"  <RequestId>{secrets.token_hex(12).upper()}</RequestId>\n"
        "  <HostId>mmgen-mock.oss</HostId>\n</Error>\n"
    )
    return Response(xml, status, media_type="application/xml")


class VideoFile:
    """An MP4 file, optionally padded to ``min_bytes`` with a trailing ``free`` box.

    Players skip ``free`` boxes, so the padded file plays like the video; the padding is never
    materialised: :meth:`chunks` yields slices of the video and of one shared block of zeros.
    """

    def __init__(self, video: bytes, min_bytes: int = 0) -> None:
        self.video = video
        pad = max(0, min_bytes - len(video))
        if pad:
            pad = max(pad, 16)
            header = (
                struct.pack(">I4s", pad, b"free")
                if pad < 2**32
                else struct.pack(">I4sQ", 1, b"free", pad)
            )
            self.head = video + header
            self.size = len(video) + pad
        else:
            self.head = video
            self.size = len(video)

    def chunks(self, start: int, end: int) -> Iterator[bytes]:
        """The bytes ``[start, end)``, in pieces of at most :data:`CHUNK`."""
        position = start
        while position < end:
            stop = min(end, position + CHUNK)
            if position < len(self.head):
                stop = min(stop, len(self.head))
                yield self.head[position:stop]
            else:
                yield _ZEROS[: stop - position]
            position = stop


class VideoResponse(Response):
    """Bytes ``[start, end)`` of a :class:`VideoFile`, in chunks (never the whole padded file in
    memory), optionally throttled, optionally cut short (the connection closed mid-body)."""

    def __init__(
        self,
        file: VideoFile,
        status_code: int,
        headers: dict[str, str],
        *,
        start: int = 0,
        end: int | None = None,
        bytes_per_second: float | None = None,
        abort_after: int | None = None,
        on_complete: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(b"", status_code, headers, media_type="video/mp4")
        self.file = file
        self.start = start
        self.end = file.size if end is None else end
        self.headers["content-length"] = str(self.end - self.start)
        self.bytes_per_second = bytes_per_second
        self.abort_after = abort_after
        self.on_complete = on_complete

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        if scope.get("method") == "HEAD":
            await send({"type": "http.response.body", "body": b""})
            return
        stop = self.end if self.abort_after is None else self.start + self.abort_after
        if (
            stop - self.start <= CHUNK
            and self.bytes_per_second is None
            and self.abort_after is None
        ):
            if self.on_complete is not None:
                self.on_complete()
            body = b"".join(self.file.chunks(self.start, stop))
            await send({"type": "http.response.body", "body": body})
            return
        disconnected = asyncio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            disconnected.set()

        watcher = asyncio.get_running_loop().create_task(watch())
        try:
            first = True
            for chunk in self.file.chunks(self.start, stop):
                if disconnected.is_set():
                    return
                if not first and self.bytes_per_second is not None:
                    await asyncio.sleep(len(chunk) / self.bytes_per_second)
                first = False
                # uvicorn's send waits while the socket's buffer is full: memory stays bounded
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        finally:
            watcher.cancel()
        if self.abort_after is not None:
            raise InjectedDisconnect("download truncated (fault)")
        if self.on_complete is not None:
            self.on_complete()
        await send({"type": "http.response.body", "body": b""})


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """``bytes=START-[END]`` or ``bytes=-SUFFIX`` -> inclusive (start, end), None if unusable."""
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, _, last = spec.strip().partition("-")
    try:
        if not first:
            length = int(last)
            if length <= 0:
                return None
            return max(0, size - length), size - 1
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start >= size or end < start:
        return None
    return start, min(end, size - 1)
