"""An async requests-per-minute limiter for the MiniMax create endpoint.

A sliding window: at most ``rpm`` acquisitions in any ``window`` seconds (60 by default).
``rpm=None`` or ``0`` means unlimited. :meth:`RateLimiter.penalize` pauses every caller for a
while, which the client does when MiniMax answers 1002 / HTTP 429 anyway (the real budget is
shared with other users of the key, or the published limit changed).

The clock and the sleep function are injectable so the timing is testable without waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable

__all__ = ["RateLimiter"]


class RateLimiter:
    """Allow at most ``rpm`` calls of :meth:`acquire` per ``window`` seconds, FIFO-fair."""

    def __init__(
        self,
        rpm: int | None,
        *,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rpm is not None and rpm < 0:
            raise ValueError("rpm must be positive, 0 or None (unlimited)")
        if window <= 0:
            raise ValueError("window must be positive")
        self.rpm = rpm or None
        self.window = window
        self._clock = clock
        self._sleep = sleep
        self._stamps: deque[float] = deque()
        self._blocked_until = float("-inf")
        self._lock = asyncio.Lock()
        self._changed = asyncio.Event()

    def __repr__(self) -> str:
        return f"RateLimiter(rpm={self.rpm}, window={self.window})"

    @property
    def interval(self) -> float:
        """The average spacing of calls at the limit (0 when unlimited)."""
        return self.window / self.rpm if self.rpm else 0.0

    def penalize(self, seconds: float) -> None:
        """Hold back every caller for ``seconds`` from now (extends, never shortens, a pause)."""
        if seconds > 0:
            self._blocked_until = max(self._blocked_until, self._clock() + seconds)

    def _wait_needed(self, now: float) -> float:
        if self._blocked_until > now:
            return self._blocked_until - now
        if self.rpm is None:
            return 0.0
        while self._stamps and self._stamps[0] <= now - self.window:
            self._stamps.popleft()
        if len(self._stamps) < self.rpm:
            return 0.0
        return self._stamps[0] + self.window - now

    def refund(self, stamp: float | None) -> None:
        """Give back the acquisition that returned ``stamp`` (its request never reached the
        server); a caller waiting for a slot re-checks at once. Its own stamp, not the newest:
        giving back a later call's would let ``rpm + 1`` calls land in one window."""
        if stamp is None:  # nothing was counted
            return
        with contextlib.suppress(ValueError):  # unlimited, or already out of the window
            self._stamps.remove(stamp)  # equal stamps are interchangeable: the same instant
            self._changed.set()

    async def _pause(self, seconds: float) -> None:
        """Sleep ``seconds``, or less when :meth:`refund` frees a slot meanwhile."""
        self._changed.clear()
        sleeper = asyncio.ensure_future(self._sleep(seconds))
        waker = asyncio.ensure_future(self._changed.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waker.cancel()

    def _take(self) -> tuple[float, float]:
        """Count one more call now if it fits: (0, its stamp); else (seconds to wait, now)."""
        now = self._clock()
        wait = self._wait_needed(now)
        if wait <= 0 and self.rpm is not None:
            self._stamps.append(now)
        return max(wait, 0.0), now

    def try_acquire(self) -> float | None:
        """Count one more call now if it fits without waiting (nobody queued before it):
        its stamp, for :meth:`refund`; None when it does not fit."""
        if self._lock.locked():
            return None
        wait, stamp = self._take()
        return stamp if wait == 0 else None

    async def acquire(self) -> float:
        """Wait until one more call fits in the window, then count it: its stamp, for
        :meth:`refund`."""
        async with self._lock:
            while True:
                wait, stamp = self._take()
                if wait == 0:
                    return stamp
                await self._pause(wait)
