"""Clocks: the mock reads time through a ``Callable[[], float]`` (epoch seconds).

The default is :func:`time.time`. Tests inject a :class:`ManualClock` and move it forward to walk
tasks through their life cycle, expire download URLs or refill an RPM budget without sleeping.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

Clock = Callable[[], float]

#: Default start of a :class:`ManualClock`: 2023-11-20 08:36:38 UTC, like the API docs' examples.
DEFAULT_START = 1_700_469_398.0


class ManualClock:
    """A clock that only moves when told to; safe to advance from another thread.

    >>> clock = ManualClock()
    >>> clock.advance(5)
    >>> clock() - DEFAULT_START
    5.0
    """

    def __init__(self, start: float = DEFAULT_START) -> None:
        self._now = float(start)
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []

    def __call__(self) -> float:
        return self._now

    def subscribe(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` (from the advancing thread) each time the clock moves: the mock's
        one callback scheduler sleeps until then instead of polling."""
        with self._lock:
            self._listeners.append(listener)

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds``."""
        with self._lock:
            self._now += seconds
            listeners = list(self._listeners)
        for listener in listeners:
            listener()

    def set(self, now: float) -> None:
        """Jump to an absolute time (epoch seconds)."""
        with self._lock:
            self._now = float(now)
            listeners = list(self._listeners)
        for listener in listeners:
            listener()


def system_clock() -> float:
    """The wall clock, epoch seconds."""
    return time.time()
