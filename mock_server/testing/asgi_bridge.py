"""Calling an ASGI app served by a :class:`~mmgen.serving.ServerThread` in-process, from any thread.

The mock's state belongs to the event loop that serves it (its callback deliveries are tasks of
that loop). So requests that do not come through the socket — the test fixtures' inspection
calls, the respx routes of :mod:`mock_server.testing.respx_routing` — are run on that same loop:

- :class:`LoopBridge` runs coroutines on a server's loop: ``call(request)`` blocks the calling
  thread (sync httpx clients, plain test code), ``acall(request)`` awaits from another event loop
  (async httpx clients) without blocking it, so a callback receiver living in the caller's loop
  can still answer the mock while the request is in flight.
- :class:`AppSwitch` is the ASGI app such a server serves: it forwards to an inner app that can
  be replaced while serving (a test with its own mock config gets a fresh mock), and drives each
  inner app's lifespan itself (startup before it takes requests, shutdown once replaced).

A connection the mock drops on purpose (a fault) reaches in-process callers as
:class:`httpx.RemoteProtocolError`, what httpx raises for the same thing over a socket.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Coroutine
from typing import Any, TypeVar

import httpx
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mmgen.serving import ServerThread
from mock_server.responses import InjectedDisconnect

T = TypeVar("T")

#: Longest a blocking in-process request may take (a slow download fault is seconds, not minutes).
CALL_TIMEOUT = 300.0


class LoopBridge:
    """Run coroutines, and ASGI requests to ``app_of()``, on a running ServerThread's loop."""

    def __init__(self, server: ServerThread, timeout: float = 10.0) -> None:
        found: concurrent.futures.Future[asyncio.AbstractEventLoop] = concurrent.futures.Future()
        server.call_soon(lambda: found.set_result(asyncio.get_running_loop()))
        try:
            self.loop = found.result(timeout)
        except concurrent.futures.TimeoutError:
            raise RuntimeError(f"the server at {server.url} is not running") from None

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = CALL_TIMEOUT) -> T:
        """Run on the server's loop and wait here (never call this from that loop)."""
        future = self.submit(coro)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise

    async def arun(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run on the server's loop; await it from another loop."""
        return await asyncio.wrap_future(self.submit(coro))

    def call(self, app: ASGIApp, request: httpx.Request) -> httpx.Response:
        """Send ``request`` to ``app`` on the server's loop; blocks until the whole response."""
        try:
            return self.run(exchange(app, request))
        except concurrent.futures.TimeoutError:
            raise httpx.ReadTimeout(f"no response in {CALL_TIMEOUT:g} s", request=request) from None

    async def acall(self, app: ASGIApp, request: httpx.Request) -> httpx.Response:
        return await self.arun(exchange(app, request))


async def exchange(app: ASGIApp, request: httpx.Request) -> httpx.Response:
    """One request to an ASGI app in this loop; the response fully read (bytes, not a stream)."""
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    try:
        response = await transport.handle_async_request(request)
        body = await response.aread()
    except InjectedDisconnect:
        raise httpx.RemoteProtocolError(
            "Server disconnected without sending a complete response.", request=request
        ) from None
    return httpx.Response(
        response.status_code, headers=response.headers, content=body, request=request
    )


class _InnerLifespan:
    """Drives one app's ASGI lifespan protocol (startup, then shutdown) on this loop."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._outbox: asyncio.Queue[Message] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._supported = True

    async def _run(self) -> None:
        scope: Scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        try:
            await self.app(scope, self._inbox.get, self._outbox.put)
        except Exception as err:  # an app without lifespan support refuses the scope type
            await self._outbox.put({"type": "mmgen.lifespan.error", "message": repr(err)})

    async def _exchange(self, message_type: str) -> None:
        await self._inbox.put({"type": message_type})
        reply = await self._outbox.get()
        if reply["type"] == "mmgen.lifespan.error":
            self._supported = False
            if message_type == "lifespan.shutdown":
                raise RuntimeError(f"mock shutdown failed: {reply['message']}")
        elif reply["type"].endswith(".failed"):
            raise RuntimeError(f"{message_type} failed: {reply.get('message', '')}")

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="mock-lifespan")
        await self._exchange("lifespan.startup")

    async def stop(self) -> None:
        if self._task is None:
            return
        try:
            if self._supported and not self._task.done():
                await self._exchange("lifespan.shutdown")
        finally:
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None


class AppSwitch:
    """An ASGI app that forwards to a replaceable inner app (see the module docs)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._lifespan: _InnerLifespan | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._serve_lifespan(receive, send)
            return
        await self.app(scope, receive, send)

    async def _serve_lifespan(self, receive: Receive, send: Send) -> None:
        await receive()  # lifespan.startup
        try:
            await self._start_current()
        except Exception as err:
            await send({"type": "lifespan.startup.failed", "message": str(err)})
            return
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown
        try:
            await self.close()
        except Exception as err:
            await send({"type": "lifespan.shutdown.failed", "message": str(err)})
            return
        await send({"type": "lifespan.shutdown.complete"})

    async def _start_current(self) -> None:
        lifespan = _InnerLifespan(self.app)
        await lifespan.start()
        self._lifespan = lifespan

    async def replace(self, app: ASGIApp) -> None:
        """Start ``app``, route every new request to it, then shut the previous one down."""
        if app is self.app:
            return
        lifespan = _InnerLifespan(app)
        await lifespan.start()
        previous, self._lifespan = self._lifespan, lifespan
        self.app = app
        if previous is not None:
            await previous.stop()

    async def close(self) -> None:
        """Shut the current app down (the server's own shutdown)."""
        lifespan, self._lifespan = self._lifespan, None
        if lifespan is not None:
            await lifespan.stop()
