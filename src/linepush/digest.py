"""Digests: the notifications to one chat within a window merged into one push, to spare the monthly quota.

A digest is an ordinary queued push row of the outbox, due when its window closes; each notification that
comes for the same chat meanwhile is merged into it when it is stored (:meth:`Store.append_digest`), so the
worker sends it as any other row. Its texts become ONE text, headed with the count and the time span and
the notifications oldest first (newest last); the text is cut into further text objects only where LINE's
5,000 UTF-16 code units force it (never inside a surrogate pair). Objects that are not plain text (images,
stickers) are not merged into the text: they follow the texts as objects of their own. What does not fit in
one push (5 objects) opens the next digest.

    append_to_digest(store, channel_id, "U4af49806...", [{"type": "text", "text": "disk full"}],
                     window=30, now=time.time(), zone=ZoneInfo("Asia/Tokyo"))
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, tzinfo
from typing import Any, Final

from linepush.api import messaging
from linepush.errors import ValidationError
from linepush.messages import MAX_MESSAGES, MAX_TEXT_UTF16
from linepush.store.base import MAX_DIGEST_WINDOW, DigestAppend, DigestPart, DigestRender, Store

__all__ = [
    "DEFAULT_DIGEST_WINDOW",
    "append_to_digest",
    "digest_messages",
    "digest_part",
    "digest_render",
    "parse_window",
    "split_text",
]

#: The window a digest option without a value stands for.
DEFAULT_DIGEST_WINDOW: Final = 30.0
_UNITS: Final = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_WINDOW: Final = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", re.IGNORECASE)


def parse_window(value: object, where: str = "digest") -> float:
    """A digest window: seconds as a number, or a text such as ``30s``, ``2m``, ``1h`` or ``1d`` (a bare
    number is seconds). More than 0 and at most a day; anything else is a :class:`ValidationError` that
    says so and which units are read."""
    if isinstance(value, bool):
        seconds = math.nan
    elif isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (found := _WINDOW.fullmatch(value)):
        seconds = float(found.group(1)) * _UNITS[found.group(2).lower()]
    else:
        raise ValidationError(
            f"{where}: {value!r} is not a window; give a number with s, m, h or d (seconds, minutes, "
            "hours, days) such as 30s, 2m or 1h"
        )
    if not (0 < seconds <= MAX_DIGEST_WINDOW):
        raise ValidationError(f"{where}: the window must be more than 0 seconds and at most a day (24h)")
    return seconds


def _plain_text(message: Mapping[str, Any]) -> str | None:
    """The text of a plain text object (no emojis, quick replies or other keys that merging would lose)."""
    text = message.get("text")
    if message.get("type") == "text" and set(message) == {"type", "text"} and isinstance(text, str):
        return text
    return None


def digest_part(messages: Sequence[Mapping[str, Any]], at: float) -> DigestPart:
    """A notification's messages as a digest part: its plain texts (one per line) and the other objects."""
    texts: list[str] = []
    extras: list[Mapping[str, Any]] = []
    for message in messages:
        text = _plain_text(message)
        if text is None:
            extras.append(dict(message))
        else:
            texts.append(text)
    return DigestPart(at, "\n".join(texts), tuple(extras))


def split_text(text: str, limit: int = MAX_TEXT_UTF16) -> list[str]:
    """``text`` cut into pieces of at most ``limit`` UTF-16 code units, each as long as it may be; a cut
    never falls inside a surrogate pair (an emoji outside the BMP counts 2 and stays whole)."""
    if limit < 2:
        raise ValueError("a piece must hold at least 2 UTF-16 code units (one surrogate pair)")
    encoded = text.encode("utf-16-le", "surrogatepass")
    if len(encoded) <= 2 * limit:
        return [text] if text else []
    pieces: list[str] = []
    start = 0
    while start < len(encoded):
        end = min(start + 2 * limit, len(encoded))
        if end < len(encoded):
            last = int.from_bytes(encoded[end - 2 : end], "little")
            if 0xD800 <= last <= 0xDBFF:  # a high surrogate: its low half is past the cut
                end -= 2
        pieces.append(encoded[start:end].decode("utf-16-le", "surrogatepass"))
        start = end
    return pieces


def _moment(at: float, zone: tzinfo, fmt: str) -> str:
    return datetime.fromtimestamp(at, zone).strftime(fmt)


def digest_header(parts: Sequence[DigestPart], zone: tzinfo) -> str:
    """``🔔 12 notifications, 2026-12-01 12:00:01 – 12:00:29 JST``: the count and the span, in ``zone``."""
    first, last = min(p.at for p in parts), max(p.at for p in parts)
    same_day = _moment(first, zone, "%Y-%m-%d") == _moment(last, zone, "%Y-%m-%d")
    end = _moment(last, zone, "%H:%M:%S" if same_day else "%Y-%m-%d %H:%M:%S")
    start = _moment(first, zone, "%Y-%m-%d %H:%M:%S")
    return f"🔔 {len(parts)} notifications, {start} – {end} {_moment(last, zone, '%Z')}".strip()


def digest_messages(
    parts: Sequence[DigestPart],
    zone: tzinfo,
    *,
    max_text: int = MAX_TEXT_UTF16,
    max_messages: int = MAX_MESSAGES,
) -> list[dict[str, Any]] | None:
    """The message objects of a digest, or None when they need more than ``max_messages``.

    One notification is sent as it came. Several become one text: the header, then each notification's
    time and text, oldest first, one per line; cut into more text objects only where ``max_text`` forces it.
    The objects that are not plain text follow, in the order they came.
    """
    if not parts:
        return []
    if len(parts) == 1:
        text = parts[0].text
    else:
        lines = [digest_header(parts, zone)]
        lines += [f"[{_moment(p.at, zone, '%H:%M:%S')}] {p.text}" for p in parts if p.text]
        text = "\n".join(lines)
    texts = split_text(text, max_text)
    extras = [dict(e) for p in parts for e in p.extras]
    if len(texts) + len(extras) > max_messages:
        return None
    return [*({"type": "text", "text": t} for t in texts), *extras]


def digest_render(to: str, zone: tzinfo, *, notification_disabled: bool = False) -> DigestRender:
    """What :meth:`Store.append_digest` renders a digest to ``to`` with: its push body, checked as LINE
    would check it (a :class:`ValidationError` for what LINE would refuse)."""

    def render(parts: Sequence[DigestPart]) -> dict[str, Any] | None:
        messages = digest_messages(parts, zone)
        if messages is None:
            return None
        return messaging.push_payload(to, messages, notification_disabled=notification_disabled)

    return render


def append_to_digest(
    store: Store,
    channel_id: str,
    to: str,
    messages: Sequence[Mapping[str, Any]],
    *,
    window: float,
    now: float,
    zone: tzinfo,
    notification_disabled: bool = False,
) -> DigestAppend:
    """Merge a notification (``messages``, as for one push) into the open digest of ``to``, or open one that
    closes ``window`` seconds from ``now``. Stored when this returns; nothing is stored on any error."""
    part = digest_part(messages, now)
    render = digest_render(to, zone, notification_disabled=notification_disabled)
    # Checked alone first, so that a notification LINE would refuse is said to be refused as such.
    if render([part]) is None:
        raise ValidationError(
            f"this notification needs more than {MAX_MESSAGES} message objects, LINE's limit per push"
        )
    return store.append_digest(
        channel_id,
        to,
        part,
        window=parse_window(window),
        now=now,
        render=render,
        notification_disabled=notification_disabled,
    )
