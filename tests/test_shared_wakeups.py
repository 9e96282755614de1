"""Requests the rate limiter releases on one tick wake up on one shared timer: on a real event loop, with a
transport that answers at once, so every wait is the limiter's."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from linepush import AsyncLineClient
from linepush.api._base import ApiRequest, ApiResponse
from linepush.ratelimit import Rate, RateLimiter

USER = "U" + "0" * 32
ANSWER = json.dumps({"sentMessages": [{"id": "1", "quoteToken": "q"}]}).encode()


class Instant:
    """Answers every push at once, and notes when (by the loop's clock) each was sent."""

    def __init__(self) -> None:
        self.sent: list[float] = []

    async def send(self, request: ApiRequest, token: str | None, **_: Any) -> ApiResponse:
        self.sent.append(asyncio.get_running_loop().time())
        return ApiResponse(200, {"x-line-request-id": "r"}, ANSWER)

    async def aclose(self) -> None:
        return None


def count_timers(loop: asyncio.AbstractEventLoop) -> list[float]:
    """Wraps ``loop.call_later`` to note each delay asked for."""
    asked: list[float] = []
    call_later = loop.call_later

    def counted(delay: float, *args: Any, **kwargs: Any) -> asyncio.TimerHandle:
        asked.append(delay)
        return call_later(delay, *args, **kwargs)

    loop.call_later = counted  # type: ignore[method-assign,assignment]
    return asked


def client(transport: Instant) -> AsyncLineClient:
    # LINE's push limit, 2,000/s, released on 5 ms ticks: 10 requests a tick.
    limiter = RateLimiter({"POST /v2/bot/message/push": Rate(2000)}, tick=0.005)
    return AsyncLineClient(token="t", transport=transport, rate_limiter=limiter)


def test_the_requests_of_one_tick_share_one_timer() -> None:
    transport = Instant()
    line = client(transport)

    async def main() -> list[float]:
        timers = count_timers(asyncio.get_running_loop())
        await asyncio.gather(*(line.push(USER, f"n{i}") for i in range(40)))
        return timers

    timers = asyncio.run(main())
    assert len(transport.sent) == 40
    # 40 slots 0.5 ms apart span 20 ms: 4 ticks, 5 if the first slot falls just before a tick's end. A
    # timer per request would be 39 or 40.
    assert 4 <= len(timers) <= 5, timers


def test_a_cancelled_waiter_leaves_the_others_of_its_tick_waiting() -> None:
    transport = Instant()
    line = client(transport)

    async def main() -> list[BaseException | Any]:
        tasks = [asyncio.create_task(line.push(USER, f"n{i}")) for i in range(30)]
        await asyncio.sleep(0)  # each has reserved its slot and waits for it
        tasks[14].cancel()
        return await asyncio.gather(*tasks, return_exceptions=True)

    outcomes = asyncio.run(main())
    assert isinstance(outcomes[14], asyncio.CancelledError)
    assert all(not isinstance(o, BaseException) for i, o in enumerate(outcomes) if i != 14)
    assert len(transport.sent) == 29


def test_a_client_used_on_a_second_event_loop_waits_on_that_loop() -> None:
    transport = Instant()
    line = client(transport)

    async def burst() -> None:
        await asyncio.gather(*(line.push(USER, f"n{i}") for i in range(25)))

    asyncio.run(burst())
    asyncio.run(burst())
    assert len(transport.sent) == 50


def test_a_wait_goes_no_earlier_than_its_slot() -> None:
    transport = Instant()
    line = client(transport)

    async def main() -> float:
        start = asyncio.get_running_loop().time()
        await asyncio.gather(*(line.push(USER, f"n{i}") for i in range(40)))
        return start

    start = asyncio.run(main())
    # The 40th slot is 19.5 ms after the first; the loop's timers fire no earlier than asked.
    assert max(transport.sent) - start >= 0.0195


@given(now=st.floats(1e-3, 1e9), ahead=st.floats(0, 1.0))
def test_a_wait_added_back_to_now_is_its_slot_exactly(now: float, ahead: float) -> None:
    """Waiters are grouped by ``now + wait``: for a slot at most ``now`` ahead (a wait is at most a period,
    and the clock has run longer than that), ``slot - now`` is exact (Sterbenz), so the sum is the slot."""
    slot = now + min(ahead, now)
    assert now + (slot - now) == slot


def test_waiters_on_two_event_loops_at_once_are_each_released() -> None:
    """One client used from two threads, each with its own loop (not what it is made for, but it must not
    leave a waiter hanging): each loop's waiters are released by that loop's timers."""
    import threading

    transport = Instant()
    line = client(transport)
    done: list[int] = []
    started = threading.Barrier(2)

    async def burst() -> None:
        started.wait(5)
        await asyncio.gather(*(line.push(USER, f"n{i}") for i in range(30)))
        done.append(1)

    threads = [threading.Thread(target=lambda: asyncio.run(asyncio.wait_for(burst(), 10))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(15)
    assert done == [1, 1]
    assert len(transport.sent) == 60
