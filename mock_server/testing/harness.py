"""The mock as a test fixture: served on loopback, reconfigured per test, its clock moved by hand.

What :mod:`mock_server.testing.pytest_plugin` (and mmgen's own test suite) is built on, usable
without pytest too::

    with MockService(MockConfig(generation_seconds=6)) as service:
        mock = service.activate({"faults": {"rate_limit": {"probability": 0.5}}})
        ...                      # code under test talks to mock.url with mock.api_key
        mock.advance(6)          # tasks due by now are Success, their callbacks delivered
        assert mock.stats()["Success"] == 1

- :class:`ShiftedClock`: wall-clock time plus an offset that only grows: tasks progress in real
  time (a client that polls with real sleeps still finishes) and ``advance(s)`` jumps ahead.
- :class:`MockService`: one :class:`~mmgen.serving.ServerThread` on 127.0.0.1, port 0, serving
  the mock through an :class:`~mock_server.testing.asgi_bridge.AppSwitch`.
  ``activate(options)`` gives a test its mock: the default one, reset, when there are no
  options; otherwise a fresh mock with the options laid over the defaults. ``restore()`` puts
  the default back. With ``cdn=True`` a second thread serves the download origin (download URLs
  point there), as ``mmgen mock``.
- :class:`MinimaxMock`: the handle a test gets: ``url``, ``api_key``, ``cdn_url``, ``tasks()``,
  ``stats()``, ``requests()``, ``configure(**options)``, ``advance(seconds)`` (``aadvance`` in
  async tests), ``reset()``, ``wait_for()``.
  Inspection runs in-process on the server's loop, so it works whatever respx patches.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send

from mmgen.serving import ServerThread
from mock_server.app import create_app
from mock_server.clock import Clock
from mock_server.config import MockConfig, config_from_dict
from mock_server.downloads import cdn_app
from mock_server.testing.asgi_bridge import AppSwitch, LoopBridge

__all__ = ["MinimaxMock", "MockService", "ShiftedClock", "merge_options"]

#: Host name of in-process inspection requests (never resolved: they do not leave the process).
INSPECT_ORIGIN = "http://mock.inspect"


class ShiftedClock:
    """Epoch seconds of the wall clock plus an offset that ``advance()`` grows (thread-safe).

    It never goes back, so download URL expiry and the RPM window stay consistent across the
    tests sharing one mock.
    """

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"the mock's clock only moves forward, not by {seconds:g} s")
        with self._lock:
            self._offset += seconds

    @property
    def offset(self) -> float:
        return self._offset


def merge_options(base: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` laid over ``base``: nested mappings merged key by key, anything else replaced."""
    merged = dict(base)
    for key, value in options.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_options(merged[key], value)
        else:
            merged[key] = value
    return merged


async def _no_app(scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError("no mock app routed yet")


class MockService:
    """The mock served in a thread, its app swappable per test (see the module docs)."""

    def __init__(
        self,
        config: MockConfig | None = None,
        *,
        clock: Clock | None = None,
        host: str = "127.0.0.1",
        cdn: bool = False,
    ) -> None:
        self.config = (config if config is not None else MockConfig()).validate()
        self.clock: Clock = clock if clock is not None else ShiftedClock()
        # The CDN origin (downloads), like `mmgen mock`: a second port whose app follows the
        # mock's. Without it, download URLs stay on the API origin under /cdn/.
        self.cdn_switch = AppSwitch(_no_app)
        self.cdn_server = (
            ServerThread(self.cdn_switch, host, 0, lifespan="off", name="minimax-mock-cdn")
            if cdn
            else None
        )
        self.cdn_url = self.cdn_server.url if self.cdn_server is not None else None
        self._download_origin = self.cdn_url
        self.default_app = self.new_app(self.config)
        self.switch = AppSwitch(self.default_app)
        self.server = ServerThread(self.switch, host, 0, name="minimax-mock")
        self.url = self.server.url
        self._route(self.default_app)
        self._bridge: LoopBridge | None = None

    # --- life cycle -------------------------------------------------------------------------

    def start(self) -> MockService:
        if self.cdn_server is not None:
            self.cdn_server.start()
        try:
            self.server.start()
        except BaseException:
            self.stop()
            raise
        self._bridge = LoopBridge(self.server)
        return self

    def stop(self) -> None:
        self.server.stop()
        if self.cdn_server is not None:
            self.cdn_server.stop()
        self._bridge = None

    def __enter__(self) -> MockService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def bridge(self) -> LoopBridge:
        if self._bridge is None:
            raise RuntimeError("the mock is not running (MockService.start() first)")
        return self._bridge

    @property
    def app(self) -> Starlette:
        """The mock app serving right now (``app.state.mock`` is its state)."""
        app: Starlette = self.switch.app  # type: ignore[assignment]
        return app

    # --- apps and origins -------------------------------------------------------------------

    def new_app(self, config: MockConfig) -> Starlette:
        """A mock app on this service's clock, its download URLs on the download origin."""
        app = create_app(config, clock=self.clock)
        app.state.mock.cdn_base_url = self._download_origin
        return app

    @property
    def download_origin(self) -> str | None:
        """Where download URLs point: the CDN origin, another one (respx), or None (the API
        origin's /cdn/ path)."""
        return self._download_origin

    @download_origin.setter
    def download_origin(self, origin: str | None) -> None:
        self._download_origin = origin
        for app in {self.default_app, self.app}:
            app.state.mock.cdn_base_url = origin

    def _route(self, app: Starlette) -> None:
        """Send the CDN origin's requests to ``app``'s files (the API switch is done on the
        server's loop, with lifespans: :meth:`use`)."""
        self.cdn_switch.app = cdn_app(app.state.mock)

    def use(self, app: Starlette) -> None:
        """Serve ``app`` from now on (the previous one is shut down: its callbacks stop).

        Task and file ids keep growing across the switch, so no id repeats in a session.
        """
        if app is not self.app:
            before, after = self.app.state.mock.store, app.state.mock.store
            after.task_ids.at_least(before.task_ids.peek())
            after.file_ids.at_least(before.file_ids.peek())
        self.bridge.run(self.switch.replace(app))
        self._route(app)

    # --- per test ---------------------------------------------------------------------------

    def build_config(self, options: Mapping[str, Any], source: str = "options") -> MockConfig:
        """The defaults with ``options`` laid over them; MockConfigError names a bad key."""
        return config_from_dict(merge_options(self.config.to_dict(), options), source=source)

    def activate(
        self, options: Mapping[str, Any] | None = None, *, source: str = "options"
    ) -> MinimaxMock:
        """A test's mock: the default one reset (no options) or a fresh one with ``options``
        (MockConfigError, its message starting with ``source``, for a bad one)."""
        self.use(self.new_app(self.build_config(options, source)) if options else self.default_app)
        handle = MinimaxMock(self, dict(options or {}))
        handle.reset()
        return handle

    def restore(self) -> None:
        """Back to the default mock (a per-test one is shut down: its callbacks stop)."""
        if self._bridge is not None:
            self.use(self.default_app)


class MinimaxMock:
    """One test's view of the mock (the object the ``minimax_mock`` fixture returns)."""

    def __init__(self, service: MockService, options: dict[str, Any] | None = None) -> None:
        self._service = service
        self.options: dict[str, Any] = dict(options or {})

    # --- where and who ----------------------------------------------------------------------

    @property
    def service(self) -> MockService:
        """The session's :class:`MockService` behind this handle."""
        return self._service

    @property
    def url(self) -> str:
        """Base URL of the mock API (``http://127.0.0.1:PORT``): MINIMAX_BASE_URL."""
        return self._service.url

    @property
    def base_url(self) -> str:
        """Same as :attr:`url`."""
        return self._service.url

    @property
    def cdn_url(self) -> str | None:
        """The download origin (download URLs point there), when the mock serves one."""
        return self._service.cdn_url

    @property
    def config(self) -> MockConfig:
        """The config of the mock serving now."""
        config: MockConfig = self.app.state.mock.config
        return config

    @property
    def api_key(self) -> str:
        """The key the mock wants (MINIMAX_API_KEY); any key works when none is configured."""
        return self.config.api_key or "mock-any-key"

    @property
    def app(self) -> Starlette:
        return self._service.app

    @property
    def clock(self) -> Clock:
        return self._service.clock

    def client(self, **kwargs: Any) -> httpx.Client:
        """An httpx.Client on the mock (proxies from the environment ignored)."""
        kwargs.setdefault("timeout", 10)
        return httpx.Client(base_url=self.url, trust_env=False, verify=False, **kwargs)

    # --- inspection -------------------------------------------------------------------------

    def _request(self, method: str, path: str) -> Any:
        request = httpx.Request(method, INSPECT_ORIGIN + path)
        response = self._service.bridge.call(self._service.switch, request)
        response.raise_for_status()
        return response.json()

    async def _arequest(self, method: str, path: str) -> Any:
        request = httpx.Request(method, INSPECT_ORIGIN + path)
        response = await self._service.bridge.acall(self._service.switch, request)
        response.raise_for_status()
        return response.json()

    def stats(self) -> dict[str, Any]:
        """``GET /_mock/stats``: ``created``, a count per status, ``callbacks_sent``,
        ``downloads``, ``errors`` by code, ``faults`` by kind..."""
        result: dict[str, Any] = self._request("GET", "/_mock/stats")
        return result

    def tasks(self) -> list[dict[str, Any]]:
        """``GET /_mock/tasks``: every task with its request, status history and callbacks."""
        result: list[dict[str, Any]] = self._request("GET", "/_mock/tasks")["tasks"]
        return result

    def task(self, task_id: str) -> dict[str, Any]:
        """``GET /_mock/tasks/{task_id}``."""
        result: dict[str, Any] = self._request("GET", f"/_mock/tasks/{task_id}")
        return result

    def requests(self) -> list[dict[str, Any]]:
        """``GET /_mock/requests``: the request log (endpoint, http_status, code, fault)."""
        result: list[dict[str, Any]] = self._request("GET", "/_mock/requests")["requests"]
        return result

    # --- control ----------------------------------------------------------------------------

    def reset(self) -> None:
        """``POST /_mock/reset``: forget every task, stop pending callbacks, zero the stats."""
        self._request("POST", "/_mock/reset")

    def configure(self, **options: Any) -> None:
        """Use these options (laid over this test's) from now on: the mock starts afresh."""
        self.options = merge_options(self.options, options)
        self._service.use(self._service.new_app(self._service.build_config(self.options)))

    def advance(self, seconds: float, *, timeout: float | None = None) -> None:
        """Move the mock's clock ``seconds`` forward, without sleeping.

        Tasks due by then answer their final status at once; this returns once every callback
        due by then has been attempted (delivered, refused or dropped by a fault). In an async
        test whose callback receiver runs in the test's own event loop, ``await aadvance()``.
        """
        self._move_clock(seconds)
        self.settle_callbacks(timeout=timeout)

    async def aadvance(self, seconds: float, *, timeout: float | None = None) -> None:
        """:meth:`advance` for async tests (asyncio): waits without blocking the test's loop."""
        self._move_clock(seconds)
        now = self.clock()
        deadline, limit = self._settle_deadline(timeout)
        while True:
            tasks = (await self._arequest("GET", "/_mock/tasks"))["tasks"]
            if _settled(tasks, now, deadline, limit):
                return
            await asyncio.sleep(0.005)

    def settle_callbacks(self, *, timeout: float | None = None) -> None:
        """Wait until every callback due by now has been attempted (see :meth:`advance`)."""
        now = self.clock()
        deadline, limit = self._settle_deadline(timeout)
        while not _settled(self.tasks(), now, deadline, limit):
            time.sleep(0.005)

    def _move_clock(self, seconds: float) -> None:
        move = getattr(self.clock, "advance", None)
        if move is None:
            raise TypeError("this mock runs on a clock that cannot be advanced")
        move(seconds)

    def _settle_deadline(self, timeout: float | None) -> tuple[float, float]:
        if timeout is None:  # time enough for a slow receiver to time out every attempt
            config = self.config
            timeout = (
                config.challenge_timeout
                + (config.callback_timeout + config.callback_retry_delay)
                * (config.callback_retries + 1)
                + 10.0
            )
        return time.monotonic() + timeout, timeout

    def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10.0
    ) -> dict[str, Any]:
        """Poll the stats until ``predicate(stats)`` holds; returns them (AssertionError on
        timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            stats = self.stats()
            if predicate(stats):
                return stats
            if time.monotonic() > deadline:
                raise AssertionError(f"mock stats never matched: {stats}")
            time.sleep(0.01)


def _settled(tasks: list[dict[str, Any]], now: float, deadline: float, timeout: float) -> bool:
    """Whether the callbacks due by ``now`` were all attempted; TimeoutError past ``deadline``."""
    waiting = [t["task_id"] for t in tasks if not _callbacks_settled(t, now)]
    if waiting and time.monotonic() > deadline:
        raise TimeoutError(
            f"callbacks due by now were not attempted within {timeout:g} s "
            f"(tasks {', '.join(waiting)}); if the receiver runs in this test's event loop, "
            "use `await mock.aadvance(...)`"
        )
    return not waiting


def _callbacks_settled(task: dict[str, Any], now: float) -> bool:
    """Whether every callback of a task due by ``now`` has been attempted at least once."""
    if not task.get("callback_url"):
        return True
    journal = task.get("callbacks") or []
    if any(d.get("kind") == "challenge" and not _check_passed(d) for d in journal):
        return True  # a failed callback check: no updates follow
    planned = task.get("planned", {}).get("callbacks") or []
    due = sum(1 for event in planned if event.get("due", 0) <= now)
    tried = sum(1 for d in journal if d.get("kind") == "update" and d.get("attempt", 1) == 1)
    return tried >= due


def _check_passed(entry: dict[str, Any]) -> bool:
    if "ok" in entry:
        return bool(entry["ok"])
    return entry.get("result") == "ok" or entry.get("fault") == "skip"
