"""The mock MiniMax video API as a starlette app.

API routes (same paths, parameters and JSON as ``docs/minimax-api.md``; Bearer auth):

- ``POST /v1/video_generation`` -> ``{"task_id", "base_resp"}``
- ``GET /v1/query/video_generation?task_id=`` -> ``{"task_id", "status", ["file_id",
  "video_width", "video_height"], "base_resp"}``
- ``GET /v1/files/retrieve?file_id=`` (string or number; ``GroupId`` ignored) -> ``{"file":
  {"file_id" (int), "bytes", "created_at", "filename", "purpose", "download_url"}, "base_resp"}``
- ``GET /cdn/video/{file_id}/output_aigc.mp4?Expires=&OSSAccessKeyId=&Signature=``: the
  download URL, like an OSS signed URL: no auth, 403 once expired (``download_url_ttl``), Range
  requests honoured. Its host is the one the client used (from the request), never configured.

Errors are HTTP 200 with ``base_resp`` (1004 no/malformed Bearer, 2049 wrong key when ``api_key``
is set, 2013 invalid body naming the field or unknown task/file, 1002, 1008, 1026, 1027...),
except the configured non-200 faults (429, 5xx, dropped connections). Every response carries a
``Trace-Id`` header.

Inspection routes (no auth): ``GET /_mock/tasks`` (``{"tasks": [...]}``),
``GET /_mock/tasks/{task_id}``, ``GET /_mock/stats``, ``GET /_mock/requests`` (the last 10,000
requests: endpoint, outcome code, fault), ``GET /_mock/config`` (with the effective seed) and
``POST /_mock/reset`` (forget everything, re-seed, stop pending callbacks).

``GET /_mock/stats`` holds ``created``; the current count per status (``Preparing``,
``Queueing``, ``Processing``, ``Success``, ``Fail``); ``queries``, ``retrieves``, ``downloads``
(download responses begun), ``downloads_completed``, ``downloads_expired``,
``downloads_truncated``; ``rejected`` (API requests refused with a code or a fault);
``challenges_sent|ok|failed|skipped``; ``callbacks_sent`` (update POSTs attempted),
``callbacks_delivered``, ``callbacks_failed``, ``callbacks_dropped``, ``callbacks_pending``;
``videos_rendered``; and the groups ``requests`` (by endpoint), ``errors`` (by base_resp code)
and ``faults`` (by kind).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mock_server.callbacks import CallbackDispatcher
from mock_server.clock import Clock, system_clock
from mock_server.config import MockConfig
from mock_server.store import MockStore, clip
from mock_server.tasks import OK_RESP, Task, base_resp, plan_task
from mock_server.validation import ignored_fields, invalid_params
from mock_server.video import VideoCache, VideoSpec

log = logging.getLogger("mock_server")

#: status_msg per base_resp code, as close to MiniMax's wording as known.
MESSAGES = {
    1000: "unknown error",
    1001: "request timeout",
    1002: "rate limit exceeded(RPM)",
    1004: "login fail: Please carry the API secret key in the 'Authorization' field of the "
    "request header",
    1008: "insufficient balance",
    1013: "internal service error",
    1024: "internal error",
    1026: "input new_sensitive",
    1027: "output new_sensitive",
    1033: "system error",
    1039: "token limit exceeded",
    1041: "conn limit exceeded",
    1042: "illegal characters exceeded the limit",
    2013: "invalid params",
    2045: "rate growth limit exceeded",
    2049: "invalid api key",
    2056: "usage limit exceeded",
}

_REASONS = {
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Temporarily Unavailable",
    504: "Gateway Time-out",
}

FILENAME = "output_aigc.mp4"
ACCESS_KEY_ID = "mmgen-mock"
CHUNK = 16 * 1024


class InjectedDisconnect(Exception):
    """Raised after the response started, so the server closes the connection (a fault)."""


class _QuietInjectedDisconnects(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, InjectedDisconnect)


_quiet_filter = _QuietInjectedDisconnects()


def _install_log_filter() -> None:
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


class BodyResponse(Response):
    """Bytes sent in chunks, optionally throttled, optionally cut short (connection closed)."""

    def __init__(
        self,
        body: bytes,
        status_code: int,
        headers: dict[str, str],
        *,
        bytes_per_second: float | None = None,
        abort_after: int | None = None,
        on_complete: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(b"", status_code, headers, media_type="video/mp4")
        self.payload = body
        self.headers["content-length"] = str(len(body))
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
        body = self.payload
        end = len(body) if self.abort_after is None else self.abort_after
        if self.bytes_per_second is None and self.abort_after is None:
            if self.on_complete is not None:
                self.on_complete()
            await send({"type": "http.response.body", "body": body})
        else:
            disconnected = asyncio.Event()

            async def watch() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                disconnected.set()

            watcher = asyncio.get_running_loop().create_task(watch())
            try:
                for start in range(0, end, CHUNK):
                    if disconnected.is_set():
                        return
                    chunk = body[start : min(start + CHUNK, end)]
                    if start and self.bytes_per_second is not None:
                        await asyncio.sleep(len(chunk) / self.bytes_per_second)
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            finally:
                watcher.cancel()
            if self.abort_after is not None:
                raise InjectedDisconnect("download truncated (fault)")
            if self.on_complete is not None:
                self.on_complete()
            await send({"type": "http.response.body", "body": b""})


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


class MockApi:
    """The handlers and the state behind one app instance (``app.state.mock``)."""

    def __init__(self, config: MockConfig, clock: Clock, *, injected_clock: bool) -> None:
        self.config = config
        self.clock = clock
        self.seed = config.seed if config.seed is not None else secrets.randbits(32)
        self.store = MockStore(config, self.seed)
        self.videos = VideoCache()
        self.callbacks = CallbackDispatcher(
            config=config,
            clock=clock,
            stats=self.store.stats,
            poll_interval=0.02 if injected_clock else None,
        )
        self._url_key = hashlib.sha256(f"{self.seed}:{secrets.token_hex(8)}".encode()).digest()

    # --- plumbing -------------------------------------------------------------------------

    def _trace(self, request: Request) -> str:
        return str(request.scope.get("mock.trace_id", ""))

    def _record(
        self, request: Request, endpoint: str, http_status: int, code: int | None, fault: str | None
    ) -> None:
        if request.scope.get("mock.quiet"):
            return
        stats = self.store.stats
        if code:
            stats[f"errors.{code}"] += 1
        if fault:
            stats[f"faults.{fault}"] += 1
        if endpoint != "download" and (code or fault):
            stats["rejected"] += 1
        self.store.log(
            {
                "at": self.clock(),
                "method": request.method,
                "endpoint": endpoint,
                "path": request.url.path,
                "http_status": http_status,
                "code": code,
                "fault": fault,
                "trace_id": self._trace(request),
            }
        )

    def _error(
        self,
        request: Request,
        endpoint: str,
        code: int,
        message: str | None = None,
        *,
        fault: str | None = None,
        http_status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> Response:
        body: dict[str, Any] = {"task_id": ""} if endpoint == "create" else {}
        body["base_resp"] = base_resp(code, message or MESSAGES.get(code, "error"))
        self._record(request, endpoint, http_status, code, fault)
        return JSONResponse(body, http_status, headers)

    def _ok(self, request: Request, endpoint: str, body: dict[str, Any]) -> Response:
        self._record(request, endpoint, 200, None, None)
        return JSONResponse(body)

    def _transport_fault(self, request: Request, endpoint: str) -> tuple[Response, bool] | None:
        """A dropped connection or a 5xx, by probability; with whether a create still commits."""
        faults = self.config.faults
        dice = self.store.dice
        if dice.roll(f"drop:{endpoint}", faults.drops.rate(endpoint)):
            self._record(request, endpoint, 200, None, "drop")
            return DroppedResponse(), faults.drops.create_commits
        if dice.roll(f"server_error:{endpoint}", faults.server_errors.rate(endpoint)):
            status = faults.server_errors.status
            self._record(request, endpoint, status, None, "server_error")
            return nginx_error(status), faults.server_errors.create_commits
        return None

    def _gate(self, request: Request, endpoint: str) -> tuple[str, Response | None]:
        """Auth, rate limits and injected codes; returns (the caller's key, a refusal or None)."""
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or any(c.isspace() for c in token):
            return "", self._error(request, endpoint, 1004)
        if self.config.api_key is not None and token != self.config.api_key:
            return token, self._error(request, endpoint, 2049)
        faults = self.config.faults
        limit = faults.rate_limit
        if endpoint in limit.endpoints:
            kind = None
            if self.store.dice.roll(f"rate_limit:{endpoint}", limit.probability):
                kind = "rate_limit"
            elif self.store.rpm is not None and not self.store.rpm.try_acquire(self.clock()):
                kind = "rpm_budget"
            if kind is not None:
                headers = (
                    {"Retry-After": str(limit.retry_after)}
                    if limit.retry_after is not None
                    else None
                )
                return token, self._error(
                    request,
                    endpoint,
                    1002,
                    fault=kind,
                    http_status=limit.http_status,
                    headers=headers,
                )
        for index, fault in enumerate(faults.codes):
            if endpoint in fault.endpoints and self.store.dice.roll(
                f"code:{index}:{endpoint}", fault.probability
            ):
                return token, self._error(
                    request,
                    endpoint,
                    fault.code,
                    fault.message,
                    fault="code",
                    http_status=fault.http_status,
                )
        return token, None

    # --- API ------------------------------------------------------------------------------

    async def create(self, request: Request) -> Response:
        self.store.stats["requests.create"] += 1
        transport = self._transport_fault(request, "create")
        if transport is not None and not transport[1]:
            return transport[0]
        if transport is not None:  # the task may be created, but the client hears the fault
            request.scope["mock.quiet"] = True
        response = await self._create_task(request)
        return transport[0] if transport is not None else response

    async def _create_task(self, request: Request) -> Response:
        owner, refusal = self._gate(request, "create")
        if refusal is not None:
            return refusal
        raw = await request.body()
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return self._error(
                request, "create", 2013, "invalid params, the request body is not valid JSON"
            )
        problem = invalid_params(body)
        if problem is not None:
            return self._error(request, "create", 2013, problem)
        faults = self.config.faults
        prompt = str(body.get("prompt") or "").lower()
        if any(w.lower() in prompt for w in faults.sensitive.input_words if w):
            return self._error(request, "create", 1026, fault="sensitive_input")
        if self.store.dice.roll("sensitive_input", faults.sensitive.input_probability):
            return self._error(request, "create", 1026, fault="sensitive_input")
        max_tasks = faults.balance.max_tasks
        if max_tasks is not None and len(self.store.tasks) >= max_tasks:
            return self._error(request, "create", 1008, fault="balance")
        task = self._new_task(body, raw, owner, self._trace(request))
        if task.callback_url:
            self.callbacks.start(task)
        return self._ok(request, "create", {"task_id": task.task_id, "base_resp": dict(OK_RESP)})

    def _new_task(self, body: dict[str, Any], raw: bytes, owner: str, trace_id: str) -> Task:
        store = self.store
        seq = store.next_seq
        store.next_seq += 1
        now = self.clock()
        plan = plan_task(config=self.config, rng=store.dice.task_rng(seq), request=body, now=now)
        subject: str | None = None
        refs = body.get("subject_reference") or []
        if refs and isinstance(refs[0], dict) and refs[0].get("image"):
            subject = str(refs[0]["image"][0])
        elif body.get("first_frame_image"):
            subject = str(body["first_frame_image"])
        video = self.config.video
        spec = VideoSpec(
            prompt=str(body.get("prompt") or ""),
            model=str(body["model"]),
            subject=store.intern(subject) if subject is not None else None,
            width=video.width,
            height=video.height,
            fps=video.fps,
            seconds=video.seconds,
        )
        task = Task(
            seq=seq,
            task_id=store.task_ids(),
            file_id=store.file_ids(),
            owner=owner,
            created_at=now,
            request=clip(body),
            request_sha256=hashlib.sha256(raw).hexdigest(),
            request_bytes=len(raw),
            ignored_fields=ignored_fields(body),
            trace_id=trace_id,
            width=video.width,
            height=video.height,
            video=spec,
            callback_url=body.get("callback_url"),
            **plan,
        )
        store.add(task)
        return task

    async def query(self, request: Request) -> Response:
        self.store.stats["requests.query"] += 1
        transport = self._transport_fault(request, "query")
        if transport is not None:
            return transport[0]
        owner, refusal = self._gate(request, "query")
        if refusal is not None:
            return refusal
        task_id = request.query_params.get("task_id", "").strip().strip('"')
        if not task_id:
            return self._error(request, "query", 2013, "invalid params, task_id is required")
        task = self.store.tasks.get(task_id)
        if task is None or task.owner != owner:
            return self._error(request, "query", 2013, "invalid params, task not found")
        task.queries += 1
        self.store.stats["queries"] += 1
        return self._ok(request, "query", task.status_body(task.status_at(self.clock())))

    def _file_task(self, raw: str, owner: str | None) -> Task | None:
        raw = raw.strip().strip('"')
        if not raw.isdigit():
            return None
        task = self.store.files.get(str(int(raw)))
        if task is None or not task.succeeded(self.clock()):
            return None
        if owner is not None and task.owner != owner:
            return None
        return task

    async def retrieve(self, request: Request) -> Response:
        self.store.stats["requests.retrieve"] += 1
        transport = self._transport_fault(request, "retrieve")
        if transport is not None:
            return transport[0]
        owner, refusal = self._gate(request, "retrieve")
        if refusal is not None:
            return refusal
        raw = request.query_params.get("file_id", "")
        if not raw.strip():
            return self._error(request, "retrieve", 2013, "invalid params, file_id is required")
        task = self._file_task(raw, owner)
        if task is None:
            return self._error(request, "retrieve", 2013, "invalid params, file not found")
        video = await self._video(task)
        now = self.clock()
        expires = int(now + self.config.download_url_ttl)
        base = str(request.base_url).rstrip("/")
        url = (
            f"{base}/cdn/video/{task.file_id}/{FILENAME}?Expires={expires}"
            f"&OSSAccessKeyId={ACCESS_KEY_ID}&Signature={self._sign(task.file_id, expires)}"
        )
        task.retrieves += 1
        self.store.stats["retrieves"] += 1
        return self._ok(
            request,
            "retrieve",
            {
                "file": {
                    "file_id": int(task.file_id),
                    "bytes": len(video),
                    "created_at": int(task.ends_at),
                    "filename": FILENAME,
                    "purpose": "video_generation",
                    "download_url": url,
                },
                "base_resp": dict(OK_RESP),
            },
        )

    async def _video(self, task: Task) -> bytes:
        before = self.videos.renders
        video = await self.videos.get(task.video)
        if self.videos.renders != before:
            self.store.stats["videos_rendered"] = self.videos.renders
        return video

    def _sign(self, file_id: str, expires: int) -> str:
        mac = hmac.new(self._url_key, f"{file_id}:{expires}".encode(), hashlib.sha256)
        return mac.hexdigest()[:28]

    async def download(self, request: Request) -> Response:
        stats = self.store.stats
        stats["requests.download"] += 1
        transport = self._transport_fault(request, "download")
        if transport is not None:
            return transport[0]
        file_id = request.path_params["file_id"]
        task = self.store.files.get(file_id)
        if task is None or not task.succeeded(self.clock()):
            self._record(request, "download", 404, None, None)
            return oss_error(404, "NoSuchKey", "The specified key does not exist.")
        expires_raw = request.query_params.get("Expires", "")
        signature = request.query_params.get("Signature", "")
        if not expires_raw.isdigit() or not hmac.compare_digest(
            signature, self._sign(file_id, int(expires_raw))
        ):
            self._record(request, "download", 403, None, None)
            return oss_error(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            )
        faults = self.config.faults.downloads
        dice = self.store.dice
        expired_fault = dice.roll("download:expired", faults.expired_probability)
        if expired_fault or self.clock() > int(expires_raw):
            stats["downloads_expired"] += 1
            self._record(request, "download", 403, None, "expired" if expired_fault else None)
            return oss_error(403, "AccessDenied", "Request has expired.")
        video = await self._video(task)
        status, headers, body = 200, {"Accept-Ranges": "bytes"}, video
        range_header = request.headers.get("range")
        if range_header:
            span = _parse_range(range_header, len(video))
            if span is None:
                self._record(request, "download", 416, None, None)
                return oss_error(416, "InvalidRange", "The requested range cannot be satisfied.")
            start, end = span
            status, body = 206, video[start : end + 1]
            headers["Content-Range"] = f"bytes {start}-{end}/{len(video)}"
        headers["ETag"] = f'"{hashlib.md5(video).hexdigest().upper()}"'
        slow = dice.roll("download:slow", faults.slow_probability)
        truncate = dice.roll("download:truncate", faults.truncate_probability)
        fault = "slow_download" if slow else None
        abort_after = None
        if truncate:
            fault = "truncated_download"
            stats["downloads_truncated"] += 1
            cut = int(len(body) * faults.truncate_fraction)
            if faults.truncate_mode == "short":
                body = body[:cut]
            else:
                abort_after = cut
        task.downloads += 1
        stats["downloads"] += 1
        self._record(request, "download", status, None, fault)

        def completed() -> None:
            stats["downloads_completed"] += 1

        return BodyResponse(
            body,
            status,
            headers,
            bytes_per_second=faults.bytes_per_second if slow else None,
            abort_after=abort_after,
            on_complete=completed if abort_after is None else None,
        )

    # --- inspection -----------------------------------------------------------------------

    async def inspect_tasks(self, request: Request) -> Response:
        now = self.clock()
        return JSONResponse(
            {"tasks": [self.store.task_view(t, now) for t in self.store.tasks.values()]}
        )

    async def inspect_task(self, request: Request) -> Response:
        task = self.store.tasks.get(request.path_params["task_id"])
        if task is None:
            return JSONResponse({"error": "no such task"}, 404)
        return JSONResponse(self.store.task_view(task, self.clock()))

    async def inspect_stats(self, request: Request) -> Response:
        view = self.store.stats_view(self.clock())
        view["callbacks_pending"] = self.callbacks.pending
        return JSONResponse(view)

    async def inspect_requests(self, request: Request) -> Response:
        return JSONResponse({"requests": list(self.store.requests)})

    async def inspect_config(self, request: Request) -> Response:
        config = self.config.to_dict()
        config["effective_seed"] = self.seed
        if config.get("api_key"):
            config["api_key"] = "…"
        return JSONResponse(config)

    async def reset(self, request: Request) -> Response:
        self.callbacks.cancel_all()
        self.store.reset()
        self.callbacks.stats = self.store.stats
        return JSONResponse({"reset": True})

    async def aclose(self) -> None:
        await self.callbacks.aclose()


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
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


def create_app(config: MockConfig | None = None, *, clock: Clock | None = None) -> Starlette:
    """The mock MiniMax API as a starlette app, usable in-process or under any ASGI server.

    ``config`` defaults to ``MockConfig()`` (6 s tasks, no faults, any Bearer key). ``clock``
    (epoch seconds) defaults to :func:`time.time`; with an injected clock (e.g.
    :class:`~mock_server.clock.ManualClock`) task statuses, URL expiry and the RPM budget
    follow it, and callback deliveries re-read it every 20 ms.

    The app needs no thread of its own: callback deliveries are asyncio tasks of the loop that
    serves it, cancelled on lifespan shutdown (or ``POST /_mock/reset``). Its state is at
    ``app.state.mock`` (:class:`MockApi`).
    """
    config = (config if config is not None else MockConfig()).validate()
    api = MockApi(config, clock or system_clock, injected_clock=clock is not None)
    _install_log_filter()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await api.aclose()

    routes = [
        Route("/v1/video_generation", api.create, methods=["POST"]),
        Route("/v1/query/video_generation", api.query, methods=["GET"]),
        Route("/v1/files/retrieve", api.retrieve, methods=["GET"]),
        Route("/cdn/video/{file_id:str}/" + FILENAME, api.download, methods=["GET"]),
        Route("/_mock/tasks", api.inspect_tasks, methods=["GET"]),
        Route("/_mock/tasks/{task_id:str}", api.inspect_task, methods=["GET"]),
        Route("/_mock/stats", api.inspect_stats, methods=["GET"]),
        Route("/_mock/requests", api.inspect_requests, methods=["GET"]),
        Route("/_mock/config", api.inspect_config, methods=["GET"]),
        Route("/_mock/reset", api.reset, methods=["POST"]),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(TraceIdMiddleware)], lifespan=lifespan)
    app.state.mock = api
    return app
