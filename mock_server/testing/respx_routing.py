"""respx routes that send MiniMax's real origins to the mock, in-process, with no socket.

Code under test keeps its production base URL (``https://api.minimax.io``); httpx requests to it
are answered by the mock app, and those to the download URLs it hands out (on
:data:`CDN_ORIGIN`) by the mock's download origin. Needs
respx (imported here only: the rest of ``mock_server`` works without it).

How a request reaches the mock: the mock app lives on its server thread's event loop (its state
and its callback deliveries belong to that loop), so every routed request runs there, through
httpx's ASGITransport (see :class:`~mock_server.testing.asgi_bridge.LoopBridge`):

- called where no event loop runs (a sync ``httpx.Client``), the route blocks its thread until
  the mock answers (ASGITransport is async-only);
- called inside a running event loop (an ``httpx.AsyncClient``: respx awaits an awaitable side
  effect), it awaits the answer without blocking that loop, so a callback receiver served in the
  caller's own loop can still answer the mock's challenge meanwhile. (A sync client used inside
  a coroutine blocks its loop: not supported here.)

Requests are caught where an httpx client picks its transport (respx's ``httpx`` mocker), so a
client with a transport of its own is routed too.

Other requests: the mock's own callback deliveries (to the receiver URL the test gives) and
anything to a loopback host pass through to the network; everything else fails as not mocked
(respx's ``assert_all_mocked``), so a test cannot reach the internet by mistake.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence

import httpx
import respx
from starlette.types import ASGIApp

from mmgen import DEFAULT_BASE_URL
from mmgen.serving import LOOPBACK_HOSTS
from mock_server.callbacks import USER_AGENT
from mock_server.testing.harness import MinimaxMock

#: The real API's origins (international and mainland China).
MINIMAX_ORIGINS = (DEFAULT_BASE_URL, "https://api.minimaxi.com")
#: Where the routed mock's download URLs point (a reserved .test name: never a real host).
CDN_ORIGIN = "https://video-cdn.minimax.test"


class MinimaxRoutes:
    """Routes MiniMax origins to a :class:`MinimaxMock` while started (what ``minimax_respx``
    returns): ``base_url``, ``origins``, ``cdn_origin`` (of the download URLs), ``router``
    (respx's, with its ``calls``) and ``mock`` (the handle)."""

    def __init__(
        self,
        mock: MinimaxMock,
        origins: Sequence[str] = MINIMAX_ORIGINS,
        cdn_origin: str = CDN_ORIGIN,
    ) -> None:
        self.mock = mock
        self.origins = tuple(o.rstrip("/") for o in origins)
        self.base_url = self.origins[0]
        self.cdn_origin = cdn_origin.rstrip("/")
        self._previous_download_origin: str | None = None
        # respx's "httpx" mocker routes every httpx client whatever its transport.
        self.router = respx.MockRouter(
            assert_all_called=False, assert_all_mocked=True, using="httpx"
        )
        self.router.route(headers={"user-agent": USER_AGENT}).pass_through()
        self.router.route(host__in=LOOPBACK_HOSTS).pass_through()
        for origin in self.origins:
            self._forward(origin, mock.service.switch)
        self._forward(self.cdn_origin, mock.service.cdn_switch)

    def _forward(self, origin: str, app: ASGIApp) -> None:
        service = self.mock.service

        def forward(request: httpx.Request) -> httpx.Response | Awaitable[httpx.Response]:
            try:
                asyncio.get_running_loop()
            except RuntimeError:  # no loop in this thread: a sync client
                return service.bridge.call(app, request)
            return service.bridge.acall(app, request)

        url = httpx.URL(origin)
        self.router.route(scheme=url.scheme, host=url.host).mock(side_effect=forward)

    def start(self) -> MinimaxRoutes:
        service = self.mock.service
        self._previous_download_origin = service.download_origin
        service.download_origin = self.cdn_origin
        self.router.start()
        return self

    def stop(self) -> None:
        self.router.stop(quiet=True)
        self.mock.service.download_origin = self._previous_download_origin

    def __enter__(self) -> MinimaxRoutes:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
