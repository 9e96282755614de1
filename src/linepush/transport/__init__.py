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

Why aiohttp. Measured side by side by ``make bench`` (one run, nginx serving a fixed push answer on
loopback, a 2-core machine shared with other work; medians of 3 interleaved rounds):

=========  =======  ============  ==========  ==========================  ==========  ==========
library    version  CPU µs/push   push/s      p99 ms at c=16 / 64 / 256   install MB  import ms
                    (c=64)        (c=64)                                  (with deps)
=========  =======  ============  ==========  ==========================  ==========  ==========
aiohttp    3.14.5   76            12,505      2.5 / 7.6 / 163             13.8        158
pyreqwest  0.15.1   47            18,148      4.1 / 12.0 / 35             10.2        4
curl_cffi  0.17.0   194           4,907       8.5 / 20.6 / 139            44.2        95
niquests   3.21.2   591           1,320       15.8 / 206 / 267            16.4        145
httpx      0.28.1   6,845         142         161 / 1,436 / 2,760         4.0         107
=========  =======  ============  ==========  ==========================  ==========  ==========

- aiohttp is already a dependency (nothing added to install), is kept by aio-libs with a long release
  history and a very wide user base, and passes the whole conformance suite. It is imported only when an
  async client first sends.
- pyreqwest is the fastest, but young (0.x) and, through the conformance suite (``tests/transport/
  candidates.py``), it cannot tell "never sent" from "sent, no answer": a request the server read and then
  dropped unanswered, and a timeout after the request went out, both come back as its ``ConnectError`` /
  ``ConnectTimeoutError``; and a cancelled request did not free its connection slot (with one connection,
  the next request timed out waiting for it). linepush's retry rules rest on exactly that distinction.
- curl_cffi costs 2.6x aiohttp's CPU per push and 44 MB; niquests 7.8x, and installing it replaced the
  ``urllib3`` package with urllib3-future (so it is measured in an environment of its own, not by
  ``make bench``); httpx is 90x.

The sync side stays on urllib3 (LineClient: 155 µs per push, as raw urllib3), with the 1xx guard in
:mod:`linepush.transport._urllib3`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from linepush.transport._base import (
    DEFAULT_API_BASE,
    DEFAULT_MAX_BODY,
    AsyncTransport,
    SyncTransport,
    Timeouts,
    normalize_base_url,
)
from linepush.transport._urllib3 import Urllib3Transport

if TYPE_CHECKING:
    from linepush.transport._aiohttp import AiohttpTransport
    from linepush.transport._asgi import ASGITransport, SyncASGITransport

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


#: The transports that need asyncio, imported when first named: a one-shot command on the sync client
#: starts without asyncio.
_ON_ASYNCIO = {
    "AiohttpTransport": "linepush.transport._aiohttp",
    "ASGITransport": "linepush.transport._asgi",
    "SyncASGITransport": "linepush.transport._asgi",
}


def __getattr__(name: str) -> Any:
    module = _ON_ASYNCIO.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


def default_async_transport(
    base_url: str, *, timeouts: Timeouts = Timeouts(), pool_size: int = 100
) -> AsyncTransport:
    """The transport an :class:`~linepush.client.AsyncLineClient` uses when given none: aiohttp, with the
    proxy from the environment (HTTPS_PROXY, NO_PROXY), read once here."""
    from linepush.transport._aiohttp import AiohttpTransport

    return AiohttpTransport(normalize_base_url(base_url), timeouts=timeouts, pool_size=pool_size)
