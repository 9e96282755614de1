"""``LineClient`` and ``AsyncLineClient``: the one face users touch.

Both build each request with the pure functions of :mod:`linepush.api`, run it through the shared call flow
(:mod:`linepush._call`: token, rate limit, retries) and only differ in how they wait and send. A client given
no token wires a :class:`~linepush.tokens.TokenManager` that runs its token calls through the client itself.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, cast

from linepush._call import (
    AsyncTokenProvider,
    CallableToken,
    GetToken,
    Sleep,
    StaticToken,
    TokenProvider,
    call_flow,
)
from linepush._secret import Secret
from linepush.api import messaging
from linepush.api import tokens as token_api
from linepush.api._base import Operation
from linepush.api.messaging import (
    MonthlyUsage,
    MulticastChunk,
    MulticastResult,
    PushResult,
    Quota,
    QuotaConsumption,
    SendResult,
    ValidateKind,
)
from linepush.api.tokens import IssuedToken, TokenInfo
from linepush.config import Channel
from linepush.errors import (
    ConfigurationError,
    LineApiError,
    LinePushError,
    TokenUnavailableError,
    TransportError,
)
from linepush.messages import MessageLike
from linepush.ratelimit import DEFAULT_RATES, Rate, RateLimiter
from linepush.retry import RetryPolicy
from linepush.store.base import Store
from linepush.tokens import TokenClient, TokenEndpoints, TokenManager
from linepush.transport import (
    DEFAULT_API_BASE,
    AsyncTransport,
    SyncTransport,
    Timeouts,
    Urllib3Transport,
    default_async_transport,
)

if TYPE_CHECKING:
    import asyncio

    from linepush.api.profiles import GroupSummary, UserProfile

__all__ = ["AsyncLineClient", "LineClient", "MulticastError", "TokenSource"]

T = TypeVar("T")

TokenSource = (
    str | Secret | TokenProvider | AsyncTokenProvider | Callable[[], str] | Callable[[], Awaitable[str]]
)
Messages = MessageLike | Sequence[MessageLike]


class MulticastError(LinePushError):
    """Some chunks of a multicast failed. ``result`` holds every chunk: delivered ones with their request
    ids, failed ones with their error and retry key, so exactly the failed ones can be sent again."""

    def __init__(self, result: MulticastResult) -> None:
        self.result = result
        failed = result.failed
        first = failed[0].error
        super().__init__(
            f"{len(failed)} of {len(result.chunks)} multicast requests failed "
            f"({sum(len(c.recipients) for c in failed)} of {result.recipients} recipients); "
            f"first error: {first}"
        )
        self.retryable = all(c.error is not None and c.error.retryable for c in failed)

    def __reduce__(self) -> tuple[Any, ...]:
        # Made from its result, not its text: picklable as every other error (it crosses process bounds).
        extra = {k: v for k, v in vars(self).items() if k not in ("result", "retryable")}
        return (type(self), (self.result,), extra or None)


def _multicast_outcome(
    chunks: list[MulticastChunk], outcomes: Sequence[SendResult | BaseException]
) -> MulticastResult:
    settled: list[MulticastChunk] = []
    for chunk, outcome in zip(chunks, outcomes, strict=True):
        if isinstance(outcome, LinePushError):
            settled.append(MulticastChunk(chunk.recipients, chunk.retry_key, None, outcome))
        elif isinstance(outcome, BaseException):
            raise outcome
        else:
            settled.append(MulticastChunk(chunk.recipients, chunk.retry_key, outcome, None))
    result = MulticastResult(tuple(settled))
    failed = result.failed
    if failed:
        if len(settled) == 1 and failed[0].error is not None:
            raise failed[0].error  # one request: its own error says it all
        raise MulticastError(result)
    return result


def _check_arguments(
    channel: object, api_base: object, retry: object, timeouts: object, store: object
) -> None:
    """A constructor argument of the wrong type is refused saying which and what it takes, rather than
    failing later, on the first call, as an AttributeError from deep inside."""
    for name, value, wanted, ok in (
        ("channel", channel, "a Channel (or None, to read it from the environment)", Channel),
        ("api_base", api_base, "a URL such as https://api.line.me (or None)", str),
        ("retry", retry, "a RetryPolicy (or None)", RetryPolicy),
        ("timeouts", timeouts, "a Timeouts, e.g. Timeouts(connect=5, read=30)", Timeouts),
        ("store", store, "a Store or a store URL (or None)", (Store, str)),
    ):
        if value is not None and not isinstance(value, ok):
            raise ConfigurationError(f"{name} must be {wanted}, not {type(value).__name__}")


class _ClientBase:
    """Configuration shared by both clients; no I/O."""

    def __init__(
        self,
        channel: Channel | None,
        *,
        token: TokenSource | None,
        api_base: str | None,
        retry: RetryPolicy | None,
        rate_limits: Mapping[str, Rate] | None,
        rate_limiter: RateLimiter | None,
        timeouts: Timeouts,
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
        rand: Callable[[], float],
        store: Store | str | None,
    ) -> None:
        _check_arguments(channel, api_base, retry, timeouts, store)
        self.channel = channel if channel is not None else Channel.from_env()
        self._store_spec = store
        self.api_base = api_base or os.environ.get("LINEPUSH_API_BASE") or DEFAULT_API_BASE
        self.retry = retry if retry is not None else RetryPolicy()
        # A limiter given (e.g. a store's SharedRateLimiter, shared by every process) wins over rate_limits.
        self._limiter = (
            rate_limiter
            if rate_limiter is not None
            else (RateLimiter(rate_limits) if rate_limits is not None else None)
        )
        self._timeouts = timeouts
        # The retry deadline covers the whole call, the wait for an answer included: when it is nearer than
        # the transport's own timeouts, each attempt is bounded by what is left of it.
        self._attempt_limit = timeouts.connect + timeouts.read
        self._clock = clock
        self._wall_clock = wall_clock
        self._rand = rand
        self._provider: Any = self._token_provider(token)
        self._cached_token: Callable[[], str | None] | None = getattr(self._provider, "cached_token", None)
        self._refreshable = bool(getattr(self._provider, "refreshable", True))
        #: The token endpoints of this channel, for the methods below that call them.
        self._tokens = TokenEndpoints(self.channel, clock=wall_clock)
        #: The TokenManager this client made for itself (when given no token), closed with it.
        self._owned_manager: TokenManager | None = None

    def _token_provider(self, token: TokenSource | None) -> Any:
        if token is None and self.channel.access_token is not None:
            token = self.channel.access_token
        if token is None:
            return None
        if isinstance(token, Secret):
            token = token.reveal()
        if isinstance(token, str):
            if not token.strip():
                raise ConfigurationError("the channel access token is empty; give the token itself, or none")
            return StaticToken(token)
        if isinstance(token, TokenProvider | AsyncTokenProvider):
            return token
        if callable(token):
            return CallableToken(token)
        raise ConfigurationError(f"token must be a string, a function or a token provider, not {type(token)}")

    def _managed_tokens(self, token_client: TokenClient) -> TokenManager:
        """The default token source: a TokenManager on the configured (or default) store, calling LINE's
        token endpoints through ``token_client``."""
        manager = TokenManager(self.channel, self._store_spec, client=token_client, clock=self._wall_clock)
        self._owned_manager = manager
        self._cached_token = manager.cached_token
        self._refreshable = manager.refreshable
        return manager

    def _close_manager(self) -> None:
        if self._owned_manager is not None:
            self._owned_manager.close()

    def _flow(self, op: Operation[T]) -> Any:
        return call_flow(
            op,
            self.retry,
            self._limiter,
            self._clock,
            self._cached_token,
            self._refreshable,
            self._rand,
            self._attempt_limit,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.channel!r}, api_base={self.api_base!r})"


class LineClient(_ClientBase):
    """Synchronous client. Thread-safe; one instance serves a whole program."""

    def __init__(
        self,
        channel: Channel | None = None,
        *,
        token: TokenSource | None = None,
        api_base: str | None = None,
        transport: SyncTransport | None = None,
        retry: RetryPolicy | None = None,
        rate_limits: Mapping[str, Rate] | None = DEFAULT_RATES,
        rate_limiter: RateLimiter | None = None,
        timeouts: Timeouts = Timeouts(),
        pool_size: int = 10,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], object] = time.sleep,
        rand: Callable[[], float] = random.random,
        store: Store | str | None = None,
    ) -> None:
        super().__init__(
            channel,
            token=token,
            api_base=api_base,
            retry=retry,
            rate_limits=rate_limits,
            rate_limiter=rate_limiter,
            timeouts=timeouts,
            clock=clock,
            wall_clock=wall_clock,
            rand=rand,
            store=store,
        )
        self._owns_transport = transport is None
        self._transport: SyncTransport = transport or Urllib3Transport(
            self.api_base, timeouts=timeouts, pool_size=pool_size
        )
        self._sleep = sleep

    def run(self, op: Operation[T]) -> T:
        """Send one operation (from :mod:`linepush.api`) with token, rate limit and retries."""
        return cast(T, self._drive(self._flow(op)))

    def _drive(self, flow: Any) -> Any:
        send = self._transport.send
        try:
            action = next(flow)
            while True:
                try:
                    if type(action) is tuple:
                        request, token, timeout = action
                        if timeout is None:
                            result: Any = send(request, token)
                        else:
                            result = send(request, token, timeout=timeout)
                    elif type(action) is Sleep:
                        result = self._sleep(action.seconds)
                    else:
                        result = self._get_token(action)
                except LinePushError as exc:
                    action = flow.throw(exc)
                else:
                    action = flow.send(result)
        except StopIteration as stop:
            return stop.value

    def _get_token(self, action: GetToken) -> str:
        provider = self._provider
        if provider is None:
            provider = self._provider = self._managed_tokens(self)
        try:
            if action.invalid is not None:
                provider.invalidate(action.invalid)
            return cast(str, provider.get_token())
        except (LineApiError, TransportError) as exc:
            # Said by a token endpoint, not about the message: it was never sent.
            raise TokenUnavailableError.after(exc) from exc

    # Messaging
    def push(
        self,
        to: str,
        messages: Messages,
        *,
        retry_key: str | None = None,
        notification_disabled: bool = False,
        custom_aggregation_units: Sequence[str] | None = None,
    ) -> PushResult:
        """Send up to 5 messages to one user, group or room."""
        return self.run(
            messaging.push(
                to,
                messages,
                retry_key=retry_key,
                notification_disabled=notification_disabled,
                custom_aggregation_units=custom_aggregation_units,
            )
        )

    def multicast(
        self,
        to: Iterable[str],
        messages: Messages,
        *,
        retry_key: str | None = None,
        notification_disabled: bool = False,
        custom_aggregation_units: Sequence[str] | None = None,
    ) -> MulticastResult:
        """Send to any number of users, 500 per request; raises :class:`MulticastError` if some failed."""
        pairs = messaging.multicast_chunks(
            to,
            messages,
            retry_key=retry_key,
            notification_disabled=notification_disabled,
            custom_aggregation_units=custom_aggregation_units,
        )
        outcomes: list[SendResult | BaseException] = []
        for _, op in pairs:
            try:
                outcomes.append(self.run(op))
            except LinePushError as exc:
                outcomes.append(exc)
        return _multicast_outcome([chunk for chunk, _ in pairs], outcomes)

    def broadcast(
        self, messages: Messages, *, retry_key: str | None = None, notification_disabled: bool = False
    ) -> SendResult:
        return self.run(
            messaging.broadcast(messages, retry_key=retry_key, notification_disabled=notification_disabled)
        )

    def narrowcast(
        self,
        messages: Messages,
        *,
        retry_key: str | None = None,
        recipient: Mapping[str, Any] | None = None,
        filter: Mapping[str, Any] | None = None,
        limit: Mapping[str, Any] | None = None,
        notification_disabled: bool = False,
    ) -> SendResult:
        return self.run(
            messaging.narrowcast(
                messages,
                retry_key=retry_key,
                recipient=recipient,
                filter=filter,
                limit=limit,
                notification_disabled=notification_disabled,
            )
        )

    def validate(self, kind: ValidateKind, messages: Messages) -> None:
        self.run(messaging.validate(kind, messages))

    def quota(self) -> Quota:
        return self.run(messaging.quota())

    def quota_consumption(self) -> QuotaConsumption:
        return self.run(messaging.quota_consumption())

    def monthly_usage(self) -> MonthlyUsage:
        """The month's limit and what was used of it (two calls: quota, then consumption)."""
        return MonthlyUsage.of(self.quota(), self.quota_consumption())

    def member_count(self, chat_id: str) -> int:
        """The members of a group or room: what one push to it costs."""
        return self.run(messaging.member_count(chat_id))

    # Profiles
    def get_profile(self, user_id: str) -> UserProfile:
        """A user's display name and profile; :class:`~linepush.errors.NotFoundError` when the user is not a
        friend of the account (or blocked it, or does not exist)."""
        from linepush.api import profiles

        return self.run(profiles.profile(user_id))

    def get_group_summary(self, group_id: str) -> GroupSummary:
        """A group's name and icon; :class:`~linepush.errors.NotFoundError` when the bot is not in it."""
        from linepush.api import profiles

        return self.run(profiles.group_summary(group_id))

    # Channel access tokens
    def issue_short_lived_token(
        self, channel_id: str | None = None, channel_secret: str | Secret | None = None
    ) -> IssuedToken:
        return self.run(self._tokens.issue_short_lived(channel_id, channel_secret))

    def verify_short_lived_token(self, access_token: str | Secret) -> TokenInfo:
        return self.run(token_api.verify_short_lived(access_token))

    def revoke_short_lived_token(self, access_token: str | Secret) -> None:
        self.run(token_api.revoke_short_lived(access_token))

    def issue_v21_token(self, assertion: str | None = None, *, token_exp: int = 86_400) -> IssuedToken:
        return self.run(self._tokens.issue_v21(assertion, token_exp=token_exp))

    def verify_v21_token(self, access_token: str | Secret) -> TokenInfo:
        return self.run(token_api.verify_v21(access_token))

    def revoke_v21_token(
        self,
        access_token: str | Secret,
        *,
        channel_id: str | None = None,
        channel_secret: str | Secret | None = None,
    ) -> None:
        self.run(self._tokens.revoke_v21(access_token, channel_id, channel_secret))

    def list_v21_key_ids(self, assertion: str | None = None) -> list[str]:
        return self.run(self._tokens.list_v21_key_ids(assertion))

    def issue_stateless_token(self, assertion: str | None = None, *, use_secret: bool = False) -> IssuedToken:
        return self.run(self._tokens.issue_stateless(assertion, use_secret=use_secret))

    def close(self) -> None:
        self._close_manager()
        if self._owns_transport:
            self._transport.close()

    def __enter__(self) -> LineClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncLineClient(_ClientBase):
    """Asynchronous client (aiohttp). One instance serves every task of an event loop."""

    def __init__(
        self,
        channel: Channel | None = None,
        *,
        token: TokenSource | None = None,
        api_base: str | None = None,
        transport: AsyncTransport | None = None,
        retry: RetryPolicy | None = None,
        rate_limits: Mapping[str, Rate] | None = DEFAULT_RATES,
        rate_limiter: RateLimiter | None = None,
        timeouts: Timeouts = Timeouts(),
        pool_size: int = 100,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[object]] | None = None,
        rand: Callable[[], float] = random.random,
        store: Store | str | None = None,
    ) -> None:
        super().__init__(
            channel,
            token=token,
            api_base=api_base,
            retry=retry,
            rate_limits=rate_limits,
            rate_limiter=rate_limiter,
            timeouts=timeouts,
            clock=clock,
            wall_clock=wall_clock,
            rand=rand,
            store=store,
        )
        self._owns_transport = transport is None
        self._transport: AsyncTransport = transport or default_async_transport(
            self.api_base, timeouts=timeouts, pool_size=pool_size
        )
        # With asyncio's own sleep, the requests the rate limiter releases on one tick share one timer.
        self._wakeups = _Wakeups() if sleep is None else None
        if sleep is None:
            # Imported here, not at the top: a one-shot command sending with LineClient never needs asyncio.
            import asyncio

            sleep = asyncio.sleep
        self._sleep = sleep
        self._on_loop = _OnLoop(self)

    async def run(self, op: Operation[T]) -> T:
        """Send one operation (from :mod:`linepush.api`) with token, rate limit and retries."""
        return cast(T, await self._drive(self._flow(op)))

    async def _drive(self, flow: Any) -> Any:
        send = self._transport.send
        try:
            action = next(flow)
            while True:
                try:
                    if type(action) is tuple:
                        request, token, timeout = action
                        if timeout is None:
                            result: Any = await send(request, token)
                        else:
                            result = await send(request, token, timeout=timeout)
                    elif type(action) is Sleep:
                        if action.until is None or self._wakeups is None:
                            result = await self._sleep(action.seconds)
                        else:
                            await self._wakeups.wait(action.seconds, action.until)
                            result = None
                    else:
                        result = await self._get_token(action)
                except LinePushError as exc:
                    action = flow.throw(exc)
                else:
                    action = flow.send(result)
        except StopIteration as stop:
            return stop.value

    async def _get_token(self, action: GetToken) -> str:
        provider = self._provider
        if provider is None:
            provider = self._provider = self._managed_tokens(self._on_loop)
        if provider is self._owned_manager:
            import asyncio

            # Its refreshes, in worker threads, send their requests on the loop this call runs on.
            self._on_loop.loop = asyncio.get_running_loop()
        try:
            if action.invalid is not None:
                provider.invalidate(action.invalid)
            # getattr, not isinstance on the Protocol: a runtime Protocol check costs microseconds per call.
            aget = getattr(provider, "aget_token", None)
            if aget is not None:
                return cast(str, await aget())
            return cast(str, provider.get_token())
        except (LineApiError, TransportError) as exc:
            # Said by a token endpoint, not about the message: it was never sent.
            raise TokenUnavailableError.after(exc) from exc

    # Messaging
    async def push(
        self,
        to: str,
        messages: Messages,
        *,
        retry_key: str | None = None,
        notification_disabled: bool = False,
        custom_aggregation_units: Sequence[str] | None = None,
    ) -> PushResult:
        """Send up to 5 messages to one user, group or room."""
        # The busiest call awaits the driver itself, not run(): one coroutine less, made on every call and
        # passed through every time the call's task wakes up.
        result: PushResult = await self._drive(
            self._flow(
                messaging.push(
                    to,
                    messages,
                    retry_key=retry_key,
                    notification_disabled=notification_disabled,
                    custom_aggregation_units=custom_aggregation_units,
                )
            )
        )
        return result

    async def multicast(
        self,
        to: Iterable[str],
        messages: Messages,
        *,
        retry_key: str | None = None,
        notification_disabled: bool = False,
        custom_aggregation_units: Sequence[str] | None = None,
    ) -> MulticastResult:
        """Send to any number of users, 500 per request, concurrently under the rate limit; raises
        :class:`MulticastError` if some requests failed."""
        pairs = messaging.multicast_chunks(
            to,
            messages,
            retry_key=retry_key,
            notification_disabled=notification_disabled,
            custom_aggregation_units=custom_aggregation_units,
        )
        import asyncio

        outcomes = await asyncio.gather(*(self.run(op) for _, op in pairs), return_exceptions=True)
        return _multicast_outcome([chunk for chunk, _ in pairs], outcomes)

    async def broadcast(
        self, messages: Messages, *, retry_key: str | None = None, notification_disabled: bool = False
    ) -> SendResult:
        return await self.run(
            messaging.broadcast(messages, retry_key=retry_key, notification_disabled=notification_disabled)
        )

    async def narrowcast(
        self,
        messages: Messages,
        *,
        retry_key: str | None = None,
        recipient: Mapping[str, Any] | None = None,
        filter: Mapping[str, Any] | None = None,
        limit: Mapping[str, Any] | None = None,
        notification_disabled: bool = False,
    ) -> SendResult:
        return await self.run(
            messaging.narrowcast(
                messages,
                retry_key=retry_key,
                recipient=recipient,
                filter=filter,
                limit=limit,
                notification_disabled=notification_disabled,
            )
        )

    async def validate(self, kind: ValidateKind, messages: Messages) -> None:
        await self.run(messaging.validate(kind, messages))

    async def quota(self) -> Quota:
        return await self.run(messaging.quota())

    async def quota_consumption(self) -> QuotaConsumption:
        return await self.run(messaging.quota_consumption())

    async def monthly_usage(self) -> MonthlyUsage:
        """The month's limit and what was used of it (two calls: quota, then consumption)."""
        return MonthlyUsage.of(await self.quota(), await self.quota_consumption())

    async def member_count(self, chat_id: str) -> int:
        """The members of a group or room: what one push to it costs."""
        return await self.run(messaging.member_count(chat_id))

    # Profiles
    async def get_profile(self, user_id: str) -> UserProfile:
        """A user's display name and profile; :class:`~linepush.errors.NotFoundError` when the user is not a
        friend of the account (or blocked it, or does not exist)."""
        from linepush.api import profiles

        return await self.run(profiles.profile(user_id))

    async def get_group_summary(self, group_id: str) -> GroupSummary:
        """A group's name and icon; :class:`~linepush.errors.NotFoundError` when the bot is not in it."""
        from linepush.api import profiles

        return await self.run(profiles.group_summary(group_id))

    # Channel access tokens
    async def issue_short_lived_token(
        self, channel_id: str | None = None, channel_secret: str | Secret | None = None
    ) -> IssuedToken:
        return await self.run(self._tokens.issue_short_lived(channel_id, channel_secret))

    async def verify_short_lived_token(self, access_token: str | Secret) -> TokenInfo:
        return await self.run(token_api.verify_short_lived(access_token))

    async def revoke_short_lived_token(self, access_token: str | Secret) -> None:
        await self.run(token_api.revoke_short_lived(access_token))

    async def issue_v21_token(self, assertion: str | None = None, *, token_exp: int = 86_400) -> IssuedToken:
        return await self.run(self._tokens.issue_v21(assertion, token_exp=token_exp))

    async def verify_v21_token(self, access_token: str | Secret) -> TokenInfo:
        return await self.run(token_api.verify_v21(access_token))

    async def revoke_v21_token(
        self,
        access_token: str | Secret,
        *,
        channel_id: str | None = None,
        channel_secret: str | Secret | None = None,
    ) -> None:
        await self.run(self._tokens.revoke_v21(access_token, channel_id, channel_secret))

    async def list_v21_key_ids(self, assertion: str | None = None) -> list[str]:
        return await self.run(self._tokens.list_v21_key_ids(assertion))

    async def issue_stateless_token(
        self, assertion: str | None = None, *, use_secret: bool = False
    ) -> IssuedToken:
        return await self.run(self._tokens.issue_stateless(assertion, use_secret=use_secret))

    async def aclose(self) -> None:
        if self._owned_manager is not None:
            import asyncio

            # A background refresh may be sending on this loop: let it finish while the loop runs.
            await asyncio.to_thread(self._owned_manager.join_background, 5)
        self._close_manager()
        if self._owns_transport:
            await self._transport.aclose()

    async def __aenter__(self) -> AsyncLineClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class _Wakeups:
    """Waits for the rate limiter that end at the same time share one timer.

    The limiter releases the requests of one tick together (10 at a time at 2,000/s), each with the same end
    of its wait. ``asyncio.sleep`` would give each its own timer: a timer handle, a heap push and pop with
    comparisons in Python, and a callback when it fires. Here the first waiter of a time sets one timer and
    each waiter has only its own future, so a waiter that is cancelled leaves the others waiting."""

    __slots__ = ("_due", "_loop")

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._due: dict[float, list[asyncio.Future[None]]] = {}

    def wait(self, seconds: float, until: float) -> asyncio.Future[None]:
        """A future done once ``seconds`` have passed; ``until`` names the moment among the waiters."""
        import asyncio

        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            # A new event loop (``asyncio.run`` again): the old one's timers will never fire here.
            self._loop, self._due = loop, {}
        future: asyncio.Future[None] = loop.create_future()
        due = self._due
        waiting = due.get(until)
        if waiting is None:
            due[until] = [future]
            # The timer holds its loop's own table: another loop's waiters never take its place.
            loop.call_later(seconds, _release, due, until)
        else:
            waiting.append(future)
        return future


def _release(due: dict[float, list[asyncio.Future[None]]], until: float) -> None:
    for future in due.pop(until, ()):
        if not future.done():  # a cancelled waiter
            future.set_result(None)


class _OnLoop:
    """The :class:`TokenClient` of an async client's own token manager, whose refreshes run in worker
    threads: each operation is sent by the client on the event loop it serves, and the thread waits for the
    answer."""

    __slots__ = ("_client", "loop")

    def __init__(self, client: AsyncLineClient) -> None:
        self._client = client
        self.loop: asyncio.AbstractEventLoop | None = None

    def run(self, op: Operation[T]) -> T:
        loop = self.loop
        if loop is None or loop.is_closed():
            raise ConfigurationError(
                "this AsyncLineClient's event loop is gone: no token can be had through it"
            )
        import asyncio

        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            raise RuntimeError("a token refresh must not wait on the event loop it would block")
        return asyncio.run_coroutine_threadsafe(self._client.run(op), loop).result()
