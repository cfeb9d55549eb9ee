"""The API key never leaks: a canary key through every error path of the client."""

from __future__ import annotations

import logging
import ssl
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from mmgen.api.client import MiniMaxClient, RetryPolicy
from mmgen.errors import API_HINTS, MmgenError, UsageError

BASE = "https://api.test.invalid"
CANARY = "sk-CANARY-7f3a9c1e5b2d4f60"
URL = "https://cdn.test.invalid/v.mp4?Signature=xyz"
CREATE = "/v1/video_generation"
QUERY = "/v1/query/video_generation"
RETRIEVE = "/v1/files/retrieve"

#: One TLS context for every test client (building one costs ~25 ms).
TLS = ssl.create_default_context()


async def no_sleep(seconds: float) -> None:
    return None


def echo(code: int) -> dict[str, Any]:
    """An error answer that (rudely) echoes the key back in its message."""
    return {"base_resp": {"status_code": code, "status_msg": f"bad token Bearer {CANARY}"}}


class Truncated(httpx.AsyncByteStream):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b"x" * 10
        raise httpx.RemoteProtocolError("peer closed connection")


Scenario = tuple[str, str, Any]

SCENARIOS: list[Scenario] = [
    *[("query", f"code {code}", httpx.Response(200, json=echo(code))) for code in API_HINTS],
    ("query", "401 no body", httpx.Response(401)),
    ("query", "401 echo", httpx.Response(401, json=echo(2049))),
    ("query", "429 text", httpx.Response(429, text=f"slow down {CANARY}")),
    ("query", "500 echo", httpx.Response(500, json=echo(0))),
    ("query", "502 html", httpx.Response(502, text=f"<p>{CANARY}</p>")),
    ("query", "malformed", httpx.Response(200, text=f"oops {CANARY}")),
    ("query", "no status", httpx.Response(200, json={"task_id": "t"})),
    ("query", "read timeout", httpx.ReadTimeout("timed out")),
    ("query", "connect error", httpx.ConnectError("refused")),
    ("create", "read timeout", httpx.ReadTimeout("timed out")),
    ("create", "protocol error", httpx.RemoteProtocolError("disconnected")),
    ("create", "connect error", httpx.ConnectError("refused")),
    ("create", "malformed", httpx.Response(200, text="nope")),
    ("create", "no task id", httpx.Response(200, json={"base_resp": {"status_code": 0}})),
    ("create", "1008 echo", httpx.Response(200, json=echo(1008))),
    ("retrieve", "no url", httpx.Response(200, json={"file": {"file_id": 1}})),
    ("retrieve", "1004 echo", httpx.Response(200, json=echo(1004))),
    ("download", "expired", httpx.Response(403, text=CANARY)),
    ("download", "server error", httpx.Response(500, text=CANARY)),
    ("download", "truncated", httpx.Response(200, stream=Truncated())),
    ("download", "short", httpx.Response(200, headers={"Content-Length": "99"}, content=b"x")),
    ("download", "connect error", httpx.ConnectError("refused")),
]


def full_text(error: BaseException) -> str:
    parts = ["".join(traceback.format_exception(error)), repr(error), str(error)]
    if isinstance(error, MmgenError):
        parts.append(error.one_line())
    seen: BaseException | None = error
    while seen is not None:  # the whole chain, displayed or not
        parts += [repr(seen), str(seen)]
        seen = seen.__cause__ or seen.__context__
    return "\n".join(parts)


@pytest.mark.anyio
async def test_canary_key_never_leaks(caplog, tmp_path: Path) -> None:
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    sent_auth: list[str] = []
    retry = RetryPolicy(attempts=2, download_attempts=2, jitter=False)
    for kind, label, outcome in SCENARIOS:
        with respx.mock(assert_all_called=False) as router:
            path = {"query": QUERY, "create": CREATE, "retrieve": RETRIEVE}.get(kind, "")
            route = router.route(url=URL) if kind == "download" else router.route(url=BASE + path)
            if isinstance(outcome, Exception):
                route.mock(side_effect=outcome)
            else:
                route.mock(side_effect=lambda request, r=outcome: r)
            async with (
                httpx.AsyncClient(verify=TLS) as http,
                MiniMaxClient(CANARY, BASE, http=http, retry=retry, sleep=no_sleep) as client,
            ):
                texts.append(repr(client))
                calls: dict[str, Callable[[], Awaitable[object]]] = {
                    "query": lambda: client.query_task("t"),
                    "create": lambda: client.create_task({"model": "S2V-01"}),
                    "retrieve": lambda: client.retrieve_file("1"),
                    "download": lambda: client.download(URL, tmp_path / "v.mp4"),
                }
                with pytest.raises(MmgenError) as info:
                    await calls[kind]()
            texts.append(f"{kind} {label}: " + full_text(info.value))
            sent_auth += [c.request.headers.get("Authorization", "") for c in route.calls]

    for key in (f"{CANARY}\nX-Evil: 1", f"{CANARY}\u00e9"):
        with pytest.raises(UsageError) as info2:
            MiniMaxClient(key, BASE)
        texts.append(full_text(info2.value))

    # The canary really was in play on the API calls...
    assert f"Bearer {CANARY}" in sent_auth
    # ...every scenario produced an error, and retries were logged...
    assert len([t for t in texts if ":" in t]) >= len(SCENARIOS)
    assert "retrying" in caplog.text
    # ...yet the key shows up nowhere.
    for text in [*texts, caplog.text]:
        assert CANARY not in text
    # The server's echo was scrubbed, not dropped.
    assert any("Bearer ***" in text for text in texts)
