"""The shared call flow, driven by both clients against scripted transports: retries, sleeps, 401 refresh."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from linepush._call import GetToken, Send, Sleep, call_flow
from linepush.api._base import ApiRequest, ApiResponse, Operation, expect_json_object
from linepush.errors import (
    AuthenticationError,
    BadRequestError,
    ConnectError,
    OutcomeUnknownError,
    ServerError,
)
from linepush.ratelimit import Rate, RateLimiter
from linepush.retry import RetryPolicy

SEND = ApiRequest(
    "POST",
    "/v2/bot/message/push",
    "POST /v2/bot/message/push",
    b"{}",
    needs_token=True,
    retry_key="k",
    idempotent=True,
)
ISSUE = ApiRequest("POST", "/oauth2/v2.1/token", "POST /oauth2/v2.1/token", b"a=b")


def ok(status: int = 200, body: bytes = b"{}") -> ApiResponse:
    return ApiResponse(status, {"x-line-request-id": f"req-{status}"}, body)


def op(request: ApiRequest = SEND) -> Operation[dict[str, Any]]:
    return Operation(request, expect_json_object)


def drive(
    flow: Any, script: list[ApiResponse | Exception], tokens: Callable[[str | None], str]
) -> tuple[Any, list[Any]]:
    """Run a flow by hand, answering Send from the script; returns (result or error, the actions seen)."""
    seen: list[Any] = []
    try:
        action = next(flow)
        while True:
            seen.append(action)
            if isinstance(action, Send):
                answer = script.pop(0)
                action = flow.throw(answer) if isinstance(answer, Exception) else flow.send(answer)
            elif isinstance(action, GetToken):
                action = flow.send(tokens(action.invalid))
            else:
                action = flow.send(None)
    except StopIteration as stop:
        return stop.value, seen
    except Exception as exc:  # the flow's final error
        return exc, seen


def counter_tokens() -> Callable[[str | None], str]:
    issued: list[str] = []

    def get(invalid: str | None) -> str:
        issued.append(f"t{len(issued)}")
        return issued[-1]

    return get


def flow(
    request: ApiRequest = SEND,
    *,
    policy: RetryPolicy | None = None,
    refreshable: bool = True,
    limiter: RateLimiter | None = None,
) -> Any:
    return call_flow(
        op(request),
        policy or RetryPolicy(max_attempts=4),
        limiter,
        lambda: 0.0,
        refreshable=refreshable,
        rand=lambda: 0.5,
    )


def test_success_on_first_attempt_sends_once_with_the_token() -> None:
    result, seen = drive(flow(), [ok()], counter_tokens())
    assert result == {}
    assert [type(a) for a in seen] == [GetToken, Send]
    assert seen[1][1] == "t0"  # (request, token, timeout)


def test_server_errors_are_retried_with_backoff_then_succeed() -> None:
    result, seen = drive(flow(), [ok(500), ok(503), ok()], counter_tokens())
    assert result == {}
    sleeps = [a.seconds for a in seen if isinstance(a, Sleep)]
    assert sleeps == [0.125, 0.25]  # rand 0.5 x cap (0.25, 0.5)
    assert sum(isinstance(a, Send) for a in seen) == 3


def test_retries_stop_at_max_attempts_and_the_error_counts_them() -> None:
    result, _seen = drive(flow(), [ok(500)] * 4, counter_tokens())
    assert isinstance(result, ServerError)
    assert result.attempts == 4
    assert result.request_id == "req-500"


def test_a_400_is_final_at_once() -> None:
    result, seen = drive(flow(), [ok(400, b'{"message":"Failed to send messages"}')], counter_tokens())
    assert isinstance(result, BadRequestError)
    assert result.message == "Failed to send messages"
    assert sum(isinstance(a, Send) for a in seen) == 1


def test_a_401_gets_one_fresh_token_and_one_more_try() -> None:
    result, seen = drive(flow(), [ok(401), ok()], counter_tokens())
    assert result == {}
    gets = [a for a in seen if isinstance(a, GetToken)]
    assert [g.invalid for g in gets] == [None, "t0"]
    assert [a[1] for a in seen if isinstance(a, Send)] == ["t0", "t1"]


def test_a_second_401_is_final_never_a_loop() -> None:
    result, seen = drive(flow(), [ok(401), ok(401)], counter_tokens())
    assert isinstance(result, AuthenticationError)
    assert sum(isinstance(a, Send) for a in seen) == 2


def test_a_static_token_is_not_refreshed() -> None:
    result, seen = drive(flow(refreshable=False), [ok(401)], counter_tokens())
    assert isinstance(result, AuthenticationError)
    assert sum(isinstance(a, GetToken) for a in seen) == 1


def test_outcome_unknown_is_retried_only_for_idempotent_requests() -> None:
    result, _ = drive(flow(SEND), [OutcomeUnknownError("drop"), ok()], counter_tokens())
    assert result == {}
    result, seen = drive(flow(ISSUE), [OutcomeUnknownError("drop"), ok()], counter_tokens())
    assert isinstance(result, OutcomeUnknownError)
    assert not any(isinstance(a, GetToken) for a in seen)  # token endpoints need no bearer token


def test_connect_errors_are_retried_even_for_non_idempotent_requests() -> None:
    result, _ = drive(flow(ISSUE), [ConnectError("refused"), ok()], counter_tokens())
    assert result == {}


def test_the_rate_limiter_is_consulted_on_every_attempt() -> None:
    limiter = RateLimiter({"POST /v2/bot/message/push": Rate(2, 1.0)})
    _, seen = drive(flow(limiter=limiter), [ok(500), ok(500), ok()], counter_tokens())
    waits = [a.seconds for a in seen if isinstance(a, Sleep)]
    # attempt 1: free; backoff 0.125; attempt 2: waits 0.5 for its slot; backoff 0.25; attempt 3: 1.0
    assert waits == [0.125, 0.5, 0.25, 1.0]


def test_the_drivers_wait_for_a_slot_before_the_first_attempt_and_every_retry() -> None:
    from linepush.client import LineClient

    class Scripted:
        def __init__(self) -> None:
            self.script = [ok(500), ok()]

        def send(self, request: ApiRequest, token: str | None) -> ApiResponse:
            return self.script.pop(0)

        def close(self) -> None:
            return None

    slept: list[float] = []
    client = LineClient(
        token="static",
        transport=Scripted(),
        sleep=slept.append,
        clock=lambda: 0.0,
        rand=lambda: 0.5,
        rate_limits={"POST /v2/bot/message/push": Rate(2, 1.0)},
    )
    assert client.run(op()) == {}
    # attempt 1 takes the free slot at 0; backoff 0.125; attempt 2 waits for the slot at 0.5
    assert slept == [0.125, 0.5]


def test_the_async_driver_runs_the_same_flow() -> None:
    from linepush.client import AsyncLineClient

    class Scripted:
        def __init__(self) -> None:
            self.script = [ok(500), ok(401), ok()]
            self.tokens: list[str | None] = []

        async def send(self, request: ApiRequest, token: str | None) -> ApiResponse:
            self.tokens.append(token)
            return self.script.pop(0)

        async def aclose(self) -> None:
            return None

    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    issued = iter(["a", "b"])
    transport = Scripted()
    client = AsyncLineClient(
        token=lambda: next(issued), transport=transport, sleep=fake_sleep, rand=lambda: 1.0, rate_limits=None
    )
    assert asyncio.run(client.run(op())) == {}
    assert transport.tokens == ["a", "a", "b"]
    assert slept == [0.25]


def test_the_sync_driver_surfaces_the_final_error() -> None:
    from linepush.client import LineClient

    class Refusing:
        def send(self, request: ApiRequest, token: str | None) -> ApiResponse:
            raise ConnectError("connection refused")

        def close(self) -> None:
            return None

    slept: list[float] = []
    client = LineClient(
        token="static",
        transport=Refusing(),
        sleep=slept.append,
        rate_limits=None,
        retry=RetryPolicy(max_attempts=3),
    )
    with pytest.raises(ConnectError) as info:
        client.run(op())
    assert info.value.attempts == 3
    assert len(slept) == 2


def test_the_async_driver_takes_a_cached_token_without_awaiting_the_provider() -> None:
    from linepush.client import AsyncLineClient

    class Provider:
        def __init__(self) -> None:
            self.held: str | None = "cached"
            self.awaited = 0

        def cached_token(self) -> str | None:
            return self.held

        async def aget_token(self) -> str:
            self.awaited += 1
            return "fetched"

        def invalidate(self, token: str) -> None:
            self.held = None

    class Echo:
        def __init__(self) -> None:
            self.tokens: list[str | None] = []

        async def send(self, request: ApiRequest, token: str | None) -> ApiResponse:
            self.tokens.append(token)
            return ok()

        async def aclose(self) -> None:
            return None

    provider, transport = Provider(), Echo()
    client = AsyncLineClient(token=provider, transport=transport, rate_limits=None)
    asyncio.run(client.run(op()))
    provider.held = None  # nothing usable in memory: the provider is awaited
    asyncio.run(client.run(op()))
    assert transport.tokens == ["cached", "fetched"] and provider.awaited == 1
