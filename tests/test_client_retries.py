"""MiniMaxClient: retries, backoff, connection failures and the RPM budget (respx)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from mmgen.api.client import (
    CONNECT_ATTEMPTS,
    MiniMaxClient,
    RetryPolicy,
)
from mmgen.api.ratelimit import RateLimiter
from mmgen.api.responses import parse_retry_after
from mmgen.errors import (
    AmbiguousSubmitError,
    ConnectFailedError,
    InvalidRequestError,
    RateLimitError,
    ServerError,
    TransportError,
    UsageError,
)
from tests.client_support import (
    ATTEMPTS,
    BASE,
    BODY,
    CREATE,
    KEY,
    QUERY,
    RETRIEVE,
    err,
    ok,
    policy,
)


@pytest.mark.anyio
async def test_create_connect_errors_give_up_after_connect_attempts(client, router) -> None:
    """An unreachable server is reported after CONNECT_ATTEMPTS tries (not the full retry
    budget meant for an overloaded API), once, naming the base URL setting."""
    route = router.post(CREATE).mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(ConnectFailedError) as info:
        await client.create_task(BODY)
    assert not isinstance(info.value, AmbiguousSubmitError)
    assert route.call_count == CONNECT_ATTEMPTS < ATTEMPTS
    text = info.value.one_line()
    assert text.count("retried") == 0 and text.count("gave up after 3 tries") == 1
    assert "MINIMAX_BASE_URL" in text


@pytest.mark.anyio
async def test_connect_failures_do_not_use_up_the_rpm_budget(router) -> None:
    limiter = RateLimiter(2, clock=lambda: 0.0)
    async with MiniMaxClient(
        "k",
        BASE,
        rate_limiter=limiter,
        retry=RetryPolicy(jitter=False, initial_wait=0),
        base_url_source="--base-url",
    ) as client:
        router.post(CREATE).mock(side_effect=httpx.ConnectError("refused"))
        with pytest.raises(ConnectFailedError) as info:
            await client.create_task(BODY)
        assert "--base-url" in info.value.one_line()
    assert limiter._wait_needed(0.0) == 0  # both slots still free after 3 failed connects


@pytest.mark.anyio
async def test_before_send_runs_after_the_rate_limiter_and_before_each_try(router) -> None:
    order: list[str] = []

    class Limiter(RateLimiter):
        def try_acquire(self) -> float | None:  # the limiter's fast path (a slot free now)
            order.append("limiter")
            return 0.0

        async def acquire(self) -> float:
            order.append("limiter")
            return 0.0

    async def before_send() -> None:
        order.append("before_send")

    route = router.post(CREATE)
    # MiniMax's own 500 (its base_resp code says the create failed): retried
    failed = httpx.Response(500, json={"base_resp": {"status_code": 1000, "status_msg": "x"}})
    route.side_effect = [failed, httpx.Response(200, json=ok(task_id="t9"))]
    async with MiniMaxClient(
        "k", BASE, rate_limiter=Limiter(0), retry=RetryPolicy(jitter=False, initial_wait=0)
    ) as client:
        assert await client.create_task(BODY, before_send=before_send) == "t9"
    assert order == ["limiter", "before_send", "limiter", "before_send"]


@pytest.mark.parametrize(
    "exc",
    [httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("dropped"), httpx.ConnectError("x")],
)
@pytest.mark.anyio
async def test_query_retries_every_transport_error(client, router, exc) -> None:
    route = router.get(QUERY)
    route.side_effect = [exc, exc, httpx.Response(200, json=ok(task_id="t1", status="Queueing"))]
    assert (await client.query_task("t1")).status == "Queueing"
    assert route.call_count == 3


@pytest.mark.anyio
async def test_retrieve_transport_error_names_endpoint(client, router) -> None:
    route = router.get(RETRIEVE).mock(side_effect=httpx.ReadTimeout("timed out"))
    with pytest.raises(TransportError) as info:
        await client.retrieve_file("1")
    assert "GET /v1/files/retrieve" in info.value.message
    assert BASE in info.value.message
    assert route.call_count == ATTEMPTS


@pytest.mark.anyio
async def test_backoff_is_exponential_and_capped(router, sleeps) -> None:
    route = router.get(QUERY).respond(200, json=err(1000))
    async with MiniMaxClient(KEY, BASE, retry=policy(attempts=6), sleep=sleeps) as client:
        with pytest.raises(ServerError):
            await client.query_task("t1")
    assert route.call_count == 6
    assert sleeps.calls == [1.0, 2.0, 4.0, 5.0, 5.0]


@pytest.mark.anyio
async def test_backoff_full_jitter_stays_within_the_window(router, sleeps) -> None:
    router.get(QUERY).respond(200, json=err(1000))
    retry = policy(attempts=6, jitter=True, initial_wait=1.0, max_wait=5.0)
    async with MiniMaxClient(KEY, BASE, retry=retry, sleep=sleeps) as client:
        with pytest.raises(ServerError):
            await client.query_task("t1")
    highs = [1.0, 2.0, 4.0, 5.0, 5.0]
    assert len(sleeps.calls) == len(highs)
    assert all(0.0 <= wait <= high for wait, high in zip(sleeps.calls, highs, strict=True))


@pytest.mark.parametrize("code", [1041, 2045])
@pytest.mark.anyio
async def test_slow_codes_back_off_harder(client, router, sleeps, code) -> None:
    router.get(QUERY).respond(200, json=err(code))
    with pytest.raises(RateLimitError):
        await client.query_task("t1")
    assert sleeps.calls == [3.0, 6.0, 12.0]


@pytest.mark.anyio
async def test_retry_after_overrides_a_shorter_backoff(client, router, sleeps) -> None:
    route = router.post(CREATE)
    route.side_effect = [
        httpx.Response(429, headers={"Retry-After": "7"}),
        httpx.Response(200, json=err(1002), headers={"Retry-After": "0.5"}),
        httpx.Response(200, json=ok(task_id="t3")),
    ]
    assert await client.create_task(BODY) == "t3"
    # 7 s asked > 1 s computed; 0.5 s asked < 2 s computed
    assert sleeps.calls == [7.0, 2.0]


@pytest.mark.anyio
async def test_retry_after_is_capped(router, sleeps) -> None:
    router.get(QUERY).respond(503, headers={"Retry-After": "3600"})
    retry = policy(attempts=2, max_retry_after=42.0)
    async with MiniMaxClient(KEY, BASE, retry=retry, sleep=sleeps) as client:
        with pytest.raises(ServerError) as info:
            await client.query_task("t1")
    assert info.value.retry_after == 3600.0
    assert sleeps.calls == [42.0]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("12", 12.0),
        ("1.5", 1.5),
        ("-3", 0.0),
        ("soon", None),
        ("nan", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # in the past
    ],
)
def testparse_retry_after(header, expected) -> None:
    assert parse_retry_after(header) == expected


def test_parse_retry_after_future_http_date() -> None:
    from datetime import UTC, datetime, timedelta
    from email.utils import format_datetime

    when = format_datetime(datetime.now(UTC) + timedelta(seconds=100), usegmt=True)
    seconds = parse_retry_after(when)
    assert seconds is not None
    assert 95 <= seconds <= 100


@pytest.mark.anyio
async def test_rate_limiter_gates_create_only_and_is_penalized_on_1002(router, sleeps) -> None:
    clock = {"now": 0.0}
    limiter_sleeps: list[float] = []

    async def limiter_sleep(seconds: float) -> None:
        limiter_sleeps.append(seconds)
        clock["now"] += seconds

    limiter = RateLimiter(60, clock=lambda: clock["now"], sleep=limiter_sleep)
    route = router.post(CREATE)
    route.side_effect = [
        httpx.Response(200, json=err(1002), headers={"Retry-After": "30"}),
        httpx.Response(200, json=ok(task_id="t4")),
    ]
    router.get(QUERY).respond(200, json=ok(task_id="t4", status="Processing"))
    async with MiniMaxClient(
        KEY, BASE, retry=policy(), rate_limiter=limiter, sleep=sleeps
    ) as client:
        for _ in range(5):
            await client.query_task("t4")
        assert limiter_sleeps == []  # queries do not consume the RPM budget
        assert await client.create_task(BODY) == "t4"
    assert sleeps.calls == [30.0]
    assert limiter_sleeps == [30.0]  # the retry waited out the penalty in the limiter


@pytest.mark.anyio
async def test_unretryable_create_does_not_penalize_the_limiter(router, sleeps) -> None:
    waits: list[float] = []

    async def limiter_sleep(seconds: float) -> None:
        waits.append(seconds)

    limiter = RateLimiter(None, clock=lambda: 0.0, sleep=limiter_sleep)
    router.post(CREATE).respond(200, json=err(2013))
    async with MiniMaxClient(KEY, BASE, rate_limiter=limiter, sleep=sleeps) as client:
        with pytest.raises(InvalidRequestError):
            await client.create_task(BODY)
        router.post(CREATE).respond(200, json=ok(task_id="t5"))
        assert await client.create_task(BODY) == "t5"
    assert waits == []


# --- construction -----------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["", "   ", "sk-abc\ndef", "sk-\u00e9t\u00e9"])
def test_unusable_key_is_refused_without_echoing_it(key) -> None:
    with pytest.raises(UsageError) as info:
        MiniMaxClient(key, BASE)
    if key.strip():
        assert key.strip() not in info.value.one_line()


@pytest.mark.parametrize("url", ["api.minimax.io", "ftp://api.minimax.io", "https://", "::"])
def test_bad_base_url_is_a_usage_error(url) -> None:
    with pytest.raises(UsageError):
        MiniMaxClient(KEY, url)


@pytest.mark.anyio
async def test_trailing_slash_in_base_url(router, sleeps) -> None:
    route = router.get(QUERY).respond(200, json=ok(task_id="t", status="Success"))
    async with MiniMaxClient(KEY, BASE + "/", sleep=sleeps) as client:
        await client.query_task("t")
    assert route.call_count == 1


@pytest.mark.anyio
async def test_injected_http_client_is_not_closed() -> None:
    async with httpx.AsyncClient() as http:
        async with MiniMaxClient(KEY, BASE, http=http):
            pass
        assert not http.is_closed


@pytest.mark.anyio
async def test_own_http_client_is_closed() -> None:
    client = MiniMaxClient(KEY, BASE)
    await client.aclose()
    with pytest.raises(RuntimeError, match="closed"):  # httpx's word for a closed client
        await client.query_task("t")


@pytest.mark.anyio
async def test_connections_bound_the_requests_whatever_the_jobs_in_flight(router) -> None:
    """1,000 concurrent queries never have more than max_connections requests in flight."""
    in_flight = 0
    most = 0

    async def answer(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0)
        in_flight -= 1
        return httpx.Response(200, json=ok(task_id="t", status="Processing"))

    router.get(QUERY).mock(side_effect=answer)
    async with MiniMaxClient(KEY, BASE, max_connections=4) as client:
        await asyncio.gather(*(client.query_task(str(n)) for n in range(1000)))
    assert most == 4


def test_retry_policy_validation() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(multiplier=0.5)
    assert RetryPolicy().attempts == 6


@pytest.mark.anyio
async def test_gateway_timeout_on_create_is_ambiguous_not_retried(client, router) -> None:
    route = router.post(CREATE).respond(504, text="gateway timeout")
    with pytest.raises(AmbiguousSubmitError, match="504"):
        await client.create_task(BODY)
    assert route.call_count == 1
    query = router.get(QUERY).respond(504, text="gateway timeout")  # idempotent: retried
    with pytest.raises(ServerError):
        await client.query_task("1")
    assert query.call_count == ATTEMPTS
