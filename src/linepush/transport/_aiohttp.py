"""The async transport: aiohttp, the default (see :mod:`linepush.transport` for why).

What a push costs beyond raw aiohttp (one ``ClientSession``, ``post`` with the same headers and JSON body,
the body read), in instructions per push counted by ``valgrind --tool=callgrind``: deterministic, unlike CPU
time on a shared machine (the difference of runs of 500 and 2,000 pushes at concurrency 64 to the nginx stub
of ``make bench``; runs differ by about 5,000, by 10,000 where a timer per request is involved). Raw
aiohttp: 440,000-443,000.

==========================================================  ============  ============
                                                            before        now
==========================================================  ============  ============
``skip_auto_headers`` (now :func:`_request_class`)          +5,600        0
each header passed per request (User-Agent: now a default)  +3,200 each   +3,200 each
aiohttp's ``total`` timeout (now :class:`_Deadlines`)       +23,000       +3,000
AsyncLineClient.push, all of it                             504-514,000   477,000
==========================================================  ============  ============

The deadlines were counted with their step scaled to valgrind's slow-down (0.5 s for 10 ms), so that as many
requests share a timer as do at full speed. Of what is left (about 35,000), building the push (validation,
a retry key from ``os.urandom``, the JSON body) is the largest part; its X-Line-Retry-Key header, reading the
answer, the call flow and this transport's own step are the rest. The garbage collector is no part of it:
at steady state a push frees what it allocates (about one gen-0 collection per 1,000 pushes, one gen-1 per
10,000).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
from typing import Any, Final

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


#: Seconds between the times a deadline can end at (see :class:`_Deadlines`).
DEADLINE_STEP: Final = 0.01


class _Deadlines:
    """The deadlines of the requests in flight on one event loop, on shared timers.

    aiohttp's ``total`` timeout gives each request a timer of its own: a handle made, pushed onto the loop's
    heap, cancelled when the answer is in, and popped later, with comparisons in Python at each step; about
    23,000 instructions a push (5% of one). Here a deadline is rounded up to the next ``DEADLINE_STEP``
    (10 ms), and the requests whose deadlines round alike share one timer, which is never cancelled: when it
    fires, each of them still in flight has its task cancelled, as aiohttp's own timeout does, and the
    request reads as timed out. A deadline can so end up to 10 ms late, never early."""

    __slots__ = ("_due", "_loop", "expired")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        # Per step of time: the tasks whose deadline it is, each with its cancel count when it started.
        self._due: dict[int, dict[asyncio.Task[Any], int]] = {}
        #: Tasks a deadline cancelled, with their cancel count from before.
        self.expired: dict[asyncio.Task[Any], int] = {}

    def watch(self, task: asyncio.Task[Any], seconds: float) -> dict[asyncio.Task[Any], int]:
        """Cancel ``task`` in ``seconds`` unless it leaves the dict returned (``pop(task)``) before."""
        step = math.ceil((self._loop.time() + seconds) / DEADLINE_STEP)
        due = self._due.get(step)
        if due is None:
            due = self._due[step] = {}
            self._loop.call_at(step * DEADLINE_STEP, self._expire, step)
        due[task] = task.cancelling()
        return due

    def _expire(self, step: int) -> None:
        for task, cancelling in self._due.pop(step).items():
            self.expired[task] = cancelling
            task.cancel()


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
        self._deadlines: _Deadlines | None = None
        #: The longest a request may take: its connection, then its answer.
        self._total = self._timeouts.connect + self._timeouts.read

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
        # on the push path the re-arming alone showed up as a few percent of the CPU. The deadline is
        # kept here (_Deadlines), not by aiohttp; aiohttp bounds only each new connection's set-up.
        self._default_timeout = aiohttp.ClientTimeout(total=None, sock_connect=self._timeouts.connect)
        self._deadlines = _Deadlines(loop)
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
        task = asyncio.current_task()
        deadlines = self._deadlines
        if task is None or deadlines is None:
            raise RuntimeError("an AiohttpTransport sends from an asyncio task")
        due = deadlines.watch(task, self._total if timeout is None else timeout)
        try:
            # A request with no proxy and the usual connection timeout (the session's) passes no more than it
            # must: every keyword argument is one more step on aiohttp's path.
            if self._proxy is None and (timeout is None or timeout >= self._timeouts.connect):
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
                    if timeout is None or timeout >= self._timeouts.connect
                    else self._timeout_class(total=None, sock_connect=timeout),
                )
            async with opened as response:
                length = response.content_length
                if length is not None and length <= self._max_body:
                    body = await response.read()
                else:
                    body = await self._read_bounded(response, request)
                return ApiResponse(response.status, response.headers, body)
        except asyncio.CancelledError:
            cancelling = deadlines.expired.pop(task, None)
            # Cancelled by its deadline alone (not also by its caller): it timed out.
            if cancelling is not None and task.uncancel() <= cancelling:
                raise no_answer(self._base, request, TimeoutError()) from None
            raise
        except self._never_sent as exc:
            raise never_sent(self._base, request, exc) from exc
        except self._no_answer as exc:
            raise no_answer(self._base, request, exc) from exc
        finally:
            due.pop(task, None)

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
