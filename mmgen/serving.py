"""Serving an ASGI app under uvicorn: the one start-up path of mmgen and its mock.

Three things serve apps: the run's callback listener, ``mmgen mock`` and the test fixtures (the
pytest plugin among them). They all go through this module, which uses only uvicorn's public
API (``Config``, ``Server.serve(sockets=)``, ``started``, ``should_exit``):

- :func:`bind` makes the listening socket (port 0 picks a free port; the port is known at once,
  before uvicorn starts), and turns "address in use" into a :class:`~mmgen.errors.UsageError`.
- :class:`ServerThread` serves an app in a daemon thread with its own event loop. The callback
  listener runs this way, so thousands of job coroutines in the run's loop can never delay the
  answer to MiniMax's 3 s challenge; tests serve the mock this way too. uvicorn installs no
  signal handlers outside the main thread: signals stay with the thread's owner.
- :func:`serve_forever` serves in the foreground until Ctrl-C (``mmgen mock``).

This module is shared by ``mmgen`` and ``mock_server`` (with :mod:`mmgen.errors`,
:mod:`mmgen.schemas` and :mod:`mmgen.connections`, the only parts of mmgen the mock's server
imports).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import uvicorn

from mmgen.errors import UsageError

__all__ = ["LOOPBACK_HOSTS", "ServerThread", "base_url", "bind", "serve_forever"]

#: Host names of this machine as httpx reports a URL's host (IPv6 without brackets); any
#: 127.x.y.z address is loopback too.
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


def bind(host: str, port: int, *, backlog: int = 2048) -> socket.socket:
    """A listening TCP socket on host:port (port 0: any free port); UsageError if impossible."""
    try:
        infos = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as err:
        raise UsageError(f"cannot listen on {host}:{port}: {err.strerror}") from None
    family, kind, _proto, _, address = infos[0]
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on accepted sockets whose proto says
    # TCP; without it every small response waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, kind, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(backlog)
    except OSError as err:
        sock.close()
        raise UsageError(
            f"cannot listen on {host}:{port}: {err.strerror or err}",
            hint="choose another port, or 0 for any free port",
        ) from None
    sock.setblocking(False)
    return sock


def base_url(sock: socket.socket) -> str:
    """``http://HOST:PORT`` of a bound socket (IPv6 hosts in brackets)."""
    host, port = sock.getsockname()[:2]
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _config(app: Any, *, lifespan: str, log_level: str, access_log: bool) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        log_level=log_level,
        access_log=access_log,
        lifespan=lifespan,  # type: ignore[arg-type]
        ws="none",
        timeout_graceful_shutdown=1,
        timeout_keep_alive=30,
    )


class ServerThread:
    """Serve an ASGI app in a daemon thread on its own event loop.

    ``with ServerThread(app) as server: server.url`` (or ``start()``/``stop()``). ``start`` returns
    once the socket accepts connections and re-raises a start-up failure. ``call_soon(fn)`` runs
    ``fn`` on the server's loop (thread-safe), for apps whose state belongs to that loop.
    """

    def __init__(
        self,
        app: Any,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        lifespan: str = "auto",
        log_level: str = "warning",
        access_log: bool = False,
        name: str = "mmgen-server",
    ) -> None:
        self.app = app
        self._sock = bind(host, port)
        self.url = base_url(self._sock)
        self.port = int(self._sock.getsockname()[1])
        self._server = uvicorn.Server(
            _config(app, lifespan=lifespan, log_level=log_level, access_log=access_log)
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._server.serve(sockets=[self._sock]))
        except BaseException as err:  # reported to start() / stop()
            self._error = err
        finally:
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def start(self, timeout: float = 10.0) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                if self._error is not None:
                    raise OSError(f"could not serve on {self.url}: {self._error}")
                raise OSError(f"could not serve on {self.url}: did not start in {timeout:g} s")
            time.sleep(0.001)
        return self

    def call_soon(self, callback: Callable[[], object]) -> None:
        """Run ``callback`` on the server's event loop (from any thread)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(callback)

    def stop(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._sock.close()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_forever(
    app: Any,
    host: str,
    port: int,
    *,
    on_ready: Callable[[str], None] | None = None,
    log_level: str = "info",
    access_log: bool = True,
    lifespan: str = "on",
) -> None:
    """Serve in the foreground until interrupted (Ctrl-C ends it with KeyboardInterrupt).

    ``on_ready`` receives the base URL once the server listens; nothing here prints.
    """
    sock = bind(host, port)
    url = base_url(sock)
    server = uvicorn.Server(
        _config(app, lifespan=lifespan, log_level=log_level, access_log=access_log)
    )

    async def run() -> None:
        serving = asyncio.ensure_future(server.serve(sockets=[sock]))
        while not server.started and not serving.done():
            await asyncio.sleep(0.01)
        if server.started and on_ready is not None:
            on_ready(url)
        await serving

    try:
        with asyncio.Runner() as runner:
            runner.run(run())
    finally:
        sock.close()
