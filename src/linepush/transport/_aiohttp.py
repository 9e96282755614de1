"""The async transport: aiohttp, the default (see :mod:`linepush.transport` for why).

What a push costs beyond raw aiohttp (one ``ClientSession``, ``post`` with the same headers and JSON body,
the body read), in instructions per push counted by ``valgrind --tool=callgrind``: deterministic, unlike CPU
time on a shared machine (the difference of runs of 500 and 2,000 pushes at concurrency 64 to the nginx stub
of ``make bench``; runs differ by about 5,000). Raw aiohttp: 432,000-439,000.

==========================================================  ============  ============
                                                            before        now
==========================================================  ============  ============
``skip_auto_headers`` (now :func:`_request_class`)          +5,600        0
each header passed per request (User-Agent: now a default)  +3,200 each   +3,200 each
AsyncLineClient.push, all of it                             512-517,000   492-497,000
==========================================================  ============  ============

Of what is left (about 60,000): building the push (validation, a retry key from ``os.urandom``, the JSON
body) about 25,000, its X-Line-Retry-Key header 3,200, reading the answer about 8,000, the call flow and
this transport's own step the rest. The garbage collector is no part of it: at steady state a push frees
what it allocates (about one gen-0 collection per 1,000 pushes, one gen-1 per 10,000).

``make bench``'s push rows (nginx, c=64, medians of 3 rounds, 2 cores under other load; ratios within one
run): before, 0.70x raw aiohttp and 5.2x the official async SDK; now, in two runs, 0.92x and 1.18x raw
aiohttp (CPU per push 0.89x and 1.01x raw's) and 6.3x and 5.0x the official async SDK. By instructions the
client is at 0.87-0.89x raw aiohttp (0.85x before).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from typing import Any

from linepush.api._base import ApiRequest, ApiResponse
from linepush.transport._base import (
    USER_AGENT,
    SocketTransport,
    body_too_large,
    never_sent,
    no_answer,
    request_headers,
)


@functools.cache
def _request_class() -> Any:
    """aiohttp's request with linepush's headers in the place of aiohttp's defaults: its ``User-Agent``, and
    ``Accept-Encoding: identity``, as LINE's answers are small JSON, not worth compressing (aiohttp would ask
    for gzip and deflate; urllib3 asks for identity too). aiohttp adds these defaults itself to each request
    that lacks them, in one step; the same headers passed with each request, or as the session's, cost a
    loop in Python each on every request (and ``skip_auto_headers`` builds and merges a set of them)."""
    import aiohttp
    from aiohttp import hdrs

    class LineRequest(aiohttp.ClientRequest):
        # aiohttp's own attribute, overridden as aiohttp declares it (read only, through .items())
        DEFAULT_HEADERS = {  # noqa: RUF012
            hdrs.ACCEPT: "*/*",
            hdrs.ACCEPT_ENCODING: "identity",
            hdrs.USER_AGENT: USER_AGENT,
        }

    return LineRequest


class AiohttpTransport(SocketTransport):
    """Async HTTP via one pooled ``aiohttp.ClientSession``, opened on first use; at most ``pool_size``
    connections are open at once (the other settings: :class:`SocketTransport`). aiohttp's own ``trust_env``
    is off: it would read the proxy settings (and ``.netrc``) on every request, in two thread hand-offs."""

    default_pool_size = 100

    def _setup(self) -> None:
        self._session: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # aiohttp's exception classes, taken when the session opens (an import statement in send() would run
        # on every request; an except clause is only evaluated when something was raised).
        self._never_sent: tuple[type[BaseException], ...] = ()
        self._no_answer: tuple[type[BaseException], ...] = ()
        self._timeout_class: Any = None
        self._default_timeout: Any = None

    def _open(self) -> Any:
        import aiohttp

        loop = asyncio.get_running_loop()
        if self._session is not None:
            # Used from another event loop (``asyncio.run`` twice with one client): the old loop's
            # connections cannot serve this one. They are dropped, not touched from here.
            old, self._session = self._session, None
            old.detach()
        self._loop = loop
        self._never_sent = (
            aiohttp.ClientConnectorError,  # refused, DNS, TLS handshake and certificate, proxy unreachable
            aiohttp.ConnectionTimeoutError,
            aiohttp.ClientHttpProxyError,  # the proxy refused the CONNECT
        )
        self._no_answer = (aiohttp.ClientError, TimeoutError)
        self._timeout_class = aiohttp.ClientTimeout
        # One deadline per request (connect + read), not a read timer re-armed on every chunk that arrives:
        # on the push path the re-arming alone showed up as a few percent of the CPU.
        self._default_timeout = aiohttp.ClientTimeout(
            total=self._timeouts.connect + self._timeouts.read, sock_connect=self._timeouts.connect
        )
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=self._pool_size,
                ttl_dns_cache=300,
                ssl=self._ssl_context if self._ssl_context is not None else True,
            ),
            timeout=self._default_timeout,
            trust_env=False,
            request_class=_request_class(),
            auto_decompress=True,
        )
        return self._session

    async def send(
        self,
        request: ApiRequest,
        token: str | None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> ApiResponse:
        headers = request_headers(request, token, user_agent=False)
        session = self._session
        if session is None or self._loop is not asyncio.get_running_loop():
            session = self._open()
        url = self._base + request.path
        try:
            # A request with no proxy and the usual timeout (the session's) passes no more than it must:
            # every keyword argument is one more step on aiohttp's path.
            if timeout is None and self._proxy is None:
                opened = session.request(
                    request.method, url, data=request.body, headers=headers, allow_redirects=False
                )
            else:
                opened = session.request(
                    request.method,
                    url,
                    data=request.body,
                    headers=headers,
                    proxy=self._proxy,
                    allow_redirects=False,
                    timeout=self._default_timeout
                    if timeout is None
                    else self._timeout_class(
                        total=timeout, sock_connect=min(timeout, self._timeouts.connect)
                    ),
                )
            async with opened as response:
                length = response.content_length
                if length is not None and length <= self._max_body:
                    body = await response.read()
                else:
                    body = await self._read_bounded(response, request)
                return ApiResponse(response.status, response.headers, body)
        except self._never_sent as exc:
            raise never_sent(self._base, request, exc) from exc
        except self._no_answer as exc:
            raise no_answer(self._base, request, exc) from exc

    async def _read_bounded(self, response: Any, request: ApiRequest) -> bytes:
        """The body of an answer without a length (chunked, or ended by the close), up to ``max_body``."""
        if response.content_length is not None:
            response.close()
            raise no_answer(self._base, request, body_too_large(self._max_body))
        body = bytearray()
        async for chunk in response.content.iter_any():
            body += chunk
            if len(body) > self._max_body:
                response.close()  # the rest is never read; the connection goes with it
                raise no_answer(self._base, request, body_too_large(self._max_body))
        return bytes(body)

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            if self._loop is asyncio.get_running_loop():
                await session.close()
            else:
                with contextlib.suppress(Exception):
                    session.detach()
