"""The per-token limits of the Notify API: calls and image uploads per window, counted in memory, and the
``X-RateLimit-*`` headers that say what is left."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from linepush.errors import ConfigurationError

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
    """Counts calls and uploads per gateway token, in memory.

    Counts are per gateway process: several processes behind one address each allow the full limit. Only
    the event loop's thread calls it, so it needs no lock.
    """

    def __init__(self, limits: RateLimits = DEFAULT_RATE_LIMITS) -> None:
        self.limits = limits
        # token id -> [window start, calls, images]
        self._used: dict[int, list[float]] = {}

    def _entry(self, token_id: int, now: float) -> list[float]:
        start = math.floor(now / self.limits.window) * self.limits.window
        entry = self._used.get(token_id)
        if entry is None or entry[0] != start:
            if len(self._used) > 10_000:
                # Tokens idle since an earlier window have nothing worth keeping.
                self._used = {k: v for k, v in self._used.items() if v[0] >= start}
            entry = self._used[token_id] = [start, 0, 0]
        return entry

    def quota(self, token_id: int, now: float) -> Quota:
        start, calls, images = self._entry(token_id, now)
        return Quota(
            limit=self.limits.calls,
            remaining=max(self.limits.calls - int(calls), 0),
            image_limit=self.limits.images,
            image_remaining=max(self.limits.images - int(images), 0),
            reset=math.ceil(start + self.limits.window),
        )

    def take_call(self, token_id: int, now: float) -> bool:
        """Count one call; False (and nothing counted) when the window's calls are used up."""
        entry = self._entry(token_id, now)
        if entry[1] >= self.limits.calls:
            return False
        entry[1] += 1
        return True

    def take_image(self, token_id: int, now: float) -> bool:
        """Count one upload; False (and nothing counted) when the window's uploads are used up."""
        entry = self._entry(token_id, now)
        if entry[2] >= self.limits.images:
            return False
        entry[2] += 1
        return True

    def give_back_image(self, token_id: int, now: float) -> None:
        entry = self._entry(token_id, now)
        entry[2] = max(entry[2] - 1, 0)
