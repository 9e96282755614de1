"""The only place that sends bytes. One sync and one async sender behind one seam.

A transport takes an :class:`~linepush.api._base.ApiRequest` and a bearer token and returns an
:class:`~linepush.api._base.ApiResponse`, or raises :class:`~linepush.errors.ConnectError` (never sent) or
:class:`~linepush.errors.OutcomeUnknownError` (sent, no complete answer). It never retries and never
looks at the status code: the client's call flow does that, once, for both.

- :class:`StreamTransport` (async, the default without a proxy) talks HTTP/1.1 over pooled keep-alive
  connections of its own, on asyncio protocols with httptools (llhttp) parsing the answers. LINE's API needs
  little of HTTP (small bodies, no redirects, no cookies, no compression), and a general-purpose client
  costs ~4x the CPU per request: aiohttp's ``ClientSession`` took 446k instructions per push at concurrency
  64 where this takes ~110k (callgrind).
- :class:`AiohttpTransport` (async; the default behind a proxy) and :class:`Urllib3Transport` (sync) talk
  HTTP through those libraries. aiohttp runs with ``trust_env`` off: proxy settings are read once, here,
  instead of on every request.
- :class:`ASGITransport` (async) and :class:`SyncASGITransport` call an ASGI app in-process, so tests run
  against the emulator without sockets.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import threading
import urllib.request
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from linepush._version import __version__
from linepush.api._base import ApiRequest, ApiResponse
from linepush.errors import ConfigurationError, ConnectError, OutcomeUnknownError

__all__ = [
    "DEFAULT_API_BASE",
    "ASGITransport",
    "AiohttpTransport",
    "AsyncTransport",
    "StreamTransport",
    "SyncASGITransport",
    "SyncTransport",
    "Timeouts",
    "Urllib3Transport",
    "default_async_transport",
]

DEFAULT_API_BASE = "https://api.line.me"
USER_AGENT = f"linepush/{__version__}"


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds to wait for a connection, and for the answer once the request is sent."""

    connect: float = 5.0
    read: float = 30.0


class SyncTransport(Protocol):
    def send(self, request: ApiRequest, token: str | None) -> ApiResponse: ...

    def close(self) -> None: ...


class AsyncTransport(Protocol):
    async def send(self, request: ApiRequest, token: str | None) -> ApiResponse: ...

    async def aclose(self) -> None: ...


def request_headers(request: ApiRequest, token: str | None) -> dict[str, str]:
    headers = {"User-Agent": USER_AGENT}
    if token is not None:
        headers["Authorization"] = "Bearer " + token
    if request.content_type is not None:
        headers["Content-Type"] = request.content_type
    if request.retry_key is not None:
        headers["X-Line-Retry-Key"] = request.retry_key
    if request.headers:
        headers.update(request.headers)
    return headers


def normalize_base_url(base_url: str) -> str:
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigurationError(
            f"API base URL {base_url!r} is not an http(s) URL; use e.g. https://api.line.me "
            "or http://127.0.0.1:8765 for the emulator"
        )
    return base_url.rstrip("/")


def proxy_for(base_url: str) -> str | None:
    """The proxy from the environment (HTTPS_PROXY, NO_PROXY, …) for ``base_url``, read once."""
    host = urlsplit(base_url).hostname or ""
    if urllib.request.proxy_bypass(host):
        return None
    proxies = urllib.request.getproxies()
    return proxies.get(urlsplit(base_url).scheme)


class AiohttpTransport:
    """Async HTTP via one pooled ``aiohttp.ClientSession``, opened on first use."""

    def __init__(
        self,
        base_url: str = DEFAULT_API_BASE,
        *,
        timeouts: Timeouts = Timeouts(),
        pool_size: int = 100,
        proxy: str | bool | None = True,
    ) -> None:
        self._base = normalize_base_url(base_url)
        self._timeouts = timeouts
        self._pool_size = pool_size
        # True: take the proxy from the environment now, not per request (aiohttp's trust_env costs 2.4x).
        self._proxy = proxy_for(self._base) if proxy is True else (proxy or None)
        self._session: Any = None
        # aiohttp's exception classes, taken when the session opens (an import statement in send() would run
        # on every request; an except clause is only evaluated when something was raised).
        self._never_sent: tuple[type[BaseException], ...] = ()
        self._no_answer: tuple[type[BaseException], ...] = ()

    @property
    def base_url(self) -> str:
        return self._base

    def _open(self) -> Any:
        import aiohttp

        self._never_sent = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)
        self._no_answer = (aiohttp.ClientError, TimeoutError)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._pool_size, ttl_dns_cache=300),
            # One deadline per request (connect + read), not a read timer re-armed on every chunk that
            # arrives: on the push path the re-arming alone showed up as a few percent of the CPU.
            timeout=aiohttp.ClientTimeout(
                total=self._timeouts.connect + self._timeouts.read, sock_connect=self._timeouts.connect
            ),
            trust_env=False,
            auto_decompress=True,
        )
        return self._session

    async def send(self, request: ApiRequest, token: str | None) -> ApiResponse:
        session = self._session or self._open()
        try:
            async with session.request(
                request.method,
                self._base + request.path,
                data=request.body,
                headers=request_headers(request, token),
                proxy=self._proxy,
                allow_redirects=False,
            ) as response:
                body = await response.read()
                return ApiResponse(response.status, response.headers, body)
        except self._never_sent as exc:
            raise ConnectError(f"could not connect to {self._base}: {exc}") from exc
        except self._no_answer as exc:
            raise OutcomeUnknownError(
                f"no complete answer from {self._base}{request.path.split('?', 1)[0]}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    def sync_counterpart(self) -> Urllib3Transport:
        """A sync transport to the same place (the token manager refreshes from a worker thread)."""
        return Urllib3Transport(self._base, timeouts=self._timeouts, proxy=self._proxy)

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection of a :class:`StreamTransport`: one request at a time."""

    def __init__(self, pool: StreamTransport) -> None:
        import httptools

        self._pool = pool
        self._parser = httptools.HttpResponseParser(self)
        self._parse_error = httptools.HttpParserError
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[ApiResponse] | None = None
        self.closed = False
        self.idle_since = 0.0
        self._headers = _Headers()
        self._body: list[bytes] = []
        # The answer being read has no length and no chunks: it ends when the server closes.
        self._until_close = False

    # -- asyncio.Protocol ----------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.waiter is None:
            # Nothing was asked on this connection: the server is confused, or closing it on us.
            self.close()
            return
        try:
            self._parser.feed_data(data)
        except self._parse_error as exc:
            self.fail(OutcomeUnknownError(f"{self._pool.base_url} answered with a malformed response: {exc}"))

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is None and self._until_close and self.waiter is not None:
            # An answer with neither a length nor chunks ends where the connection does: it is complete.
            self.on_message_complete()
            return
        reason = f": {exc}" if exc else ""
        self.fail(
            OutcomeUnknownError(f"{self._pool.base_url} closed the connection before answering{reason}")
        )

    # -- httptools callbacks -------------------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers = self._headers
        headers[key] = f"{headers[key]}, {text}" if key in headers else text

    def on_headers_complete(self) -> None:
        headers = self._headers
        self._until_close = (
            "content-length" not in headers
            and "chunked" not in headers.get("transfer-encoding", "").lower()
            and self._parser.get_status_code() not in (204, 304)
        )

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._until_close = False
        waiter, self.waiter = self.waiter, None
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        response = ApiResponse(self._parser.get_status_code(), self._headers, body)
        self._headers = _Headers()
        self._body = []
        if not self._parser.should_keep_alive():
            self.close()
        if waiter is not None and not waiter.done():
            waiter.set_result(response)

    # -- used by the pool ----------------------------------------------------------------------------------

    def fail(self, error: BaseException) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
        self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._pool._forget(self)
            if self.transport is not None:
                try:
                    self.transport.abort()
                except RuntimeError:
                    pass  # its event loop is closed: the socket is closed when the transport is collected


class StreamTransport:
    """Async HTTP/1.1 to one host over a pool of keep-alive connections (see the module's docstring).

    At most ``pool_size`` connections are open at once; a request beyond that waits for one to be free. A
    connection is used by one request at a time and kept for the next only after a complete answer; on a
    timeout, a cancellation or a malformed answer it is closed, as its state is then unknown. One left unused
    for more than ``keepalive`` seconds is closed instead of reused: a server, or a NAT on the way, may have
    dropped it without a word, and a request on it would only find out at the read timeout. HTTPS verifies
    the server's certificate and name (``ssl.create_default_context()`` unless ``ssl_context`` is given).
    Proxies are not supported: :func:`default_async_transport` takes aiohttp when one is configured.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_API_BASE,
        *,
        timeouts: Timeouts = Timeouts(),
        pool_size: int = 100,
        ssl_context: ssl.SSLContext | None = None,
        keepalive: float = 15.0,
    ) -> None:
        if pool_size < 1:
            raise ConfigurationError(f"pool_size must be at least 1, not {pool_size}")
        self._base = normalize_base_url(base_url)
        parts = urlsplit(self._base)
        if parts.query or parts.fragment:
            raise ConfigurationError(f"API base URL {base_url!r} must not have a query or fragment")
        self._prefix = parts.path  # a base behind a path (a gateway's /line, say) prefixes every request
        self._tls = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port or (443 if self._tls else 80)
        default_port = (self._tls and self._port == 443) or (not self._tls and self._port == 80)
        host = f"[{self._host}]" if ":" in self._host else self._host
        self._host_header = host if default_port else f"{host}:{self._port}"
        self._ssl_context = ssl_context
        self._timeouts = timeouts
        self._pool_size = pool_size
        self._keepalive = keepalive
        self._idle: list[_Connection] = []
        self._open: set[_Connection] = set()
        self._waiting: collections.deque[asyncio.Future[_Connection | None]] = collections.deque()
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._head = f"HTTP/1.1\r\nHost: {self._host_header}\r\nUser-Agent: {USER_AGENT}\r\n"

    @property
    def base_url(self) -> str:
        return self._base

    async def send(self, request: ApiRequest, token: str | None) -> ApiResponse:
        head = self._request_head(request, token)
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._adopt(loop)
        while True:
            connection = self._idle.pop() if self._idle else await self._connection()
            if connection.closed:  # closed by the server while it waited to be used
                continue
            if connection.idle_since and loop.time() - connection.idle_since > self._keepalive:
                connection.close()
                continue
            break
        waiter: asyncio.Future[ApiResponse] = loop.create_future()
        connection.waiter = waiter
        timer = loop.call_later(self._timeouts.read, self._time_out, connection, waiter, request)
        try:
            assert connection.transport is not None
            body = request.body
            connection.transport.write(head + body if body else head)
            response = await waiter
        except BaseException:
            connection.close()  # cancelled or failed mid-request: what the connection holds is unknown
            raise
        finally:
            timer.cancel()
        if not connection.closed:
            self._give_back(connection)
        return response

    def _request_head(self, request: ApiRequest, token: str | None) -> bytes:
        lines = [request.method, " ", self._prefix, request.path, " ", self._head]
        if token is not None:
            if "\n" in token or "\r" in token:
                # A token pasted with its line break would split the request in two.
                raise ConfigurationError("the channel access token holds a line break; check how it is set")
            lines += ("Authorization: Bearer ", token, "\r\n")
        if request.content_type is not None:
            lines += ("Content-Type: ", request.content_type, "\r\n")
        if request.retry_key is not None:
            lines += ("X-Line-Retry-Key: ", request.retry_key, "\r\n")
        for name, value in request.headers:
            if "\n" in name + value or "\r" in name + value:
                raise ConfigurationError(f"the header {name!r} holds a line break")
            lines += (name, ": ", value, "\r\n")
        if request.body is not None or request.method in ("POST", "PUT", "PATCH"):
            lines += ("Content-Length: ", str(len(request.body or b"")), "\r\n")
        lines.append("\r\n")
        try:
            return "".join(lines).encode("latin-1")
        except UnicodeEncodeError:
            raise ConfigurationError(
                "a header holds characters HTTP headers cannot carry (only Latin-1); check the token"
            ) from None

    def _time_out(
        self, connection: _Connection, waiter: asyncio.Future[ApiResponse], request: ApiRequest
    ) -> None:
        if connection.waiter is waiter:
            connection.fail(
                OutcomeUnknownError(
                    f"no complete answer from {self._base}{request.path.split('?', 1)[0]} "
                    f"within {self._timeouts.read:g} s"
                )
            )

    async def _connection(self) -> _Connection:
        """A new connection, or an idle one handed over while waiting for a free slot."""
        if self._closed:
            raise ConnectError(f"the transport to {self._base} is closed")
        while len(self._open) >= self._pool_size:
            waiter: asyncio.Future[_Connection | None] = asyncio.get_running_loop().create_future()
            self._waiting.append(waiter)
            try:
                handed = await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                    late = waiter.result()
                    if late is not None:
                        self._give_back(late)  # handed over just as this task was cancelled
                    else:
                        self._release_slot()
                raise
            if handed is not None:
                return handed
            # None: a connection closed, so a slot is free; loop to take it (or wait again if taken).
        connection = _Connection(self)
        self._open.add(connection)  # the slot is taken while connecting
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._timeouts.connect):
                await loop.create_connection(
                    lambda: connection,
                    self._host,
                    self._port,
                    ssl=self._ssl() if self._tls else None,
                    server_hostname=self._host if self._tls else None,
                )
        except (OSError, TimeoutError) as exc:
            connection.closed = True
            self._forget(connection)
            reason = "timed out" if isinstance(exc, TimeoutError) else str(exc) or type(exc).__name__
            raise ConnectError(f"could not connect to {self._base}: {reason}") from exc
        except BaseException:
            connection.close()
            raise
        return connection

    def _adopt(self, loop: asyncio.AbstractEventLoop) -> None:
        """First use, or use from another event loop (``asyncio.run`` twice with one client): connections of
        the old loop cannot serve this one, so they are dropped."""
        old = list(self._open)
        self._open.clear()
        self._idle.clear()
        self._waiting.clear()
        self._loop = loop
        for connection in old:
            connection.close()

    def _ssl(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = ssl.create_default_context()
        return self._ssl_context

    def _give_back(self, connection: _Connection) -> None:
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                connection.idle_since = 0.0  # straight from one request to the next: not idle
                waiter.set_result(connection)
                return
        connection.idle_since = asyncio.get_running_loop().time()
        self._idle.append(connection)

    def _release_slot(self) -> None:
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _forget(self, connection: _Connection) -> None:
        """A connection is gone: its slot is free for a task waiting for one."""
        if connection in self._open:
            self._open.discard(connection)
            if connection in self._idle:
                self._idle.remove(connection)
            self._release_slot()

    def sync_counterpart(self) -> Urllib3Transport:
        """A sync transport to the same place (the token manager refreshes from a worker thread)."""
        return Urllib3Transport(self._base, timeouts=self._timeouts, proxy=None)

    async def aclose(self) -> None:
        self._closed = True
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._adopt(loop)  # connections of another (closed) loop are dropped, not touched from here
        for connection in list(self._open):
            connection.close()
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_exception(ConnectError(f"the transport to {self._base} is closed"))


def default_async_transport(
    base_url: str, *, timeouts: Timeouts = Timeouts(), pool_size: int = 100
) -> AsyncTransport:
    """:class:`StreamTransport`, or :class:`AiohttpTransport` when the environment names a proxy for
    ``base_url`` (HTTPS_PROXY and the like, read once here)."""
    base = normalize_base_url(base_url)
    if proxy_for(base):
        return AiohttpTransport(base, timeouts=timeouts, pool_size=pool_size)
    return StreamTransport(base, timeouts=timeouts, pool_size=pool_size)


class Urllib3Transport:
    """Sync HTTP via one thread-safe urllib3 connection pool."""

    def __init__(
        self,
        base_url: str = DEFAULT_API_BASE,
        *,
        timeouts: Timeouts = Timeouts(),
        pool_size: int = 10,
        proxy: str | bool | None = True,
    ) -> None:
        import urllib3

        self._base = normalize_base_url(base_url)
        proxy_url = proxy_for(self._base) if proxy is True else (proxy or None)
        self._timeout = urllib3.Timeout(connect=timeouts.connect, read=timeouts.read)
        manager: urllib3.PoolManager = (
            urllib3.ProxyManager(proxy_url, maxsize=pool_size, block=False)
            if proxy_url
            else urllib3.PoolManager(maxsize=pool_size, block=False)
        )
        self._manager = manager
        self._pool = manager.connection_from_url(self._base)

    @property
    def base_url(self) -> str:
        return self._base

    def send(self, request: ApiRequest, token: str | None) -> ApiResponse:
        import urllib3
        from urllib3 import exceptions as u3

        try:
            response = self._pool.urlopen(
                request.method,
                request.path,
                body=request.body,
                headers=request_headers(request, token),
                retries=False,
                redirect=False,
                timeout=self._timeout,
                preload_content=True,
                assert_same_host=False,
            )
        except (u3.NewConnectionError, u3.ConnectTimeoutError, u3.NameResolutionError) as exc:
            raise ConnectError(f"could not connect to {self._base}: {exc}") from exc
        except urllib3.exceptions.HTTPError as exc:
            raise OutcomeUnknownError(
                f"no complete answer from {self._base}{request.path.split('?', 1)[0]}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        return ApiResponse(response.status, response.headers, response.data)

    def close(self) -> None:
        self._manager.clear()


ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]


class _Headers(dict[str, str]):
    """Response headers with case-insensitive lookups (the names are stored lower-case)."""

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())


class ASGITransport:
    """Calls an ASGI app (such as the emulator) in-process: no sockets, same bytes.

    An app that starts a response and returns without finishing it (the emulator's "accept then drop"
    fault) raises :class:`OutcomeUnknownError`, as a dropped connection would.
    """

    def __init__(self, app: Any, base_url: str = "http://emulator.invalid") -> None:
        self._app: ASGIApp = app
        self._base = normalize_base_url(base_url)
        parts = urlsplit(self._base)
        self._scheme = parts.scheme
        self._host = parts.hostname or "emulator.invalid"
        self._port = parts.port or (443 if parts.scheme == "https" else 80)

    async def send(self, request: ApiRequest, token: str | None) -> ApiResponse:
        path, _, query = request.path.partition("?")
        headers = [(k.lower().encode(), v.encode()) for k, v in request_headers(request, token).items()]
        headers.append((b"host", self._host.encode()))
        if request.body is not None:
            headers.append((b"content-length", str(len(request.body)).encode()))
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": request.method,
            "scheme": self._scheme,
            "path": path,
            "raw_path": path.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 50000),
            "server": (self._host, self._port),
        }
        body_sent = False
        disconnect = asyncio.Event()

        async def receive() -> dict[str, Any]:
            nonlocal body_sent
            if not body_sent:
                body_sent = True
                return {"type": "http.request", "body": request.body or b"", "more_body": False}
            await disconnect.wait()
            return {"type": "http.disconnect"}

        status = 0
        response_headers = _Headers()
        chunks: list[bytes] = []
        complete = False

        async def send(message: Mapping[str, Any]) -> None:
            nonlocal status, complete
            if message["type"] == "http.response.start":
                status = int(message["status"])
                for name, value in message.get("headers", ()):
                    response_headers[name.decode("latin-1").lower()] = value.decode("latin-1")
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    complete = True

        try:
            await self._app(scope, receive, send)
        finally:
            disconnect.set()
        if not complete:
            raise OutcomeUnknownError(
                f"the app started no complete answer to {request.method} {path} (connection dropped)"
            )
        return ApiResponse(status, response_headers, b"".join(chunks))

    @property
    def app(self) -> Any:
        return self._app

    def sync_counterpart(self) -> SyncASGITransport:
        return SyncASGITransport(self._app, self._base)

    async def aclose(self) -> None:
        return None


class SyncASGITransport:
    """:class:`ASGITransport` for sync clients: the app runs on an event loop in a background thread."""

    def __init__(self, app: Any, base_url: str = "http://emulator.invalid") -> None:
        self._inner = ASGITransport(app, base_url)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="linepush-asgi", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def send(self, request: ApiRequest, token: str | None) -> ApiResponse:
        loop = self._ensure_loop()
        future: Future[ApiResponse] = asyncio.run_coroutine_threadsafe(self._inner.send(request, token), loop)
        return future.result()

    def close(self) -> None:
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5)
            loop.close()
