"""The callback listener: a starlette app served on its own thread and event loop.

MiniMax first POSTs ``{"challenge": "..."}`` to a task's ``callback_url`` and wants the same
value echoed back within 3 s — during the create call, which fails if the echo is late — and
afterwards POSTs each status change. So the listener must answer at once whatever the run is
doing: it runs on its own thread with its own event loop (:class:`mmgen.serving.ServerThread`),
where thousands of job coroutines, journal fsyncs or video hashing in the run's loop cannot
delay it. Pushes are handed to the run's loop with ``call_soon_threadsafe``.

Each create gets a callback path of its own, ``/mmgen/<run secret>/<job token>``: the run's
unguessable secret, then a token per create. A push so names its job before the create's answer
is read: a push that beats that answer is queued for the job, not refused, and a create whose
answer was lost can be resolved by the pushes of the task it did create (the runner confirms
the task with a query before adopting it). Challenges are echoed on any path under the run's
secret (an echo does nothing).

Nothing authenticates those pushes, so the listener only accepts them under the run's secret,
only for the job tokens this run is waiting on, with bodies of at most
:data:`MAX_BODY` bytes (enforced while reading: a huge body is cut off, not buffered) read
within :data:`READ_TIMEOUT` seconds (a slow client cannot hold it), and the runner treats a
terminal status from a push as a hint to confirm with one query, never as the truth.

Unknown paths, unknown job tokens and malformed bodies get 4xx answers and are ignored.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import threading
from collections import deque
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


class Pushes:
    """The pushes of one job, in arrival order: at most :data:`PUSHES_KEPT` (a flood of forged
    ones drops the newest). ``put_nowait`` on the run's loop, ``get`` there too.

    Not an ``asyncio.Queue``: its four deques and an Event weigh ~3 KB, ~30 MB with 10,000 jobs
    in flight (bench/inflight.py: 206 MB peak against the 200 MB target); this one holds a
    deque only while a push waits to be read, and one future only while its job waits.
    """

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: deque[dict[str, Any]] | None = None
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: dict[str, Any]) -> None:
        if self._items is None:
            self._items = deque()
        if len(self._items) < PUSHES_KEPT:
            self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def empty(self) -> bool:
        return not self._items

    async def get(self) -> dict[str, Any]:
        """The next push, waiting for one."""
        while not self._items:
            waiter = asyncio.get_running_loop().create_future()
            self._waiter = waiter
            try:
                await waiter
            finally:
                self._waiter = None
        item = self._items.popleft()
        if not self._items:
            self._items = None
        return item


@dataclass
class _Watch:
    loop: asyncio.AbstractEventLoop
    pushes: Pushes


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
        self._done: set[str] = set()  # job tokens no longer waited on
        self._lock = threading.Lock()
        self._server: ServerThread | None = None
        self.challenges_answered = 0
        self.pushes_accepted = 0
        self.pushes_rejected = 0
        self.pushes_late = 0  # for jobs already finished: acknowledged, dropped
        route = Route("/mmgen/{token}/{job}", self._receive, methods=["POST"])
        self.app = Starlette(routes=[route])

    @property
    def path(self) -> str:
        """The run's path; each job's is below it."""
        return f"/mmgen/{self.token}"

    @property
    def callback_url(self) -> str:
        """The run's URL: ``--public-url`` + path, or the listener's own address."""
        if self.public_url:
            return self.public_url + self.path
        host = self.host if self.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}{self.path}"

    def url_for(self, job_token: str) -> str:
        """The ``callback_url`` of one create (see :meth:`watch`)."""
        return f"{self.callback_url}/{job_token}"

    # --- subscriptions (the run's loop) ----------------------------------------------------

    def watch(self, job_token: str) -> Pushes:
        """Start accepting pushes on ``url_for(job_token)`` (call before the create is sent);
        returns the queue they arrive in, whatever task id they name (the runner checks)."""
        with self._lock:
            watch = self._watches.get(job_token)
            if watch is None:
                watch = _Watch(asyncio.get_running_loop(), Pushes())
                self._watches[job_token] = watch
            return watch.pushes

    def unwatch(self, job_token: str) -> None:
        """Stop delivering pushes for ``job_token``; later ones (a task's last status after
        its job finished by polling) are acknowledged and dropped, not refused."""
        with self._lock:
            if self._watches.pop(job_token, None) is not None:
                self._done.add(job_token)

    def is_watching(self, job_token: str) -> bool:
        return job_token in self._watches

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
        job = request.path_params["job"]
        with self._lock:
            watch = self._watches.get(job)
            done = job in self._done
        if done:
            self.pushes_late += 1
            return JSONResponse({"status": "ignored"})
        if watch is None:
            self.pushes_rejected += 1
            log.debug("ignored a callback for a job not waited on (%r)", data.get("task_id"))
            return JSONResponse({"error": "unknown job"}, status_code=404)
        self.pushes_accepted += 1
        try:
            watch.loop.call_soon_threadsafe(watch.pushes.put_nowait, data)
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
