"""Serving the mock: its API origin and its CDN origin, through :mod:`mmgen.serving`.

- :class:`MockServers` serves both origins in background threads (tests, benchmarks, any
  program embedding the mock): ``with MockServers(config) as mock: mock.url, mock.cdn_url``.
- :func:`serve` serves them in the foreground until Ctrl-C (``mmgen mock``,
  ``python -m mock_server``): the API on the calling thread, the CDN origin on a thread.

The CDN origin (:func:`mock_server.downloads.cdn_app`) serves only the video downloads, on a port
of its own, like MiniMax's download host; the API app then builds download URLs on it. Serve the
API app alone (``create_app``) and downloads stay on the API origin under ``/cdn/``.
"""

from __future__ import annotations

from collections.abc import Callable

from mmgen.serving import ServerThread, serve_forever
from mock_server.app import MockApi, create_app
from mock_server.clock import Clock
from mock_server.config import MockConfig
from mock_server.downloads import cdn_app


class MockServers:
    """The mock's API and CDN origins, each served by a :class:`mmgen.serving.ServerThread`.

    ``cdn_port=None`` serves the API origin only (downloads under its ``/cdn/`` path).
    """

    def __init__(
        self,
        config: MockConfig | None = None,
        *,
        clock: Clock | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        cdn_port: int | None = 0,
    ) -> None:
        self.app = create_app(config, clock=clock)
        self.api: MockApi = self.app.state.mock
        self._cdn = (
            ServerThread(cdn_app(self.api), host, cdn_port, lifespan="off", name="mock-cdn")
            if cdn_port is not None
            else None
        )
        self._server = ServerThread(self.app, host, port, lifespan="on", name="mock-api")
        self.url = self._server.url
        self.cdn_url = self._cdn.url if self._cdn is not None else None
        self.api.cdn_base_url = self.cdn_url

    def start(self) -> MockServers:
        if self._cdn is not None:
            self._cdn.start()
        try:
            self._server.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self._server.stop()
        if self._cdn is not None:
            self._cdn.stop()

    def __enter__(self) -> MockServers:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(
    config: MockConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    cdn_port: int | None = 0,
    on_ready: Callable[[str], None] | None = None,
    on_cdn_ready: Callable[[str], None] | None = None,
    log_level: str = "info",
    access_log: bool = True,
) -> None:
    """Serve the mock in the foreground until interrupted (Ctrl-C: KeyboardInterrupt).

    The CDN origin listens on ``host:cdn_port`` (0: any free port; None: no CDN origin, downloads
    on the API origin). ``on_ready`` receives the API's base URL once it listens, and
    ``on_cdn_ready`` the CDN origin's (the caller prints them: nothing here writes to the
    terminal except uvicorn's own logs).
    """
    app = create_app(config)
    api: MockApi = app.state.mock
    cdn: ServerThread | None = None
    if cdn_port is not None:
        cdn = ServerThread(cdn_app(api), host, cdn_port, lifespan="off", name="mock-cdn")
        api.cdn_base_url = cdn.url
        cdn.start()
        if on_cdn_ready is not None:
            on_cdn_ready(cdn.url)
    try:
        serve_forever(
            app, host, port, on_ready=on_ready, log_level=log_level, access_log=access_log
        )
    finally:
        if cdn is not None:
            cdn.stop()
