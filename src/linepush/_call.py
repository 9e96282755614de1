"""One call to LINE, written once for the sync and the async client.

:func:`call_flow` is a generator that holds all the logic of a call: take a token, wait for the rate limiter,
send, parse, retry with backoff, and on a 401 ask once for a fresh token. It does no I/O itself; it *yields*
what it needs done (:class:`Send`, :class:`Sleep`, :class:`GetToken`) and the client's driver, sync or async,
does it and sends the result back in. Only the two small drivers differ between the clients.
"""

from __future__ import annotations

import inspect
import random
from collections.abc import Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, TypeVar, runtime_checkable

from linepush.api._base import ApiRequest, Operation
from linepush.errors import AuthenticationError, LineApiError, LinePushError
from linepush.ratelimit import RateLimiter
from linepush.retry import RetryPolicy

T = TypeVar("T")

__all__ = ["AsyncTokenProvider", "GetToken", "Send", "Sleep", "TokenProvider", "call_flow"]


#: Send ``request`` with ``token``: a plain tuple ``(request, token, timeout)``, as every call yields one and
#: a tuple costs a fraction of an object. ``timeout``, when not None, is what is left of the call's deadline,
#: nearer than the transport's own timeouts: the attempt must end by then (the driver passes it on).
if TYPE_CHECKING:
    Send: TypeAlias = tuple[ApiRequest, str | None, float | None]
else:
    Send = tuple


class Sleep:
    """Wait ``seconds``. ``until`` is set for a wait for the rate limiter: the time, by the call's clock, the
    wait ends, the same number for every request released on one tick (an async driver wakes them with one
    timer)."""

    __slots__ = ("seconds", "until")

    def __init__(self, seconds: float, until: float | None = None) -> None:
        self.seconds = seconds
        self.until = until


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
            if inspect.isawaitable(value):
                close = getattr(value, "close", None)
                if close is not None:
                    close()  # never awaited: no "coroutine was never awaited" warning on top
                raise TypeError("the token function returned an awaitable; use it with AsyncLineClient")
            raise self._junk(value)
        return value

    async def aget_token(self) -> str:
        value = self._func()
        if isinstance(value, str):
            return value
        if not inspect.isawaitable(value):
            raise self._junk(value)
        value = await value
        if not isinstance(value, str):
            raise self._junk(value)
        return value

    def _junk(self, value: object) -> TypeError:
        # The type only: whatever the function returned may hold a secret.
        name = getattr(self._func, "__qualname__", "function")
        return TypeError(f"the token function {name} returned {type(value).__name__}, not the token string")

    def invalidate(self, token: str) -> None:
        return None

    def __repr__(self) -> str:
        return f"CallableToken({getattr(self._func, '__qualname__', 'function')})"


def call_flow(
    op: Operation[T],
    policy: RetryPolicy,
    limiter: RateLimiter | None,
    clock: Callable[[], float],
    cached_token: Callable[[], str | None] | None = None,
    refreshable: bool = True,
    rand: Callable[[], float] = random.random,
    attempt_limit: float = float("inf"),
) -> Generator[Action, Any, T]:
    """The logic of one call, first attempt included. Yields actions; returns the parsed result or raises
    the final error.

    The policy's deadline covers the whole call: an attempt is bounded by what is left of it when that is less
    than ``attempt_limit``, the longest the transport would wait by its own timeouts. A deadline of 0 means
    one attempt, bounded only by the transport's timeouts.

    Most calls end with their first attempt, so that path is kept to one step of the generator: the token
    comes from ``cached_token`` (the provider's token in memory, no I/O) when it has one, and only else is
    :data:`FIRST_TOKEN` yielded; a first attempt that did not wait for the rate limiter is bounded by the
    whole deadline."""
    request = op.request
    token = None
    if request.needs_token:
        if cached_token is not None:
            token = cached_token()
        if token is None:
            token = yield FIRST_TOKEN
    deadline = policy.deadline
    start = now = clock()
    refreshed = False
    attempt = 0
    while True:
        attempt += 1
        fresh = attempt == 1
        if limiter is not None:
            wait = limiter.reserve(request.endpoint, now)
            if wait > 0:
                # The limiter's wait is (slot - now), exact as the two are close: now + wait is the slot.
                yield Sleep(wait, now + wait)
                fresh = False
        timeout: float | None = None
        if deadline:
            left = deadline if fresh else deadline - (clock() - start)
            if left < attempt_limit:
                timeout = left if left > MIN_ATTEMPT else MIN_ATTEMPT
        error: LinePushError
        try:
            return op.parse((yield (request, token, timeout)))
        except AuthenticationError as exc:
            if not (request.needs_token and refreshable and not refreshed):
                exc.attempts = attempt
                raise
            # The token was revoked or expired behind our back: one fresh token, one more try, never a loop.
            refreshed = True
            token = yield GetToken(invalid=token)
            now = clock()
            continue
        except LineApiError as exc:
            error = exc
        except LinePushError as exc:  # transport errors thrown in by the driver
            error = exc
        now = clock()
        delay = policy.next_delay(attempt, error, request, now - start, rand)
        if delay is None:
            error.attempts = attempt
            raise error
        if delay > 0:
            yield Sleep(delay)
            now = clock()
