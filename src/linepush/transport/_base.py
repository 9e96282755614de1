"""The seam every transport fits, and what all of them share: the request's headers, the base URL, the proxy
read from the environment, and how a library's exception becomes one of ours."""

from __future__ import annotations

import math
import os
import socket
import ssl
import sys
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import SplitResult, urlsplit

from linepush._secret import masked_url
from linepush._version import __version__
from linepush.api._base import ApiRequest, ApiResponse
from linepush.errors import CertificateError, ConfigurationError, ConnectError, OutcomeUnknownError

DEFAULT_API_BASE = "https://api.line.me"
USER_AGENT = f"linepush/{__version__}"

#: The largest answer body read before the answer is refused. LINE's answers to the calls linepush makes are
#: a few kB; a server sending more is not LINE, and reading it whole could exhaust memory.
DEFAULT_MAX_BODY = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds to wait for a connection, and for the answer once the request is sent."""

    connect: float = 5.0
    read: float = 30.0

    def __post_init__(self) -> None:
        for name in ("connect", "read"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not (0 < value < math.inf):
                raise ValueError(f"the {name} timeout must be a number of seconds above 0, not {value!r}")


class SyncTransport(Protocol):
    """Sends one request and returns its answer, or raises :class:`~linepush.errors.ConnectError` (never
    sent) or :class:`~linepush.errors.OutcomeUnknownError` (sent, no complete answer).

    ``timeout``, when given, bounds the whole attempt (connection included) below the transport's own
    timeouts: the client passes it only when the call's deadline is nearer than those."""

    def send(
        self,
        request: ApiRequest,
        token: str | None,
        *,
        timeout: float | None = None,
    ) -> ApiResponse: ...

    def close(self) -> None: ...


class AsyncTransport(Protocol):
    """The async :class:`SyncTransport`. ``timeout`` is a parameter rather than the caller's
    ``asyncio.timeout``: only the transport knows whether time ran out before the request was sent (never
    sent) or after (outcome unknown)."""

    async def send(
        self,
        request: ApiRequest,
        token: str | None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> ApiResponse: ...

    async def aclose(self) -> None: ...


class SocketTransport:
    """What the transports over sockets are given: where to send, how long to wait, how many connections to
    keep, the proxy (``True``: from the environment, ``HTTPS_PROXY`` and ``NO_PROXY``, read once here), the
    CAs to trust (``ssl_context``; else the system's, which honour ``SSL_CERT_FILE``) and the largest answer
    body to read (``max_body``; a larger one is refused unread, as :class:`OutcomeUnknownError`)."""

    default_pool_size = 10

    def __init__(
        self,
        base_url: str = DEFAULT_API_BASE,
        *,
        timeouts: Timeouts = Timeouts(),
        pool_size: int | None = None,
        proxy: str | bool | None = True,
        ssl_context: ssl.SSLContext | None = None,
        max_body: int = DEFAULT_MAX_BODY,
    ) -> None:
        self._base = normalize_base_url(base_url)
        self._timeouts = timeouts
        self._pool_size = self.default_pool_size if pool_size is None else pool_size
        if self._pool_size < 1:
            raise ConfigurationError(f"pool_size must be at least 1, not {pool_size}")
        self._proxy = proxy_for(self._base) if proxy is True else (proxy or None)
        self._ssl_context = ssl_context
        self._max_body = max_body
        self._setup()

    def _setup(self) -> None:
        """Make the library's client from the settings above."""

    @property
    def base_url(self) -> str:
        return self._base


def request_headers(request: ApiRequest, token: str | None, *, user_agent: bool = True) -> dict[str, str]:
    """The headers of ``request``; a line break in any of them is refused before anything is sent (a token
    pasted with its newline would otherwise split the request in two). ``user_agent=False`` leaves out the
    ``User-Agent``, for a transport whose library adds it to every request itself."""
    headers = {"User-Agent": USER_AGENT} if user_agent else {}
    if token is not None:
        if not token.isprintable():
            raise ConfigurationError(
                "the channel access token holds a line break or another control character; "
                "check how it is set"
            )
        headers["Authorization"] = "Bearer " + token
    if request.content_type is not None:
        headers["Content-Type"] = request.content_type
    if request.retry_key is not None:
        headers["X-Line-Retry-Key"] = request.retry_key
    for name, value in request.headers:
        if not (name + value).isprintable() or ":" in name:
            raise ConfigurationError(f"the header {name[:40]!r} holds a line break or a control character")
        headers[name] = value
    return headers


def parse_base_url(base_url: str) -> SplitResult:
    """``base_url`` split, or a :class:`ConfigurationError` that says what is wrong with it (and shows it
    without a password it may hold)."""
    try:
        parts = urlsplit(base_url)
        parts.port  # noqa: B018 - a port out of range or not a number raises here
    except ValueError as exc:
        raise ConfigurationError(f"API base URL {masked_url(base_url)!r} is malformed: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"API base URL {masked_url(base_url)!r} is not an http(s) URL; use e.g. https://api.line.me "
            "or http://127.0.0.1:8765 for the emulator"
        )
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigurationError(
            f"API base URL {masked_url(base_url)!r} must not have a query, a fragment or credentials"
        )
    return parts


def normalize_base_url(base_url: str) -> str:
    """``base_url`` checked, without a trailing slash. A path is kept: a base behind a gateway
    (``https://gateway/line``) prefixes every request with it."""
    parse_base_url(base_url)
    return base_url.rstrip("/")


def path_prefix(base_url: str) -> str:
    return parse_base_url(base_url).path.rstrip("/")


def proxy_for(base_url: str) -> str | None:
    """The proxy from the environment (HTTPS_PROXY, NO_PROXY, …) for ``base_url``, read once."""
    parts = parse_base_url(base_url)
    if not _may_have_proxy():
        return None
    import urllib.request  # here, not at the top: it costs a one-shot command about 15 ms of its start-up

    if urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return urllib.request.getproxies().get(parts.scheme)


def _may_have_proxy() -> bool:
    """False when the standard library would certainly find no proxy: outside macOS and Windows (where it
    also reads the system's settings) it reads only the environment's ``*_proxy`` variables, in any case."""
    if sys.platform in ("darwin", "win32"):
        return True
    return any(name[-6:].lower() == "_proxy" for name in os.environ)


# -- what a library's exception means ---------------------------------------------------------------------


def _causes(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo and len(seen) < 16:
        current = todo.pop()
        if any(current is s for s in seen):
            continue
        seen.append(current)
        todo += [a for a in current.args if isinstance(a, BaseException)]
        for linked in (current.__cause__, current.__context__, getattr(current, "reason", None)):
            if isinstance(linked, BaseException):
                todo.append(linked)
    return seen


def certificate_error(base: str, exc: BaseException) -> CertificateError | None:
    """A :class:`CertificateError` when ``exc`` comes from verifying the server's certificate, else None."""
    for cause in _causes(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            # aiohttp's certificate error is one too, without the ssl module's attributes
            reason = getattr(cause, "verify_message", None) or str(getattr(cause, "certificate_error", cause))
            return CertificateError(
                f"the TLS certificate of {base} was refused ({reason}); this is not retried: check the "
                "host name, the proxy, or the CA (ssl_context=, or SSL_CERT_FILE for a private CA)"
            )
    return None


def _reason(exc: BaseException | str, request: ApiRequest) -> str:
    """What went wrong, without the request's query string: on the token endpoints it holds a token, and a
    library may quote the URL it was given."""
    if isinstance(exc, str):
        text = exc
    elif str(exc):
        text = f"{type(exc).__name__}: {exc}"
    else:  # asyncio's TimeoutError, for one, says nothing of itself
        text = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
    _, _, query = request.path.partition("?")
    return text.replace(query, "…") if query else text


def never_sent(base: str, request: ApiRequest, exc: BaseException) -> ConnectError:
    """The error for a request that never left: a certificate refused, or no connection made."""
    refused = certificate_error(base, exc)
    if refused is not None:
        return refused
    cause = _os_error(exc)
    if isinstance(cause, socket.gaierror):
        # getaddrinfo's codes are not errnos (os.strerror(-2) is "Unknown error -2"); its own text says it.
        return ConnectError(f"could not connect to {base}: cannot resolve its host name ({cause.strerror})")
    if cause is not None and cause.errno:
        # The libraries word it differently ("Connect call failed", "Failed to establish a new connection");
        # the errno says it the same way for all of them.
        return ConnectError(f"could not connect to {base}: [Errno {cause.errno}] {os.strerror(cause.errno)}")
    return ConnectError(f"could not connect to {base}: {_reason(exc, request)}")


def _os_error(exc: BaseException) -> OSError | None:
    """The operating system's error behind a library's connection error, if it kept one."""
    seen: BaseException | None = exc
    for _ in range(6):
        if seen is None:
            return None
        # aiohttp's ClientConnectorError is an OSError itself, with the errno of the one it keeps; the kept
        # one tells more (a socket.gaierror, say).
        found = getattr(seen, "os_error", None)
        if isinstance(found, OSError):
            return found
        if isinstance(seen, OSError) and seen.errno:
            return seen
        seen = seen.__cause__ or seen.__context__ or getattr(seen, "reason", None)
        if not isinstance(seen, BaseException):
            return None
    return None


def no_answer(base: str, request: ApiRequest, exc: BaseException | str) -> OutcomeUnknownError:
    """The error for a request that was sent and got no complete answer."""
    path = request.path.split("?", 1)[0]
    return OutcomeUnknownError(f"no complete answer from {base}{path}: {_reason(exc, request)}")


def body_too_large(limit: int) -> str:
    return f"the answer's body is larger than {limit:,} bytes (the transport's max_body); it was not read"
