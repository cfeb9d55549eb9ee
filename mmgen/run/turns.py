"""Finishing turns: the order in which jobs whose tasks ended finish.

A job whose task ended confirms its status, retrieves and downloads its video and records the
outcome; that is a few milliseconds of the run's CPU. When many tasks end together, sharing the
CPU between all of them finishes every job near the end of the burst; taking them a few at a
time, in arrival order, finishes the first ones early and the last ones no later (the same work,
in order), so the typical completion lag is a fraction of the burst's (bench/lag.py).

A turn is a priority, not a bound: after :data:`TURN_HOLD_SECONDS` the job goes on without it
(a far API, a big video or a stalled CDN is waiting for the network, not using the CPU), the
client's lanes still bounding the connections. A turn also carries the retrieve a terminal push
started (:meth:`Turn.prefetch`) until the download round that uses it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from mmgen.errors import MmgenError

if TYPE_CHECKING:
    from mmgen.api.answers import FileInfo

log = logging.getLogger(__name__)

#: Jobs that may hold a finishing turn at once; 4 gave the lowest completion lag of 20 jobs
#: ending together (bench/lag.py: 2 and 3 idled the CPU, 8 and 20 shared it too thinly).
FINISHING_IN_FLIGHT = 4
#: A turn lasts at most this long: a job still finishing by then is waiting for the network,
#: so it goes on without one and the next job starts.
TURN_HOLD_SECONDS = 0.25


def finishing_gate() -> asyncio.Semaphore:
    """The turns of one run."""
    return asyncio.Semaphore(FINISHING_IN_FLIGHT)


class Turn:
    """One job's turn to finish, taken from a :func:`finishing_gate` (at most once at a time)."""

    __slots__ = ("_expired", "_expiry", "_file_id", "_gate", "_held", "_retrieve")

    def __init__(self, gate: asyncio.Semaphore) -> None:
        self._gate = gate
        self._held = False
        self._expired = False  # the turn ran out: the job goes on without one, not back in line
        self._expiry: asyncio.TimerHandle | None = None
        self._file_id: str | None = None
        self._retrieve: asyncio.Future[FileInfo] | None = None

    async def take(self) -> None:
        """Hold the turn (wait for it); at once when held already or when it ran out."""
        if not self._held and not self._expired:
            await self._gate.acquire()
            self._held = True
            loop = asyncio.get_running_loop()
            self._expiry = loop.call_later(TURN_HOLD_SECONDS, self._expire)

    def give_back(self) -> None:
        """Done with the turn for now (a push not confirmed): a later :meth:`take` waits for
        a new one."""
        self._forget()
        self._release()
        self._expired = False

    def _expire(self) -> None:
        self._expiry = None
        self._release()
        self._expired = True

    def _release(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        if self._held:
            self._held = False
            self._gate.release()

    def prefetch(
        self, retrieve: Callable[[str], Awaitable[FileInfo]], pushed: dict[str, Any]
    ) -> None:
        """Retrieve the file a terminal push names while its status is being confirmed: a read
        that spends nothing, used only if the query confirms that very file (one round trip
        less per job; a forged or stale push costs one wasted read)."""
        file_id = pushed.get("file_id")
        self._forget()
        if isinstance(file_id, str | int) and not isinstance(file_id, bool) and str(file_id):
            self._file_id = str(file_id)
            self._retrieve = asyncio.ensure_future(retrieve(self._file_id))

    async def prefetched(self, file_id: str) -> FileInfo | None:
        """The prefetched description of ``file_id``; None when there is none (not pushed,
        another file, or that read failed: the caller retrieves it itself)."""
        retrieve, pushed_id = self._retrieve, self._file_id
        self._retrieve = self._file_id = None
        if retrieve is None:
            return None
        if pushed_id != file_id:
            _discard(retrieve)
            return None
        try:
            return await retrieve
        except MmgenError as err:
            log.info("prefetched retrieve of %s failed (%s); retrieving again", file_id, err)
            return None

    def _forget(self) -> None:
        if self._retrieve is not None:
            _discard(self._retrieve)
        self._retrieve = self._file_id = None


def _discard(task: asyncio.Future[Any]) -> None:
    """Cancel a task whose result nobody wants, and never warn about its exception."""
    task.cancel()
    task.add_done_callback(lambda t: t.cancelled() or t.exception())
