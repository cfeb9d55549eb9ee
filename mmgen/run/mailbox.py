"""A mailbox: where one waiting job receives its callback pushes, cheaply.

An ``asyncio.Queue`` plus a task per wait (to also wake on a timeout or on the run stopping)
costs a few kilobytes per job; with 10,000 jobs in flight that is most of a run's memory. A
:class:`Mailbox` is a deque and at most one pending future: ``put`` (from the run's loop; the
listener's thread hands pushes over with ``call_soon_threadsafe``) appends and wakes the
waiter, ``get(timeout)`` returns the next push or None after ``timeout`` seconds or on
:meth:`wake`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

#: Pushes kept per task (a flood of forged pushes drops the oldest).
LIMIT = 64


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class Mailbox:
    """Pushes for one task, in arrival order (bounded: the oldest are dropped past ``limit``)."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: deque[dict[str, Any]] | None = None  # made at the first push
        self._waiter: asyncio.Future[None] | None = None

    def put(self, item: dict[str, Any]) -> None:
        if self._items is None:
            self._items = deque(maxlen=LIMIT)
        self._items.append(item)
        self.wake()

    def wake(self) -> None:
        """Wake a pending :meth:`get` (it returns what is there, or None)."""
        if self._waiter is not None:
            _wake(self._waiter)

    def empty(self) -> bool:
        return not self._items

    def _pop(self) -> dict[str, Any] | None:
        if not self._items:
            return None
        item = self._items.popleft()
        if not self._items:
            self._items = None  # ~600 bytes a waiting job need not keep between pushes
        return item

    async def get(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next push; None after ``timeout`` seconds or when woken with nothing to give."""
        if self._items:
            return self._pop()
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiter = waiter
        timer = loop.call_later(timeout, _wake, waiter) if timeout is not None else None
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()
        return self._pop()
