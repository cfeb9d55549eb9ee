"""Connections for many concurrent requests: httpx clients of one connection each, lent first
come, first served. Shared by mmgen's client (API calls, downloads) and the mock's callback
deliveries.

Why not one httpx client with ``limits=Limits(max_connections=N)``: for every request, and again
when its response is closed, httpcore's pool walks all of its connections, asking each whether it
expired (a ``poll`` of its socket through anyio); with 48 connections that walk was a quarter of a
10,000-job run's CPU (py-spy, bench/inflight.py). A pool of one connection per client makes it one
check; the lending order (FIFO for waiters, the most recently used connection first) is this
module's, so no pool ever holds a queue either (encode/httpx#3215).

Each client is a plain ``httpx.AsyncClient`` on httpx's own transport (proxies from the
environment included when ``trust_env``), made on first use, all sharing one TLS context.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from typing import Any

import httpx

__all__ = ["ConnectionPool"]


class ConnectionPool:
    """At most ``size`` httpx clients of one keep-alive connection each.

    ``async with pool.client() as http: await http.get(...)`` waits for a free one (first come,
    first served). ``options`` are ``httpx.AsyncClient``'s (``timeout``, ``headers``,
    ``trust_env``...). :meth:`aclose` closes every client made. With ``shared``, that one
    client (a test's, say) is lent ``size`` times at once instead, and never closed here.
    """

    def __init__(
        self,
        size: int,
        *,
        tls: ssl.SSLContext | None = None,
        shared: httpx.AsyncClient | None = None,
        **options: Any,
    ) -> None:
        self.size = max(1, size)
        self._shared = shared
        self._tls = tls
        self._options = options
        self._made: list[httpx.AsyncClient] = []
        self._idle: list[httpx.AsyncClient] = []  # the most recently used last
        self._free = asyncio.Semaphore(self.size)
        self._closed = False

    @contextlib.asynccontextmanager
    async def client(self) -> AsyncIterator[httpx.AsyncClient]:
        if self._closed:
            raise RuntimeError("the connections were closed (aclose)")
        async with self._free:
            if self._shared is not None:
                yield self._shared
                return
            http = self._idle.pop() if self._idle else self._make()
            try:
                yield http
            finally:
                self._idle.append(http)

    def _make(self) -> httpx.AsyncClient:
        if self._tls is None:  # one for all: making one costs ~10-20 ms
            self._tls = httpx.create_ssl_context()
        http = httpx.AsyncClient(
            verify=self._tls,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            **self._options,
        )
        self._made.append(http)
        return http

    async def aclose(self) -> None:
        self._closed = True
        made, self._made, self._idle = self._made, [], []
        for http in made:
            await http.aclose()
