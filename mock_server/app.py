"""The mock MiniMax video API as a starlette app.

API routes (same paths, parameters and JSON as ``docs/minimax-api.md``; Bearer auth):

- ``POST /v1/video_generation`` -> ``{"task_id", "base_resp"}``
- ``GET /v1/query/video_generation?task_id=`` -> ``{"task_id", "status", ["file_id",
  "video_width", "video_height"], "base_resp"}``
- ``GET /v1/files/retrieve?file_id=`` (string or number; ``GroupId`` ignored) -> ``{"file":
  {"file_id" (int), "bytes", "created_at", "filename", "purpose", "download_url"}, "base_resp"}``
- the download URL: on the CDN origin when one is served, else ``/cdn/video/...`` on the API
  origin (see :mod:`mock_server.downloads`).

The callback check of a create with ``callback_url`` happens before it is answered (``sync``,
as MiniMax; see :mod:`mock_server.callbacks`): a failed check answers 2013 "invalid params, fail
to check callback url" and creates nothing. ``file.bytes`` is 0 (as MiniMax) unless
``report_file_bytes``. Video sizes follow the request
(:func:`mock_server.media.video.requested_geometry`).

Errors are HTTP 200 with ``base_resp`` (1004 no/malformed Bearer, 2049 wrong key when ``api_key``
is set, 2013 invalid body naming the field or unknown task/file, 1002, 1008, 1026, 1027...),
except the configured non-200 faults (429, 5xx, dropped connections). Every response carries a
``Trace-Id`` header.

Inspection routes (no auth): ``GET /_mock/tasks`` (``{"tasks": [...]}``),
``GET /_mock/tasks/{task_id}``, ``GET /_mock/stats``, ``GET /_mock/requests`` (the last 10,000
requests: endpoint, outcome code, fault), ``GET /_mock/config`` (with the effective seed) and
``POST /_mock/reset`` (forget tasks, counters and the log, re-seed the fault streams, stop
pending callbacks; task and file ids are never reused).

``GET /_mock/stats`` holds ``created``; the current count per status (``Preparing``,
``Queueing``, ``Processing``, ``Success``, ``Fail``); ``queries``, ``retrieves``, ``downloads``
(download responses begun), ``downloads_completed``, ``downloads_expired``,
``downloads_truncated``; ``rejected`` (API requests refused with a code or a fault);
``challenges_sent|ok|failed|skipped`` and ``challenge_latency_ms`` (``{p50, p99, max}``);
``downloads_with_authorization``; ``callbacks_in_flight`` and ``callbacks_in_flight_max`` (callback
POSTs, checks included, under way now and at most at once); ``callbacks_sent`` (update POSTs
attempted),
``callbacks_delivered``, ``callbacks_failed``, ``callbacks_dropped``, ``callbacks_pending``;
``videos_rendered``; and the groups ``requests`` (by endpoint), ``errors`` (by base_resp code)
and ``faults`` (by kind).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mock_server.callbacks import CallbackDispatcher, CheckResult
from mock_server.clock import Clock, system_clock
from mock_server.config import MockConfig
from mock_server.downloads import FALLBACK_PATH, FILENAME, download, download_url
from mock_server.media.video import VideoCache, VideoSpec, requested_geometry
from mock_server.persistence import StateJournal
from mock_server.responses import (
    DroppedResponse,
    TraceIdMiddleware,
    VideoFile,
    install_log_filter,
    nginx_error,
)
from mock_server.store import MockStore, clip
from mock_server.tasks import OK_RESP, Task, base_resp, owner_of, plan_task
from mock_server.validation import ignored_fields, invalid_params

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
CALLBACK_CHECK_FAILED = "invalid params, fail to check callback url"


class MockApi:
    """The handlers and the state behind one mock (``app.state.mock``)."""

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
            on_check=self._checked,
            injected_clock=injected_clock,
        )
        self.url_key = hashlib.sha256(f"{self.seed}:{secrets.token_hex(8)}".encode()).digest()
        #: Base URL of the CDN origin serving downloads (None: the API origin's /cdn/ path).
        self.cdn_base_url: str | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.journal: StateJournal | None = None
        self._restored: list[Task] = []
        if config.state_dir is not None:
            self._load_state(config.state_dir)

    # --- plumbing -------------------------------------------------------------------------

    def _load_state(self, state_dir: str | os.PathLike[str]) -> None:
        self.journal = StateJournal(state_dir)
        saved = self.journal.load()
        self.store.task_ids.at_least(saved.task_id)
        self.store.file_ids.at_least(saved.file_id)
        self.store.next_seq = saved.seq
        for record in saved.tasks:
            subject = self.journal.subject(record["video"].get("subject"))
            task = Task.from_record(record, subject)
            self.store.restore(task)
            self._restored.append(task)

    def attach(self) -> None:
        """Bind to the running loop on first use: callbacks of restored tasks resume there."""
        if self.loop is not None:
            return
        self.loop = asyncio.get_running_loop()
        now = self.clock()
        for task in self._restored:
            self.callbacks.resume(task, now)
        self._restored = []

    def bookkeep(self, change: Callable[[], None]) -> None:
        """Apply a change to the shared state on the API's loop (now, when already on it)."""
        loop = self.loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is None or loop is running or loop.is_closed():
            change()
        else:
            loop.call_soon_threadsafe(change)

    def _checked(self, result: CheckResult) -> None:
        self.store.challenge_latencies.append(result.latency_ms)

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
                **(
                    {"challenge": request.scope["mock.challenge"]}
                    if "mock.challenge" in request.scope
                    else {}
                ),
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
            return "", self._error(request, endpoint, 2049)
        owner = owner_of(token)
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
                return owner, self._error(
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
                return owner, self._error(
                    request,
                    endpoint,
                    fault.code,
                    fault.message,
                    fault="code",
                    http_status=fault.http_status,
                )
        return owner, None

    # --- API ------------------------------------------------------------------------------

    async def create(self, request: Request) -> Response:
        self.attach()
        self.store.stats["requests.create"] += 1
        transport = self._transport_fault(request, "create")
        if transport is not None and not transport[1]:
            # Received in full first, as by a server that then lost the connection: closing
            # with the body unread makes the kernel reset the connection instead, a race.
            await request.body()
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
        callback_url = body.get("callback_url") or None
        check: tuple[CheckResult, str, str | None] | None = None
        if callback_url and self.config.challenge_mode == "sync":
            dice = self.store.dice
            fault = (
                faults.challenge.mode
                if dice.roll("challenge", faults.challenge.probability)
                else None
            )
            token = f"{dice.stream('challenge_token').getrandbits(128):032x}"
            result = await self.callbacks.check(callback_url, token, fault)
            request.scope["mock.challenge"] = {
                "ok": result.ok,
                "latency_ms": result.latency_ms,
                "result": result.result,
                "fault": fault,
            }
            if not result.ok:
                return self._error(
                    request,
                    "create",
                    2013,
                    CALLBACK_CHECK_FAILED,
                    fault="challenge" if fault else None,
                )
            if max_tasks is not None and len(self.store.tasks) >= max_tasks:
                return self._error(request, "create", 1008, fault="balance")
            check = (result, token, fault)
        task = self._new_task(body, raw, owner, self._trace(request))
        if check is not None:
            result, task.challenge, task.challenge_fault = check
            task.deliveries.append(result.journal(self.clock(), task.challenge_fault))
        if self.journal is not None:
            await self.journal.append_async(
                {"kind": "task", **task.to_record(self.journal.subject_ref(task.video.subject))},
                task.video.subject,
            )
        if task.callback_url:
            self.callbacks.start(task, check_first=check is None)
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
        width, height, seconds = requested_geometry(body)
        spec = VideoSpec(
            prompt=str(body.get("prompt") or ""),
            model=str(body["model"]),
            subject=store.intern(subject) if subject is not None else None,
            width=video.width or width,
            height=video.height or height,
            fps=video.fps,
            seconds=video.seconds or seconds,
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
            width=spec.width,
            height=spec.height,
            video=spec,
            callback_url=body.get("callback_url"),
            **plan,
        )
        store.add(task)
        return task

    async def query(self, request: Request) -> Response:
        self.attach()
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
        self.attach()
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
        size = VideoFile(await self.video(task), self.config.video.min_bytes).size
        expires = int(self.clock() + self.config.download_url_ttl)
        task.retrieves += 1
        self.store.stats["retrieves"] += 1
        return self._ok(
            request,
            "retrieve",
            {
                "file": {
                    "file_id": int(task.file_id),
                    "bytes": size if self.config.report_file_bytes else 0,
                    "created_at": int(task.ends_at),
                    "filename": FILENAME,
                    "purpose": "video_generation",
                    "download_url": download_url(self, request, task.file_id, expires),
                },
                "base_resp": dict(OK_RESP),
            },
        )

    async def video(self, task: Task) -> bytes:
        """The MP4 of a task (rendered once per distinct request, cached)."""
        before = self.videos.renders
        video = await self.videos.get(task.video)
        if self.videos.renders != before:
            renders = self.videos.renders
            self.bookkeep(lambda: self.store.stats.__setitem__("videos_rendered", renders))
        return video

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
        view["callbacks_in_flight"] = self.callbacks.in_flight
        view["callbacks_in_flight_max"] = self.callbacks.in_flight_max
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
        if self.journal is not None:
            await self.journal.append_async(
                {
                    "kind": "reset",
                    "task_id": int(self.store.task_ids.peek()),
                    "file_id": int(self.store.file_ids.peek()),
                }
            )
        return JSONResponse({"reset": True})

    async def aclose(self) -> None:
        await self.callbacks.aclose()
        if self.journal is not None:
            journal, self.journal = self.journal, None
            await asyncio.to_thread(journal.close)


def create_app(config: MockConfig | None = None, *, clock: Clock | None = None) -> Starlette:
    """The mock MiniMax API as a starlette app, usable in-process or under any ASGI server.

    ``config`` defaults to ``MockConfig()`` (6 s tasks, no faults, any Bearer key). ``clock``
    (epoch seconds) defaults to :func:`time.time`; with an injected clock (e.g.
    :class:`~mock_server.clock.ManualClock`) task statuses, URL expiry and the RPM budget
    follow it, and callback deliveries wake when it moves.

    The app needs no thread of its own: callback deliveries are asyncio tasks of the loop that
    serves it, cancelled on lifespan shutdown (or ``POST /_mock/reset``). Its state is at
    ``app.state.mock`` (:class:`MockApi`). Downloads are served by this app under ``/cdn/``
    unless a CDN origin is served too: ``mock_server.downloads.cdn_app(app.state.mock)``, with
    ``app.state.mock.cdn_base_url`` set to its URL (:class:`mock_server.server.MockServers`
    does both).
    """
    config = (config if config is not None else MockConfig()).validate()
    api = MockApi(config, clock or system_clock, injected_clock=clock is not None)
    install_log_filter()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        api.attach()
        try:
            yield
        finally:
            await api.aclose()

    async def fallback_download(request: Request) -> Response:
        return await download(api, request)

    routes = [
        Route("/v1/video_generation", api.create, methods=["POST"]),
        Route("/v1/query/video_generation", api.query, methods=["GET"]),
        Route("/v1/files/retrieve", api.retrieve, methods=["GET"]),
        Route(FALLBACK_PATH, fallback_download, methods=["GET"]),
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
