"""Tunable behaviour of the LINE emulator: limits, lifetimes and the choices FACTS.md leaves open."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True)
class RateLimit:
    """A token bucket: capacity ``count``, refilled continuously at ``count / period`` per second."""

    count: int
    period: float

    def __post_init__(self) -> None:
        if self.count < 1 or not self.period > 0:
            raise ValueError("a rate limit needs count >= 1 and period > 0")


def _documented_rate_limits() -> Mapping[str, RateLimit]:
    # FACTS §3.9: per channel and per endpoint+method; bucket parameters are not documented, so the
    # capacity is the documented count and the refill is continuous.
    per_second = RateLimit(2000, 1.0)
    limits = {
        "POST /v2/bot/message/push": per_second,
        "POST /v2/bot/message/reply": per_second,
        "POST /v2/bot/message/multicast": RateLimit(200, 1.0),
        "POST /v2/bot/message/broadcast": RateLimit(60, 3600.0),
        "POST /v2/bot/message/narrowcast": RateLimit(60, 3600.0),
        "GET /v2/bot/message/quota": per_second,
        "GET /v2/bot/message/quota/consumption": per_second,
        "GET /v2/bot/message/progress/narrowcast": per_second,
        "POST /v2/oauth/accessToken": RateLimit(370, 1.0),
        "POST /v2/bot/channel/webhook/test": RateLimit(60, 3600.0),
        "GET /v2/bot/channel/webhook/endpoint": RateLimit(1000, 60.0),
        "PUT /v2/bot/channel/webhook/endpoint": RateLimit(1000, 60.0),
    }
    for kind in ("reply", "push", "multicast", "narrowcast", "broadcast"):
        limits[f"POST /v2/bot/message/validate/{kind}"] = per_second
    return MappingProxyType(limits)


DOCUMENTED_RATE_LIMITS: Mapping[str, RateLimit] = _documented_rate_limits()


@dataclass(frozen=True)
class EmulatorConfig:
    """Every knob of the emulator; the defaults follow FACTS.md.

    ``rate_limits`` maps "METHOD /path" to a bucket; ``None`` turns rate limiting off.
    """

    rate_limits: Mapping[str, RateLimit] | None = field(default_factory=lambda: DOCUMENTED_RATE_LIMITS)
    max_body_bytes: int = 2 * 1024 * 1024
    short_lived_lifetime: int = 2_592_000
    stateless_lifetime: int = 900
    max_short_lived_tokens: int = 30
    max_v21_tokens: int = 30
    max_token_exp: int = 2_592_000
    # The JWT "must expire within 30 minutes of its creation"; without an iat we measure from arrival.
    max_assertion_lifetime: float = 1800.0
    # Clients commonly compute exp as now + 1800 with rounding; one second absorbs that.
    assertion_leeway: float = 1.0
    # LINE's JWT guide has a sample whose exp/token_exp are decimal strings; accepted (not documented).
    numeric_string_claims: bool = True
    retry_key_window: float = 86_400.0
    # FACTS §8.2: whether "" is a valid text is not stated; LINE's error example says "May not be empty".
    allow_empty_text: bool = False
    # FACTS §8.2: v2.1 revoke of a non-existent token is both "no error" and a listed 400 cause.
    # The reference text says no error, so that is the default.
    revoke_unknown_v21_is_error: bool = False
    default_monthly_quota: int | None = None
    # FACTS §6: reply tokens are single use and good for about a minute (not guaranteed beyond).
    reply_token_lifetime: float = 60.0
    # Seconds the emulator waits for the bot to answer a webhook (LINE's own timeout is not documented).
    webhook_timeout: float = 10.0
    # Redeliveries of a failed webhook when the channel has redelivery on (LINE's count is not documented).
    webhook_redeliveries: int = 2
    # LINE insists on an https webhook URL; a bot on loopback is plain http, so by default so is this.
    webhook_require_https: bool = False
    # The hosts a webhook URL may name (None: any). A test run that fuzzes the API sets loopback only, so
    # the emulator never connects anywhere else.
    webhook_hosts: tuple[str, ...] | None = None
    # Delivery statistics (GET /v2/bot/message/delivery/*): LINE reports "unavailable_for_privacy" below
    # 20 messages a day; 0 shows every count.
    delivery_stats_privacy_threshold: int = 20
