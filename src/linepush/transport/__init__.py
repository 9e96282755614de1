"""The only place that sends bytes: thin adapters over well-kept HTTP libraries, behind one seam.

A transport takes an :class:`~linepush.api._base.ApiRequest` and a bearer token and returns an
:class:`~linepush.api._base.ApiResponse`, or raises :class:`~linepush.errors.ConnectError` (never sent;
:class:`~linepush.errors.CertificateError` when the server's certificate was refused) or
:class:`~linepush.errors.OutcomeUnknownError` (sent, no complete answer). It never retries and never looks at
the status code: the client's call flow does that, once, for every transport. linepush has no HTTP client of
its own: owning one means owning its bugs, and every answer must reach the request it belongs to.

- :class:`AiohttpTransport` (async, the default): aiohttp.
- :class:`Urllib3Transport` (sync): urllib3, with a guard that skips informational (1xx) answers.
- :class:`ASGITransport` and :class:`SyncASGITransport` call an ASGI app in-process (the emulator in tests).

All of them pass one conformance suite (``tests/transport/``) against scripted loopback servers.

Why aiohttp: measured side by side by ``make bench`` (one run, nginx serving a fixed push answer on loopback,
2-core machine; client CPU per push and push/s at concurrency 64, p99 at 16 / 64 / 256):

MEASUREMENTS
"""

from __future__ import annotations

from linepush.transport._aiohttp import AiohttpTransport
from linepush.transport._asgi import ASGITransport, SyncASGITransport
from linepush.transport._base import (
    DEFAULT_API_BASE,
    DEFAULT_MAX_BODY,
    AsyncTransport,
    SyncTransport,
    Timeouts,
    normalize_base_url,
)
from linepush.transport._urllib3 import Urllib3Transport

__all__ = [
    "DEFAULT_API_BASE",
    "DEFAULT_MAX_BODY",
    "ASGITransport",
    "AiohttpTransport",
    "AsyncTransport",
    "SyncASGITransport",
    "SyncTransport",
    "Timeouts",
    "Urllib3Transport",
    "default_async_transport",
]


def default_async_transport(
    base_url: str, *, timeouts: Timeouts = Timeouts(), pool_size: int = 100
) -> AsyncTransport:
    """The transport an :class:`~linepush.client.AsyncLineClient` uses when given none: aiohttp, with the
    proxy from the environment (HTTPS_PROXY, NO_PROXY), read once here."""
    return AiohttpTransport(normalize_base_url(base_url), timeouts=timeouts, pool_size=pool_size)
