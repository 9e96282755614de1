"""The only place that sends bytes. One sync and one async sender behind one seam.

A transport takes an :class:`~linepush.api._base.ApiRequest` and a bearer token and returns an
:class:`~linepush.api._base.ApiResponse`, or raises :class:`~linepush.errors.ConnectError` (never sent) or
:class:`~linepush.errors.OutcomeUnknownError` (sent, no complete answer). It never retries and never
looks at the status code: the client's call flow does that, once, for both.

- :class:`AiohttpTransport` (async) and :class:`Urllib3Transport` (sync) talk HTTP to LINE or an emulator.
  aiohttp runs with ``trust_env`` off: proxy settings are read once, here, instead of on every request.
- :class:`ASGITransport` (async) and :class:`SyncASGITransport` call an ASGI app in-process, so tests run
  against the emulator without sockets.
"""

from __future__ import annotations

import asyncio
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
    "SyncASGITransport",
    "SyncTransport",
    "Timeouts",
    "Urllib3Transport",
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
