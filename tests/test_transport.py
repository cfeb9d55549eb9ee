"""mmgen.api.transport: httpx over aiohttp, on real sockets (loopback, port 0) against servers that
misbehave on purpose. What matters most: the httpx error each failure becomes, because the
client decides on it whether a create may have reached MiniMax (and been billed)."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import httpx
import pytest
import trustme

from mmgen import __version__
from mmgen.api.client import MiniMaxClient, RetryPolicy
from mmgen.api.lanes import Lanes
from mmgen.api.transport import AiohttpTransport, _httpx_errors, one_connection_client
from mmgen.errors import AmbiguousSubmitError, ConnectFailedError, DownloadError, TransportError
from tests.client_support import BODY, TLS
from tests.fakes import mp4

pytestmark = pytest.mark.anyio

Reader = asyncio.StreamReader
Writer = asyncio.StreamWriter
Handler = Callable[["RawServer", Reader, Writer], Awaitable[None]]


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


class RawServer:
    """An HTTP/1.1 server written byte by byte, so a test can make it fail exactly as it wants.
    ``connections``: how many TCP connections it accepted; ``requests``: the raw request heads
    (and bodies) it read."""

    def __init__(self, handler: Handler, tls: ssl.SSLContext | None = None) -> None:
        self.handler = handler  # handler(server, reader, writer)
        self.tls = tls
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
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        port = self._server.sockets[0].getsockname()[1]
        # TLS: the name the test certificate is issued for
        self.url = f"https://localhost:{port}" if self.tls else f"http://127.0.0.1:{port}"
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

    async def start(handler: Handler, tls: ssl.SSLContext | None = None) -> RawServer:
        server = RawServer(handler, tls)
        servers.append(await server.__aenter__())
        return server

    yield start
    for server in servers:
        await server.__aexit__()


def lane(tls: ssl.SSLContext = TLS) -> httpx.AsyncClient:
    return one_connection_client(tls=tls, user_agent="mmgen-test", timeout=httpx.Timeout(5.0))


def api_client(url: str) -> MiniMaxClient:
    return MiniMaxClient("sk-transport-test-key", url, retry=RetryPolicy(attempts=1, jitter=False))


# --- a request and its answer ------------------------------------------------------------------


async def test_sends_exactly_the_request_httpx_built_and_reads_the_answer(serve) -> None:
    server = await serve(keep_answering(json_answer({"ok": 1}, status="201 Made Up")))
    async with lane() as http:
        response = await http.post(
            server.url + "/v1/x?a=1&b=%C3%A9",
            json={"prompt": "ü"},
            headers={"Authorization": "Bearer k"},
        )
    assert (response.status_code, response.reason_phrase) == (201, "Made Up")
    assert response.json() == {"ok": 1}
    assert response.http_version == "HTTP/1.1"
    head, body = server.requests[0]
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0] == "POST /v1/x?a=1&b=%C3%A9 HTTP/1.1"
    fields = [line.split(":", 1)[0].lower() for line in lines[1:] if line]
    assert sorted(fields) == sorted(
        [
            "host",
            "accept",
            "accept-encoding",
            "connection",
            "user-agent",
            "authorization",
            "content-length",
            "content-type",
        ]
    ), "aiohttp added or dropped a header"
    assert "user-agent: mmgen-test" in head.decode().lower()
    assert json.loads(body) == {"prompt": "ü"}


async def test_a_signed_url_reaches_the_wire_byte_for_byte(serve) -> None:
    """Signatures are computed over the exact path and query: nothing may re-quote them."""
    server = await serve(keep_answering(json_answer({})))
    path = "/video/a%2Fb/c%7e.mp4?Expires=1&Signature=Zq3F%2Bg%3D&x=%7E&z=%2f&w=%41&y=a+b"
    async with lane() as http:
        await http.get(server.url + path)
    assert server.requests[0][0].split(b"\r\n")[0] == f"GET {path} HTTP/1.1".encode()


async def test_a_download_follows_a_redirect_and_never_carries_the_key(serve, tmp_path) -> None:
    """CDNs redirect; httpx follows (aiohttp is told not to), on the same kept-alive lane."""
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


async def test_a_streamed_body_is_sent_whole_with_its_length(serve) -> None:
    server = await serve(keep_answering(json_answer({"ok": 1})))

    async def parts() -> AsyncIterator[bytes]:
        yield b'{"prompt": '
        yield b'"streamed"}'

    async with lane() as http:
        response = await http.post(server.url + "/up", content=parts())
        assert response.json() == {"ok": 1}
        assert (await http.get(server.url + "/next")).json() == {"ok": 1}  # framing intact
    head, body = server.requests[0]
    assert body == b'{"prompt": "streamed"}'
    assert b"content-length: 22" in head.lower() and b"transfer-encoding" not in head.lower()
    assert server.connections == 1 and len(server.requests) == 2


async def test_lanes_are_one_aiohttp_connection_each_kept_alive(serve) -> None:
    server = await serve(keep_answering(json_answer({"ok": 1})))
    lanes = Lanes.own(2, httpx.Timeout(5.0), TLS)
    try:
        assert all(isinstance(c._transport, AiohttpTransport) for c in lanes._clients)
        for _ in range(5):
            async with lanes.lane() as http:
                assert (await http.get(server.url + "/q")).json() == {"ok": 1}
    finally:
        await lanes.aclose()
    assert len(server.requests) == 5 and server.connections == 1
    assert f"user-agent: mmgen/{__version__}" in server.requests[0][0].decode().lower()


async def test_a_gzip_body_is_decoded_by_httpx_and_counted_on_the_wire(serve) -> None:
    raw = json.dumps({"x": "y" * 1000}).encode()
    packed = gzip.compress(raw)
    server = await serve(keep_answering(answer(packed, headers={"Content-Encoding": "gzip"})))
    async with lane() as http, http.stream("GET", server.url + "/g") as response:
        data = await response.aread()
    assert data == raw and response.num_bytes_downloaded == len(packed)


async def test_a_chunked_body_streams_in_pieces_and_the_connection_is_reused(serve) -> None:
    piece = b"v" * 50_000

    async def chunked(server: RawServer, reader: Reader, writer: Writer) -> None:
        while True:
            await server.read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for _ in range(20):
                writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                await writer.drain()
            writer.write(b"0\r\n\r\n")

    server = await serve(chunked)
    async with lane() as http:
        for _ in range(2):
            sizes = []
            async with http.stream("GET", server.url + "/v") as response:
                async for chunk in response.aiter_bytes(65536):
                    sizes.append(len(chunk))
            assert sum(sizes) == 20 * len(piece) and max(sizes) <= 65536 and len(sizes) > 10
    assert server.connections == 1


async def test_a_body_delimited_by_the_connection_closing_is_read_to_the_end(serve) -> None:
    async def old_style(server: RawServer, reader: Reader, writer: Writer) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"q" * 300_000)
        await writer.drain()

    server = await serve(old_style)
    async with lane() as http:
        assert (await http.get(server.url + "/v")).content == b"q" * 300_000
        assert (await http.get(server.url + "/v")).content == b"q" * 300_000  # a new connection
    assert server.connections == 2


async def test_a_body_left_unread_closes_its_connection_not_the_next_request(serve) -> None:
    big = b"z" * 2_000_000
    server = await serve(keep_answering(answer(big)))
    async with lane() as http:
        async with http.stream("GET", server.url + "/big") as response:
            first = await response.aiter_bytes().__anext__()
            assert first
        assert (await http.get(server.url + "/big")).content == big
    assert server.connections == 2  # the half-read connection was not handed back


async def test_https_verifies_the_certificate_of_the_host_named(serve, ca) -> None:
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(served)
    server = await serve(keep_answering(json_answer({"tls": True})), served)
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
    async with lane(trusting) as http:
        assert (await http.get(server.url + "/x")).json() == {"tls": True}
    # the public CAs (mmgen's default context) do not vouch for it: refused before sending
    async with lane() as http:
        with pytest.raises(httpx.ConnectError, match="certificate verify failed"):
            await http.get(server.url + "/x")
    # nor does the CA vouch for another name of the same server
    async with lane(trusting) as http:
        with pytest.raises(httpx.ConnectError, match="certificate"):
            await http.get(server.url.replace("localhost", "127.0.0.1") + "/x")
    assert len(server.requests) == 1


async def test_closing_a_client_never_used_or_used_is_clean() -> None:
    # The suite turns warnings into errors: an unclosed aiohttp session would fail it.
    unused = lane()
    await unused.aclose()
    transport = AiohttpTransport(tls=TLS)
    await transport.aclose()
    await transport.aclose()


# --- failures: which httpx error, and what the client makes of it -----------------------------


async def test_connection_refused_is_a_connect_error_so_a_create_was_not_sent() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nobody listens
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    async with lane() as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(url + "/x")
    async with api_client(url) as client:
        with pytest.raises(ConnectFailedError) as info:
            await client.create_task(BODY)
    assert not isinstance(info.value, AmbiguousSubmitError)
    # what the socket said, once; not aiohttp's restatement of the host and its TLS setting
    assert "Connect call failed" in info.value.one_line()
    assert "ssl:" not in info.value.one_line() and "Cannot connect to host" not in str(info.value)


async def test_a_connection_closed_after_the_request_makes_the_create_ambiguous(serve) -> None:
    """The server read the whole create and hung up without answering: it may have created the
    task. This must never look like "not sent" (which would submit it again and pay twice)."""

    async def hang_up(server: RawServer, reader: Reader, writer: Writer) -> None:
        await server.read_request(reader)

    server = await serve(hang_up)
    async with lane() as http:
        with pytest.raises(httpx.RemoteProtocolError):
            await http.post(server.url + "/v1/video_generation", json=BODY)
    async with api_client(server.url) as client:
        with pytest.raises(AmbiguousSubmitError, match="after the request was sent"):
            await client.create_task(BODY)
    assert len(server.requests) == 2


async def test_a_connection_reset_after_the_request_makes_the_create_ambiguous(serve) -> None:
    async def reset(server: RawServer, reader: Reader, writer: Writer) -> None:
        await server.read_request(reader)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # RST, not FIN

    server = await serve(reset)
    async with lane() as http:
        with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
            await http.post(server.url + "/v1/video_generation", json=BODY)
    async with api_client(server.url) as client:
        with pytest.raises(AmbiguousSubmitError):
            await client.create_task(BODY)


async def test_a_server_that_never_answers_is_a_read_timeout(serve, monkeypatch) -> None:
    monkeypatch.setattr("mmgen.api.client.API_TIMEOUT", httpx.Timeout(5.0, read=0.2))
    release = asyncio.Event()

    async def stall(server: RawServer, reader: Reader, writer: Writer) -> None:
        await server.read_request(reader)
        await release.wait()

    server = await serve(stall)
    try:
        async with lane() as http:
            with pytest.raises(httpx.ReadTimeout):
                await http.get(server.url + "/slow", timeout=httpx.Timeout(5.0, read=0.2))
        async with api_client(server.url) as client:
            with pytest.raises(AmbiguousSubmitError, match="ReadTimeout"):
                await client.create_task(BODY)
            with pytest.raises(TransportError, match="ReadTimeout"):
                await client.query_task("t")
    finally:
        release.set()


async def test_a_body_cut_short_fails_the_download_and_keeps_no_file(serve, tmp_path) -> None:
    async def short(server: RawServer, reader: Reader, writer: Writer) -> None:
        await server.read_request(reader)
        writer.write(answer(b"x" * 1000, headers={"Content-Type": "video/mp4"})[:-900])
        await writer.drain()

    server = await serve(short)
    async with lane() as http, http.stream("GET", server.url + "/v.mp4") as response:
        with pytest.raises(httpx.RemoteProtocolError):
            await response.aread()
    async with api_client(server.url) as client:
        with pytest.raises(DownloadError, match=r"broken off .*received 100 of 1000 bytes"):
            await client.download(server.url + "/v.mp4", tmp_path / "v.mp4", attempts=1)
    assert list(tmp_path.iterdir()) == []


async def test_a_garbage_answer_is_a_protocol_error(serve) -> None:
    async def garbage(server: RawServer, reader: Reader, writer: Writer) -> None:
        await server.read_request(reader)
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        await writer.drain()

    server = await serve(garbage)
    async with lane() as http:
        with pytest.raises(httpx.RemoteProtocolError):
            await http.get(server.url + "/x")


@pytest.mark.parametrize(
    ("theirs", "ours"),
    [
        (aiohttp.ConnectionTimeoutError("connect"), httpx.ConnectTimeout),
        (aiohttp.SocketTimeoutError("read"), httpx.ReadTimeout),
        (aiohttp.ServerTimeoutError("timeout"), httpx.ReadTimeout),
        (aiohttp.ServerDisconnectedError(), httpx.RemoteProtocolError),
        (aiohttp.ClientPayloadError("cut"), httpx.RemoteProtocolError),
        (aiohttp.ClientOSError(104, "reset"), httpx.ReadError),
        (aiohttp.ClientConnectionError("closed"), httpx.ReadError),
        (aiohttp.InvalidUrlClientError("x"), httpx.UnsupportedProtocol),
        (TimeoutError(), httpx.ReadTimeout),
        (ConnectionResetError(104, "reset"), httpx.ReadError),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else v.__name__,
)
def test_every_aiohttp_error_becomes_the_httpx_error_it_means(theirs, ours) -> None:
    request = httpx.Request("POST", "https://api.test.invalid/v1/video_generation")
    with pytest.raises(httpx.TransportError) as info, _httpx_errors(request):
        raise theirs
    assert type(info.value) is ours and info.value.__cause__ is theirs
    assert info.value.request is request


def test_only_a_connection_never_made_counts_as_not_sent() -> None:
    """The ambiguity rule, on the mapping: of aiohttp's errors only connect failures map to
    the httpx errors the client treats as "the create surely did not leave"."""
    from mmgen.api.client import _NOT_SENT

    request = httpx.Request("POST", "https://api.test.invalid/")
    key = aiohttp.client_reqrep.ConnectionKey("h", 443, True, True, None, None, None)
    not_sent = [
        aiohttp.ClientConnectorError(key, ConnectionRefusedError(111, "refused")),
        aiohttp.ConnectionTimeoutError("connect"),
    ]
    sent = [
        aiohttp.ServerDisconnectedError(),
        aiohttp.SocketTimeoutError("read"),
        aiohttp.ClientOSError(104, "reset"),
        aiohttp.ClientPayloadError("cut"),
    ]
    for exc, expected in [(e, True) for e in not_sent] + [(e, False) for e in sent]:
        with pytest.raises(httpx.TransportError) as info, _httpx_errors(request):
            raise exc
        assert isinstance(info.value, _NOT_SENT) is expected, exc
