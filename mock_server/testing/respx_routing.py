"""respx routes that send MiniMax's real origins to the mock, in-process, with no socket.

Code under test keeps its production base URL (``https://api.minimax.io``); httpx requests to it
are answered by the mock app, and those to the download URLs it hands out (on
:data:`CDN_ORIGIN`) by the mock's download origin. Needs
respx (imported here only: the rest of ``mock_server`` works without it).

How a request reaches the mock: the mock app lives on its server thread's event loop (its state
and its callback deliveries belong to that loop), so every routed request runs there, through
httpx's ASGITransport (see :class:`~mock_server.testing.asgi_bridge.LoopBridge`):

- a sync ``httpx.Client`` blocks its own thread until the mock answers (ASGITransport is
  async-only, and the caller may have no event loop at all);
- an async ``httpx.AsyncClient`` awaits the answer without blocking its loop, so a callback
  receiver served in the caller's own loop can still answer the mock's challenge meanwhile.

Requests are caught where an httpx client picks its transport (respx's ``httpx`` mocker), so a
client with a transport of its own is routed too: mmgen's :class:`~mmgen.api.client.MiniMaxClient`
(over aiohttp, :mod:`mmgen.api.transport`) among them.

Other requests: the mock's own callback deliveries (to the receiver URL the test gives) and
anything to a loopback host pass through to the network; everything else fails as not mocked
(respx's ``assert_all_mocked``), so a test cannot reach the internet by mistake.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Sequence

import httpx
import respx
from starlette.types import ASGIApp

from mock_server.callbacks import USER_AGENT
from mock_server.testing.harness import MinimaxMock

#: The real API's origins (international and mainland China).
MINIMAX_ORIGINS = ("https://api.minimax.io", "https://api.minimaxi.com")
#: Where the routed mock's download URLs point (a reserved .test name: never a real host).
CDN_ORIGIN = "https://video-cdn.minimax.test"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")

_in_async_handler: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "mmgen_respx_async", default=False
)


class _Router(respx.MockRouter):
    """Tells the side effect whether the request comes from an async client."""

    async def async_handler(self, request: httpx.Request) -> httpx.Response:
        token = _in_async_handler.set(True)
        try:
            return await super().async_handler(request)
        finally:
            _in_async_handler.reset(token)


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
        # respx's "httpx" mocker routes every httpx client whatever its transport: mmgen's own
        # client (httpx over aiohttp, mmgen.api.transport) as well as plain httpx clients.
        self.router = _Router(assert_all_called=False, assert_all_mocked=True, using="httpx")
        self.router.route(headers={"user-agent": USER_AGENT}).pass_through()
        self.router.route(host__in=LOOPBACK_HOSTS).pass_through()
        for origin in self.origins:
            self._forward(origin, mock.service.switch)
        self._forward(self.cdn_origin, mock.service.cdn_switch)

    def _forward(self, origin: str, app: ASGIApp) -> None:
        service = self.mock.service

        def forward(request: httpx.Request) -> httpx.Response | Awaitable[httpx.Response]:
            if _in_async_handler.get():
                return service.bridge.acall(app, request)
            return service.bridge.call(app, request)

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
