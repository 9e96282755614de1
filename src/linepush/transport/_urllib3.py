"""The sync transport: urllib3, with one guard of our own.

urllib3 (2.8, through ``http.client``) skips a ``100 Continue`` but takes any other informational answer, a
``103 Early Hints`` say, as the final one: the request got a body-less 103, the real answer stayed unread on
the connection, and the pool handed it to the next request. Our connections read answers with
:class:`_FinalAnswer`, which skips every informational answer (except ``101``, which linepush never asks for)
the way ``http.client`` skips a 100, so each request reads its own final answer.
"""

from __future__ import annotations

import functools
import http.client
from typing import Any

from linepush.api._base import ApiRequest, ApiResponse
from linepush.transport._base import (
    SocketTransport,
    body_too_large,
    never_sent,
    no_answer,
    path_prefix,
    request_headers,
)


class _FinalAnswer(http.client.HTTPResponse):
    """An answer read past any informational (1xx) answers before it."""

    def _read_status(self) -> tuple[str, int, str]:
        while True:
            version, status, reason = super()._read_status()  # type: ignore[misc]
            if not (100 <= status < 200) or status == 101:
                return version, status, reason
            http.client._read_headers(self.fp)  # type: ignore[attr-defined]


@functools.cache
def _connection_classes() -> tuple[type[Any], type[Any]]:
    """urllib3's connection classes, reading answers with :class:`_FinalAnswer` (made on first use, so that
    importing linepush does not import urllib3)."""
    from urllib3.connection import HTTPConnection, HTTPSConnection

    class FinalHTTPConnection(HTTPConnection):
        response_class = _FinalAnswer

    class FinalHTTPSConnection(HTTPSConnection):
        response_class = _FinalAnswer

    return FinalHTTPConnection, FinalHTTPSConnection


@functools.cache
def _exception_classes() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    from urllib3 import exceptions as u3

    # Raised before a byte of the request left: no connection, no TLS, no tunnel through the proxy.
    never = (
        u3.NewConnectionError,
        u3.ConnectTimeoutError,
        u3.NameResolutionError,
        u3.SSLError,
        u3.ProxyError,
    )
    return never, (u3.HTTPError, http.client.HTTPException, OSError)


class Urllib3Transport(SocketTransport):
    """Sync HTTP via one thread-safe urllib3 connection pool: ``pool_size`` connections are kept for reuse
    (more are opened while more threads send at once). The other settings: :class:`SocketTransport`."""

    def _setup(self) -> None:
        import urllib3

        self._prefix = path_prefix(self._base)
        self._timeout = urllib3.Timeout(connect=self._timeouts.connect, read=self._timeouts.read)
        options: dict[str, Any] = {"maxsize": self._pool_size, "block": False}
        if self._ssl_context is not None:
            options["ssl_context"] = self._ssl_context
        manager: urllib3.PoolManager = (
            urllib3.ProxyManager(self._proxy, **options) if self._proxy else urllib3.PoolManager(**options)
        )
        self._manager = manager
        self._pool = manager.connection_from_url(self._base)
        plain, secure = _connection_classes()
        self._pool.ConnectionCls = secure if self._base.startswith("https:") else plain
        self._never_sent, self._no_answer = _exception_classes()

    def send(self, request: ApiRequest, token: str | None, *, timeout: float | None = None) -> ApiResponse:
        headers = request_headers(request, token)
        if timeout is None:
            bound = self._timeout
        else:
            import urllib3

            bound = urllib3.Timeout(
                total=timeout,
                connect=min(timeout, self._timeouts.connect),
                read=min(timeout, self._timeouts.read),
            )
        try:
            response = self._pool.urlopen(
                request.method,
                self._prefix + request.path,
                body=request.body,
                headers=headers,
                retries=False,
                redirect=False,
                timeout=bound,
                preload_content=False,
                release_conn=False,
                assert_same_host=False,
            )
        except self._never_sent as exc:
            raise never_sent(self._base, request, exc) from exc
        except self._no_answer as exc:
            raise no_answer(self._base, request, exc) from exc
        try:
            body = self._read(response, request)
        except BaseException:
            response.close()  # what is left on the connection is unknown: it is not reused
            response.release_conn()
            raise
        response.release_conn()
        return ApiResponse(response.status, response.headers, body)

    def _read(self, response: Any, request: ApiRequest) -> bytes:
        if response.status < 200:  # 101: not an answer to anything linepush asks
            raise no_answer(self._base, request, f"an informational answer ({response.status}) came last")
        limit = self._max_body
        length = response.length_remaining
        try:
            if length is not None:
                if length > limit:
                    raise no_answer(self._base, request, body_too_large(limit))
                return bytes(response.read())
            body = bytes(response.read(limit + 1))
        except self._no_answer as exc:
            raise no_answer(self._base, request, exc) from exc
        if len(body) > limit:
            raise no_answer(self._base, request, body_too_large(limit))
        return body

    def close(self) -> None:
        self._manager.clear()
