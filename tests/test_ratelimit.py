"""The client-side rate limiter: pacing, bursts, and that no window ever exceeds the documented count."""

from __future__ import annotations

import bisect
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from linepush.ratelimit import DEFAULT_RATES, Rate, RateLimiter


def send_times(limiter: RateLimiter, endpoint: str, arrivals: list[float]) -> list[float]:
    return [now + limiter.reserve(endpoint, now) for now in arrivals]


def max_in_window(times: list[float], period: float) -> int:
    """The most requests in any half-open window of ``period``; 1 ns absorbs float rounding at the edges."""
    period -= 1e-9
    ordered = sorted(times)
    return max(bisect.bisect_left(ordered, t + period) - i for i, t in enumerate(ordered))


def test_a_burst_of_simultaneous_requests_is_paced_at_the_rate() -> None:
    limiter = RateLimiter({"e": Rate(10, 1.0)})
    times = send_times(limiter, "e", [100.0] * 25)
    assert times[:3] == pytest.approx([100.0, 100.1, 100.2])
    assert times[-1] == pytest.approx(102.4)
    assert max_in_window(times, 1.0) == 10


def test_burst_goes_at_once_and_the_window_still_holds_the_count() -> None:
    rate = Rate(60, 3600.0, burst=10)
    limiter = RateLimiter({"b": rate})
    times = send_times(limiter, "b", [0.0] * 61)
    assert times[:10] == pytest.approx([0.0] * 10, abs=1e-9)
    assert times[10] > 0
    assert max_in_window(times, 3600.0) <= 60


def test_idle_time_does_not_bank_more_than_the_burst() -> None:
    limiter = RateLimiter({"e": Rate(10, 1.0, burst=3)})
    send_times(limiter, "e", [0.0] * 3)
    times = send_times(limiter, "e", [1000.0] * 5)
    assert times[:3] == pytest.approx([1000.0] * 3, abs=1e-9)
    assert times[3] > 1000.0


def test_endpoints_are_limited_independently_and_unknown_ones_fall_under_other() -> None:
    limiter = RateLimiter(DEFAULT_RATES)
    assert limiter.reserve("POST /v2/bot/message/push", 0.0) == 0.0
    assert limiter.reserve("POST /v2/bot/message/multicast", 0.0) == 0.0
    assert limiter.reserve("POST /v2/bot/message/multicast", 0.0) == pytest.approx(1 / 200)
    assert limiter.rate_for("GET /v2/bot/message/quota") == DEFAULT_RATES["other"]
    assert RateLimiter({}).reserve("anything", 0.0) == 0.0


def test_reservations_from_many_threads_never_share_a_slot() -> None:
    limiter = RateLimiter({"e": Rate(1000, 1.0)}, tick=0)
    waits: list[float] = []
    lock = threading.Lock()

    def work() -> None:
        got = [limiter.reserve("e", 5.0) for _ in range(250)]
        with lock:
            waits.extend(got)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({round(w, 9) for w in waits}) == 1000


@settings(max_examples=60, deadline=None)
@given(
    count=st.integers(1, 50),
    burst_share=st.floats(0, 1),
    gaps=st.lists(st.floats(0, 0.5), min_size=1, max_size=200),
)
def test_no_window_ever_holds_more_than_the_count(count: int, burst_share: float, gaps: list[float]) -> None:
    burst = max(1, round(count * burst_share))
    limiter = RateLimiter({"e": Rate(count, 1.0, burst=burst)})
    now, arrivals = 0.0, []
    for gap in gaps:
        now += gap
        arrivals.append(now)
    times = send_times(limiter, "e", arrivals)
    assert max_in_window(times, 1.0) <= count


@settings(max_examples=80, deadline=None)
@given(
    count=st.integers(1, 60),
    ticks_per_period=st.integers(1, 400),
    burst_share=st.floats(0, 1),
    gaps=st.lists(st.floats(0, 0.05), min_size=1, max_size=300),
)
def test_ticked_sends_keep_every_window_within_the_count_and_the_full_rate(
    count: int, ticks_per_period: int, burst_share: float, gaps: list[float]
) -> None:
    period = 1.0
    tick = period / ticks_per_period
    burst = max(1, round(count * burst_share))
    ticked = RateLimiter({"e": Rate(count, period, burst=burst)}, tick=tick)
    exact = RateLimiter({"e": Rate(count, period, burst=burst)}, tick=0)
    now, arrivals = 0.3, []
    for gap in gaps:
        now += gap
        arrivals.append(now)
    times = send_times(ticked, "e", arrivals)
    assert max_in_window(times, period) <= count
    for ticked_time, exact_time in zip(times, send_times(exact, "e", arrivals), strict=True):
        # Each goes at the end of the tick holding its exact slot: never earlier, at most one tick later.
        assert exact_time - 1e-9 <= ticked_time <= exact_time + tick + 1e-9
        assert abs(ticked_time / tick - round(ticked_time / tick)) < 1e-6


def test_waiting_requests_are_released_together_at_the_end_of_their_tick() -> None:
    limiter = RateLimiter({"e": Rate(2000, 1.0)}, tick=0.005)
    waits = [limiter.reserve("e", 10.0) for _ in range(25)]
    # 10.0 is a tick's end: its slot goes now; the next 10 slots (10.0005 to 10.005) at 10.005, and so on.
    assert waits == pytest.approx([0.0] + [0.005] * 10 + [0.01] * 10 + [0.015] * 4)
    # Over a long run the rate is still exactly 2,000/s: the 2,000th slot, 10.9995, goes at 11.0.
    assert [limiter.reserve("e", 10.0) for _ in range(1975)][-1] == pytest.approx(1.0)


def test_a_request_on_an_idle_limiter_waits_at_most_one_tick() -> None:
    limiter = RateLimiter({"e": Rate(2000, 1.0)}, tick=0.005)
    assert limiter.reserve("e", 7.0012) == pytest.approx(0.0038)
    assert RateLimiter({"e": Rate(2000, 1.0)}, tick=0).reserve("e", 7.0012) == 0.0


def test_a_period_that_is_not_a_whole_number_of_ticks_is_paced_without_them() -> None:
    limiter = RateLimiter({"odd": Rate(3, 0.0123), "even": Rate(3, 0.03)}, tick=0.005)
    assert limiter.reserve("odd", 1.0001) == 0.0
    assert limiter.reserve("odd", 1.0001) == pytest.approx(0.0041)
    assert limiter.reserve("even", 1.0001) == pytest.approx(0.0049)


@pytest.mark.parametrize("tick", [-0.001, float("nan"), float("inf"), "5ms"])
def test_a_bad_tick_is_refused(tick: object) -> None:
    with pytest.raises(ValueError, match="tick"):
        RateLimiter(DEFAULT_RATES, tick=tick)  # type: ignore[arg-type]


def test_rates_are_checked() -> None:
    with pytest.raises(ValueError):
        Rate(0)
    with pytest.raises(ValueError):
        Rate(10, burst=11)
