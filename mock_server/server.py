"""Serving the mock in the foreground (``mmgen mock``, ``python -m mock_server``)."""

from __future__ import annotations

import asyncio
import importlib
import socket
from collections.abc import Callable

import uvicorn

from mmgen.errors import UsageError
from mock_server.app import create_app
from mock_server.config import MockConfig


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0: any free port); UsageError if impossible."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as err:
        raise UsageError(f"cannot listen on {host}:{port}: {err.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as err:
        sock.close()
        raise UsageError(
            f"cannot listen on {host}:{port}: {err.strerror or err}",
            hint="choose another --port, or 0 for any free port",
        ) from None
    sock.setblocking(False)
    return sock


def base_url(sock: socket.socket) -> str:
    """``http://HOST:PORT`` of a bound socket (IPv6 hosts in brackets)."""
    host, port = sock.getsockname()[:2]
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def serve(
    config: MockConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    on_ready: Callable[[str], None] | None = None,
    log_level: str = "info",
    access_log: bool = True,
) -> None:
    """Serve the mock under uvicorn until interrupted (Ctrl-C ends it with KeyboardInterrupt).

    ``on_ready`` receives the base URL once the server listens (the caller prints it: nothing
    here writes to the terminal except uvicorn's own logs).
    """
    sock = bind(host, port)
    url = base_url(sock)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(config),
            log_level=log_level,
            access_log=access_log,
            ws="none",
            lifespan="on",
            timeout_graceful_shutdown=2,
        )
    )

    async def run() -> None:
        serving = asyncio.ensure_future(server.serve(sockets=[sock]))
        while not server.started and not serving.done():
            await asyncio.sleep(0.01)
        if server.started and on_ready is not None:
            on_ready(url)
        await serving

    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(run())
    finally:
        sock.close()


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when installed (uvicorn[standard] brings it: ~1.5x the requests/s)."""
    try:
        uvloop = importlib.import_module("uvloop")  # optional: not a dependency of mmgen
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory
