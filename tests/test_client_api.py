"""MiniMaxClient: create / query / retrieve, error mapping and the retry policy (respx)."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import respx

from mmgen.answers import parse_retry_after
from mmgen.client import (
    CONNECT_ATTEMPTS,
    MALFORMED_RESPONSE,
    NEVER_RETRY_CODES,
    MiniMaxClient,
    RetryPolicy,
    TaskStatus,
)
from mmgen.errors import (
    API_HINTS,
    RETRYABLE_CODES,
    AmbiguousSubmitError,
    ApiError,
    AuthError,
    BalanceError,
    ConnectFailedError,
    ContentError,
    InvalidRequestError,
    QuotaError,
    RateLimitError,
    ServerError,
    TransportError,
    UsageError,
)
from mmgen.ratelimit import RateLimiter
from tests.fakes import Sleeps

BASE = "https://api.test.invalid"
KEY = "sk-test-key-0123456789"
CREATE = "/v1/video_generation"
QUERY = "/v1/query/video_generation"
RETRIEVE = "/v1/files/retrieve"
BODY = {
    "model": "S2V-01",
    "prompt": "A girl runs toward the camera.",
    "subject_reference": [{"type": "character", "image": ["https://example.org/f.jpg"]}],
}
ATTEMPTS = 4

#: One TLS context for every test client (building one costs ~25 ms).
TLS = ssl.create_default_context()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def router() -> Any:
    with respx.mock(base_url=BASE, assert_all_called=False) as mock:
        yield mock


def policy(**kw: Any) -> RetryPolicy:
    base: dict[str, Any] = {
        "attempts": ATTEMPTS,
        "initial_wait": 1.0,
        "max_wait": 5.0,
        "multiplier": 2.0,
        "jitter": False,
    }
    base.update(kw)
    return RetryPolicy(**base)


@pytest.fixture
async def client(router: Any, sleeps: Sleeps) -> AsyncIterator[MiniMaxClient]:
    async with (
        httpx.AsyncClient(verify=TLS) as http,
        MiniMaxClient(KEY, BASE, http=http, retry=policy(), sleep=sleeps) as c,
    ):
        yield c


def ok(**fields: Any) -> dict[str, Any]:
    return {**fields, "base_resp": {"status_code": 0, "status_msg": "success"}}


def err(code: int, msg: str = "nope") -> dict[str, Any]:
    return {"base_resp": {"status_code": code, "status_msg": msg}}


# --- happy paths ------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_create_sends_body_and_bearer_and_returns_task_id(client, router) -> None:
    route = router.post(CREATE).respond(200, json=ok(task_id="106916112212032"))
    assert await client.create_task(BODY) == "106916112212032"
    request = route.calls.last.request
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.content) == BODY


@pytest.mark.anyio
async def test_create_accepts_int_task_id(client, router) -> None:
    router.post(CREATE).respond(200, json=ok(task_id=106916112212032))
    assert await client.create_task(BODY) == "106916112212032"


@pytest.mark.anyio
async def test_query_success_without_group_id(client, router) -> None:
    route = router.get(QUERY).respond(
        200,
        json=ok(
            task_id="176843862716480",
            status="Success",
            file_id="176844028768320",
            video_width=1920,
            video_height=1080,
        ),
    )
    status = await client.query_task("176843862716480")
    assert status == TaskStatus("176843862716480", "Success", "176844028768320", 1920, 1080)
    assert status.terminal
    request = route.calls.last.request
    assert dict(request.url.params) == {"task_id": "176843862716480"}  # no GroupId
    assert request.headers["Authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize(
    ("raw", "expected", "terminal"),
    [
        ("Success", "Success", True),
        ("success", "Success", True),
        ("SUCCESS", "Success", True),
        ("Fail", "Fail", True),
        ("failed", "Fail", True),
        ("FAILED", "Fail", True),
        ("processing", "Processing", False),
        ("Queueing", "Queueing", False),
        ("preparing", "Preparing", False),
        ("Rendering", "Rendering", False),  # unknown: kept as-is
    ],
)
@pytest.mark.anyio
async def test_query_status_is_normalised(client, router, raw, expected, terminal) -> None:
    router.get(QUERY).respond(200, json=ok(task_id="t1", status=raw))
    status = await client.query_task("t1")
    assert status.status == expected
    assert status.terminal is terminal


@pytest.mark.anyio
async def test_query_in_progress_has_no_file_or_size(client, router) -> None:
    router.get(QUERY).respond(
        200, json=ok(task_id="t1", status="Processing", file_id="", video_width=0)
    )
    assert await client.query_task("t1") == TaskStatus("t1", "Processing", None, None, None)


@pytest.mark.anyio
async def test_query_int_file_id_becomes_str(client, router) -> None:
    router.get(QUERY).respond(200, json=ok(task_id=7, status="Success", file_id=176844028768320))
    status = await client.query_task("7")
    assert status.task_id == "7"
    assert status.file_id == "176844028768320"


@pytest.mark.parametrize("file_id", [176844028768320, "176844028768320"])
@pytest.mark.anyio
async def test_retrieve_accepts_int_or_str_file_id(client, router, file_id) -> None:
    route = router.get(RETRIEVE).respond(
        200,
        json=ok(
            file={
                "file_id": file_id,
                "bytes": 0,
                "created_at": 1700469398,
                "filename": "output_aigc.mp4",
                "purpose": "video_generation",
                "download_url": "https://cdn.test.invalid/v.mp4?sig=secret",
            }
        ),
    )
    info = await client.retrieve_file("176844028768320")
    assert info.file_id == "176844028768320"
    assert info.bytes == 0
    assert info.filename == "output_aigc.mp4"
    assert info.download_url == "https://cdn.test.invalid/v.mp4?sig=secret"
    assert "sig=secret" not in repr(info)
    assert dict(route.calls.last.request.url.params) == {"file_id": "176844028768320"}


# --- error mapping ----------------------------------------------------------------------------

CODE_CLASSES: list[tuple[int, type[ApiError]]] = [
    (1000, ServerError),
    (1001, ServerError),
    (1002, RateLimitError),
    (1004, AuthError),
    (1008, BalanceError),
    (1013, ServerError),
    (1024, ServerError),
    (1026, ContentError),
    (1027, ContentError),
    (1033, ServerError),
    (1039, RateLimitError),
    (1041, RateLimitError),
    (1042, InvalidRequestError),
    (2013, InvalidRequestError),
    (2045, RateLimitError),
    (2049, AuthError),
    (2056, QuotaError),
]


def test_table_covers_every_documented_code() -> None:
    assert {code for code, _ in CODE_CLASSES} == set(API_HINTS)


@pytest.mark.parametrize(("code", "cls"), CODE_CLASSES)
@pytest.mark.anyio
async def test_base_resp_code_maps_to_typed_error(client, router, sleeps, code, cls) -> None:
    route = router.get(QUERY).respond(
        200, json=err(code, f"message {code}"), headers={"Trace-Id": f"trace-{code}"}
    )
    with pytest.raises(ApiError) as info:
        await client.query_task("t1")
    error = info.value
    assert type(error) is cls
    assert error.code == code
    assert error.status_msg == f"message {code}"
    assert error.trace_id == f"trace-{code}"
    assert error.http_status == 200
    assert error.hint == API_HINTS[code]
    assert f"trace-{code}" in str(error)
    retried = code in RETRYABLE_CODES
    assert retried is (code not in NEVER_RETRY_CODES)
    assert route.call_count == (ATTEMPTS if retried else 1)
    assert len(sleeps.calls) == (ATTEMPTS - 1 if retried else 0)


@pytest.mark.parametrize("code", sorted(NEVER_RETRY_CODES))
@pytest.mark.anyio
async def test_non_retryable_code_on_create_is_sent_once(client, router, sleeps, code) -> None:
    route = router.post(CREATE).respond(200, json=err(code))
    with pytest.raises(ApiError) as info:
        await client.create_task(BODY)
    assert info.value.code == code
    assert route.call_count == 1
    assert sleeps.calls == []


@pytest.mark.anyio
async def test_non_retryable_code_wins_over_http_5xx(client, router) -> None:
    route = router.post(CREATE).respond(503, json=err(1008, "no money"))
    with pytest.raises(BalanceError) as info:
        await client.create_task(BODY)
    assert info.value.http_status == 503
    assert route.call_count == 1


@pytest.mark.parametrize(
    ("status", "body", "cls", "code", "retried"),
    [
        (429, None, RateLimitError, 429, True),
        (429, err(1002, "rpm"), RateLimitError, 1002, True),
        (500, None, ServerError, 500, True),
        (502, "<html>bad gateway</html>", ServerError, 502, True),
        (503, err(1033, "busy"), ServerError, 1033, True),
        (401, None, AuthError, 401, False),
        (401, err(2049, "invalid api key"), AuthError, 2049, False),
        (403, "forbidden", AuthError, 403, False),
        (404, None, ApiError, 404, False),
        (400, {"error": "what"}, ApiError, 400, False),
    ],
)
@pytest.mark.anyio
async def test_http_error_status(client, router, sleeps, status, body, cls, code, retried) -> None:
    kwargs: dict[str, Any] = {"headers": {"Trace-Id": "tr-1"}}
    if isinstance(body, dict):
        kwargs["json"] = body
    elif isinstance(body, str):
        kwargs["text"] = body
    route = router.get(QUERY).respond(status, **kwargs)
    with pytest.raises(ApiError) as info:
        await client.query_task("t1")
    error = info.value
    assert type(error) is cls
    assert error.code == code
    assert error.http_status == status
    assert error.trace_id == "tr-1"
    assert route.call_count == (ATTEMPTS if retried else 1)
    assert len(sleeps.calls) == (ATTEMPTS - 1 if retried else 0)
    if body is None or isinstance(body, str):
        assert f"HTTP {status}" in error.message


@pytest.mark.anyio
async def test_http_401_hint_points_at_the_key(client, router) -> None:
    router.get(QUERY).respond(401)
    with pytest.raises(AuthError) as info:
        await client.query_task("t1")
    assert "MINIMAX_API_KEY" in info.value.one_line()


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, text="<html>gateway</html>"),
        httpx.Response(200, content=b"\xff\xfe\x00garbage"),
        httpx.Response(200, json=["not", "an", "object"]),
        httpx.Response(200, json=ok(task_id="t1")),  # no status
        httpx.Response(200, json={"base_resp": {"status_code": "abc"}}),
    ],
)
@pytest.mark.anyio
async def test_malformed_query_answer_is_a_server_error(client, router, response) -> None:
    route = router.get(QUERY).mock(return_value=response)
    with pytest.raises(ServerError) as info:
        await client.query_task("t1")
    assert info.value.code == MALFORMED_RESPONSE
    assert "GET /v1/query/video_generation" in info.value.message
    assert route.call_count == 1


@pytest.mark.parametrize(
    "file",
    [None, {"file_id": 1, "bytes": 3}, {"file_id": 1, "download_url": ""}],
)
@pytest.mark.anyio
async def test_malformed_retrieve_answer_is_a_server_error(client, router, file) -> None:
    router.get(RETRIEVE).respond(200, json=ok(file=file))
    with pytest.raises(ServerError) as info:
        await client.retrieve_file("1")
    assert info.value.code == MALFORMED_RESPONSE


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, text="<html>proxy says hi</html>"),
        httpx.Response(200, json=ok()),  # success but no task_id
    ],
)
@pytest.mark.anyio
async def test_unreadable_create_success_is_ambiguous(client, router, response) -> None:
    route = router.post(CREATE).mock(return_value=response)
    with pytest.raises(AmbiguousSubmitError):
        await client.create_task(BODY)
    assert route.call_count == 1


# --- retries ----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_retryable_code_then_success(client, router, sleeps) -> None:
    route = router.post(CREATE)
    route.side_effect = [
        httpx.Response(200, json=err(1002)),
        httpx.Response(200, json=err(1000)),
        httpx.Response(200, json=ok(task_id="t9")),
    ]
    assert await client.create_task(BODY) == "t9"
    assert route.call_count == 3
    assert sleeps.calls == [1.0, 2.0]


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ReadTimeout("read timed out"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        httpx.ReadError("connection reset by peer"),
        httpx.WriteTimeout("write timed out"),
    ],
)
@pytest.mark.anyio
async def test_create_is_not_retried_after_the_request_may_have_been_sent(
    client, router, sleeps, exc
) -> None:
    route = router.post(CREATE).mock(side_effect=exc)
    with pytest.raises(AmbiguousSubmitError) as info:
        await client.create_task(BODY)
    assert isinstance(info.value, TransportError)
    assert "POST /v1/video_generation" in info.value.message
    assert route.call_count == 1
    assert sleeps.calls == []


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ConnectError("connection refused"),
        httpx.ConnectTimeout("connect timed out"),
        httpx.PoolTimeout("pool timed out"),
    ],
)
@pytest.mark.anyio
async def test_create_is_retried_when_the_request_surely_was_not_sent(
    client, router, sleeps, exc
) -> None:
    route = router.post(CREATE)
    route.side_effect = [exc, httpx.Response(200, json=ok(task_id="t2"))]
    assert await client.create_task(BODY) == "t2"
    assert route.call_count == 2
    assert len(sleeps.calls) == 1


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
        async def acquire(self) -> None:
            order.append("limiter")

    async def before_send() -> None:
        order.append("before_send")

    route = router.post(CREATE)
    route.side_effect = [httpx.Response(500), httpx.Response(200, json=ok(task_id="t9"))]
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
    assert client._api._clients and all(c.is_closed for c in client._api._clients)
    assert all(c.is_closed for c in client._cdn._clients)


@pytest.mark.anyio
async def test_lanes_bound_connections_whatever_the_jobs_in_flight(router) -> None:
    """1,000 concurrent queries never have more than max_connections requests in flight, each
    lane one connection (httpcore's pool never queues), and lanes are handed out in order."""
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
        assert len(client._api._clients) == 4
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
