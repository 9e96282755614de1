"""StreamTransport against small scripted HTTP servers on loopback: keep-alive, the pool's limit, what a
broken connection or answer becomes, timeouts, cancellation and TLS."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from linepush.api._base import ApiRequest
from linepush.errors import ConfigurationError, ConnectError, OutcomeUnknownError
from linepush.transport import AiohttpTransport, StreamTransport, Timeouts, default_async_transport

PUSH = ApiRequest(
    "POST",
    "/v2/bot/message/push",
    "POST /v2/bot/message/push",
    b'{"to":"U1"}',
    "application/json",
    True,
    "123e4567-e89b-42d3-a456-426614174000",
    True,
)
GET = ApiRequest("GET", "/v2/bot/message/quota", "GET /v2/bot/message/quota", needs_token=True)
OK = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Line-Request-Id: r1\r\n"
    b"Content-Length: 2\r\n\r\n{}"
)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "Server"], Awaitable[None]]


class Server:
    """A loopback server running ``handler`` per connection; records connections and request heads."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.open = 0
        self.most_open = 0
        self.heads: list[bytes] = []
        self.url = ""

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        try:
            await self.handler(reader, writer, self)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.open -= 1
            writer.close()

    async def read_request(self, reader: asyncio.StreamReader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        self.heads.append(head)
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                await reader.readexactly(int(line.split(b":", 1)[1]))
        return head


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[Server]]]:
    servers: list[asyncio.Server] = []

    async def start(handler: Handler, ssl_context: ssl.SSLContext | None = None) -> Server:
        server = Server(handler)
        listening = await asyncio.start_server(server._serve, "127.0.0.1", 0, ssl=ssl_context)
        servers.append(listening)
        port = listening.sockets[0].getsockname()[1]
        server.url = f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}"
        return server

    yield start
    for listening in servers:
        listening.close()


async def answer_ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
    while True:
        await server.read_request(reader)
        writer.write(OK)
        await writer.drain()


async def test_a_request_is_sent_as_http_11_and_the_answer_read(
    serve: Callable[..., Awaitable[Server]],
) -> None:
    server = await serve(answer_ok)
    transport = StreamTransport(server.url)
    response = await transport.send(PUSH, "tok")
    await transport.aclose()

    assert (response.status, response.body, response.request_id) == (200, b"{}", "r1")
    assert response.headers["content-type"] == "application/json" == response.headers.get("Content-Type")
    head = server.heads[0].decode()
    assert head.startswith("POST /v2/bot/message/push HTTP/1.1\r\n")
    for line in (
        f"Host: {server.url.removeprefix('http://')}",
        "Authorization: Bearer tok",
        "Content-Type: application/json",
        "X-Line-Retry-Key: 123e4567-e89b-42d3-a456-426614174000",
        "Content-Length: 11",
    ):
        assert f"\r\n{line}\r\n" in head


async def test_connections_are_kept_alive_and_reused(serve: Callable[..., Awaitable[Server]]) -> None:
    server = await serve(answer_ok)
    transport = StreamTransport(server.url)
    for _ in range(5):
        assert (await transport.send(GET, "tok")).status == 200
    await transport.aclose()
    assert server.connections == 1 and len(server.heads) == 5
    assert b"Content-Length" not in server.heads[0]  # a GET without a body says nothing of one


async def test_no_more_connections_than_the_pool_size(serve: Callable[..., Awaitable[Server]]) -> None:
    async def slow_ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        while True:
            await server.read_request(reader)
            await asyncio.sleep(0.01)
            writer.write(OK)
            await writer.drain()

    server = await serve(slow_ok)
    transport = StreamTransport(server.url, pool_size=3)
    responses = await asyncio.gather(*(transport.send(PUSH, "tok") for _ in range(20)))
    await transport.aclose()
    assert [r.status for r in responses] == [200] * 20
    assert server.most_open <= 3 and server.connections == 3


async def test_a_connection_the_server_closes_is_not_reused(serve: Callable[..., Awaitable[Server]]) -> None:
    async def one_then_close(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server
    ) -> None:
        await server.read_request(reader)
        writer.write(OK.replace(b"Content-Length", b"Connection: close\r\nContent-Length"))
        await writer.drain()

    server = await serve(one_then_close)
    transport = StreamTransport(server.url, pool_size=1)
    for _ in range(3):
        assert (await transport.send(PUSH, "tok")).status == 200
    await transport.aclose()
    assert server.connections == 3


async def test_an_idle_connection_closed_by_the_server_is_replaced(
    serve: Callable[..., Awaitable[Server]],
) -> None:
    async def answer_then_hang_up(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server
    ) -> None:
        await server.read_request(reader)
        writer.write(OK)  # keep-alive by HTTP/1.1's default, but the server hangs up right after
        await writer.drain()

    server = await serve(answer_then_hang_up)
    transport = StreamTransport(server.url, pool_size=1)
    assert (await transport.send(PUSH, "tok")).status == 200
    for _ in range(5000):  # until the hang-up reaches the client (its idle list empties), at most 5 s
        if not transport._idle:
            break
        await asyncio.sleep(0.001)
    assert (await transport.send(PUSH, "tok")).status == 200
    await transport.aclose()
    assert server.connections == 2


async def test_no_answer_is_outcome_unknown_and_frees_the_slot(
    serve: Callable[..., Awaitable[Server]],
) -> None:
    async def hang_up_first(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server
    ) -> None:
        await server.read_request(reader)
        if server.connections == 1:
            return  # read the request, then close without a word
        writer.write(OK)
        await writer.drain()
        await reader.read()

    server = await serve(hang_up_first)
    transport = StreamTransport(server.url, pool_size=1)
    with pytest.raises(OutcomeUnknownError, match="closed the connection before answering"):
        await transport.send(PUSH, "tok")
    assert (await transport.send(PUSH, "tok")).status == 200
    await transport.aclose()


async def test_a_malformed_answer_is_outcome_unknown(serve: Callable[..., Awaitable[Server]]) -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 2x0 Nope\r\n\r\n")
        await writer.drain()
        await reader.read()

    server = await serve(garbage)
    transport = StreamTransport(server.url)
    with pytest.raises(OutcomeUnknownError, match="malformed response"):
        await transport.send(PUSH, "tok")
    await transport.aclose()


async def test_a_slow_answer_times_out_and_its_connection_is_dropped(
    serve: Callable[..., Awaitable[Server]],
) -> None:
    async def late(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        while True:
            await server.read_request(reader)
            if server.connections == 1:
                await asyncio.sleep(1)
            writer.write(OK)
            await writer.drain()

    server = await serve(late)
    transport = StreamTransport(server.url, timeouts=Timeouts(connect=1, read=0.05), pool_size=1)
    with pytest.raises(OutcomeUnknownError, match=r"within 0.05 s"):
        await transport.send(PUSH, "tok")
    assert (await transport.send(PUSH, "tok")).status == 200
    await transport.aclose()
    assert server.connections == 2  # the late connection was not trusted again


async def test_a_cancelled_send_drops_its_connection_and_frees_the_slot(
    serve: Callable[..., Awaitable[Server]],
) -> None:
    async def first_never(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        while True:
            await server.read_request(reader)
            if server.connections == 1:
                await reader.read()
                return
            writer.write(OK)
            await writer.drain()

    server = await serve(first_never)
    transport = StreamTransport(server.url, pool_size=1)
    task = asyncio.create_task(transport.send(PUSH, "tok"))
    for _ in range(100):
        await asyncio.sleep(0.001)
        if server.heads:
            break
    waiting = asyncio.create_task(transport.send(PUSH, "tok"))  # waits for the only slot
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (await waiting).status == 200
    await transport.aclose()
    assert server.connections == 2


async def test_a_chunked_answer_is_put_together(serve: Callable[..., Awaitable[Server]]) -> None:
    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        await server.read_request(reader)
        writer.write(
            b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{"a\r\n4\r\n":1}\r\n0\r\n\r\n'
        )
        await writer.drain()
        await reader.read()

    server = await serve(chunked)
    transport = StreamTransport(server.url)
    response = await transport.send(PUSH, "tok")
    await transport.aclose()
    assert response.json() == {"a": 1}


async def test_refused_is_connect_error(unused_tcp_port: int) -> None:
    transport = StreamTransport(f"http://127.0.0.1:{unused_tcp_port}")
    with pytest.raises(ConnectError, match="could not connect"):
        await transport.send(PUSH, "tok")
    await transport.aclose()


async def test_a_token_with_a_line_break_is_refused_before_anything_is_sent(
    serve: Callable[..., Awaitable[Server]],
) -> None:
    server = await serve(answer_ok)
    transport = StreamTransport(server.url)
    with pytest.raises(ConfigurationError, match="line break"):
        await transport.send(PUSH, "tok\r\nX-Evil: 1")
    with pytest.raises(ConfigurationError, match="Latin-1"):
        await transport.send(PUSH, "tök€n")
    await transport.aclose()
    assert server.heads == []


async def test_a_base_url_with_a_path_prefixes_every_request(serve: Callable[..., Awaitable[Server]]) -> None:
    server = await serve(answer_ok)
    transport = StreamTransport(server.url + "/line/")
    await transport.send(PUSH, "tok")
    await transport.aclose()
    assert server.heads[0].startswith(b"POST /line/v2/bot/message/push HTTP/1.1\r\n")


async def test_after_aclose_nothing_is_sent(serve: Callable[..., Awaitable[Server]]) -> None:
    server = await serve(answer_ok)
    transport = StreamTransport(server.url)
    await transport.send(PUSH, "tok")
    await transport.aclose()
    with pytest.raises(ConnectError, match="closed"):
        await transport.send(PUSH, "tok")


def test_a_proxy_in_the_environment_means_aiohttp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert isinstance(default_async_transport("https://api.line.me"), AiohttpTransport)
    monkeypatch.delenv("HTTPS_PROXY")
    monkeypatch.delenv("https_proxy", raising=False)
    assert isinstance(default_async_transport("https://api.line.me"), StreamTransport)


def _self_signed(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a certificate for 127.0.0.1, and a client context that trusts it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert_file, key_file)
    client_context = ssl.create_default_context(cafile=str(cert_file))
    return server_context, client_context


async def test_https_verifies_the_servers_certificate(
    serve: Callable[..., Awaitable[Server]], tmp_path: Path
) -> None:
    server_context, client_context = _self_signed(tmp_path)
    server = await serve(answer_ok, ssl_context=server_context)

    trusting = StreamTransport(server.url, ssl_context=client_context)
    assert (await trusting.send(PUSH, "tok")).status == 200
    await trusting.aclose()

    untrusting = StreamTransport(server.url)  # the system's CAs: the self-signed certificate is refused
    with pytest.raises(ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        await untrusting.send(PUSH, "tok")
    await untrusting.aclose()


async def test_a_connection_unused_for_longer_than_keepalive_is_not_trusted(
    serve: Callable[..., Awaitable[Server]],
) -> None:
    server = await serve(answer_ok)
    stale = StreamTransport(server.url, keepalive=0.0)  # every idle connection is too old
    for _ in range(3):
        assert (await stale.send(PUSH, "tok")).status == 200
    await stale.aclose()
    assert server.connections == 3


def test_one_transport_serves_one_event_loop_after_another(tmp_path: Path) -> None:
    async def answer_forever(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = [
                    int(h.split(b":")[1])
                    for h in head.split(b"\r\n")
                    if h.lower().startswith(b"content-length")
                ]
                await reader.readexactly(length[0] if length else 0)
                writer.write(OK)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    import threading

    ready = threading.Event()
    port: list[int] = []
    stop: list[Callable[[], None]] = []

    def serve_in_thread() -> None:
        async def main() -> None:
            server = await asyncio.start_server(answer_forever, "127.0.0.1", 0)
            port.append(server.sockets[0].getsockname()[1])
            done = asyncio.Event()
            loop = asyncio.get_running_loop()
            stop.append(lambda: loop.call_soon_threadsafe(done.set))
            ready.set()
            await done.wait()
            server.close()

        asyncio.run(main())

    thread = threading.Thread(target=serve_in_thread)
    thread.start()
    ready.wait(5)
    transport = StreamTransport(f"http://127.0.0.1:{port[0]}", timeouts=Timeouts(connect=2, read=2))
    try:
        # The second asyncio.run has a new loop: the first loop's idle connection must not be reused.
        assert asyncio.run(transport.send(PUSH, "tok")).status == 200
        assert asyncio.run(transport.send(PUSH, "tok")).status == 200
        asyncio.run(transport.aclose())
    finally:
        stop[0]()
        thread.join(5)


async def test_an_answer_that_ends_with_the_connection_is_complete(
    serve: Callable[..., Awaitable[Server]],
) -> None:
    async def until_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        await server.read_request(reader)
        writer.write(b'HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{"sentMessages":[]}')
        await writer.drain()

    server = await serve(until_close)
    transport = StreamTransport(server.url)
    response = await transport.send(PUSH, "tok")
    assert (response.status, response.json()) == (200, {"sentMessages": []})
    assert (await transport.send(PUSH, "tok")).status == 200  # on a new connection
    await transport.aclose()
    assert server.connections == 2
