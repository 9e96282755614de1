"""The names LINE knows for recipient ids, for `linepush recipients list`: a user's display name (their
profile), a group's name (its summary). Rooms have none in LINE's API.

A lookup that fails says why in a few words and never fails the list. The lookups run a few at a time, each
with one retry at most, and all of them within one deadline: what is not answered by then is "timed out".
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from linepush.config import Channel, exposed_key_file
from linepush.errors import (
    AuthenticationError,
    ConfigurationError,
    ConnectError,
    LineApiError,
    LinePushError,
    NotFoundError,
    OutcomeUnknownError,
    RateLimitError,
    TokenUnavailableError,
    TransportError,
)

if TYPE_CHECKING:
    from linepush.client import AsyncLineClient

__all__ = ["DEFAULT_CONCURRENCY", "DEFAULT_TIMEOUT", "LineName", "look_up_names", "not_looked_up"]

#: Lookups in flight at once: well under LINE's 2,000 requests a second, and kind to a slow link.
DEFAULT_CONCURRENCY: Final = 8
#: Seconds all the lookups of one listing may take together.
DEFAULT_TIMEOUT: Final = 10.0

ROOM_REASON: Final = "rooms have no name in LINE's API"


@dataclass(frozen=True, slots=True)
class LineName:
    """What LINE calls a recipient (``name``), or why that is not known (``unknown``)."""

    name: str | None = None
    unknown: str | None = None

    def shown(self) -> str:
        if self.name is not None:
            return self.name
        return f"unknown ({self.unknown})" if self.unknown else "unknown"


def not_looked_up(ids: Sequence[str], reason: str) -> dict[str, LineName]:
    return {rid: LineName(unknown=ROOM_REASON if rid.startswith("R") else reason) for rid in ids}


def look_up_names(
    channel: Channel | None,
    ids: Sequence[str],
    *,
    api_base: str | None,
    store: str | None,
    concurrency: int = DEFAULT_CONCURRENCY,
    timeout: float = DEFAULT_TIMEOUT,
) -> dict[str, LineName]:
    """id → what LINE calls it, for users (U…) and groups (C…) of ``channel``; rooms are never looked up."""
    wanted = [rid for rid in dict.fromkeys(ids) if rid[:1] in ("U", "C")]
    found = not_looked_up(ids, "not looked up")
    if not wanted:
        return found
    reason = _cannot_look_up(channel)
    if reason is not None or channel is None:
        return {**found, **not_looked_up(wanted, reason or "no channel")}
    found.update(asyncio.run(_look_up_all(channel, wanted, api_base, store, concurrency, timeout)))
    return found


def _cannot_look_up(channel: Channel | None) -> str | None:
    if channel is None or channel.channel_id is None:
        return "no channel configured"
    if channel.access_token is None and channel.assertion_key_file is None and channel.channel_secret is None:
        return "no channel access token or credentials configured"
    if exposed_key_file(channel.assertion_key_file):
        return "the channel's key file is readable by others"
    return None


async def _look_up_all(
    channel: Channel,
    ids: list[str],
    api_base: str | None,
    store: str | None,
    concurrency: int,
    deadline: float,
) -> dict[str, LineName]:
    from linepush.client import AsyncLineClient
    from linepush.retry import RetryPolicy
    from linepush.transport import Timeouts

    attempt = max(0.1, min(5.0, deadline))
    client = AsyncLineClient(
        channel,
        api_base=api_base,
        store=store,
        retry=RetryPolicy(max_attempts=2, initial_backoff=0.2, max_backoff=0.5, deadline=attempt),
        timeouts=Timeouts(connect=min(2.0, attempt), read=attempt),
        pool_size=concurrency,
    )
    gate = asyncio.Semaphore(concurrency)
    names: dict[str, LineName] = {}
    # Once one lookup learns that no token can be had, the others need not try.
    stop: list[str] = []

    async def one(rid: str) -> None:
        async with gate:
            if stop:
                names[rid] = LineName(unknown=stop[0])
                return
            names[rid] = await _look_up(client, rid, stop)

    tasks = [asyncio.ensure_future(one(rid)) for rid in ids]
    try:
        await asyncio.wait(tasks, timeout=deadline)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await client.aclose()
    return {rid: names.get(rid, LineName(unknown=f"timed out after {deadline:g} s")) for rid in ids}


async def _look_up(client: AsyncLineClient, rid: str, stop: list[str]) -> LineName:
    try:
        if rid.startswith("U"):
            return LineName((await client.get_profile(rid)).display_name)
        return LineName((await client.get_group_summary(rid)).group_name)
    except LinePushError as exc:
        reason = _why(exc, rid)
        if isinstance(exc, TokenUnavailableError | AuthenticationError | ConfigurationError):
            stop.append(reason)
        return LineName(unknown=reason)


def _why(error: LinePushError, rid: str) -> str:
    """A few words on why a lookup failed (the list shows one per id)."""
    if isinstance(error, NotFoundError):
        if rid.startswith("U"):
            return "not found: not a friend of the account, or blocked it"
        return "not found: the bot is not in this group"
    if isinstance(error, TokenUnavailableError | ConfigurationError):
        return "no channel access token could be had"
    if isinstance(error, AuthenticationError):
        return "LINE refused the channel access token (401)"
    if isinstance(error, RateLimitError):
        return "LINE's rate limit (429)"
    if isinstance(error, ConnectError):
        return "LINE could not be reached"
    if isinstance(error, OutcomeUnknownError):
        return "LINE did not answer in time"
    if isinstance(error, TransportError):
        return "network error"
    if isinstance(error, LineApiError):
        return f"LINE answered {error.status}"
    return type(error).__name__
