"""mmgen's one HTTP stack (httpx on its own transport, proxied or not), on real sockets (loopback,
port 0) against servers that misbehave on purpose. What matters most: whether a failed create
may have reached MiniMax (and been billed), decided from httpx's exception type by
:func:`mmgen.api.client.never_sent` (most specific class wins, whatever the table's order)."""

from __future__ import annotations

import asyncio
import json
import random
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
import respx

import mmgen.api.client
from mmgen.api.client import NEVER_SENT, MiniMaxClient, RetryPolicy, never_sent
from mmgen.errors import AmbiguousSubmitError, ConnectFailedError, DownloadError, TransportError
from tests.client_support import BODY
from tests.fakes import mp4

pytestmark = pytest.mark.anyio

Reader = asyncio.StreamReader
Writer = asyncio.StreamWriter
Handler = Callable[["RawServer", Reader, Writer], Awaitable[None]]


class RawServer:
    """An HTTP/1.1 server written byte by byte, so a test can make it fail exactly as it wants.
    ``connections``: how many TCP connections it accepted; ``requests``: the raw request heads
    (and bodies) it read."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler  # handler(server, reader, writer)
        self.connections = 0
        self.requests: list[tuple[bytes, bytes]] = []
        self.url = ""
        self._server: asyncio.Server | None = None

    async def read_request(self, reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        body = await reader.readexactly(length)
        self.requests.append((head, body))
        return head, body

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(self, reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()


def answer(body: bytes, *, status: str = "200 OK", headers: dict[str, str] | None = None) -> bytes:
    fields = {"Content-Length": str(len(body)), "Content-Type": "application/json"}
    fields.update(headers or {})
    head = f"HTTP/1.1 {status}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items())
    return head.encode() + b"\r\n" + body


def json_answer(data: dict[str, Any], **kw: Any) -> bytes:
    return answer(json.dumps(data).encode(), **kw)


def keep_answering(reply: bytes) -> Handler:
    """A keep-alive server: answers every request on a connection with ``reply``."""

    async def handler(server: RawServer, reader: Reader, writer: Writer) -> None:
        while True:
            await server.read_request(reader)
            writer.write(reply)
            await writer.drain()

    return handler


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[RawServer]]]:
    servers: list[RawServer] = []

    async def start(handler: Handler) -> RawServer:
        server = RawServer(handler)
        servers.append(await server.__aenter__())
        return server

    yield start
    for server in servers:
        await server.__aexit__()


def api_client(url: str) -> MiniMaxClient:
    return MiniMaxClient("sk-transport-test-key", url, retry=RetryPolicy(attempts=1, jitter=False))


@pytest.fixture(autouse=True)
def _no_proxy_from_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


# --- the table: which httpx errors mean "never sent" ------------------------------------------

NOT_SENT = [
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
    httpx.ProxyError,
]
MAYBE_SENT = [
    httpx.ReadError,
    httpx.ReadTimeout,
    httpx.WriteError,
    httpx.WriteTimeout,
    httpx.RemoteProtocolError,
    httpx.LocalProtocolError,
    httpx.CloseError,
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.ProtocolError,
    httpx.TransportError,
]


def _error(kind: type[Exception]) -> Exception:
    return kind("boom")


@pytest.mark.parametrize("kind", NOT_SENT, ids=lambda k: k.__name__)
def test_a_connection_never_made_is_never_sent(kind: type[Exception]) -> None:
    assert never_sent(_error(kind))
    assert never_sent(httpx.InvalidURL("bad"))


@pytest.mark.parametrize("kind", MAYBE_SENT, ids=lambda k: k.__name__)
def test_anything_after_the_connection_was_made_may_have_been_sent(kind: type[Exception]) -> None:
    assert not never_sent(_error(kind))


def test_the_most_specific_class_decides_whatever_the_tables_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ConnectTimeout is a TimeoutException (maybe sent) and means "not sent"; an error httpx
    may add later under NetworkError is "maybe sent", under ConnectError "not sent"."""

    class NewNetworkError(httpx.NetworkError):
        pass

    class NewConnectError(httpx.ConnectError):
        pass

    kinds = [*NOT_SENT, *MAYBE_SENT, NewNetworkError, NewConnectError]
    expected = {kind: never_sent(_error(kind)) for kind in kinds}
    assert expected[NewConnectError] and not expected[NewNetworkError]
    assert not never_sent(ValueError("not httpx's"))
    entries = list(NEVER_SENT.items())
    shuffler = random.Random(22)
    for _ in range(200):
        order = shuffler.sample(entries, len(entries))
        monkeypatch.setattr(mmgen.api.client, "NEVER_SENT", dict(order))
        assert {kind: never_sent(_error(kind)) for kind in kinds} == expected
    monkeypatch.setattr(mmgen.api.client, "NEVER_SENT", dict(reversed(entries)))
    assert {kind: never_sent(_error(kind)) for kind in kinds} == expected


# --- real sockets: what the client makes of each failure ---------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:  # a port that was free a moment ago: nobody listens
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_connection_refused_is_not_sent_and_retried_as_a_connect_failure() -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    async with api_client(url) as client:
        with pytest.raises(ConnectFailedError) as info:
            await client.create_task(BODY)
    assert not isinstance(info.value, AmbiguousSubmitError)
    assert "ConnectError" in info.value.one_line()


async def test_a_connection_closed_after_the_request_makes_the_create_ambiguous(serve) -> None:
    """The server read the whole create and hung up without answering: it may have created the
    task. This must never look like "not sent" (which would submit it again and pay twice)."""

    async def hang_up(server: RawServer, reader: Reader, writer: Writer) -> None:
        await server.read_request(reader)

    server = await serve(hang_up)
    async with api_client(server.url) as client:
        with pytest.raises(AmbiguousSubmitError, match=r"RemoteProtocolError.*after the request"):
            await client.create_task(BODY)
    assert len(server.requests) == 1


async def test_a_connection_reset_after_the_request_makes_the_create_ambiguous(serve) -> None:
    async def reset(server: RawServer, reader: Reader, writer: Writer) -> None:
        await server.read_request(reader)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # RST, not FIN

    server = await serve(reset)
    async with api_client(server.url) as client:
        with pytest.raises(AmbiguousSubmitError, match="after the request was sent"):
            await client.create_task(BODY)
    assert len(server.requests) == 1


async def test_a_server_that_never_answers_is_a_read_timeout(serve, monkeypatch) -> None:
    monkeypatch.setattr("mmgen.api.client.API_TIMEOUT", httpx.Timeout(5.0, read=0.2))
    release = asyncio.Event()

    async def stall(server: RawServer, reader: Reader, writer: Writer) -> None:
        await server.read_request(reader)
        await release.wait()

    server = await serve(stall)
    try:
        async with api_client(server.url) as client:
            with pytest.raises(AmbiguousSubmitError, match="ReadTimeout"):
                await client.create_task(BODY)
            with pytest.raises(TransportError, match="ReadTimeout"):
                await client.query_task("t")
    finally:
        release.set()


async def test_a_garbage_answer_makes_the_create_ambiguous(serve) -> None:
    async def garbage(server: RawServer, reader: Reader, writer: Writer) -> None:
        await server.read_request(reader)
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        await writer.drain()

    server = await serve(garbage)
    async with api_client(server.url) as client:
        with pytest.raises(AmbiguousSubmitError, match="RemoteProtocolError"):
            await client.create_task(BODY)


# --- through an HTTP proxy on loopback (HTTPS_PROXY / HTTP_PROXY) -------------------------------


async def test_a_proxy_that_refuses_the_tunnel_means_not_sent(serve, monkeypatch) -> None:
    """HTTPS through a proxy: CONNECT refused, so the request itself never went out."""

    async def refuse(server: RawServer, reader: Reader, writer: Writer) -> None:
        await server.read_request(reader)
        writer.write(answer(b"no", status="403 Forbidden"))
        await writer.drain()

    proxy = await serve(refuse)
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    async with api_client("https://api.minimax.test.invalid") as client:
        with pytest.raises(ConnectFailedError, match="ProxyError") as info:
            await client.create_task(BODY)
    assert not isinstance(info.value, AmbiguousSubmitError)
    assert proxy.requests[0][0].startswith(b"CONNECT api.minimax.test.invalid:443 ")


async def test_a_proxy_that_hangs_up_after_the_request_makes_the_create_ambiguous(
    serve, monkeypatch
) -> None:
    """Plain HTTP through a proxy: the proxy took the whole create and hung up; it may have
    forwarded it."""

    async def forward_then_hang_up(server: RawServer, reader: Reader, writer: Writer) -> None:
        await server.read_request(reader)

    proxy = await serve(forward_then_hang_up)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    async with api_client("http://api.minimax.test.invalid") as client:
        with pytest.raises(AmbiguousSubmitError, match="after the request was sent"):
            await client.create_task(BODY)
    head, body = proxy.requests[0]
    assert head.startswith(b"POST http://api.minimax.test.invalid/v1/video_generation ")
    assert json.loads(body) == BODY


async def test_a_proxy_that_answers_carries_the_create(serve, monkeypatch) -> None:
    reply = json.dumps({"task_id": "7", "base_resp": {"status_code": 0, "status_msg": "ok"}})
    proxy = await serve(keep_answering(answer(reply.encode())))
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    async with api_client("http://api.minimax.test.invalid") as client:
        assert await client.create_task(BODY) == "7"


# --- downloads on the same stack ---------------------------------------------------------------


async def test_a_signed_url_reaches_the_wire_byte_for_byte(serve, tmp_path) -> None:
    """Signatures are computed over the exact path and query: nothing may re-quote them."""
    video = answer(mp4(b"video"), headers={"Content-Type": "video/mp4"})
    server = await serve(keep_answering(video))
    path = "/video/a%2Fb/c%7e.mp4?Expires=1&Signature=Zq3F%2Bg%3D&x=%7E&z=%2f&w=%41&y=a+b"
    async with api_client(server.url) as client:
        await client.download(server.url + path, tmp_path / "v.mp4")
    assert server.requests[0][0].split(b"\r\n")[0] == f"GET {path} HTTP/1.1".encode()


async def test_a_download_follows_a_redirect_and_never_carries_the_key(serve, tmp_path) -> None:
    video = mp4(bytes(range(256)) * 64)  # a whole MP4: a download must be one to count

    async def cdn(server: RawServer, reader: Reader, writer: Writer) -> None:
        while True:
            head, _ = await server.read_request(reader)
            if head.startswith(b"GET /old"):
                writer.write(answer(b"moved", status="302 Found", headers={"Location": "/new.mp4"}))
            else:
                writer.write(answer(video, headers={"Content-Type": "video/mp4"}))
            await writer.drain()

    server = await serve(cdn)
    async with api_client(server.url) as client:
        got = await client.download(server.url + "/old.mp4?Signature=a%2Bb", tmp_path / "v.mp4")
    assert got.path.read_bytes() == video and got.bytes == len(video)
    firsts = [head.split(b"\r\n")[0] for head, _ in server.requests]
    assert firsts == [b"GET /old.mp4?Signature=a%2Bb HTTP/1.1", b"GET /new.mp4 HTTP/1.1"]
    assert not any(b"authorization" in head.lower() for head, _ in server.requests)
    assert server.connections == 1


async def test_a_body_cut_short_fails_the_download_and_keeps_no_file(serve, tmp_path) -> None:
    async def short(server: RawServer, reader: Reader, writer: Writer) -> None:
        await server.read_request(reader)
        writer.write(answer(b"x" * 1000, headers={"Content-Type": "video/mp4"})[:-900])
        await writer.drain()

    server = await serve(short)
    async with api_client(server.url) as client:
        with pytest.raises(DownloadError, match=r"broken off"):
            await client.download(server.url + "/v.mp4", tmp_path / "v.mp4", attempts=1)
    assert list(tmp_path.iterdir()) == []


# --- a user's own respx router sees mmgen's requests -------------------------------------------


async def test_a_plain_respx_mock_catches_mmgens_client() -> None:
    """No ``using="httpx"`` needed: mmgen's client is httpx on its default transport."""
    reply = {"task_id": "42", "base_resp": {"status_code": 0, "status_msg": "success"}}
    with respx.mock() as router:
        route = router.post("https://api.minimax.io/v1/video_generation").respond(json=reply)
        async with MiniMaxClient("sk-respx-key") as client:
            assert await client.create_task(BODY) == "42"
    assert route.call_count == 1
    assert route.calls[0].request.headers["Authorization"] == "Bearer sk-respx-key"


async def test_a_closed_client_sends_nothing() -> None:
    client = MiniMaxClient("sk-closed-key", "http://127.0.0.1:9")
    await client.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await client.query_task("t")
