"""One call to LINE, written once for the sync and the async client.

:func:`call_flow` is a generator that holds all the logic of a call: take a token, wait for the rate limiter,
send, parse, retry with backoff, and on a 401 ask once for a fresh token. It does no I/O itself; it *yields*
what it needs done (:class:`Send`, :class:`Sleep`, :class:`GetToken`) and the client's driver, sync or async,
does it and sends the result back in. Only the two small drivers differ between the clients.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Generator
from typing import Any, Protocol, TypeVar, runtime_checkable

from linepush.api._base import ApiResponse, Operation
from linepush.errors import AuthenticationError, LineApiError, LinePushError
from linepush.ratelimit import RateLimiter
from linepush.retry import RetryPolicy

T = TypeVar("T")

__all__ = ["AsyncTokenProvider", "FirstAttempt", "GetToken", "Send", "Sleep", "TokenProvider", "call_flow"]


class Send:
    """Send ``request``; ``timeout``, when not None, is what is left of the call's deadline, nearer than the
    transport's own timeouts: the attempt must end by then (the driver passes it to the transport)."""

    __slots__ = ("request", "timeout", "token")

    def __init__(self, request: Any, token: str | None, timeout: float | None = None) -> None:
        self.request = request
        self.token = token
        self.timeout = timeout


class Sleep:
    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds


class GetToken:
    """Ask for a bearer token; ``invalid`` is a token LINE just refused (drop it and get another)."""

    __slots__ = ("invalid",)

    def __init__(self, invalid: str | None = None) -> None:
        self.invalid = invalid


Action = Send | Sleep | GetToken

#: The shortest bound put on an attempt (a transport refuses a timeout of zero).
MIN_ATTEMPT = 0.001

#: The ``GetToken`` of a first attempt (no token refused yet); one instance, as it carries nothing.
FIRST_TOKEN = GetToken()


class FirstAttempt:
    """A first attempt the driver already made on its fast path (token taken, slot waited for, request
    sent) and whose answer was not a plain success: ``outcome`` is the response, or the transport error. The
    flow carries on from there exactly as if it had made that attempt itself."""

    __slots__ = ("outcome", "start", "token")

    def __init__(self, token: str | None, outcome: ApiResponse | LinePushError, start: float) -> None:
        self.token = token
        self.outcome = outcome
        self.start = start


@runtime_checkable
class TokenProvider(Protocol):
    """Gives a valid channel access token to a sync client."""

    def get_token(self) -> str: ...

    def invalidate(self, token: str) -> None: ...


@runtime_checkable
class AsyncTokenProvider(Protocol):
    """Gives a valid channel access token to an async client.

    A provider may also have ``cached_token() -> str | None``: the token it holds now, if that needs no I/O
    (else None). The async client asks it first, which spares two coroutines per call when it answers.
    """

    async def aget_token(self) -> str: ...

    def invalidate(self, token: str) -> None: ...


class StaticToken:
    """A token that never changes: a long-lived token, or one the caller manages. It cannot be refreshed."""

    refreshable = False

    def __init__(self, token: str) -> None:
        self._token = token

    def get_token(self) -> str:
        return self._token

    def cached_token(self) -> str:
        return self._token

    async def aget_token(self) -> str:
        return self._token

    def invalidate(self, token: str) -> None:
        return None

    def __repr__(self) -> str:
        return "StaticToken(…)"


class CallableToken:
    """A function (sync or async) that returns the current token; called again after a 401."""

    refreshable = True

    def __init__(self, func: Callable[[], str] | Callable[[], Awaitable[str]]) -> None:
        self._func = func

    def get_token(self) -> str:
        value = self._func()
        if not isinstance(value, str):
            raise TypeError("the token function returned an awaitable; use it with AsyncLineClient")
        return value

    async def aget_token(self) -> str:
        value = self._func()
        if isinstance(value, str):
            return value
        return await value

    def invalidate(self, token: str) -> None:
        return None

    def __repr__(self) -> str:
        return f"CallableToken({getattr(self._func, '__qualname__', 'function')})"


def call_flow(
    op: Operation[T],
    policy: RetryPolicy,
    limiter: RateLimiter | None,
    clock: Callable[[], float],
    *,
    refreshable: bool = True,
    rand: Callable[[], float] = random.random,
    first: FirstAttempt | None = None,
    attempt_limit: float = float("inf"),
) -> Generator[Action, Any, T]:
    """The logic of one call. Yields actions; returns the parsed result or raises the final error.

    With ``first``, the first attempt was already made by the driver (see :class:`FirstAttempt`). The
    policy's deadline covers the whole call: an attempt is bounded by what is left of it when that is less
    than ``attempt_limit``, the longest the transport would wait by its own timeouts. A deadline of 0 means
    one attempt, bounded only by the transport's timeouts."""
    request = op.request
    token: str | None = None
    pending: ApiResponse | LinePushError | None = None
    if first is not None:
        token, pending, start = first.token, first.outcome, first.start
    else:
        if request.needs_token:
            token = yield FIRST_TOKEN
        start = clock()
    refreshed = False
    attempt = 0
    while True:
        attempt += 1
        if pending is None and limiter is not None:
            wait = limiter.reserve(request.endpoint, clock())
            if wait > 0:
                yield Sleep(wait)
        error: LinePushError
        try:
            response: ApiResponse
            if pending is None:
                left = (
                    max(policy.deadline - (clock() - start), MIN_ATTEMPT)
                    if policy.deadline
                    else attempt_limit
                )
                response = yield Send(request, token, left if left < attempt_limit else None)
            elif isinstance(pending, LinePushError):
                outcome, pending = pending, None
                raise outcome
            else:
                response, pending = pending, None
            return op.parse(response)
        except AuthenticationError as exc:
            if not (request.needs_token and refreshable and not refreshed):
                exc.attempts = attempt
                raise
            # The token was revoked or expired behind our back: one fresh token, one more try, never a loop.
            refreshed = True
            token = yield GetToken(invalid=token)
            continue
        except LineApiError as exc:
            error = exc
        except LinePushError as exc:  # transport errors thrown in by the driver
            error = exc
        delay = policy.next_delay(attempt, error, request, clock() - start, rand)
        if delay is None:
            error.attempts = attempt
            raise error
        if delay > 0:
            yield Sleep(delay)
