"""The callback listener: a starlette app served by uvicorn inside the run's own event loop.

MiniMax first POSTs ``{"challenge": "..."}`` to a task's ``callback_url`` and wants the same
value echoed back within 3 s; afterwards it POSTs each status change. Nothing authenticates
those pushes, so the listener only accepts them on an unguessable per-run path
(``/mmgen/<token>``), only for task ids this run is waiting for, and the runner treats a
terminal status from a push as a hint to confirm with one query, never as the truth.

Unknown paths, unknown task ids and malformed bodies get 4xx answers and are ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Iterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

log = logging.getLogger(__name__)

#: Largest callback body accepted (status pushes are a few hundred bytes).
MAX_BODY = 64 * 1024


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the runner (Ctrl-C ends the run)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def install_signal_handlers(self) -> None:  # uvicorn < 0.29
        return None


class CallbackListener:
    """Receives MiniMax callbacks for the tasks a run is waiting for.

    Use as ``async with CallbackListener(...) as listener:``; ``listener.callback_url`` is what
    goes into the request body; ``listener.watch(task_id)`` gives the queue of status pushes.
    """

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, public_url: str | None = None
    ) -> None:
        self.host = host
        self.port = port
        self.public_url = public_url.rstrip("/") if public_url else None
        self.token = secrets.token_urlsafe(24)
        self._queues: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        self._served: ServedApp | None = None
        self.challenges_answered = 0
        self.pushes_accepted = 0
        self.pushes_rejected = 0
        self.app = Starlette(
            routes=[Route("/mmgen/{token}", self._receive, methods=["POST"])],
        )

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

    # --- subscriptions ---------------------------------------------------------------------

    def watch(self, task_id: str) -> asyncio.Queue[dict[str, Any]]:
        """Start accepting pushes for ``task_id``; returns the queue they arrive on."""
        return self._queues.setdefault(task_id, asyncio.Queue())

    def unwatch(self, task_id: str) -> None:
        self._queues.pop(task_id, None)

    # --- the app ---------------------------------------------------------------------------

    async def _receive(self, request: Request) -> Response:
        if not secrets.compare_digest(request.path_params["token"], self.token):
            self.pushes_rejected += 1
            return JSONResponse({"error": "not found"}, status_code=404)
        body = await request.body()
        if len(body) > MAX_BODY:
            self.pushes_rejected += 1
            return JSONResponse({"error": "body too large"}, status_code=413)
        try:
            data = json.loads(body)
        except ValueError:
            self.pushes_rejected += 1
            return JSONResponse({"error": "body is not JSON"}, status_code=400)
        if not isinstance(data, dict):
            self.pushes_rejected += 1
            return JSONResponse({"error": "body is not a JSON object"}, status_code=400)
        if "challenge" in data:
            self.challenges_answered += 1
            return JSONResponse({"challenge": data["challenge"]})
        task_id = data.get("task_id")
        queue = self._queues.get(str(task_id)) if task_id is not None else None
        if queue is None:
            self.pushes_rejected += 1
            log.debug("ignored a callback for unknown task %r", task_id)
            return JSONResponse({"error": "unknown task"}, status_code=404)
        self.pushes_accepted += 1
        queue.put_nowait(data)
        return JSONResponse({"status": "ok"})

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Serve on ``host:port`` (port 0 picks a free one) and wait until it accepts."""
        self._served = await serve_app_in_loop(self.app, self.host, self.port, lifespan="off")
        self.port = self._served.port

    async def stop(self) -> None:
        if self._served is not None:
            await self._served.stop()
            self._served = None

    async def __aenter__(self) -> CallbackListener:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def serve_app_in_loop(
    app: Any, host: str = "127.0.0.1", port: int = 0, *, lifespan: str = "auto"
) -> ServedApp:
    """Serve an ASGI app (the listener, or the bundled mock) as a task of the running loop.

    Returns once the socket accepts connections; port 0 picks a free port.
    """
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan=lifespan,  # type: ignore[arg-type]
        ws="none",
    )
    server = _QuietServer(config)
    task = asyncio.create_task(server.serve(), name=f"mmgen-serve-{host}:{port}")
    while not server.started:
        if task.done():
            task.result()  # raises the startup error, if any
            raise OSError(f"could not listen on {host}:{port}")
        await asyncio.sleep(0.01)
    bound_port = int(server.servers[0].sockets[0].getsockname()[1])
    return ServedApp(server, task, host, bound_port)


class ServedApp:
    """Handle of an app served by :func:`serve_app_in_loop`."""

    def __init__(self, server: uvicorn.Server, task: asyncio.Task[None], host: str, port: int):
        self.server = server
        self.task = task
        self.host = host
        self.port = port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def stop(self) -> None:
        self.server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
