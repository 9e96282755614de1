"""Injected faults: fail, delay or drop chosen requests, to test clients against a misbehaving LINE."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Literal

FaultMode = Literal["status", "latency", "drop_after_accept", "random"]
FAULT_MODES: tuple[str, ...] = ("status", "latency", "drop_after_accept", "random")

# LINE-style bodies for injected statuses; only 500's wording is LINE's own (FACTS §4.2 lists the codes).
_BODIES: dict[int, str] = {
    400: "Bad request",
    401: "Authentication failed due to the following reason: invalid token. "
    "Confirm that the access token in the authorization header is valid.",
    403: "Access to this API is not available for your account",
    404: "Not found",
    409: "The retry key is already accepted",
    429: "The API rate limit has been exceeded. Try again later.",
    500: "Internal server error",
    502: "Bad gateway",
    503: "Service unavailable",
    504: "Gateway timeout",
}


def fault_body(status: int) -> dict[str, Any]:
    return {"message": _BODIES.get(status, "Internal server error")}


class FaultError(ValueError):
    """A fault description that cannot be used; the message says which field is wrong."""


@dataclass
class Fault:
    """One injected fault on one path; ``remaining`` None means until cleared."""

    path: str
    mode: FaultMode
    status: int = 500
    remaining: int | None = 1
    latency_ms: int = 0
    rate: float = 1.0
    rng: random.Random = field(default_factory=random.Random)

    def describe(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "mode": self.mode,
            "status": self.status,
            "remaining": self.remaining,
            "latency_ms": self.latency_ms,
            "rate": self.rate,
        }


def _int_field(spec: dict[str, Any], name: str, default: int | None, low: int, high: int) -> int | None:
    value = spec.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise FaultError(f"'{name}' must be an integer between {low} and {high}")
    return value


def parse_fault(spec: Any) -> Fault:
    """Build a :class:`Fault` from the admin API's JSON, refusing anything unclear."""
    if not isinstance(spec, dict):
        raise FaultError("a fault must be a JSON object")
    path = spec.get("path")
    if not isinstance(path, str) or not path.startswith("/") or path.startswith("/_emulator"):
        raise FaultError("'path' must be an API path such as /v2/bot/message/push")
    mode = spec.get("mode")
    if mode not in FAULT_MODES:
        raise FaultError(f"'mode' must be one of {', '.join(FAULT_MODES)}")
    status = _int_field(spec, "status", 500, 400, 599)
    # random faults last until cleared unless a count is given; the others default to the next request.
    count = _int_field(spec, "count", None if mode == "random" else 1, 1, 1_000_000)
    latency = _int_field(spec, "latency_ms", 0, 0, 60_000)
    rate = spec.get("rate", 1.0)
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0.0 <= rate <= 1.0:
        raise FaultError("'rate' must be a number between 0 and 1")
    seed = spec.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise FaultError("'seed' must be an integer")
    if mode == "latency" and "latency_ms" not in spec:
        raise FaultError("a latency fault needs 'latency_ms'")
    assert status is not None and latency is not None
    return Fault(
        path=path,
        mode=mode,
        status=status,
        remaining=count,
        latency_ms=latency,
        rate=float(rate),
        rng=random.Random(seed),
    )


@dataclass(frozen=True)
class FaultAction:
    """What to do with one request: answer ``status`` now, sleep, and/or drop after an accepted answer."""

    status: int | None = None
    latency_ms: int = 0
    drop: bool = False


def decide(faults: list[Fault], path: str) -> FaultAction:
    """Consume the faults of ``path`` that apply to this request and merge them into one action."""
    status: int | None = None
    latency = 0
    drop = False
    for fault in faults:
        if fault.path != path or fault.remaining == 0:
            continue
        if fault.mode == "random":
            if fault.rng.random() >= fault.rate:
                continue
            if status is None:
                status = fault.status
        elif fault.mode == "status":
            if status is not None:
                continue  # one failing fault per request; the next one waits for the next request
            status = fault.status
        elif fault.mode == "latency":
            latency += fault.latency_ms
        else:
            if drop:
                continue
            drop = True
        if fault.remaining is not None:
            fault.remaining -= 1
    faults[:] = [f for f in faults if f.remaining != 0]
    return FaultAction(status=status, latency_ms=latency, drop=drop and status is None)
