"""Adapters of candidate libraries that linepush does not ship, so that the conformance suite can judge them
too: run ``LINEPUSH_TRANSPORT_CANDIDATES=1 pytest tests/transport`` with the ``bench`` extra installed."""

from __future__ import annotations

import datetime
from typing import Any

from linepush.api._base import ApiRequest, ApiResponse
from linepush.errors import CertificateError
from linepush.transport._base import SocketTransport, body_too_large, never_sent, no_answer, request_headers


class PyreqwestTransport(SocketTransport):
    """Async HTTP via pyreqwest (Rust's reqwest and hyper), with the seam's error classes."""

    default_pool_size = 100

    def _setup(self) -> None:
        from pyreqwest.client import ClientBuilder
        from pyreqwest.exceptions import ConnectError, ConnectTimeoutError, PyreqwestError
        from pyreqwest.proxy import ProxyBuilder

        builder = (
            ClientBuilder()
            .max_connections(self._pool_size)
            .connect_timeout(datetime.timedelta(seconds=self._timeouts.connect))
            .timeout(datetime.timedelta(seconds=self._timeouts.connect + self._timeouts.read))
            .follow_redirects(False)
            .http1_only()
        )
        builder = builder.proxy(ProxyBuilder.all(self._proxy)) if self._proxy else builder.no_proxy()
        if self._ssl_context is not None:
            for der in self._ssl_context.get_ca_certs(binary_form=True):
                builder = builder.add_root_certificate_der(der)
        self._client = builder.build()
        self._never_sent: tuple[type[BaseException], ...] = (ConnectError, ConnectTimeoutError)
        self._no_answer: tuple[type[BaseException], ...] = (PyreqwestError,)

    async def send(
        self,
        request: ApiRequest,
        token: str | None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> ApiResponse:
        builder = self._client.request(request.method, self._base + request.path).headers(
            request_headers(request, token)
        )
        if request.body is not None:
            builder = builder.body_bytes(request.body)
        if timeout is not None:
            builder = builder.timeout(datetime.timedelta(seconds=timeout))
        try:
            response: Any = await builder.build().send()
            length = response.headers.get("content-length")
            if length is not None and int(length) > self._max_body:
                raise no_answer(self._base, request, body_too_large(self._max_body))
            body = bytes(await response.bytes())
        except self._never_sent as exc:
            if "certificate" in str(exc).lower():
                raise CertificateError(f"the TLS certificate of {self._base} was refused ({exc})") from exc
            raise never_sent(self._base, request, exc) from exc
        except self._no_answer as exc:
            raise no_answer(self._base, request, exc) from exc
        if len(body) > self._max_body:
            raise no_answer(self._base, request, body_too_large(self._max_body) + " (read whole first)")
        return ApiResponse(response.status, response.headers, body)

    async def aclose(self) -> None:
        await self._client.close()
