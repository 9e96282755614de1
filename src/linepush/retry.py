"""When to try a request again, and how long to wait first. Pure: no clock, no sleeping, no I/O.

The one backoff formula (:func:`backoff_delay`) serves a call's retries (:class:`RetryPolicy`) and a queued
row's (:class:`Backoff`, which the worker uses); whether an error is worth another try at all is
:func:`linepush.errors.safe_to_resend`.

The policy follows LINE's advice for the retry key: retry on connection errors, timeouts, 429 and 5xx with
exponential backoff; never on other 4xx. A request whose outcome is unknown (sent, no answer) is retried only
when sending it twice is harmless: it carries an ``X-Line-Retry-Key`` or it is a read.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from linepush.api._base import ApiRequest
from linepush.errors import ConfigurationError, LinePushError, safe_to_resend

__all__ = ["NO_RETRY", "Backoff", "RetryPolicy", "backoff_cap", "backoff_delay"]


def backoff_cap(attempt: int, initial: float, maximum: float, factor: float) -> float:
    """The longest wait after failed attempt number ``attempt`` (1-based): ``initial * factor**(attempt-1)``,
    at most ``maximum``."""
    return min(maximum, initial * factor ** max(attempt - 1, 0))


def backoff_delay(
    attempt: int,
    initial: float,
    maximum: float,
    factor: float,
    floor: float = 0.0,
    rand: Callable[[], float] = random.random,
) -> float:
    """Exponential backoff with full jitter: uniform in ``[min(floor, cap), cap]`` for the
    :func:`backoff_cap` of ``attempt``."""
    cap = backoff_cap(attempt, initial, maximum, factor)
    low = min(floor, cap)
    return low + rand() * (cap - low)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter, bounded by attempts and by an overall deadline.

    The n-th wait (n = 1, 2, …) is uniform in ``[0, min(max_backoff, initial_backoff * multiplier**(n-1))]``.
    No wait is started that would end after ``deadline`` seconds from the first attempt, and the clients cut
    an attempt still waiting for its answer at the deadline (0: one attempt, bounded by the transport's own
    timeouts).
    """

    max_attempts: int = 6
    initial_backoff: float = 0.25
    max_backoff: float = 8.0
    multiplier: float = 2.0
    deadline: float = 60.0

    def __post_init__(self) -> None:
        if type(self.max_attempts) is not int:
            raise ValueError(f"max_attempts must be a whole number, not {self.max_attempts!r}")
        for name in ("initial_backoff", "max_backoff", "multiplier", "deadline"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
                what = "a number" if name == "multiplier" else "a number of seconds"
                raise ValueError(f"{name} must be {what}, not {value!r}")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.initial_backoff < 0 or self.max_backoff < 0 or self.deadline < 0:
            raise ValueError("backoff and deadline must not be negative")
        if self.multiplier < 1:
            raise ValueError("multiplier must be at least 1")

    def may_retry(self, error: LinePushError, request: ApiRequest) -> bool:
        """Whether ``error`` on ``request`` is worth another attempt at all (see :func:`safe_to_resend`)."""
        return safe_to_resend(error, idempotent=request.idempotent)

    def backoff_cap(self, attempt: int) -> float:
        """The upper bound of the wait after failed attempt number ``attempt`` (1-based)."""
        return backoff_cap(attempt, self.initial_backoff, self.max_backoff, self.multiplier)

    def next_delay(
        self,
        attempt: int,
        error: LinePushError,
        request: ApiRequest,
        elapsed: float,
        rand: Callable[[], float] = random.random,
    ) -> float | None:
        """Seconds to wait before the next attempt, or None when ``error`` is final."""
        if attempt >= self.max_attempts or not self.may_retry(error, request):
            return None
        delay = backoff_delay(attempt, self.initial_backoff, self.max_backoff, self.multiplier, 0.0, rand)
        if elapsed + delay > self.deadline:
            return None
        return delay


#: A policy that makes exactly one attempt.
NO_RETRY = RetryPolicy(max_attempts=1)


@dataclass(frozen=True, slots=True)
class Backoff:
    """When an outbox row that failed transiently is due again: :func:`backoff_delay` after its ``attempts``.

    After attempt n (1-based) a row waits a uniform time in
    ``[minimum, min(maximum, initial * factor**(n-1))]``; the floor keeps a burst of failures from coming
    straight back at a struggling LINE.
    """

    initial: float = 2.0
    maximum: float = 600.0
    factor: float = 2.0
    minimum: float = 0.5

    def __post_init__(self) -> None:
        if self.initial < 0 or self.maximum < 0 or self.minimum < 0 or self.factor < 1:
            raise ConfigurationError("backoff times must not be negative and the factor must be at least 1")

    def delay(self, attempts: int, rand: Callable[[], float] = random.random) -> float:
        return backoff_delay(attempts, self.initial, self.maximum, self.factor, self.minimum, rand)
