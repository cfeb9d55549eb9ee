"""Seeded fault decisions.

Every kind of decision draws from its own :class:`random.Random` stream, seeded from the mock's
seed and the stream's name (``"drop:query"``, ``"rate_limit:create"``...), so toggling one fault
or interleaving requests differently does not change the others. Everything decided about a task
(its duration, outcome, challenge token, the fate of each callback) comes from a stream of its own
seeded by its creation index: task N behaves the same whatever the queries around it.
"""

from __future__ import annotations

import random
from collections import deque


class Dice:
    """Named, independently seeded random streams."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._streams: dict[str, random.Random] = {}

    def stream(self, name: str) -> random.Random:
        rng = self._streams.get(name)
        if rng is None:
            rng = self._streams[name] = random.Random(f"{self.seed}:{name}")
        return rng

    def roll(self, name: str, probability: float) -> bool:
        """True with ``probability``; draws from the stream only when the outcome is uncertain."""
        if probability <= 0.0:
            return False
        if probability >= 1.0:
            return True
        return self.stream(name).random() < probability

    def task_rng(self, seq: int) -> random.Random:
        """The stream of everything decided about the ``seq``-th task created."""
        return random.Random(f"{self.seed}:task:{seq}")


class RpmBudget:
    """At most ``rpm`` accepted requests in any 60 s window of the clock."""

    def __init__(self, rpm: int) -> None:
        self.rpm = rpm
        self._times: deque[float] = deque()

    def try_acquire(self, now: float) -> bool:
        while self._times and self._times[0] <= now - 60.0:
            self._times.popleft()
        if len(self._times) >= self.rpm:
            return False
        self._times.append(now)
        return True

    def retry_after(self, now: float) -> float:
        """Seconds until the oldest request leaves the window."""
        return max(0.0, self._times[0] + 60.0 - now) if self._times else 0.0


class IdSource:
    """Long digit strings that look like MiniMax ids (15 digits, increasing)."""

    def __init__(self, rng: random.Random, start: int) -> None:
        self._rng = rng
        self._next = start + rng.randrange(10**13)

    def __call__(self) -> str:
        self._next += self._rng.randrange(1_000, 5_000_000)
        return str(self._next)

    def peek(self) -> int:
        """The last id handed out (or the floor below the first)."""
        return self._next

    def at_least(self, value: int) -> None:
        """Never hand out ``value`` or anything below it (ids loaded from saved state)."""
        self._next = max(self._next, value)
