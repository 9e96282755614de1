"""SharedRateLimiter: one channel's limit shared by clients of different processes through the store."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from tests.support.pg import PG_URL, fresh_schema

from linepush.api._base import ApiRequest, ApiResponse
from linepush.client import LineClient
from linepush.config import Channel
from linepush.ratelimit import Rate
from linepush.store import SharedRateLimiter, Store, StoreError
from linepush.store.postgres import PostgresStore

PUSH = "POST /v2/bot/message/push"


@pytest.fixture
def schema() -> Iterator[str]:
    with fresh_schema() as name:
        yield name


@pytest.fixture
def two_stores(schema: str) -> Iterator[tuple[Store, Store]]:
    """Two stores on one schema: what two processes (or hosts) would each open."""
    with PostgresStore(PG_URL, schema=schema) as a, PostgresStore(PG_URL, schema=schema) as b:
        yield a, b


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_limiters_on_different_stores_share_one_channels_slots(two_stores: tuple[Store, Store]) -> None:
    clock = Clock()
    rates = {PUSH: Rate(4)}  # one every 0.25 s
    a = SharedRateLimiter(two_stores[0], "1000", rates, clock=clock)
    b = SharedRateLimiter(two_stores[1], "1000", rates, clock=clock)

    waits = [limiter.reserve(PUSH, now=-5.0) for limiter in (a, b, a, b)]

    assert waits == [0.0, 0.25, 0.5, 0.75]
    clock.now += 1.0
    assert b.reserve(PUSH, now=0.0) == 0.0


def test_shared_slots_are_released_on_the_ticks_of_the_shared_clock(two_stores: tuple[Store, Store]) -> None:
    clock = Clock(1000.0012)
    rates = {PUSH: Rate(2000)}
    a = SharedRateLimiter(two_stores[0], "1000", rates, clock=clock, tick=0.005)
    b = SharedRateLimiter(two_stores[1], "1000", rates, clock=clock, tick=0.005)

    waits = [limiter.reserve(PUSH, now=-5.0) for limiter in (a, b) * 6]

    # Slots 1000.0012, 1000.0017, ... 1000.0047 go at 1000.005; 1000.0052 and on at 1000.010.
    assert waits == pytest.approx([0.0038] * 8 + [0.0088] * 4)


def test_channels_and_endpoints_have_limits_of_their_own(two_stores: tuple[Store, Store]) -> None:
    clock = Clock()
    rates = {PUSH: Rate(1), "other": Rate(2)}
    one = SharedRateLimiter(two_stores[0], "1000", rates, clock=clock)
    two = SharedRateLimiter(two_stores[1], "2000", rates, clock=clock)
    assert [one.reserve(PUSH, 0.0), two.reserve(PUSH, 0.0), one.reserve(PUSH, 0.0)] == [0.0, 0.0, 1.0]
    # Endpoints without a rate of their own fall under "other", as with the in-memory limiter.
    assert [one.reserve("GET /v2/bot/info", 0.0), one.reserve("GET /v2/bot/info", 0.0)] == [0.0, 0.5]


def test_no_rate_means_no_wait(two_stores: tuple[Store, Store]) -> None:
    limiter = SharedRateLimiter(two_stores[0], "1000", {PUSH: Rate(1)}, clock=Clock())
    assert [limiter.reserve("GET /v2/bot/info", 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]


def test_a_failing_store_falls_back_to_pacing_this_process_alone(
    schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = PostgresStore(PG_URL, schema=schema)
    limiter = SharedRateLimiter(store, "1000", {PUSH: Rate(2)}, clock=Clock())
    assert limiter.reserve(PUSH, now=10.0) == 0.0
    store.close()  # every further store call fails with StoreError

    with caplog.at_level(logging.WARNING, "linepush.ratelimit"):
        waits = [limiter.reserve(PUSH, now=10.0) for _ in range(3)]

    assert waits == [0.0, 0.5, 1.0]  # the local limiter, on the caller's clock
    assert len([r for r in caplog.records if "unavailable" in r.getMessage()]) == 1
    with pytest.raises(StoreError):
        store.reserve_rate("k", 1.0, 0.0, 1.0)


def test_the_channel_id_must_be_given(two_stores: tuple[Store, Store]) -> None:
    with pytest.raises(ValueError, match="channel_id"):
        SharedRateLimiter(two_stores[0], "")


class Recorder:
    """A transport that answers every push with success and records nothing but the count."""

    def __init__(self) -> None:
        self.sent = 0

    def send(self, request: ApiRequest, token: str | None) -> ApiResponse:
        self.sent += 1
        body = json.dumps({"sentMessages": [{"id": str(self.sent), "quoteToken": "q"}]}).encode()
        return ApiResponse(200, {"x-line-request-id": f"rid-{self.sent}"}, body)

    def close(self) -> None:
        pass


def test_clients_given_shared_limiters_pace_each_other(two_stores: tuple[Store, Store]) -> None:
    clock = Clock()
    sleeps: list[float] = []
    clients: list[Any] = []
    for store in two_stores:
        limiter = SharedRateLimiter(store, "1000", {PUSH: Rate(10)}, clock=clock)
        clients.append(
            LineClient(
                Channel("1000"),
                token="static-token",
                transport=Recorder(),
                rate_limiter=limiter,
                sleep=sleeps.append,
            )
        )
    text = [{"type": "text", "text": "hi"}]
    for client in (*clients, *clients):
        client.push("U" + "0" * 32, text)
    assert sleeps == pytest.approx([0.1, 0.2, 0.3])
    for client in clients:
        client.close()


# -- across processes, against the emulator's own limit

EMULATED_PUSH_LIMIT = 20  # per second, for the emulator and for the clients alike
SENDS = 15


def _send(
    url: str, api_base: str, channel_id: str, token: str, shared: bool, go: Any, ready: Any, out: Any
) -> None:
    from linepush.errors import RateLimitError
    from linepush.ratelimit import RateLimiter
    from linepush.retry import RetryPolicy
    from linepush.store import open_store

    store = open_store(url)
    rates = {PUSH: Rate(EMULATED_PUSH_LIMIT)}
    limiter = SharedRateLimiter(store, channel_id, rates) if shared else RateLimiter(rates)
    # One attempt: a 429 must show, not be retried away.
    client = LineClient(
        Channel(channel_id), token=token, api_base=api_base, rate_limiter=limiter, retry=RetryPolicy(1)
    )
    ready.put(1)
    go.wait(60)
    refused = 0
    for n in range(SENDS):
        try:
            client.push("U" + "0" * 32, [{"type": "text", "text": f"{n}"}])
        except RateLimitError:
            refused += 1
    out.put(refused)
    client.close()
    store.close()


def _storm(schema: str, shared: bool) -> tuple[int, int]:
    """4 processes push at once through one channel; returns (429s they saw, 429s the emulator sent)."""
    import multiprocessing

    from tests.support.emulator import Admin
    from tests.support.pg import schema_url

    from linepush.emulator import EmulatorConfig, RateLimit, create_app, running
    from linepush.transport import Urllib3Transport

    config = EmulatorConfig(rate_limits={PUSH: RateLimit(EMULATED_PUSH_LIMIT, 1.0)})
    with running(create_app(config)) as server:
        admin = Admin(Urllib3Transport(server.url))
        channel_id, _ = admin.create_channel()
        token = admin.long_lived_token(channel_id)
        ctx = multiprocessing.get_context("spawn")
        go, ready, out = ctx.Event(), ctx.Queue(), ctx.Queue()
        args = (schema_url(schema), server.url, channel_id, token, shared, go, ready, out)
        procs = [ctx.Process(target=_send, args=args) for _ in range(4)]
        for p in procs:
            p.start()
        for _ in procs:
            ready.get(timeout=60)
        go.set()
        refused = sum(out.get(timeout=60) for _ in procs)
        for p in procs:
            p.join(30)
            assert p.exitcode == 0
        return refused, admin.count("/v2/bot/message/push", status=429)


@pytest.mark.slow
@pytest.mark.e2e
def test_processes_sharing_a_limit_in_postgresql_stay_under_the_channels_limit(schema: str) -> None:
    assert _storm(schema, shared=True) == (0, 0)


@pytest.mark.slow
@pytest.mark.e2e
def test_without_sharing_the_same_processes_trip_the_limit(schema: str) -> None:
    # The control: each process paced alone sends four times the channel's rate, and LINE says so.
    refused, sent = _storm(schema, shared=False)
    assert refused == sent > 0
