"""MiniMaxClient: create / query / retrieve, error mapping and the retry policy (respx)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from mmgen.api.client import (
    MALFORMED_RESPONSE,
    NEVER_RETRY_CODES,
    TaskStatus,
)
from mmgen.errors import (
    API_HINTS,
    RETRYABLE_CODES,
    AmbiguousSubmitError,
    ApiError,
    AuthError,
    BalanceError,
    ContentError,
    InvalidRequestError,
    QuotaError,
    RateLimitError,
    ServerError,
    TransportError,
)
from tests.client_support import (
    ATTEMPTS,
    BODY,
    CREATE,
    KEY,
    QUERY,
    RETRIEVE,
    err,
    ok,
)

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


@pytest.mark.parametrize(
    ("status", "body"),
    [(500, None), (502, "<html>bad gateway</html>"), (503, None), (504, "gateway timeout")],
)
@pytest.mark.anyio
async def test_a_create_answered_by_a_gateways_5xx_is_ambiguous_never_resent(
    client, router, sleeps, status, body
) -> None:
    """No MiniMax body: a gateway answered, and the backend may have made (and billed) the
    task. Sent once; the caller decides (adopt it from its pushes, or leave it unknown)."""
    route = router.post(CREATE).respond(status, text=body or "")
    with pytest.raises(AmbiguousSubmitError, match=f"HTTP {status}"):
        await client.create_task(BODY)
    assert route.call_count == 1 and sleeps.calls == []


@pytest.mark.anyio
async def test_a_create_refused_by_minimax_itself_with_a_5xx_is_retried(client, router) -> None:
    """MiniMax's own answer (a base_resp code): it says the create failed, so no task."""
    route = router.post(CREATE)
    route.side_effect = [
        httpx.Response(503, json=err(1033, "busy")),
        httpx.Response(200, json=ok(task_id="t2")),
    ]
    assert await client.create_task(BODY) == "t2"
    assert route.call_count == 2


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
