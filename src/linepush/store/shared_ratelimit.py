"""A rate limiter whose slots are reserved in the store, so every worker of a channel shares one limit.

With an SQLite store that is every process on the host; with PostgreSQL, every process on every host.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping

from linepush.ratelimit import DEFAULT_RATES, DEFAULT_TICK, Rate, RateLimiter, release_wait
from linepush.store.base import Store, StoreError
from linepush.store.checks import check_name

__all__ = ["SharedRateLimiter"]

log = logging.getLogger("linepush.ratelimit")


class SharedRateLimiter(RateLimiter):
    """A drop-in :class:`~linepush.ratelimit.RateLimiter` (same ``reserve(endpoint, now)``) for one channel,
    whose per-endpoint GCRA state is a row of the store (:meth:`Store.reserve_rate`, key
    ``"<channel id>:<endpoint>"``).

    The ``now`` a client passes to :meth:`reserve` is its monotonic clock, meaningless to another host, so
    the shared state runs on ``clock`` (UNIX seconds, injectable): hosts sharing a limit must keep their
    clocks in step (NTP). Sends are released on ``tick`` boundaries of that clock, as with the in-memory
    limiter. When the store fails, the request is paced by this process's own limiter instead
    (logged once until the store answers again): a store outage slows sending down to one process's share at
    worst, and never stops it.
    """

    def __init__(
        self,
        store: Store,
        channel_id: str,
        rates: Mapping[str, Rate] = DEFAULT_RATES,
        *,
        clock: Callable[[], float] = time.time,
        tick: float = DEFAULT_TICK,
    ) -> None:
        super().__init__(rates, tick=tick)
        self._store = store
        self._prefix = check_name(channel_id, "channel_id") + ":"
        self._clock = clock
        self._degraded = False
        self._state_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SharedRateLimiter({self._store!r}, {self._prefix[:-1]!r})"

    def reserve(self, endpoint: str, now: float) -> float:
        """Reserve a slot for one request on ``endpoint``; returns the seconds to wait before sending."""
        rate = self.rate_for(endpoint)
        if rate is None:
            return 0.0
        shared_now = self._clock()
        try:
            wait = self._store.reserve_rate(
                self._prefix + endpoint, rate.interval, rate.tolerance, shared_now
            )
        except StoreError as exc:
            with self._state_lock:
                first, self._degraded = not self._degraded, True
            if first:
                log.warning("the shared rate limit is unavailable (%s); pacing this process on its own", exc)
            return super().reserve(endpoint, now)
        if self._degraded:
            with self._state_lock:
                back, self._degraded = self._degraded, False
            if back:
                log.info("the shared rate limit is available again")
        # Released on the ticks of the shared clock, so every process's sends of one tick go together.
        return release_wait(shared_now + wait, shared_now, self._tick_of(endpoint))
