"""One conformance suite for every socket transport: what the caller sees when the server does each thing.

Each case states the outcome exactly: an answer (its own, never another request's), ``ConnectError`` (never
sent), or ``OutcomeUnknownError`` (sent, no complete answer). The servers are scripted on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Awaitable, Callable

import pytest

from linepush import AsyncLineClient, LineClient
from linepush._version import __version__
from linepush.api._base import ApiRequest
from linepush.errors import CertificateError, ConfigurationError, ConnectError, OutcomeUnknownError
from linepush.retry import RetryPolicy
from linepush.transport import AiohttpTransport, Timeouts, default_async_transport
from tests.support.scripted_http import Scripted
from tests.transport.conftest import CA, Proxy, Server, Under, answer, echo_key, named, push, retry_key

Serve = Callable[..., Awaitable[Server]]
Make = Callable[..., Under]
QUICK = Timeouts(connect=2.0, read=2.0)

EARLY_HINTS = b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


async def one_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
    """Answers one request with keep-alive, then closes the connection."""
    head = await server.read_request(reader)
    writer.write(answer(named(head)))
    await writer.drain()


async def read_and_drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
    """Reads one request and closes the connection without a word."""
    await server.read_request(reader)


# -- every answer reaches its own request --------------------------------------------------------------------


@pytest.mark.parametrize(
    "interim",
    [EARLY_HINTS, CONTINUE, CONTINUE + EARLY_HINTS + EARLY_HINTS],
    ids=["103", "100", "100+103+103"],
)
async def test_informational_answers_are_skipped_and_each_request_gets_its_own(
    serve: Serve, transport: Make, interim: bytes
) -> None:
    async def hints_first(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        while True:
            head = await server.read_request(reader)
            writer.write(interim)
            await writer.drain()
            writer.write(answer(named(head)))
            await writer.drain()

    server = await serve(hints_first)
    under = transport(server.url, pool_size=1, timeouts=QUICK)
    a, b = await asyncio.gather(under.send(push("A")), under.send(push("B")))
    c = await under.send(push("C"))
    assert [(r.status, r.json()) for r in (a, b, c)] == [(200, {"key": k}) for k in "ABC"]


async def test_a_connection_closed_after_its_answer_is_not_reused(serve: Serve, transport: Make) -> None:
    """The server answers with keep-alive, then closes: the next request goes on a fresh connection."""

    server = await serve(one_then_close)
    under = transport(server.url, timeouts=QUICK)
    assert (await under.send(push("A"))).json() == {"key": "A"}
    await server.a_connection_closed.wait()
    await asyncio.sleep(0.02)  # the close reaches the client's side of the socket
    assert (await under.send(push("B"))).json() == {"key": "B"}
    assert server.connections == 2


async def test_connection_close_in_the_answer_is_honoured(serve: Serve, transport: Make) -> None:
    async def close_header(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server
    ) -> None:
        head = await server.read_request(reader)
        writer.write(answer(named(head), extra=b"Connection: close\r\n"))
        await writer.drain()
        await server.hold()  # the client must close it, and not send on it

    server = await serve(close_header)
    under = transport(server.url, timeouts=QUICK)
    for key in "AB":
        assert (await under.send(push(key))).json() == {"key": key}
    assert server.connections == 2
    assert len(server.heads) == 2


async def test_a_request_read_and_dropped_unanswered_is_outcome_unknown_and_not_resent(
    serve: Serve, transport: Make
) -> None:
    server = await serve(read_and_drop)
    under = transport(server.url, timeouts=QUICK)
    with pytest.raises(OutcomeUnknownError):
        await under.send(push("A"))
    assert len(server.heads) == 1  # the library did not send it again behind our back


# -- how the answer arrives ----------------------------------------------------------------------------------


async def test_an_answer_in_one_byte_writes(serve: Serve, transport: Make) -> None:
    async def byte_by_byte(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server
    ) -> None:
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            head = await server.read_request(reader)
            data = EARLY_HINTS + answer(named(head), extra=b"X-Line-Request-Id: r1\r\n")
            for i in range(len(data)):
                writer.write(data[i : i + 1])
                await writer.drain()

    server = await serve(byte_by_byte)
    under = transport(server.url, timeouts=QUICK)
    for key in "AB":
        response = await under.send(push(key))
        assert (response.status, response.json(), response.request_id) == (200, {"key": key}, "r1")
    assert server.connections == 1


async def test_chunks_with_extensions_and_trailers(serve: Serve, transport: Make) -> None:
    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        while True:
            head = await server.read_request(reader)
            key = retry_key(head)
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
                b"Trailer: X-Checksum\r\n\r\n"
                b"8;note=first\r\n{\"key\":\"\r\n"
                + f'{len(key) + 2:x};q="a b"\r\n'.encode() + key + b'"}\r\n'
                b"0\r\nX-Checksum: 1234\r\n\r\n"
            )  # fmt: skip
            await writer.drain()

    server = await serve(chunked)
    under = transport(server.url, timeouts=QUICK)
    for key in "AB":  # the trailer was read to its end: the connection serves the next request
        assert (await under.send(push(key))).json() == {"key": key}
    assert server.connections == 1


async def test_an_answer_that_ends_with_the_connection(serve: Serve, transport: Make) -> None:
    async def close_delimited(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server
    ) -> None:
        head = await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n")
        writer.write(named(head))
        await writer.drain()

    server = await serve(close_delimited)
    under = transport(server.url, timeouts=QUICK)
    for key in "AB":
        assert (await under.send(push(key))).json() == {"key": key}
    assert server.connections == 2


MEGABYTE = bytes(range(256)) * 4096


async def test_a_one_megabyte_body(serve: Serve, transport: Make) -> None:
    async def big(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        while True:
            await server.read_request(reader)
            writer.write(answer(MEGABYTE))
            await writer.drain()

    server = await serve(big)
    under = transport(server.url, timeouts=QUICK)
    assert (await under.send(push())).body == MEGABYTE


@pytest.mark.parametrize("framing", ["length", "chunked", "close"])
async def test_a_body_over_the_limit_is_refused_unread(serve: Serve, transport: Make, framing: str) -> None:
    async def too_big(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        head = await server.read_request(reader)
        if retry_key(head) == b"small":
            writer.write(answer(b"{}", extra=b"Connection: close\r\n"))
        elif framing == "length":
            writer.write(answer(MEGABYTE))
        elif framing == "chunked":
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for i in range(0, len(MEGABYTE), 65536):
                writer.write(b"10000\r\n" + MEGABYTE[i : i + 65536] + b"\r\n")
            writer.write(b"0\r\n\r\n")
        else:
            writer.write(b"HTTP/1.1 200 OK\r\n\r\n" + MEGABYTE)
        await writer.drain()
        if framing != "close":
            await server.hold()

    server = await serve(too_big)
    under = transport(server.url, timeouts=QUICK, max_body=65536)
    with pytest.raises(OutcomeUnknownError, match="larger than 65,536 bytes"):
        await under.send(push("big"))
    assert (await under.send(push("small"))).status == 200  # the transport goes on, on a new connection


# -- timeouts and failures to connect ------------------------------------------------------------------------


async def test_slow_headers_are_the_read_timeout(serve: Serve, transport: Make) -> None:
    async def half_a_head(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-")
        await writer.drain()
        await server.hold()

    server = await serve(half_a_head)
    under = transport(server.url, timeouts=Timeouts(connect=0.1, read=0.2))
    with pytest.raises(OutcomeUnknownError) as raised:
        await under.send(push())
    # The reason is in words, whatever the library's exception says (asyncio's TimeoutError says nothing).
    assert re.search(r"time ?out|timed out", str(raised.value), re.IGNORECASE), str(raised.value)
    assert not str(raised.value).endswith(": "), str(raised.value)


async def test_a_connection_never_accepted_is_the_connect_timeout(
    unanswered_port: int, transport: Make
) -> None:
    under = transport(f"http://127.0.0.1:{unanswered_port}", timeouts=Timeouts(connect=0.2, read=5.0))
    with pytest.raises(ConnectError):
        await under.send(push())


async def test_an_unknown_host_is_connect_error(transport: Make, no_proxy_env: pytest.MonkeyPatch) -> None:
    under = transport("http://linepush-test.invalid", timeouts=QUICK)
    with pytest.raises(ConnectError) as caught:
        await under.send(push())
    assert type(caught.value) is ConnectError
    # The resolver's own words ("Name or service not known"), not the errno table's "Unknown error -2".
    said = str(caught.value)
    assert said.startswith("could not connect to http://linepush-test.invalid: cannot resolve its host name")
    assert "Unknown error" not in said


async def test_a_refused_connection_is_connect_error(refused_port: int, transport: Make) -> None:
    under = transport(f"http://127.0.0.1:{refused_port}", timeouts=QUICK)
    with pytest.raises(ConnectError) as caught:
        await under.send(push())
    assert type(caught.value) is ConnectError


# -- TLS -----------------------------------------------------------------------------------------------------


async def test_tls_with_a_trusted_ca(serve: Serve, transport: Make, test_ca: CA) -> None:
    server = await serve(echo_key, tls=test_ca.good)
    under = transport(server.url, timeouts=QUICK, ssl_context=test_ca.client())
    assert (await under.send(push("A"))).json() == {"key": "A"}
    localhost = transport(f"https://localhost:{server.port}", timeouts=QUICK, ssl_context=test_ca.client())
    assert (await localhost.send(push("B"))).json() == {"key": "B"}


async def test_an_untrusted_certificate_is_refused(serve: Serve, transport: Make, test_ca: CA) -> None:
    server = await serve(echo_key, tls=test_ca.good)
    under = transport(server.url, timeouts=QUICK)  # the system's CAs do not know the test CA
    with pytest.raises(CertificateError, match="certificate"):
        await under.send(push())
    assert server.heads == []


async def test_a_certificate_for_another_host_is_refused(serve: Serve, transport: Make, test_ca: CA) -> None:
    server = await serve(echo_key, tls=test_ca.other_host)
    under = transport(server.url, timeouts=QUICK, ssl_context=test_ca.client())
    with pytest.raises(CertificateError, match="certificate"):
        await under.send(push())
    assert server.heads == []


async def test_a_refused_certificate_is_one_clear_error_not_retried(
    serve: Serve, transport: Make, test_ca: CA
) -> None:
    server = await serve(echo_key, tls=test_ca.good)
    under = transport(server.url, timeouts=QUICK)
    retry = RetryPolicy(initial_backoff=0.0, max_backoff=0.0)  # six attempts if it were retried
    if under.sync:
        with LineClient(token="s3cr3t", transport=under.transport, retry=retry, rate_limits=None) as line:
            with pytest.raises(CertificateError) as caught:
                await asyncio.to_thread(line.push, "U" + "0" * 32, "hello")
    else:
        async with AsyncLineClient(
            token="s3cr3t", transport=under.transport, retry=retry, rate_limits=None
        ) as aline:
            with pytest.raises(CertificateError) as caught:
                await aline.push("U" + "0" * 32, "hello")
    assert caught.value.attempts == 1
    assert not caught.value.retryable
    assert server.connections == 1
    assert "s3cr3t" not in str(caught.value)


# -- proxies -------------------------------------------------------------------------------------------------


async def test_https_proxy_from_the_environment_tunnels(
    serve: Serve, transport: Make, test_ca: CA, proxy: Proxy, no_proxy_env: pytest.MonkeyPatch
) -> None:
    no_proxy_env.setenv("HTTPS_PROXY", proxy.url)
    server = await serve(echo_key, tls=test_ca.good)
    under = transport(server.url, timeouts=QUICK, ssl_context=test_ca.client())
    assert (await under.send(push("A"))).json() == {"key": "A"}
    assert proxy.tunnels == [f"127.0.0.1:{server.port}"]


async def test_no_proxy_is_respected(
    serve: Serve, transport: Make, test_ca: CA, proxy: Proxy, no_proxy_env: pytest.MonkeyPatch
) -> None:
    no_proxy_env.setenv("HTTPS_PROXY", proxy.url)
    no_proxy_env.setenv("NO_PROXY", "example.org,127.0.0.1")
    server = await serve(echo_key, tls=test_ca.good)
    under = transport(server.url, timeouts=QUICK, ssl_context=test_ca.client())
    assert (await under.send(push("A"))).json() == {"key": "A"}
    assert proxy.tunnels == []


def test_the_default_async_transport_is_aiohttp_and_reads_the_proxy_once(
    no_proxy_env: pytest.MonkeyPatch,
) -> None:
    no_proxy_env.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    made = default_async_transport("https://api.line.me")
    assert isinstance(made, AiohttpTransport)
    assert made._proxy == "http://proxy.invalid:3128"


# -- the request itself --------------------------------------------------------------------------------------


async def test_cancelling_a_request_frees_its_connection_slot(serve: Serve, transport: Make) -> None:
    async def first_hangs(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        while True:
            head = await server.read_request(reader)
            if retry_key(head) == b"hang":
                await server.hold()
            writer.write(answer(named(head)))
            await writer.drain()

    server = await serve(first_hangs)
    under = transport(server.url, pool_size=1, timeouts=QUICK)
    if under.sync:
        pytest.skip("a sync call cannot be cancelled")
    hanging = asyncio.create_task(under.send(push("hang")))
    await server.got_request.wait()
    hanging.cancel()
    with pytest.raises(asyncio.CancelledError):
        await hanging
    assert (await under.send(push("next"))).json() == {"key": "next"}


@pytest.mark.parametrize(
    ("token", "headers"),
    [
        ("s3cr3t\r\nX-Injected: 1", ()),
        ("s3cr3t\nX-Injected: 1", ()),
        ("s3cr3t", (("X-Trace", "a\r\nX-Injected: 1"),)),
        ("s3cr3t", (("X-Trace\r\nX-Injected", "1"),)),
    ],
    ids=["token-crlf", "token-lf", "header-value", "header-name"],
)
async def test_a_line_break_in_a_header_is_refused_before_anything_is_sent(
    serve: Serve, transport: Make, token: str, headers: tuple[tuple[str, str], ...]
) -> None:
    server = await serve()
    under = transport(server.url, timeouts=QUICK)
    base = push()
    request = ApiRequest(
        base.method,
        base.path,
        base.endpoint,
        base.body,
        base.content_type,
        True,
        base.retry_key,
        True,
        headers,
    )
    with pytest.raises(ConfigurationError) as caught:
        await under.send(request, token)
    assert "s3cr3t" not in str(caught.value)
    assert server.connections == 0


async def test_a_request_names_linepush_and_asks_for_no_compression(serve: Serve, transport: Make) -> None:
    """LINE's answers are small: none is asked for compressed (a compressed answer would also slip past the
    max_body check, which counts the bytes as they arrive)."""
    server = await serve()
    under = transport(server.url, timeouts=QUICK)
    for key in "AB":
        await under.send(push(key))
    for head in server.heads:
        lines = head.lower().split(b"\r\n")
        assert [line for line in lines if line.startswith(b"user-agent:")] == [
            f"user-agent: linepush/{__version__}".encode()
        ]
        assert [line for line in lines if line.startswith(b"accept-encoding:")] in (
            [],
            [b"accept-encoding: identity"],
        )


@pytest.mark.parametrize("suffix", ["/line", "/line/"])
async def test_a_base_url_with_a_path_keeps_it_on_every_request(
    serve: Serve, transport: Make, suffix: str
) -> None:
    server = await serve()
    under = transport(server.url + suffix, timeouts=QUICK)
    for key in "AB":
        await under.send(push(key))
    assert [head.split(b"\r\n", 1)[0] for head in server.heads] == [
        b"POST /line/v2/bot/message/push HTTP/1.1"
    ] * 2


async def test_a_call_deadline_bounds_an_answer_that_never_comes(serve: Serve, transport: Make) -> None:
    """The client's retry deadline covers the whole call, the wait for an answer included."""

    async def never(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        await server.read_request(reader)
        await server.hold()

    server = await serve(never)
    under = transport(server.url)  # the transport's own read timeout is 30 s
    retry = RetryPolicy(deadline=0.3, initial_backoff=0.0, max_backoff=0.0)
    async with asyncio.timeout(10):
        if under.sync:
            with LineClient(token="tok", transport=under.transport, retry=retry, rate_limits=None) as line:
                with pytest.raises(OutcomeUnknownError):
                    await asyncio.to_thread(line.push, "U" + "0" * 32, "hello")
        else:
            async with AsyncLineClient(
                token="tok", transport=under.transport, retry=retry, rate_limits=None
            ) as al:
                with pytest.raises(OutcomeUnknownError):
                    await al.push("U" + "0" * 32, "hello")
    assert len(server.heads) >= 1


def test_an_async_transport_serves_one_event_loop_after_another() -> None:
    """``asyncio.run`` twice with one client: the first loop's connections cannot serve the second."""
    server = Scripted(answer=True, keep_alive=True)
    transport = AiohttpTransport(server.url, timeouts=QUICK)
    try:
        for key in "AB":
            assert asyncio.run(transport.send(push(key), "tok")).status == 200
        asyncio.run(transport.aclose())
    finally:
        server.close()
    assert len(server.request_lines) == 2
    assert server.connections == 2  # the first loop's connection was not used from the second


VERIFY = ApiRequest(
    "GET", "/oauth2/v2.1/verify?access_token=s3cr3t", "GET /oauth2/v2.1/verify", idempotent=True
)


async def test_a_token_in_the_query_stays_out_of_errors(
    serve: Serve, transport: Make, refused_port: int
) -> None:
    server = await serve(read_and_drop)
    for url, expected in (
        (server.url, OutcomeUnknownError),
        (f"http://127.0.0.1:{refused_port}", ConnectError),
    ):
        with pytest.raises(expected) as caught:
            await transport(url, timeouts=QUICK).send(VERIFY, None)
        assert "s3cr3t" not in str(caught.value)
    assert server.heads[0].startswith(b"GET /oauth2/v2.1/verify?access_token=s3cr3t HTTP/1.1")


async def test_a_request_racing_the_servers_close_is_answered_or_reported(
    serve: Serve, transport: Make
) -> None:
    """The server closes right after its answer and the next request is sent at once, racing the close: it
    goes on a fresh connection, or fails as a transport error; it never gets another request's answer."""

    server = await serve(one_then_close)
    under = transport(server.url, timeouts=QUICK)
    for key in ("A", "B", "C"):
        try:
            response = await under.send(push(key))
        except (ConnectError, OutcomeUnknownError):
            continue
        assert response.json() == {"key": key}
