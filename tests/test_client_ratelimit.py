"""RateLimiter: sliding-window RPM limiting with a fake clock."""

from __future__ import annotations

import asyncio

import pytest

from mmgen.api.ratelimit import RateLimiter


class FakeTime:
    """A clock that only moves when something sleeps on it."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)  # let other tasks run, as a real sleep would


def limiter(rpm: int | None, t: FakeTime, window: float = 60.0) -> RateLimiter:
    return RateLimiter(rpm, window=window, clock=t.clock, sleep=t.sleep)


@pytest.mark.anyio
async def test_calls_within_budget_do_not_wait() -> None:
    t = FakeTime()
    rl = limiter(3, t)
    for _ in range(3):
        await rl.acquire()
    assert t.sleeps == []


@pytest.mark.anyio
async def test_call_over_budget_waits_for_the_window() -> None:
    t = FakeTime()
    rl = limiter(2, t)
    await rl.acquire()
    await rl.acquire()
    await rl.acquire()
    assert t.sleeps == [60.0]
    assert t.now == 60.0


@pytest.mark.anyio
async def test_window_slides() -> None:
    t = FakeTime()
    rl = limiter(2, t)
    await rl.acquire()  # t=0
    t.now = 30.0
    await rl.acquire()  # t=30
    await rl.acquire()  # must wait for the t=0 stamp to leave: until t=60
    assert t.sleeps == [30.0]
    await rl.acquire()  # next: the t=30 stamp leaves at t=90
    assert t.sleeps == [30.0, 30.0]
    assert t.now == 90.0


@pytest.mark.anyio
async def test_concurrent_callers_are_spread_over_windows() -> None:
    t = FakeTime()
    rl = limiter(2, t)
    started: list[float] = []

    async def job() -> None:
        await rl.acquire()
        started.append(t.now)

    await asyncio.gather(*(job() for _ in range(5)))
    assert started == [0.0, 0.0, 60.0, 60.0, 120.0]


@pytest.mark.parametrize("rpm", [None, 0])
@pytest.mark.anyio
async def test_unlimited(rpm) -> None:
    t = FakeTime()
    rl = limiter(rpm, t)
    for _ in range(1000):
        await rl.acquire()
    assert t.sleeps == []
    assert rl.interval == 0.0


@pytest.mark.anyio
async def test_penalize_pauses_everyone_even_when_unlimited() -> None:
    t = FakeTime()
    rl = limiter(None, t)
    rl.penalize(12.5)
    rl.penalize(3.0)  # never shortens a pause
    await rl.acquire()
    await rl.acquire()
    assert t.sleeps == [12.5]


@pytest.mark.anyio
async def test_penalty_and_window_combine() -> None:
    t = FakeTime()
    rl = limiter(1, t)
    await rl.acquire()  # t=0
    rl.penalize(90.0)
    await rl.acquire()  # the penalty (90) outlasts the window (60)
    assert t.sleeps == [90.0]


def test_interval_and_validation() -> None:
    t = FakeTime()
    assert limiter(5, t).interval == 12.0
    with pytest.raises(ValueError):
        limiter(-1, t)
    with pytest.raises(ValueError):
        limiter(1, t, window=0)
    assert "rpm=5" in repr(limiter(5, t))


def test_try_acquire_counts_only_what_fits_now() -> None:
    now = [0.0]
    limiter = RateLimiter(2, clock=lambda: now[0])
    assert limiter.try_acquire() == 0.0 and limiter.try_acquire() == 0.0  # their stamps
    assert limiter.try_acquire() is None  # the window is full: acquire() would wait
    now[0] = 60.0
    assert limiter.try_acquire() == 60.0
    limiter.penalize(5)
    assert limiter.try_acquire() is None
    assert RateLimiter(None).try_acquire() is not None


@pytest.mark.anyio
async def test_a_refund_gives_back_the_refunded_calls_stamp_not_the_newest() -> None:
    """Call a (t=0) never left, call b (t=30) did: refunding a must keep b counted. Popping
    the newest stamp (b's) let rpm + 1 calls land in one window: b, c (t=31) and d (t=60)."""
    t = FakeTime()
    rl = limiter(2, t)
    a = await rl.acquire()
    t.now = 30.0
    b = await rl.acquire()
    assert (a, b) == (0.0, 30.0)
    rl.refund(a)  # a's request never reached the server
    t.now = 31.0
    assert rl.try_acquire() == 31.0  # c takes a's place
    t.now = 60.0
    assert rl.try_acquire() is None  # b (30) and c (31) fill the window until 90
    await rl.acquire()
    assert t.now == 90.0 and t.sleeps == [30.0]
    rl.refund(None)  # nothing counted (unlimited): nothing given back
    rl.refund(12.5)  # a stamp no longer in the window: nothing given back
    assert rl.try_acquire() is None
