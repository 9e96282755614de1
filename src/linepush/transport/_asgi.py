"""In-process transports: an ASGI app (such as the emulator) called without sockets, for tests and demos."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from concurrent.futures import Future
from typing import Any

from linepush.api._base import ApiRequest, ApiResponse
from linepush.errors import OutcomeUnknownError
from linepush.transport._base import normalize_base_url, parse_base_url, request_headers

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
        parts = parse_base_url(self._base)
        self._prefix = parts.path.rstrip("/")  # the app is mounted there: the ASGI root_path
        self._scheme = parts.scheme
        self._host = parts.hostname or "emulator.invalid"
        self._port = parts.port or (443 if parts.scheme == "https" else 80)

    async def send(
        self,
        request: ApiRequest,
        token: str | None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> ApiResponse:
        if timeout is not None:
            try:
                async with asyncio.timeout(timeout):
                    return await self.send(request, token)
            except TimeoutError:
                raise OutcomeUnknownError(
                    f"no complete answer to {request.method} {request.path.split('?', 1)[0]} "
                    f"within {timeout:g} s"
                ) from None
        path, _, query = request.path.partition("?")
        path = self._prefix + path
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
            "root_path": self._prefix,
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

    def send(self, request: ApiRequest, token: str | None, *, timeout: float | None = None) -> ApiResponse:
        loop = self._ensure_loop()
        future: Future[ApiResponse] = asyncio.run_coroutine_threadsafe(
            self._inner.send(request, token, timeout=timeout), loop
        )
        return future.result()

    def close(self) -> None:
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5)
            loop.close()
