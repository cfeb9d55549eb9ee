"""Shared fixtures: real servers on loopback (port 0), the bundled mock among them.

- ``serve_in_thread(app)``: context manager serving any ASGI app under uvicorn in a background
  thread on 127.0.0.1 (port 0); yields the base URL (httpx's own test-server pattern: wait for
  ``server.started``, stop with ``should_exit``). ``serve_app`` is the same as a fixture
  (a factory: ``url = serve_app(app)``, stopped at teardown).
- ``start_mock``: factory fixture, ``mock = start_mock(MockConfig(...), clock=None)`` starts a
  fresh mock and returns a :class:`MockHandle` (``mock.base_url``, ``mock.stats()``,
  ``mock.tasks()``...); every mock it started is stopped at teardown.
- ``mock_api``: a :class:`MockHandle` of one mock shared by the session
  (``generation_seconds=0.2``, no faults, any key), reset before each test: cheap.
- ``manual_clock``: a :class:`mock_server.ManualClock` to inject with ``start_mock(..., clock=)``.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn

from mock_server import ManualClock, MockConfig, create_app
from mock_server.clock import Clock

#: Task duration of the shared ``mock_api`` (seconds): quick, yet long enough to poll.
MOCK_API_GENERATION_SECONDS = 0.2


@contextlib.contextmanager
def serve_in_thread(app: Any, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve an ASGI app in a daemon thread; yields ``http://host:port``."""
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on accepted sockets whose proto
    # says TCP, and without it every response waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound_port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        ws="none",
        loop="asyncio",
        lifespan="auto",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="test-server"
    )
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.001)
        yield f"http://{host}:{bound_port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture
def serve_app() -> Iterator[Callable[[Any], str]]:
    """Factory: ``url = serve_app(app)`` serves an ASGI app until the test ends."""
    with contextlib.ExitStack() as stack:
        yield lambda app: stack.enter_context(serve_in_thread(app))


@dataclass
class MockHandle:
    """A mock served on loopback, and helpers to inspect it over HTTP."""

    base_url: str
    app: Any  # the starlette app; app.state.mock is its in-process state (read-only use)
    _http: httpx.Client = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # plain http on loopback: no TLS context to build (that alone costs ~20 ms a client)
        self._http = httpx.Client(base_url=self.base_url, trust_env=False, verify=False, timeout=10)

    def close(self) -> None:
        self._http.close()

    def client(self, **kwargs: Any) -> httpx.Client:
        """An httpx.Client on the mock (proxies from the environment ignored)."""
        return httpx.Client(base_url=self.base_url, trust_env=False, verify=False, **kwargs)

    def _get(self, path: str) -> Any:
        response = self._http.get(path)
        response.raise_for_status()
        return response.json()

    def stats(self) -> dict[str, Any]:
        """``GET /_mock/stats``: created, per-status counts, callbacks_sent, downloads..."""
        result: dict[str, Any] = self._get("/_mock/stats")
        return result

    def tasks(self) -> list[dict[str, Any]]:
        """``GET /_mock/tasks``: every task with its request, history and callbacks."""
        result: list[dict[str, Any]] = self._get("/_mock/tasks")["tasks"]
        return result

    def task(self, task_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._get(f"/_mock/tasks/{task_id}")
        return result

    def requests(self) -> list[dict[str, Any]]:
        """``GET /_mock/requests``: the request log (endpoint, http_status, code, fault)."""
        result: list[dict[str, Any]] = self._get("/_mock/requests")["requests"]
        return result

    def reset(self) -> None:
        self._http.post("/_mock/reset").raise_for_status()

    def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10.0
    ) -> dict[str, Any]:
        """Poll the stats until ``predicate(stats)`` holds; returns them (fails on timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            stats = self.stats()
            if predicate(stats):
                return stats
            if time.monotonic() > deadline:
                raise AssertionError(f"mock stats never matched: {stats}")
            time.sleep(0.01)


@pytest.fixture
def start_mock() -> Iterator[Callable[..., MockHandle]]:
    """Factory: ``start_mock(config=None, *, clock=None) -> MockHandle``, a fresh mock."""
    with contextlib.ExitStack() as stack:

        def start(config: MockConfig | None = None, *, clock: Clock | None = None) -> MockHandle:
            app = create_app(config, clock=clock)
            handle = MockHandle(stack.enter_context(serve_in_thread(app)), app)
            stack.callback(handle.close)
            return handle

        yield start


@pytest.fixture(scope="session")
def _shared_mock() -> Iterator[MockHandle]:
    app = create_app(MockConfig(generation_seconds=MOCK_API_GENERATION_SECONDS))
    with serve_in_thread(app) as url:
        handle = MockHandle(url, app)
        yield handle
        handle.close()


@pytest.fixture
def mock_api(_shared_mock: MockHandle) -> MockHandle:
    """The session's default mock (0.2 s tasks, no faults, any key), reset for this test."""
    _shared_mock.reset()
    return _shared_mock


@pytest.fixture
def manual_clock() -> ManualClock:
    """A clock that only moves on ``advance()``; inject with ``start_mock(config, clock=...)``."""
    return ManualClock()
