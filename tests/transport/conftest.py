"""What the transport conformance suite runs against: every transport behind one async face, scripted
loopback servers, a test CA made here, and a CONNECT proxy."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import os
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from linepush.api._base import ApiRequest, ApiResponse
from linepush.transport import AiohttpTransport, Urllib3Transport, default_async_transport


def push(key: str = "k1") -> ApiRequest:
    """A push carrying ``key`` as its retry key: the scripted servers echo it, so each answer names its
    request."""
    return ApiRequest(
        "POST", "/v2/bot/message/push", "POST /v2/bot/message/push", b'{"to":"U1"}', "application/json",
        True, key, True,
    )  # fmt: skip


def answer(body: bytes, *, extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + extra
        + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )  # fmt: skip


def retry_key(head: bytes) -> bytes:
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"x-line-retry-key:"):
            return line.split(b":", 1)[1].strip()
    return b""


def named(head: bytes) -> bytes:
    """A body that names the request it answers (by its retry key)."""
    return b'{"key":"' + retry_key(head) + b'"}'


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "Server"], Awaitable[None]]


class Server:
    """A loopback server running ``handler`` per connection; counts connections and keeps request heads."""

    def __init__(self, handler: Handler, tls: ssl.SSLContext | None) -> None:
        self.handler = handler
        self.tls = tls
        self.connections = 0  # TCP connections accepted (before any TLS handshake)
        self.closed = 0
        self.heads: list[bytes] = []
        self.url = ""
        self.port = 0
        self.stop = asyncio.Event()
        self.got_request = asyncio.Event()
        self.a_connection_closed = asyncio.Event()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            if self.tls is not None:
                await writer.start_tls(self.tls)
            await self.handler(reader, writer, self)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, OSError):
            pass
        finally:
            writer.close()
            if self.tls is not None:
                writer.transport.abort()  # no TLS shutdown handshake with a client that may be gone
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            self.closed += 1
            self.a_connection_closed.set()

    async def read_request(self, reader: asyncio.StreamReader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                await reader.readexactly(int(line.split(b":", 1)[1]))
        self.heads.append(head)
        self.got_request.set()
        return head

    async def hold(self) -> None:
        """Keep the connection open, saying nothing, until the test ends."""
        await self.stop.wait()


async def echo_key(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
    """Answers every request on the connection with a body that names it (its retry key)."""
    while True:
        head = await server.read_request(reader)
        writer.write(answer(named(head)))
        await writer.drain()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[Server]]]:
    started: list[tuple[asyncio.Server, Server]] = []

    async def start(handler: Handler = echo_key, tls: ssl.SSLContext | None = None) -> Server:
        server = Server(handler, tls)
        listening = await asyncio.start_server(server.serve, "127.0.0.1", 0)
        started.append((listening, server))
        server.port = listening.sockets[0].getsockname()[1]
        server.url = f"{'https' if tls else 'http'}://127.0.0.1:{server.port}"
        return server

    yield start
    for listening, server in started:
        server.stop.set()
        listening.close()
    await asyncio.sleep(0)


# -- the transports under test ------------------------------------------------------------------------------


@dataclass
class Under:
    """One transport under test, driven from async code whether it is sync (in a thread) or async."""

    kind: str
    transport: Any

    @property
    def sync(self) -> bool:
        return self.kind == "urllib3"

    async def send(self, request: ApiRequest, token: str | None = "tok", **options: Any) -> ApiResponse:
        if self.sync:
            return await asyncio.to_thread(self.transport.send, request, token, **options)
        return await self.transport.send(request, token, **options)

    async def close(self) -> None:
        if self.sync:
            self.transport.close()
        else:
            await self.transport.aclose()


#: The async default (aiohttp, made by ``default_async_transport`` where no option is needed) and the sync
#: transport. The in-process ASGI transports run the cases that apply to them in test_asgi_conformance.py.
KINDS = ["aiohttp", "urllib3"]
if os.environ.get("LINEPUSH_TRANSPORT_CANDIDATES"):
    KINDS.append("pyreqwest")  # a library weighed for the default, not shipped: see candidates.py


@pytest.fixture(params=KINDS)
async def transport(request: pytest.FixtureRequest) -> AsyncIterator[Callable[..., Under]]:
    kind: str = request.param
    made: list[Under] = []

    def make(url: str, **options: Any) -> Under:
        if kind == "pyreqwest":
            from tests.transport.candidates import PyreqwestTransport

            transport: Any = PyreqwestTransport(url, **options)
        elif kind == "aiohttp":
            plain = set(options) <= {"timeouts", "pool_size"}
            transport = default_async_transport(url, **options) if plain else AiohttpTransport(url, **options)
        else:
            transport = Urllib3Transport(url, **options)
        under = Under(kind, transport)
        made.append(under)
        return under

    yield make
    for under in made:
        await under.close()


# -- TLS: a CA made here, and certificates it signs ---------------------------------------------------------


@dataclass
class CA:
    ca_file: Path
    good: ssl.SSLContext  # a server context with a certificate for 127.0.0.1 and localhost
    other_host: ssl.SSLContext  # a server context with a certificate for another name only

    def client(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))


def _pem(tmp: Path, name: str, data: bytes) -> Path:
    path = tmp / name
    path.write_bytes(data)
    return path


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> CA:
    tmp = tmp_path_factory.mktemp("ca")
    # Validity around the real clock, as TLS checks it against the real clock.
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "linepush test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = _pem(tmp, "ca.pem", ca_cert.public_bytes(serialization.Encoding.PEM))

    def server_context(name: str, alt: list[x509.GeneralName]) -> ssl.SSLContext:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
            )
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        cert_file = _pem(tmp, f"{name}.pem", cert.public_bytes(serialization.Encoding.PEM))
        key_file = _pem(
            tmp,
            f"{name}.key",
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
        )
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert_file, key_file)
        return context

    good = server_context(
        "127.0.0.1", [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    )
    other = server_context("other.example", [x509.DNSName("other.example")])
    return CA(ca_file, good, other)


# -- a CONNECT proxy ----------------------------------------------------------------------------------------


class Proxy:
    """An HTTP proxy on loopback that only tunnels (CONNECT), recording where each tunnel went."""

    def __init__(self) -> None:
        self.tunnels: list[str] = []
        self.url = ""

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            method, target, _ = head.split(b"\r\n", 1)[0].split(b" ", 2)
            if method != b"CONNECT":
                writer.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
                return
            self.tunnels.append(target.decode())
            host, _, port = target.decode().rpartition(":")
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()

            async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
                with contextlib.suppress(ConnectionError, OSError):
                    while data := await src.read(65536):
                        dst.write(data)
                        await dst.drain()
                dst.close()

            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        except (ConnectionError, asyncio.IncompleteReadError, OSError, ValueError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def proxy() -> AsyncIterator[Proxy]:
    p = Proxy()
    listening = await asyncio.start_server(p.serve, "127.0.0.1", 0)
    p.url = f"http://127.0.0.1:{listening.sockets[0].getsockname()[1]}"
    yield p
    listening.close()


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No proxy variables from outside the test."""
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


# -- ports where nothing answers ----------------------------------------------------------------------------


@pytest.fixture
def refused_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def unanswered_port() -> Iterator[int]:
    """A loopback port whose accept queue is full, so a new connection is never completed."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = int(listener.getsockname()[1])
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    yield port
    for filler in fillers:
        filler.close()
    listener.close()
