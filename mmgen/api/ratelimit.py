"""An async requests-per-minute limiter for the MiniMax create endpoint.

A sliding window: at most ``rpm`` acquisitions in any ``window`` seconds (60 by default).
``rpm=None`` or ``0`` means unlimited. :meth:`RateLimiter.penalize` pauses every caller for a
while, which the client does when MiniMax answers 1002 / HTTP 429 anyway (the real budget is
shared with other users of the key, or the published limit changed).

The clock and the sleep function are injectable so the timing is testable without waiting.
"""

from __future__ import annotations

import asyncio
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

    def refund(self) -> None:
        """Give back the most recent acquisition (its request never reached the server); a
        caller waiting for a slot re-checks at once."""
        if self._stamps:
            self._stamps.pop()
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

    def _take(self) -> float:
        """Count one more call now if it fits (returns 0), else the seconds to wait first."""
        now = self._clock()
        wait = self._wait_needed(now)
        if wait <= 0 and self.rpm is not None:
            self._stamps.append(now)
        return max(wait, 0.0)

    def try_acquire(self) -> bool:
        """Count one more call now if it fits without waiting (nobody queued before it)."""
        return not self._lock.locked() and self._take() == 0

    async def acquire(self) -> None:
        """Wait until one more call fits in the window, then count it."""
        async with self._lock:
            while (wait := self._take()) > 0:
                await self._pause(wait)
