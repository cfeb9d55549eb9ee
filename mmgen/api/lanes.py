"""Connection lanes: the client's fair gate and connection pool in one."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx

from mmgen import __version__
from mmgen.api.transport import one_connection_client


class Lanes:
    """The fair gate and the pool in one: ``size`` lanes, each an httpx client with a single
    connection (an aiohttp one: :mod:`mmgen.api.transport`), handed to waiters first come, first
    served; the most recently used lane goes first (its connection is the likeliest still open).

    httpcore schedules a pool's queued requests over its connections at a cost of
    O(connections x queued requests) per request (encode/httpx#3215); with one connection per
    client and never more than one request on it, that cost is O(1) whatever the number of jobs
    in flight, and a job waiting for a lane holds nothing but its place in the queue.
    """

    def __init__(self, clients: list[httpx.AsyncClient], owned: bool) -> None:
        self._clients = clients
        self._owned = owned
        # Waiters are served first come, first served; lanes last in, first out, so a burst
        # reuses the connections that are still open instead of opening every idle lane's.
        self._idle: asyncio.Queue[httpx.AsyncClient] = asyncio.LifoQueue()
        for client in clients:
            self._idle.put_nowait(client)

    @classmethod
    def own(cls, size: int, timeout: httpx.Timeout, tls: Any) -> Lanes:
        return cls(
            [
                one_connection_client(tls=tls, user_agent=f"mmgen/{__version__}", timeout=timeout)
                for _ in range(max(1, size))
            ],
            owned=True,
        )

    @classmethod
    def shared(cls, client: httpx.AsyncClient, size: int) -> Lanes:
        """``size`` lanes on one (injected) client: the gate without the pool."""
        return cls([client] * max(1, size), owned=False)

    @contextlib.asynccontextmanager
    async def lane(self) -> AsyncIterator[httpx.AsyncClient]:
        client = await self._idle.get()
        try:
            yield client
        finally:
            self._idle.put_nowait(client)

    async def aclose(self) -> None:
        if self._owned:
            for client in self._clients:
                await client.aclose()
