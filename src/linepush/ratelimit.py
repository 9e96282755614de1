"""Client-side rate limits per endpoint, so a channel never trips LINE's own. Pure: time is passed in.

Each endpoint gets a token bucket, written as GCRA ("virtual scheduling"): a request reserves the next free
slot and is told how long to wait for it. The emission interval is chosen so that *no window* of the limit's
period ever holds more than the documented count, burst included: with a burst of ``b`` requests allowed at
once, the interval is ``period / (count - b + 1)``. LINE does not document its bucket sizes, so a burst of 1
(strict pacing) is the default for per-second limits.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["DEFAULT_RATES", "Rate", "RateLimiter"]


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


class RateLimiter:
    """Hands out send slots per endpoint; shared by every task and thread of one client."""

    def __init__(self, rates: Mapping[str, Rate] = DEFAULT_RATES) -> None:
        self._rates = dict(rates)
        self._default = self._rates.get("other")
        # Theoretical arrival time of the next request, per endpoint.
        self._tat: dict[str, float] = {}
        self._lock = threading.Lock()

    def rate_for(self, endpoint: str) -> Rate | None:
        return self._rates.get(endpoint, self._default)

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
        return start - now if start > now else 0.0
