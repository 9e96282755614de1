"""Webhooks into the bot: simulated users' events, built as LINE builds them (webhook.yml), signed with the
channel secret and POSTed to the channel's webhook URL, redelivered with ``isRedelivery`` when that is on."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from linepush.emulator.config import EmulatorConfig
from linepush.emulator.state import AdminError, Channel, EmulatorState

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
EVENT_TYPES = ("message", "follow", "unfollow", "join", "leave")
_IDS = {
    "user": ("userId", r"U[0-9a-f]{32}"),
    "group": ("groupId", r"C[0-9a-f]{32}"),
    "room": ("roomId", r"R[0-9a-f]{32}"),
}
_MAX_TEXT = 5000


def acceptable_url(config: EmulatorConfig, value: Any, max_length: int = 500) -> bool:
    """An http(s) URL with a host (of ``config.webhook_hosts`` when set) and a valid port."""
    if not isinstance(value, str) or len(value) > max_length:
        return False
    schemes = ("https",) if config.webhook_require_https else ("http", "https")
    try:
        parts = urlsplit(value)  # an unclosed or bad "[" of an IPv6 host raises here
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        return False
    hosts = config.webhook_hosts
    host_ok = bool(parts.hostname) and (hosts is None or parts.hostname in hosts)
    return parts.scheme in schemes and host_ok and port_ok


def signature(secret: str, body: bytes) -> str:
    """X-Line-Signature: Base64(HMAC-SHA256(key = channel secret, message = the body as sent)) (FACTS §6)."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def ulid(moment: float) -> str:
    """A ULID (as LINE's webhookEventId is): 48 bits of milliseconds, 80 random bits, Crockford base32."""
    value = (int(moment * 1000) << 80) | secrets.randbits(80)
    return "".join(_CROCKFORD[(value >> (5 * i)) & 31] for i in reversed(range(26)))


def _message_id() -> str:
    return str(secrets.randbelow(9 * 10**17) + 10**17)


@dataclass(frozen=True)
class Attempt:
    status: int  # the bot's HTTP status; 0 when no answer was received (as the test endpoint reports it)
    reason: str
    redelivery: bool

    def as_json(self) -> dict[str, Any]:
        return {"status": self.status, "reason": self.reason, "isRedelivery": self.redelivery}


async def post(url: str, secret: str, payload: dict[str, Any], answer_within: float) -> Attempt:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "X-Line-Signature": signature(secret, body),
        "User-Agent": "LineBotWebhook/2.0",
    }
    redelivery = any(e.get("deliveryContext", {}).get("isRedelivery") for e in payload["events"])
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=answer_within)) as session,
            session.post(url, data=body, headers=headers, allow_redirects=False) as response,
        ):
            await response.read()
            return Attempt(response.status, response.reason or "", redelivery)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        return Attempt(0, type(exc).__name__, redelivery)


async def deliver(state: EmulatorState, channel: Channel, events: list[dict[str, Any]]) -> list[Attempt]:
    """Send ``events`` to the channel's webhook; redeliver a failed send when the channel asks for it.

    Not documented: LINE's redelivery schedule (it waits between attempts). The emulator redelivers at
    once, up to ``config.webhook_redeliveries`` times, so tests see every attempt without waiting.
    """
    hook = channel.webhook
    if hook.url is None or not hook.active:
        return []
    payload = {"destination": channel.bot_user_id, "events": events}
    attempts = [await post(hook.url, channel.channel_secret, payload, state.config.webhook_timeout)]
    redeliveries = state.config.webhook_redeliveries if hook.redelivery else 0
    while not 200 <= attempts[-1].status < 300 and len(attempts) <= redeliveries:
        again = [{**e, "deliveryContext": {"isRedelivery": True}} for e in events]
        attempts.append(
            await post(
                hook.url, channel.channel_secret, {**payload, "events": again}, state.config.webhook_timeout
            )
        )
    return attempts


def _source(spec: Any) -> tuple[dict[str, Any], str]:
    """The event's source object and the conversation it belongs to (user, group or room id)."""
    if not isinstance(spec, dict) or spec.get("type") not in _IDS:
        raise AdminError("'source' must be an object with 'type' user, group or room")
    key, pattern = _IDS[spec["type"]]
    chat = spec.get(key)
    if not isinstance(chat, str) or not re.fullmatch(pattern, chat):
        raise AdminError(f"'source.{key}' must match {pattern}")
    source: dict[str, Any] = {"type": spec["type"], key: chat}
    user = spec.get("userId")
    if spec["type"] != "user" and user is not None:
        if not isinstance(user, str) or not re.fullmatch(_IDS["user"][1], user):
            raise AdminError(f"'source.userId' must match {_IDS['user'][1]}")
        source["userId"] = user
    return source, chat


def _message(spec: Any) -> dict[str, Any]:
    if not isinstance(spec, dict):
        raise AdminError('a message event needs \'message\': {"type": "text", "text": ...} or a sticker')
    if spec.get("type") == "text":
        text = spec.get("text")
        if not isinstance(text, str) or not text or len(text) > _MAX_TEXT:
            raise AdminError(f"'message.text' must be a string of 1 to {_MAX_TEXT} characters")
        return {"type": "text", "id": _message_id(), "quoteToken": secrets.token_urlsafe(48), "text": text}
    if spec.get("type") == "sticker":
        package, sticker = spec.get("packageId"), spec.get("stickerId")
        if not (
            isinstance(package, str) and package.isdigit() and isinstance(sticker, str) and sticker.isdigit()
        ):
            raise AdminError("'message.packageId' and 'message.stickerId' must be strings of digits")
        return {
            "type": "sticker",
            "id": _message_id(),
            "quoteToken": secrets.token_urlsafe(48),
            "packageId": package,
            "stickerId": sticker,
            "stickerResourceType": "STATIC",
        }
    raise AdminError("'message.type' must be text or sticker")


def build_event(state: EmulatorState, channel: Channel, spec: Any) -> tuple[dict[str, Any], str]:
    """The webhook event LINE would send for ``spec``, with the state change it stands for applied."""
    if not isinstance(spec, dict) or spec.get("type") not in EVENT_TYPES:
        raise AdminError(f"'type' must be one of {', '.join(EVENT_TYPES)}")
    kind = spec["type"]
    source, chat = _source(spec.get("source"))
    is_user = source["type"] == "user"
    if kind in ("follow", "unfollow") and not is_user:
        raise AdminError(f"a {kind} event comes from a user source")
    if kind in ("join", "leave") and is_user:
        raise AdminError(f"a {kind} event comes from a group or room source")
    message = _message(spec.get("message")) if kind == "message" else None
    now = state.now()
    event: dict[str, Any] = {"type": kind}
    if message is not None:
        event["message"] = message
    was_blocked = state.apply_event(channel, kind, chat, source.get("userId"))
    if kind == "follow":
        event["follow"] = {"isUnblocked": was_blocked}
    if kind in ("message", "follow", "join"):
        event["replyToken"] = state.issue_reply_token(channel.channel_id, chat)
    event.update(
        {
            "source": source,
            "timestamp": int(now * 1000),
            "mode": "active",
            "webhookEventId": ulid(now),
            "deliveryContext": {"isRedelivery": False},
        }
    )
    return event, chat
