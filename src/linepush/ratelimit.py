"""Client-side rate limits per endpoint, so a channel never trips LINE's own. Pure: time is passed in.

Each endpoint gets a token bucket, written as GCRA ("virtual scheduling"): a request reserves the next free
slot and is told how long to wait for it. The emission interval is chosen so that *no window* of the limit's
period ever holds more than the documented count, burst included: with a burst of ``b`` requests allowed at
once, the interval is ``period / (count - b + 1)``. LINE does not document its bucket sizes, so a burst of 1
(strict pacing) is the default for per-second limits.

Sends are released on a *tick* (5 ms by default): a request whose slot falls inside a tick goes at the end
of that tick, together with the others of that tick, instead of each waking up on its own timer. At 2,000/s
that is 10 requests per wake-up instead of 1, which costs about a third less CPU (measured by
``bench/cap.py``). Rounding a send up to the end of its tick never breaks the guarantee above: when the
period is a whole number of ticks, the sends of any window of the period are the slots of one interval of the
period's length, which GCRA already bounds. The sustained rate stays exactly the documented one; a request
on an idle limiter waits at most one tick (the price of lining up with the others). ``tick=0`` paces each
request on its own slot; a rate whose period is not a whole number of ticks is paced that way too.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["DEFAULT_RATES", "DEFAULT_TICK", "Rate", "RateLimiter"]


@dataclass(frozen=True, slots=True)
class Rate:
    """``count`` requests per ``period`` seconds, of which up to ``burst`` may go at once."""

    count: int
    period: float = 1.0
    burst: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or self.period <= 0:
            raise ValueError("a rate needs a positive count and period")
        if not 1 <= self.burst <= self.count:
            raise ValueError("burst must be between 1 and count")

    @property
    def interval(self) -> float:
        return self.period / (self.count - self.burst + 1)

    @property
    def tolerance(self) -> float:
        return (self.burst - 1) * self.interval


_PER_SECOND_2000 = Rate(2000)
_HOURLY = Rate(60, 3600.0, burst=10)

#: LINE's documented limits per endpoint (method and path). Endpoints not listed fall under "other": 2,000/s.
DEFAULT_RATES: Mapping[str, Rate] = {
    "POST /v2/bot/message/push": _PER_SECOND_2000,
    "POST /v2/bot/message/multicast": Rate(200),
    "POST /v2/bot/message/broadcast": _HOURLY,
    "POST /v2/bot/message/narrowcast": _HOURLY,
    "POST /v2/oauth/accessToken": Rate(370),
    "other": _PER_SECOND_2000,
}


#: Seconds between releases of waiting requests (see the module's docstring).
DEFAULT_TICK = 0.005


class RateLimiter:
    """Hands out send slots per endpoint; shared by every task and thread of one client."""

    def __init__(self, rates: Mapping[str, Rate] = DEFAULT_RATES, *, tick: float = DEFAULT_TICK) -> None:
        if not (isinstance(tick, int | float) and 0 <= tick < math.inf):
            raise ValueError(f"tick must be 0 or more seconds, not {tick!r}")
        self._rates = dict(rates)
        self._default = self._rates.get("other")
        self.tick = float(tick)
        # Per endpoint: the tick its sends are released on (0: none, when the period is not a whole number).
        self._ticks = {endpoint: _tick_for(rate, self.tick) for endpoint, rate in self._rates.items()}
        self._default_tick = self._ticks.get("other", 0.0)
        # Theoretical arrival time of the next request, per endpoint.
        self._tat: dict[str, float] = {}
        self._lock = threading.Lock()

    def rate_for(self, endpoint: str) -> Rate | None:
        return self._rates.get(endpoint, self._default)

    def _tick_of(self, endpoint: str) -> float:
        return self._ticks.get(endpoint, self._default_tick)

    def reserve(self, endpoint: str, now: float) -> float:
        """Reserve a slot for one request on ``endpoint``; returns the seconds to wait before sending."""
        rate = self._rates.get(endpoint, self._default)
        if rate is None:
            return 0.0
        with self._lock:
            tat = self._tat.get(endpoint, now)
            if tat < now:
                tat = now
            start = tat - rate.tolerance
            self._tat[endpoint] = tat + rate.interval
        return release_wait(start if start > now else now, now, self._tick_of(endpoint))


def _tick_for(rate: Rate, tick: float) -> float:
    if tick <= 0:
        return 0.0
    ticks = rate.period / tick
    return tick if round(ticks) >= 1 and abs(ticks - round(ticks)) < 1e-6 else 0.0


def release_wait(slot: float, now: float, tick: float) -> float:
    """Seconds from ``now`` until the end of the tick holding ``slot`` (``slot`` itself without a tick).

    The 1e-9 lets a slot that float arithmetic put a hair past a tick's end go with that tick."""
    if tick:
        slot = math.ceil(slot / tick - 1e-9) * tick
    return slot - now if slot > now else 0.0
