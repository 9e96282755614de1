"""The per-token limits of the Notify API: calls and image uploads per window, counted in the store (so every
gateway process on it shares them), and the ``X-RateLimit-*`` headers that say what is left."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from starlette.concurrency import run_in_threadpool

from linepush.errors import ConfigurationError
from linepush.service.store import NotifyUsage, NotifyUse, gateway_store
from linepush.store import Store

__all__ = ["DEFAULT_RATE_LIMITS", "NotifyRateLimiter", "Quota", "RateLimits"]


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Calls of ``/api/notify`` and image uploads allowed per token per window.

    LINE Notify's figures (1000 calls and 50 uploads an hour) were observed, not documented (FACTS §7.1); so
    were its windows' boundaries, so here a window is a fixed stretch of ``window`` seconds counted from the
    UNIX epoch (whole clock hours by default), and ``X-RateLimit-Reset`` is its end.
    """

    calls: int = 1000
    images: int = 50
    window: float = 3600.0

    def __post_init__(self) -> None:
        if self.calls < 1 or self.images < 0 or not (self.window > 0 and math.isfinite(self.window)):
            raise ConfigurationError(
                "rate limits need at least 1 call, 0 or more images and a positive window of seconds"
            )


DEFAULT_RATE_LIMITS: Final = RateLimits()


@dataclass(frozen=True, slots=True)
class Quota:
    """What a token has left in the current window, as LINE Notify's headers say it."""

    limit: int
    remaining: int
    image_limit: int
    image_remaining: int
    reset: int

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-ImageLimit": str(self.image_limit),
            "X-RateLimit-ImageRemaining": str(self.image_remaining),
            "X-RateLimit-Reset": str(self.reset),
        }


class NotifyRateLimiter:
    """Counts calls and uploads per gateway token in the store's ``notify_usage`` table: several gateway
    processes behind one address share the limit, and each answer's headers say what all of them left.

    Each count is one statement, run in a worker thread (the event loop never waits on the store)."""

    def __init__(self, store: Store, limits: RateLimits = DEFAULT_RATE_LIMITS) -> None:
        self.limits = limits
        self._store = gateway_store(store)

    def _window(self, now: float) -> float:
        return math.floor(now / self.limits.window) * self.limits.window

    def _quota(self, start: float, used: NotifyUsage) -> Quota:
        return Quota(
            limit=self.limits.calls,
            remaining=max(self.limits.calls - used.calls, 0),
            image_limit=self.limits.images,
            image_remaining=max(self.limits.images - used.images, 0),
            reset=math.ceil(start + self.limits.window),
        )

    async def quota(self, token_id: int, now: float) -> Quota:
        start = self._window(now)
        return self._quota(start, await run_in_threadpool(self._store.notify_usage, token_id, start))

    async def take_call(self, token_id: int, now: float) -> Quota | None:
        """Count one call: its quota after it, or None (nothing counted) when the window's calls ran out."""
        return await self._take(token_id, now, "calls", self.limits.calls)

    async def take_image(self, token_id: int, now: float) -> Quota | None:
        """Count one upload; as :meth:`take_call`."""
        return await self._take(token_id, now, "images", self.limits.images)

    async def _take(self, token_id: int, now: float, what: NotifyUse, limit: int) -> Quota | None:
        start = self._window(now)
        used = await run_in_threadpool(self._store.take_notify, token_id, start, what, limit)
        return None if used is None else self._quota(start, used)

    async def give_back_call(self, token_id: int, now: float) -> None:
        """Take back a counted call whose notification could not be stored (the answer was a 5xx)."""
        await run_in_threadpool(self._store.give_back_notify, token_id, self._window(now), "calls")

    async def give_back_image(self, token_id: int, now: float) -> None:
        await run_in_threadpool(self._store.give_back_notify, token_id, self._window(now), "images")
