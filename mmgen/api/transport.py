"""The HTTP client of mmgen's outgoing calls: httpx's API over aiohttp's connections.

mmgen's API lanes and downloads (:mod:`mmgen.api.lanes`) and the mock's callback deliveries
(:mod:`mock_server.callbacks`) all make their clients with :func:`one_connection_client`: an
httpx client (the API the code, its tests and respx know) whose transport is
:class:`AiohttpTransport`, one aiohttp connection. Why: a small API call cost ~0.46 ms of CPU
through httpcore (anyio streams, h11, the pool's bookkeeping) and ~0.08 ms through aiohttp (C
parser, asyncio protocols), ~0.33 ms through httpx over aiohttp; with three calls and a download
per finished job on one loop, this is what ``bench/lag.py`` measures (20 jobs ending together:
lag p50 52 -> 42 ms, see the commit). httpx still builds requests, follows redirects, decodes
content and raises its own exceptions, so nothing above the transport changes.

The transport maps aiohttp's exceptions onto httpx's precisely, because the client decides on
them whether a create request may have reached MiniMax (:data:`mmgen.api.client._NOT_SENT`): only a
connection never made (refused, DNS, TLS handshake, connect timeout) is "not sent"; a connection
dropped or reset after the request left, a read timeout, a truncated body are not.

Proxies: httpx routes proxied URLs (``HTTPS_PROXY``...) to its own transports as before; this
one carries direct connections only.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import httpx
import yarl  # aiohttp's URL type (one of its dependencies)

__all__ = ["AiohttpTransport", "CookielessClient", "one_connection_client"]

#: How long an idle connection is kept open (httpx's default keep-alive expiry).
KEEPALIVE_SECONDS = 5.0

#: aiohttp exception -> httpx exception, the most specific first (a subclass before its base:
#: e.g. ServerTimeoutError is a ServerConnectionError and a TimeoutError).
_EXCEPTIONS: tuple[tuple[type[BaseException], type[httpx.TransportError]], ...] = (
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),
    (aiohttp.SocketTimeoutError, httpx.ReadTimeout),
    (aiohttp.ServerTimeoutError, httpx.ReadTimeout),
    (aiohttp.ClientConnectorError, httpx.ConnectError),  # refused, DNS, TLS: nothing was sent
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
    (aiohttp.ClientPayloadError, httpx.RemoteProtocolError),  # a body cut short
    (aiohttp.ClientResponseError, httpx.RemoteProtocolError),  # not HTTP, bad headers
    (aiohttp.InvalidUrlClientError, httpx.UnsupportedProtocol),
    (aiohttp.NonHttpUrlClientError, httpx.UnsupportedProtocol),
    (aiohttp.ClientOSError, httpx.ReadError),  # reset during the exchange
    (aiohttp.ClientConnectionError, httpx.ReadError),
    (aiohttp.ClientError, httpx.RemoteProtocolError),
    (TimeoutError, httpx.ReadTimeout),
    (OSError, httpx.ReadError),
)


@contextlib.contextmanager
def _httpx_errors(request: httpx.Request) -> Iterator[None]:
    """Raise aiohttp's (and the socket's) errors as the httpx error they mean."""
    try:
        yield
    except httpx.HTTPError:
        raise
    except Exception as exc:
        for theirs, ours in _EXCEPTIONS:
            if isinstance(exc, theirs):
                raise ours(_message(exc), request=request) from exc
        raise


def _message(exc: Exception) -> str:
    """The error's own words. A connection never made says what the socket or TLS said
    ("[Errno 111] Connect call failed ...", "certificate verify failed ..."): aiohttp's text
    repeats the host the caller names already and adds its TLS setting ("ssl:default")."""
    if isinstance(exc, aiohttp.ClientConnectorError) and str(exc.os_error):
        return str(exc.os_error)
    return str(exc) or type(exc).__name__


class _ResponseBody(httpx.AsyncByteStream):
    """An aiohttp response's body as httpx reads it: chunks as they arrive, never buffered whole
    (aiohttp pauses the socket past its read buffer, so a 1 GB video streams in bounded memory)."""

    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _httpx_errors(self._request):
            async for chunk in self._response.content.iter_any():
                yield chunk

    async def aclose(self) -> None:
        # A body read to the end hands the connection back for the next request; one left
        # unread closes it (aiohttp knows which).
        self._response.release()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An httpx transport over one aiohttp session of at most ``connections`` connections.

    The session is made on first use, on the loop that uses it (aiohttp binds it to that loop);
    :meth:`aclose` closes it. No cookies (nothing here uses them), no decompression (httpx
    decodes, and counts the bytes on the wire for the Content-Length check), no redirects (httpx
    follows them), no proxy from the environment (httpx routes proxied URLs elsewhere).
    Timeouts come from each request (httpx's ``timeout=``): connect and read; aiohttp has no
    write timeout.
    """

    def __init__(
        self,
        *,
        tls: ssl.SSLContext,
        connections: int = 1,
        keepalive: float = KEEPALIVE_SECONDS,
    ) -> None:
        self._tls = tls
        self._connections = connections
        self._keepalive = keepalive
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._connections,
                    ssl=self._tls,
                    keepalive_timeout=self._keepalive,
                ),
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
                trust_env=False,
                # send exactly the headers httpx built: aiohttp adds none of its own
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._open()
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        connect, pool = timeouts.get("connect"), timeouts.get("pool")
        # Bodies are sent whole, with their Content-Length (mmgen's are a few hundred bytes):
        # a stream httpx has not read yet -- the empty one of a request that follows a
        # redirect, say -- is read here, and httpx's "Transfer-Encoding: chunked" for it dropped
        # (aiohttp would send the bytes unframed under it; handed the stream itself, it would
        # send even an empty one chunked: a GET with a body).
        data = await request.aread() or None
        headers = [(k, v) for k, v in request.headers.raw if k.lower() != b"transfer-encoding"]
        with _httpx_errors(request):
            response = await session.request(
                request.method,
                # as httpx encoded it, byte for byte: yarl would otherwise re-quote (%7E -> ~,
                # %2f -> /, %41 -> A), and a signed download URL must reach the CDN unchanged
                yarl.URL(str(request.url), encoded=True),
                headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers],
                data=data,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    connect=None if connect is None or pool is None else connect + pool,
                    sock_connect=connect,
                    sock_read=timeouts.get("read"),
                ),
                server_hostname=request.extensions.get("sni_hostname"),
            )
        extensions: dict[str, Any] = {"http_version": b"HTTP/1.1"}
        if response.reason:
            extensions["reason_phrase"] = response.reason.encode("latin-1", "replace")
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=_ResponseBody(response, request),
            extensions=extensions,
        )

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()


class _NoCookies(httpx.Cookies):
    """A cookie jar that never takes nor sends a cookie."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None

    def set_cookie_header(self, request: httpx.Request) -> None:
        return None


class CookielessClient(httpx.AsyncClient):
    """An httpx client that ignores ``Set-Cookie``. Nothing here uses cookies (MiniMax takes a
    bearer key, its CDN signed URLs, callback receivers nothing), while httpx parses every
    response's cookies through urllib's cookie jar: 11% of a small API call's CPU, measured."""

    _no_cookies = _NoCookies()

    @property
    def cookies(self) -> httpx.Cookies:
        return self._no_cookies

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        return None


def one_connection_client(
    *,
    tls: ssl.SSLContext,
    user_agent: str,
    timeout: httpx.Timeout | None = None,
    trust_env: bool = True,
) -> httpx.AsyncClient:
    """An httpx client of one aiohttp connection: a lane of :mod:`mmgen.api.lanes`, a callback
    sender of the mock. ``tls``: one context for all of them (making one costs ~10-20 ms);
    ``trust_env``: honour ``HTTPS_PROXY`` and friends (httpx's own transports carry those)."""
    return CookielessClient(
        trust_env=trust_env,
        transport=AiohttpTransport(tls=tls, connections=1),
        timeout=timeout if timeout is not None else httpx.Timeout(5.0),
        verify=tls,
        follow_redirects=False,
        headers={"User-Agent": user_agent},
        limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
    )
