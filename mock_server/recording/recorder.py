"""``mmgen mock --record FILE --upstream URL``: a recording proxy in front of a MiniMax-like API.

Every request is forwarded to the upstream as it came (the ``Authorization`` header included:
the upstream needs it) and its answer is returned as it came, with two rewrites so that the
rest of the traffic also flows through the recorder:

- a create's ``callback_url`` becomes ``<public base>/_recording/callbacks/<token>``: the
  upstream's POSTs there (the challenge, synchronous during the create or after it, and the
  status pushes) are forwarded to the original receiver, whose answer goes back to the
  upstream, and both are recorded;
- a retrieve's ``download_url`` becomes ``<base the client used>/_recording/downloads/<n>``:
  the video is streamed from the upstream's URL to the client and, chunk by chunk, to a file
  beside the recording (never held in memory whole).

Every exchange, callback and download becomes one fsync'd line of the recording (written
before the answer goes back), with every credential redacted; see
:mod:`mock_server.recording.format`. Transport failures towards the upstream are answered
502 (connection never made: safe to retry) or 504 (the request may have been processed), with
no ``base_resp``, so a client treats a failed create as ambiguous rather than retrying it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import anyio
import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from mock_server.recording.format import (
    RecordingWriter,
    body_fields,
    parse_json,
    request_key,
)
from mock_server.recording.redaction import Redactor

log = logging.getLogger("mock_server.recording")

CREATE_PATH = "/v1/video_generation"
CALLBACK_PREFIX = "/_recording/callbacks"
DOWNLOAD_PREFIX = "/_recording/downloads"
#: Sent upstream; a request that comes back with it means the upstream is this recorder.
LOOP_HEADER = "x-mmgen-recorder"

#: A create may wait for the synchronous challenge; a real API answers within seconds.
UPSTREAM_TIMEOUT = httpx.Timeout(120.0, connect=10.0)
RECEIVER_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
DOWNLOAD_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
CHUNK = 64 * 1024

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "content-encoding",
        "accept-encoding",
    }
)
#: Download response headers passed to the client and kept in the recording.
DOWNLOAD_HEADERS = (
    "content-type",
    "content-length",
    "content-range",
    "etag",
    "last-modified",
    "accept-ranges",
)


def display_url(url: str) -> str:
    """A URL as it may be written down: no user info, no query string (signatures, keys)."""
    parsed = httpx.URL(url)
    return str(parsed.copy_with(query=None, fragment=None, username=None, password=None))


def _forward_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {name: value for name, value in headers if name.lower() not in HOP_BY_HOP}


class Recorder:
    """The proxy's handlers and state (``app.state.recorder``)."""

    def __init__(
        self,
        path: Path,
        upstream: str,
        *,
        public_url: str | None = None,
        secrets_: Iterable[str | None] = (),
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.public_url = public_url.rstrip("/") if public_url else None
        self.redactor = Redactor(secrets_)
        self.writer = RecordingWriter(path, self.redactor, upstream=display_url(self.upstream))
        self._receivers: dict[str, str] = {}  # callback token -> the client's callback_url
        self._downloads: dict[str, tuple[str, str]] = {}  # id -> (upstream URL, file_id)
        self._download_ids = itertools.count(1)
        self._api: httpx.AsyncClient | None = None
        self._receiver_http: httpx.AsyncClient | None = None

    # --- plumbing -------------------------------------------------------------------------

    def _api_client(self) -> httpx.AsyncClient:
        if self._api is None:
            self._api = httpx.AsyncClient(timeout=UPSTREAM_TIMEOUT, follow_redirects=False)
        return self._api

    def _receiver_client(self) -> httpx.AsyncClient:
        if self._receiver_http is None:  # receivers are usually local: no proxies
            self._receiver_http = httpx.AsyncClient(timeout=RECEIVER_TIMEOUT, trust_env=False)
        return self._receiver_http

    def _recorded_headers(self, request: Request) -> dict[str, str]:
        """A request's end-to-end headers, credentials redacted (and learned)."""
        return self.redactor.headers(
            (name, value) for name, value in request.headers.items() if name not in HOP_BY_HOP
        )

    async def _append(self, kind: str, event: dict[str, Any]) -> None:
        await asyncio.to_thread(self.writer.append, kind, event)

    async def aclose(self) -> None:
        for client in (self._api, self._receiver_http):
            if client is not None:
                await client.aclose()
        self._api = self._receiver_http = None
        self.writer.close()

    # --- the API, proxied -----------------------------------------------------------------

    async def proxy(self, request: Request) -> Response:
        if request.headers.get(LOOP_HEADER):
            return JSONResponse(
                {"recorder_error": "the upstream is this recorder itself: check --upstream"}, 508
            )
        at, started = self.writer.now(), time.perf_counter()
        raw = await request.body()
        for name, value in request.headers.items():
            self.redactor.learn_header(name, value)
        path = request.url.path
        query = list(request.query_params.multi_items())
        extra: dict[str, Any] = {}
        forward = raw
        if request.method == "POST" and path.rstrip("/") == CREATE_PATH:
            forward = self._reroute_callback(request, raw, extra)
        url = self.upstream + path + (f"?{request.url.query}" if request.url.query else "")
        headers = _forward_headers(request.headers.items())
        headers[LOOP_HEADER] = "1"
        try:
            upstream = await self._api_client().request(
                request.method, url, content=forward, headers=headers
            )
            status, content = upstream.status_code, upstream.content
            answer_headers = _forward_headers(upstream.headers.multi_items())
        except httpx.TransportError as err:
            never_sent = isinstance(err, httpx.ConnectError | httpx.ConnectTimeout)
            status = 502 if never_sent else 504
            message = f"recorder: {request.method} {path} to the upstream failed: "
            message += f"{type(err).__name__}: {err}".rstrip(": ")
            content = json.dumps({"recorder_error": self.redactor.text(message)}).encode()
            answer_headers = {"content-type": "application/json"}
            log.warning("%s", self.redactor.text(message))
        recorded = content
        if status == 200 and path.rstrip("/") == "/v1/files/retrieve":
            content, recorded = self._reroute_download(request, content, extra)
        data = parse_json(content) if path.rstrip("/") == CREATE_PATH else None
        if isinstance(data, dict) and data.get("task_id"):
            extra["task_id"] = str(data["task_id"])
        await self._append(
            "exchange",
            {
                "at": at,
                "elapsed_ms": round((time.perf_counter() - started) * 1000, 1),
                "request": {
                    "method": request.method,
                    "path": path,
                    "query": [list(item) for item in query],
                    "headers": self._recorded_headers(request),
                    **body_fields(raw, clip_strings=True),
                    "key": request_key(request.method, path, query, raw),
                },
                "response": {
                    "status": status,
                    "headers": self.redactor.headers(answer_headers),
                    **body_fields(recorded),
                },
                **extra,
            },
        )
        return Response(content, status, headers=answer_headers)

    def _reroute_callback(self, request: Request, raw: bytes, extra: dict[str, Any]) -> bytes:
        """Point a create's callback_url at the recorder; returns the body to forward."""
        body = parse_json(raw)
        if not isinstance(body, dict):
            return raw
        receiver = body.get("callback_url")
        if not isinstance(receiver, str) or not receiver.strip():
            return raw
        token = secrets.token_urlsafe(12)
        self._receivers[token] = receiver
        base = self.public_url or str(request.base_url).rstrip("/")
        body["callback_url"] = f"{base}{CALLBACK_PREFIX}/{token}"
        extra["callback"] = {"token": token}
        return json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")

    def _reroute_download(
        self, request: Request, content: bytes, extra: dict[str, Any]
    ) -> tuple[bytes, bytes]:
        """Point a retrieve's download_url at the recorder: (for the client, for the file)."""
        data = parse_json(content)
        file = data.get("file") if isinstance(data, dict) else None
        if not isinstance(file, dict) or not isinstance(file.get("download_url"), str):
            return content, content
        original = file["download_url"]
        try:
            upstream_url = display_url(original)
        except httpx.InvalidURL:
            return content, content
        download_id = str(next(self._download_ids))
        file_id = str(file.get("file_id", ""))
        self._downloads[download_id] = (original, file_id)
        extra["download"] = {"id": download_id, "file_id": file_id, "upstream": upstream_url}
        base = str(request.base_url).rstrip("/")
        file["download_url"] = f"{base}{DOWNLOAD_PREFIX}/{download_id}"
        for_client = json.dumps(data, ensure_ascii=False).encode()
        file["download_url"] = f"{DOWNLOAD_PREFIX}/{download_id}"  # replay puts its own base
        return for_client, json.dumps(data, ensure_ascii=False).encode()

    # --- callbacks: upstream -> recorder -> the client's receiver ---------------------------

    async def callback(self, request: Request) -> Response:
        token = request.path_params["token"]
        raw = await request.body()
        receiver = self._receivers.get(token)
        if receiver is None:
            return JSONResponse({"recorder_error": "unknown callback token"}, 404)
        at, started = self.writer.now(), time.perf_counter()
        payload = parse_json(raw)
        challenge = isinstance(payload, dict) and "challenge" in payload
        headers = _forward_headers(request.headers.items())
        response: Response
        try:
            answer = await self._receiver_client().post(receiver, content=raw, headers=headers)
            outcome: dict[str, Any] = {"status": answer.status_code, **body_fields(answer.content)}
            response = Response(
                answer.content,
                answer.status_code,
                media_type=answer.headers.get("content-type", "application/json"),
            )
        except httpx.HTTPError as err:
            detail = f"{type(err).__name__}: {err}".rstrip(": ")[:200]
            outcome = {"error": detail}
            response = JSONResponse(
                {"recorder_error": f"the callback receiver could not be reached: {detail}"}, 502
            )
        await self._append(
            "callback",
            {
                "at": at,
                "elapsed_ms": round((time.perf_counter() - started) * 1000, 1),
                "token": token,
                "challenge": challenge,
                "task_id": str(payload["task_id"])
                if isinstance(payload, dict) and payload.get("task_id")
                else None,
                "headers": self._recorded_headers(request),
                **({"payload": payload} if payload is not None else body_fields(raw)),
                "receiver": outcome,
            },
        )
        return response

    # --- downloads: upstream CDN -> recorder -> client, and a file beside the recording -----

    async def download(self, request: Request) -> Response:
        download_id = request.path_params["download_id"]
        entry = self._downloads.get(download_id)
        if entry is None:
            return JSONResponse({"recorder_error": f"unknown download {download_id}"}, 404)
        url, file_id = entry
        headers = {"accept-encoding": "identity"}  # the bytes on disk are the bytes served
        if "range" in request.headers:
            headers["range"] = request.headers["range"]
        event: dict[str, Any] = {
            "at": self.writer.now(),
            "id": download_id,
            "file_id": file_id,
            # a client sending its key to the CDN host leaks it: worth knowing
            "client_sent_authorization": "authorization" in request.headers,
        }
        client = self._api_client()
        try:
            upstream = await client.send(
                client.build_request(
                    request.method, url, headers=headers, timeout=DOWNLOAD_TIMEOUT
                ),
                stream=True,
                follow_redirects=True,
            )
        except httpx.TransportError as err:
            detail = f"{type(err).__name__}: {err}".rstrip(": ")[:200]
            await self._append("download", {**event, "status": 502, "error": detail})
            return JSONResponse({"recorder_error": f"download failed: {detail}"}, 502)
        answer_headers = {
            name: upstream.headers[name] for name in DOWNLOAD_HEADERS if name in upstream.headers
        }
        if "content-encoding" in upstream.headers:  # decoded on the way: the length changes
            answer_headers.pop("content-length", None)
        event.update(status=upstream.status_code, headers=dict(answer_headers))
        if request.method == "HEAD":
            await upstream.aclose()
            return Response(b"", upstream.status_code, headers=answer_headers)
        if upstream.status_code not in (200, 206):  # an error page: small
            try:
                content = await upstream.aread()
            finally:
                await upstream.aclose()
            await self._append(
                "download", {**event, "video": None, "complete": True, **body_fields(content)}
            )
            return Response(content, upstream.status_code, headers=answer_headers)
        return StreamingResponse(
            self._stream(upstream, event), upstream.status_code, headers=answer_headers
        )

    async def _stream(
        self, upstream: httpx.Response, event: dict[str, Any]
    ) -> AsyncIterator[bytes]:
        """Pass the video on chunk by chunk, keeping a whole one (a 200, not a 206 range)."""
        whole = upstream.status_code == 200
        part = self.writer.video_part()
        complete = False
        try:
            async for chunk in upstream.aiter_bytes(CHUNK):
                if whole:
                    part.write(chunk)
                yield chunk
            complete = True
        except httpx.TransportError as err:  # the client must see it broken off, too
            log.warning("download %s: the upstream broke off: %s", event["id"], err)
            raise UpstreamBrokeOff(str(err)) from None
        finally:
            with anyio.CancelScope(shield=True):
                await upstream.aclose()
            if complete and whole:
                name = await asyncio.to_thread(part.commit)
                kept = {"video": name, "sha256": part.sha256, "bytes": part.bytes}
                self.writer.append("download", {**event, **kept, "complete": True})
            else:  # a range, or the client or the upstream broke off: not a video to keep
                part.discard()
                self.writer.append("download", {**event, "video": None, "complete": complete})


class UpstreamBrokeOff(Exception):
    """A download the upstream broke off: the client's connection is closed the same way."""


class RedactingFilter(logging.Filter):
    """Scrubs learned secrets from log records (uvicorn's access log prints query strings),
    and drops uvicorn's traceback of a download the upstream broke off (already logged)."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], UpstreamBrokeOff):
            return False
        if isinstance(record.msg, str):
            record.msg = self.redactor.text(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(
                self.redactor.text(arg) if isinstance(arg, str) else arg for arg in record.args
            )
        return True


#: Loggers whose records may carry a request line or an error with a URL in it.
REDACTED_LOGGERS = ("uvicorn.access", "uvicorn.error", "mock_server.recording")


def create_recorder_app(
    path: Path,
    upstream: str,
    *,
    public_url: str | None = None,
    secrets_: Iterable[str | None] = (),
) -> Starlette:
    """The recording proxy as a starlette app (state at ``app.state.recorder``).

    ``path`` is the new recording (an existing non-empty file is refused: UsageError);
    ``upstream`` the API's base URL; ``public_url`` the base URL under which the *upstream*
    reaches this proxy for callbacks (default: the base URL the client used); ``secrets_``
    are redacted from the start (e.g. ``MINIMAX_API_KEY``), on top of every credential header
    seen; while the app runs, they are also scrubbed from uvicorn's logs.
    """
    recorder = Recorder(path, upstream, public_url=public_url, secrets_=secrets_)

    redacting = RedactingFilter(recorder.redactor)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        for name in REDACTED_LOGGERS:
            logging.getLogger(name).addFilter(redacting)
        try:
            yield
        finally:
            for name in REDACTED_LOGGERS:
                logging.getLogger(name).removeFilter(redacting)
            await recorder.aclose()

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    routes = [
        Route(CALLBACK_PREFIX + "/{token:str}", recorder.callback, methods=["POST"]),
        Route(DOWNLOAD_PREFIX + "/{download_id:str}", recorder.download, methods=["GET", "HEAD"]),
        Route("/{path:path}", recorder.proxy, methods=methods),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.recorder = recorder
    return app
