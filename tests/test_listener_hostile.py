"""Hostile callbacks: garbage, huge bodies, slow senders, forged pushes. The listener stays
alive, answers challenges at once meanwhile, and hands nothing forged to the run."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from mmgen.run.listener import MAX_BODY, CallbackListener


async def challenge_ok(http: httpx.AsyncClient, url: str) -> bool:
    answer = await http.post(url, json={"challenge": "still-alive"}, timeout=5)
    return answer.status_code == 200 and answer.json() == {"challenge": "still-alive"}


@pytest.mark.anyio
async def test_garbage_is_refused_and_nothing_reaches_the_run() -> None:
    async with CallbackListener() as listener, httpx.AsyncClient() as http:
        url = listener.url_for("j")
        queue = listener.watch("j")
        garbage = [
            b"\x00\xff\xfe" * 100,
            b"{",
            b"[]",
            b"null",
            b'"a string"',
            b'{"task_id": ',
            '{"task_id": "42", "status": "\ud800"}'.encode("utf-8", "surrogatepass"),
        ]
        for body in garbage:
            answer = await http.post(url, content=body, headers={"content-type": "text/plain"})
            assert 400 <= answer.status_code < 500, body
        assert (await http.put(url, content=b"{}")).status_code == 405
        assert queue.empty()
        assert await challenge_ok(http, url)


@pytest.mark.anyio
async def test_a_huge_body_is_cut_off_while_reading_not_buffered() -> None:
    sent = 0

    async def endless() -> AsyncIterator[bytes]:  # chunked: no Content-Length to refuse early
        nonlocal sent
        chunk = b"x" * 65536
        for _ in range(2000):  # up to 128 MB if the listener kept reading
            sent += len(chunk)
            yield chunk

    async with CallbackListener() as listener, httpx.AsyncClient() as http:
        url = listener.url_for("j")
        try:
            answer = await http.post(url, content=endless(), timeout=10)
            assert answer.status_code == 413
        except (httpx.WriteError, httpx.ReadError, httpx.RemoteProtocolError):
            pass  # the listener answered 413 and closed while we were still sending
        assert sent < 512 * MAX_BODY  # cut off near the limit (plus socket buffers), not at 128 MB
        target = httpx.URL(url)
        with socket.create_connection((target.host, target.port), timeout=5) as sock:
            sock.sendall(
                f"POST {target.raw_path.decode()} HTTP/1.1\r\nHost: x\r\n"
                "Content-Length: 99999999\r\n\r\n{}".encode()
            )
            assert b" 413 " in sock.recv(4096).split(b"\r\n", 1)[0]  # refused from the header
        assert await challenge_ok(http, url)


@pytest.mark.anyio
async def test_slow_senders_cannot_hold_the_listener() -> None:
    async with CallbackListener(read_timeout=1.0) as listener, httpx.AsyncClient() as http:
        url = httpx.URL(listener.url_for("j"))
        stalled = []
        for _ in range(50):  # fifty clients that send half a body and stall
            sock = socket.create_connection((url.host, url.port))
            sock.sendall(
                f"POST {url.raw_path.decode()} HTTP/1.1\r\nHost: x\r\n"
                'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"task'.encode()
            )
            sock.settimeout(15)
            stalled.append(sock)
        try:
            started = time.monotonic()
            assert await challenge_ok(http, str(url))  # answered while they stall
            assert time.monotonic() - started < 3  # MiniMax's limit for the echo
            # each stalled sender gets 408 once its read timeout passes, then is closed
            loop = asyncio.get_running_loop()
            first = await loop.run_in_executor(None, stalled[0].recv, 4096)
            assert b" 408 " in first.split(b"\r\n", 1)[0]
        finally:
            for sock in stalled:
                sock.close()
        assert await challenge_ok(http, str(url))


@pytest.mark.anyio
async def test_pushes_for_unwatched_tasks_and_wrong_paths_are_not_delivered() -> None:
    async with CallbackListener() as listener, httpx.AsyncClient() as http:
        queue = listener.watch("j7")
        forged = {"task_id": "8", "status": "success", "file_id": "evil"}
        assert (await http.post(listener.url_for("j8"), json=forged)).status_code == 404
        guess = listener.callback_url.rsplit("/", 1)[0] + "/" + "A" * len(listener.token) + "/j7"
        assert (
            await http.post(guess, json={"task_id": "7", "status": "success"})
        ).status_code == 404
        assert queue.empty()
        assert listener.pushes_rejected == 2 and listener.pushes_accepted == 0
