"""The callback listener: a starlette app served on its own thread and event loop.

MiniMax first POSTs ``{"challenge": "..."}`` to a task's ``callback_url`` and wants the same
value echoed back within 3 s — during the create call, which fails if the echo is late — and
afterwards POSTs each status change. So the listener must answer at once whatever the run is
doing: it runs on its own thread with its own event loop (:class:`mmgen.serving.ServerThread`),
where thousands of job coroutines, journal fsyncs or video hashing in the run's loop cannot
delay it. Pushes are handed to the run's loop with ``call_soon_threadsafe``.

Nothing authenticates those pushes, so the listener only accepts them on an unguessable per-run
path (``/mmgen/<token>``), only for task ids this run is waiting for, with bodies of at most
:data:`MAX_BODY` bytes (enforced while reading: a huge body is cut off, not buffered) read
within :data:`READ_TIMEOUT` seconds (a slow client cannot hold it), and the runner treats a
terminal status from a push as a hint to confirm with one query, never as the truth.

Unknown paths, unknown task ids and malformed bodies get 4xx answers and are ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import threading
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mmgen.serving import ServerThread

log = logging.getLogger(__name__)

#: Largest callback body accepted (status pushes are a few hundred bytes).
MAX_BODY = 64 * 1024

#: Seconds a client may take to send its body.
READ_TIMEOUT = 10.0

#: Pushes kept per task until its job reads them (a flood of forged pushes drops the newest).
PUSHES_KEPT = 64


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class _Watch:
    loop: asyncio.AbstractEventLoop
    pushes: asyncio.Queue[dict[str, Any]]


class CallbackListener:
    """Receives MiniMax callbacks for the tasks a run is waiting for.

    Use as ``async with CallbackListener(...) as listener:`` (or ``start()``/``stop()``);
    ``listener.callback_url`` goes into the request body; ``listener.watch(task_id)`` (called
    from the run's loop) gives the queue of that task's pushes.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        public_url: str | None = None,
        read_timeout: float = READ_TIMEOUT,
    ) -> None:
        self.host = host
        self.read_timeout = read_timeout
        self.port = port
        self.public_url = public_url.rstrip("/") if public_url else None
        self.token = secrets.token_urlsafe(24)
        self._watches: dict[str, _Watch] = {}
        self._lock = threading.Lock()
        self._server: ServerThread | None = None
        self.challenges_answered = 0
        self.pushes_accepted = 0
        self.pushes_rejected = 0
        self.app = Starlette(routes=[Route("/mmgen/{token}", self._receive, methods=["POST"])])

    @property
    def path(self) -> str:
        return f"/mmgen/{self.token}"

    @property
    def callback_url(self) -> str:
        """The URL MiniMax should call: ``--public-url`` + path, or the listener's own address."""
        if self.public_url:
            return self.public_url + self.path
        host = self.host if self.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}{self.path}"

    # --- subscriptions (the run's loop) ----------------------------------------------------

    def watch(self, task_id: str) -> asyncio.Queue[dict[str, Any]]:
        """Start accepting pushes for ``task_id``; returns the queue they arrive in."""
        with self._lock:
            watch = self._watches.get(task_id)
            if watch is None:
                watch = _Watch(asyncio.get_running_loop(), asyncio.Queue(PUSHES_KEPT))
                self._watches[task_id] = watch
            return watch.pushes

    def unwatch(self, task_id: str) -> None:
        with self._lock:
            self._watches.pop(task_id, None)

    def is_watching(self, task_id: str) -> bool:
        return task_id in self._watches

    # --- the app (the listener's own loop) -------------------------------------------------

    async def _receive(self, request: Request) -> Response:
        try:
            if not secrets.compare_digest(request.path_params["token"], self.token):
                raise _Refused(404, "not found")
            data = await self._read_json(request)
        except _Refused as refused:
            self.pushes_rejected += 1
            # close the connection: a client still sending a huge or stalled body is cut off
            return JSONResponse(
                {"error": str(refused)},
                status_code=refused.status,
                headers={"Connection": "close"} if refused.status in (408, 413) else None,
            )
        except ClientDisconnect:
            self.pushes_rejected += 1
            return Response(status_code=400)
        if "challenge" in data:
            self.challenges_answered += 1
            return JSONResponse({"challenge": data["challenge"]})
        task_id = data.get("task_id")
        with self._lock:
            watch = self._watches.get(str(task_id)) if task_id is not None else None
        if watch is None:
            self.pushes_rejected += 1
            log.debug("ignored a callback for unknown task %r", task_id)
            return JSONResponse({"error": "unknown task"}, status_code=404)
        self.pushes_accepted += 1
        try:
            watch.loop.call_soon_threadsafe(_keep, watch.pushes, data)
        except RuntimeError:  # the run's loop is closing
            return JSONResponse({"error": "not listening"}, status_code=503)
        return JSONResponse({"status": "ok"})

    async def _read_json(self, request: Request) -> dict[str, Any]:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY:
            raise _Refused(413, "body too large")
        try:
            body = await asyncio.wait_for(_read_limited(request, MAX_BODY), self.read_timeout)
        except TimeoutError:
            raise _Refused(408, "body not sent in time") from None
        try:
            data = json.loads(body.decode("utf-8"))  # strict: no lone surrogates, no latin-1
        except ValueError:
            raise _Refused(400, "body is not JSON") from None
        if not isinstance(data, dict):
            raise _Refused(400, "body is not a JSON object")
        return data

    # --- lifecycle -------------------------------------------------------------------------

    def start_thread(self) -> None:
        """Serve on ``host:port`` (port 0 picks a free one) in a thread; returns once it
        accepts connections."""
        self._server = ServerThread(
            self.app, self.host, self.port, lifespan="off", name="mmgen-callback-listener"
        )
        self.port = self._server.port
        self._server.start()

    def stop_thread(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    async def start(self) -> None:
        await asyncio.to_thread(self.start_thread)

    async def stop(self) -> None:
        await asyncio.to_thread(self.stop_thread)

    async def __aenter__(self) -> CallbackListener:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def _keep(pushes: asyncio.Queue[dict[str, Any]], data: dict[str, Any]) -> None:
    """Queue a push for its job (on the run's loop); a full queue drops it."""
    with contextlib.suppress(asyncio.QueueFull):
        pushes.put_nowait(data)


async def _read_limited(request: Request, limit: int) -> bytes:
    """The request body, refusing it as soon as it grows past ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _Refused(413, "body too large")
        chunks.append(chunk)
    return b"".join(chunks)
