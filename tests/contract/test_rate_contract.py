"""Shared rate limits kept in the store (GCRA): the answers of the in-memory limiter, on every backend."""

from __future__ import annotations

import random
import threading
from typing import Any

import pytest

from linepush.errors import ValidationError
from linepush.ratelimit import Rate, RateLimiter
from linepush.store import Store


def test_first_request_goes_at_once_and_the_next_ones_are_paced(store: Store) -> None:
    waits = [store.reserve_rate("k", interval=0.25, tolerance=0.0, now=100.0) for _ in range(4)]
    assert waits == [0.0, 0.25, 0.5, 0.75]


def test_waits_shrink_as_time_passes(store: Store) -> None:
    assert store.reserve_rate("k", 0.5, 0.0, now=100.0) == 0.0
    assert store.reserve_rate("k", 0.5, 0.0, now=100.0) == 0.5
    assert store.reserve_rate("k", 0.5, 0.0, now=100.75) == 0.25
    assert store.reserve_rate("k", 0.5, 0.0, now=102.0) == 0.0


def test_a_burst_goes_at_once_then_the_rest_is_paced(store: Store) -> None:
    # Three at once (tolerance = 2 intervals), then one per interval.
    waits = [store.reserve_rate("k", interval=0.5, tolerance=1.0, now=100.0) for _ in range(5)]
    assert waits == [0.0, 0.0, 0.0, 0.5, 1.0]


def test_idle_time_earns_no_more_than_one_burst(store: Store) -> None:
    store.reserve_rate("k", 0.5, 1.0, now=100.0)
    waits = [store.reserve_rate("k", 0.5, 1.0, now=1000.0) for _ in range(4)]
    assert waits == [0.0, 0.0, 0.0, 0.5]


def test_a_clock_that_was_ahead_does_not_hold_every_sender_back_for_as_long(store: Store) -> None:
    """One reservation stamped by a clock an hour ahead (a host whose clock stepped back, or another host's
    clock that is wrong) left the slot an hour in the future: every process and host of the channel then
    waited an hour before each send, and a message retried after such a wait could go out after LINE had
    forgotten its retry key."""
    assert store.reserve_rate("k", 0.0005, 0.0, now=100.0 + 3600) == 0.0
    assert store.reserve_rate("k", 0.0005, 0.0, now=100.0) == 0.0
    assert store.reserve_rate("k", 0.0005, 0.0, now=100.0) == pytest.approx(0.0005)


def test_a_long_queue_of_waiting_senders_keeps_its_slots(store: Store) -> None:
    # Many senders waiting on a slow endpoint is not a clock jump: each still gets its own later slot.
    waits = [store.reserve_rate("k", 70.0, 0.0, now=100.0) for _ in range(40)]
    assert waits == [70.0 * n for n in range(40)]


def test_keys_are_independent(store: Store) -> None:
    assert store.reserve_rate("1000:POST /v2/bot/message/push", 1.0, 0.0, now=100.0) == 0.0
    assert store.reserve_rate("2000:POST /v2/bot/message/push", 1.0, 0.0, now=100.0) == 0.0
    assert store.reserve_rate("1000:POST /v2/bot/message/push", 1.0, 0.0, now=100.0) == 1.0


def test_agrees_with_the_in_memory_limiter(store: Store) -> None:
    rate = Rate(60, 3600.0, burst=10)
    local = RateLimiter({"e": rate}, tick=0)  # the store keeps exact slots; ticks are the limiter's
    rng = random.Random(7)
    now = 1_000.0
    for _ in range(200):
        now += rng.choice([0.0, 0.0, 1.0, 30.0, 61.0, 600.0])
        expected = local.reserve("e", now)
        assert store.reserve_rate("e", rate.interval, rate.tolerance, now) == pytest.approx(
            expected, abs=1e-6
        )


def test_concurrent_reservations_each_get_their_own_slot(store: Store) -> None:
    barrier = threading.Barrier(8)
    waits: list[float] = []
    lock = threading.Lock()

    def reserve() -> None:
        barrier.wait()
        for _ in range(10):
            wait = store.reserve_rate("k", 0.25, 0.0, now=100.0)
            with lock:
                waits.append(wait)

    threads = [threading.Thread(target=reserve) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(waits) == [n * 0.25 for n in range(80)]


@pytest.mark.parametrize(
    "args",
    [
        ("", 1.0, 0.0, 1.0),
        ("k", 0.0, 0.0, 1.0),
        ("k", -1.0, 0.0, 1.0),
        ("k", float("inf"), 0.0, 1.0),
        ("k", 1.0, -0.5, 1.0),
        ("k", 1.0, float("nan"), 1.0),
        ("k", 1.0, 0.0, float("nan")),
    ],
)
def test_bad_rate_input_is_refused_clearly(store: Store, args: Any) -> None:
    with pytest.raises(ValidationError):
        store.reserve_rate(*args)
