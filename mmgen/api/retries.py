"""How the client waits between tries: tenacity's full-jitter exponential backoff, slowed for
the connection and growth limits, never shorter than a ``Retry-After``; and waits that give up
as soon as the run stops submitting."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import RetryCallState, wait_random_exponential
from tenacity.wait import wait_base

from mmgen.errors import ApiError, NotSentError

T = TypeVar("T")

#: Codes that ask to back off harder (connection limit, rate growth limit).
SLOW_CODES = frozenset({1041, 2045})


@dataclass(frozen=True)
class RetryPolicy:
    """How the client retries retryable failures.

    The wait before retry *n* (1-based) is drawn uniformly from
    ``[0, min(max_wait, initial_wait * multiplier ** (n - 1))]`` ("full jitter"; the upper bound
    itself when ``jitter`` is false), times ``slow_factor`` for codes 1041/2045 (capped at
    ``max_wait * slow_factor``). A ``Retry-After`` header wins when it asks for longer, up to
    ``max_retry_after``.
    """

    #: Tries in total per API call (1 = no retry).
    attempts: int = 6
    initial_wait: float = 1.0
    max_wait: float = 30.0
    multiplier: float = 2.0
    slow_factor: float = 3.0
    max_retry_after: float = 120.0
    #: Tries in total per download (each one restarts from the first byte).
    download_attempts: int = 3
    jitter: bool = True

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.download_attempts < 1:
            raise ValueError("attempts and download_attempts must be at least 1")
        if min(self.initial_wait, self.max_wait, self.max_retry_after) < 0:
            raise ValueError("waits must not be negative")
        if self.multiplier < 1 or self.slow_factor < 1:
            raise ValueError("multiplier and slow_factor must be at least 1")

    def strategy(self) -> wait_base:
        """This policy as a tenacity wait strategy."""
        return PolicyWait(self)


class PolicyWait(wait_base):
    """tenacity's full-jitter exponential wait (``wait_random_exponential``), slowed for codes
    1041/2045, and never shorter than a ``Retry-After`` the server asked for."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self._jittered = wait_random_exponential(
            multiplier=policy.initial_wait, max=policy.max_wait, exp_base=policy.multiplier
        )

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None and outcome.failed else None
        policy = self.policy
        if policy.jitter:
            wait = float(self._jittered(retry_state))
        else:
            exponent = min(retry_state.attempt_number - 1, 64)
            wait = min(policy.max_wait, policy.initial_wait * policy.multiplier**exponent)
        if isinstance(error, ApiError) and error.code in SLOW_CODES:
            wait *= policy.slow_factor
        retry_after = getattr(error, "retry_after", None)
        if isinstance(retry_after, int | float) and retry_after > wait:
            wait = min(float(retry_after), policy.max_retry_after)
        return wait


async def unless_aborted(abort: asyncio.Event | None, waiting: Awaitable[T]) -> T:
    """Await ``waiting`` (a wait before a request) and return its result, or raise
    NotSentError once ``abort`` is set."""
    if abort is None:
        return await waiting
    wait = asyncio.ensure_future(waiting)
    stop = asyncio.ensure_future(abort.wait())
    try:
        await asyncio.wait({wait, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
        if not wait.done():
            wait.cancel()
    if wait.done() and not wait.cancelled():
        return wait.result()  # it finished first (a limiter slot taken is given back by the caller)
    raise NotSentError
