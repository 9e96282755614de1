"""The emulator's whole memory: channels, keys, tokens, recipients, deliveries, retry keys, quotas, faults.

One object, guarded by one lock so that tests may call its admin methods from another thread while uvicorn
serves the app on its own loop.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey, RSAPublicNumbers

from linepush.emulator.config import EmulatorConfig
from linepush.emulator.faults import Fault, FaultAction, FaultError, decide, parse_fault

TokenKind = Literal["v2", "v2.1", "v3", "long-lived"]
RecipientState = Literal["friend", "blocked", "unknown"]
RECIPIENT_STATES: tuple[str, ...] = ("friend", "blocked", "unknown")
RECIPIENT_ID = re.compile(r"[UCR][0-9a-f]{32}")
MIN_KEY_BITS = 2048

#: Japan time, in seconds east of UTC (the month of the monthly message quota).
_JAPAN_OFFSET = 9 * 3600


class AdminError(ValueError):
    """Bad input to an admin operation; ``status`` is 400, or 404 for an unknown channel."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def mask(value: str) -> str:
    return value[:4] + "…" if len(value) > 8 else "…"


@dataclass
class Token:
    value: str
    channel_id: str
    kind: TokenKind
    issued_at: float
    expires_at: float | None
    key_id: str | None = None
    revoked: bool = False

    def status(self, now: float) -> Literal["valid", "expired", "revoked"]:
        if self.revoked:
            return "revoked"
        if self.expires_at is not None and now >= self.expires_at:
            return "expired"
        return "valid"

    def __repr__(self) -> str:
        return f"Token(kind={self.kind!r}, channel_id={self.channel_id!r}, value={mask(self.value)!r})"


@dataclass
class ReplyToken:
    channel_id: str
    to: str
    expires_at: float


@dataclass
class AcceptedRequest:
    request_id: str
    accepted_at: float
    body: dict[str, Any]


@dataclass
class Bucket:
    tokens: float
    updated: float


@dataclass
class Profile:
    """A simulated LINE user as the channel's bot sees it (GET /v2/bot/profile)."""

    user_id: str
    display_name: str
    language: str = "en"

    def as_json(self) -> dict[str, Any]:
        return {"userId": self.user_id, "displayName": self.display_name, "language": self.language}


@dataclass
class Chat:
    """A group (C…) or room (R…) the bot is in, and the users seen in it."""

    chat_id: str
    name: str
    members: list[str] = field(default_factory=list)


@dataclass
class Webhook:
    url: str | None = None
    active: bool = True
    # LINE redelivers only when "webhook redelivery" is turned on in the console; off by default there too.
    redelivery: bool = False


@dataclass
class Channel:
    channel_id: str
    channel_secret: str = field(repr=False)
    name: str
    monthly_quota: int | None
    bot_user_id: str = field(default_factory=lambda: "U" + secrets.token_hex(16))
    basic_id: str = field(default_factory=lambda: "@" + secrets.token_hex(4)[:7])
    profiles: dict[str, Profile] = field(default_factory=dict)
    chats: dict[str, Chat] = field(default_factory=dict)
    webhook: Webhook = field(default_factory=Webhook)
    keys: dict[str, RSAPublicKey] = field(default_factory=dict, repr=False)
    recipients: dict[str, RecipientState] = field(default_factory=dict)
    usage: dict[tuple[int, int], int] = field(default_factory=dict)
    retry_keys: dict[str, AcceptedRequest] = field(default_factory=dict)
    buckets: dict[str, Bucket] = field(default_factory=dict)

    def friends(self) -> list[str]:
        return [rid for rid, st in self.recipients.items() if st == "friend"]


@dataclass
class Delivery:
    endpoint: str
    channel_id: str
    to: list[str]
    delivered_to: list[str]
    messages: list[Any]
    retry_key: str | None
    request_id: str
    time: float
    notification_disabled: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "channel_id": self.channel_id,
            "to": list(self.to),
            "delivered_to": list(self.delivered_to),
            "messages": self.messages,
            "retry_key": self.retry_key,
            "request_id": self.request_id,
            "time": self.time,
            "notification_disabled": self.notification_disabled,
        }


def public_key_from_jwk(jwk: Any) -> RSAPublicKey:
    """Check a public JWK the way LINE's console does (FACTS §2.1) and load it."""
    if not isinstance(jwk, dict):
        raise AdminError("the key must be a JSON object (a public JWK)")
    if "kid" in jwk:
        raise AdminError("the public key must not contain 'kid'; the emulator assigns one")
    if jwk.get("kty") != "RSA":
        raise AdminError("'kty' must be 'RSA'")
    if jwk.get("alg") != "RS256":
        raise AdminError("'alg' must be 'RS256'")
    if any(part in jwk for part in ("d", "p", "q", "dp", "dq", "qi")):
        raise AdminError("register the public key only; this JWK contains private key material")
    use_ok = jwk.get("use") == "sig"
    ops_ok = jwk.get("key_ops") == ["verify"]
    if "use" in jwk and not use_ok:
        raise AdminError("'use' must be 'sig'")
    if "key_ops" in jwk and not ops_ok:
        raise AdminError("'key_ops' must be [\"verify\"]")
    if not (use_ok or ops_ok):
        raise AdminError('the key needs either "use": "sig" or "key_ops": ["verify"]')
    try:
        n = int.from_bytes(_b64url_decode(jwk["n"]), "big")
        e = int.from_bytes(_b64url_decode(jwk["e"]), "big")
        key = RSAPublicNumbers(e, n).public_key()
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise AdminError("'n' and 'e' must be base64url-encoded RSA parameters") from exc
    if key.key_size < MIN_KEY_BITS:
        raise AdminError(f"the RSA key must have at least {MIN_KEY_BITS} bits")
    return key


class EmulatorState:
    """All emulator state and the admin operations on it. Times come from :meth:`now` (the emulator clock)."""

    def __init__(
        self, config: EmulatorConfig | None = None, clock: Callable[[], float] | None = None
    ) -> None:
        self.config = config or EmulatorConfig()
        self._clock = clock or time.time
        self._lock = threading.RLock()
        self._reset()

    def _reset(self) -> None:
        self._offset = 0.0  # after a reset the clock is LINE's again
        self.channels: dict[str, Channel] = {}
        self._kids: dict[str, str] = {}
        self._tokens: dict[str, Token] = {}
        self._deliveries: list[Delivery] = []
        # Every send that carried a retry key, by (channel, key): how many, and the distinct bodies sent.
        self._retry_uses: dict[tuple[str, str], tuple[int, set[str]]] = {}
        self._request_counts: Counter[tuple[str, str, int]] = Counter()
        self._faults: list[Fault] = []
        self._narrowcasts: dict[str, Delivery] = {}
        self._reply_tokens: dict[str, ReplyToken] = {}
        self._spent_replies: dict[str, ReplyToken] = {}
        # What the inbox page shows, in order: accepted sends, refused sends and webhook events.
        self._timeline: list[dict[str, Any]] = []
        self._generation = secrets.token_hex(4)

    # ---- clock -------------------------------------------------------------------------------------
    def now(self) -> float:
        with self._lock:
            return self._clock() + self._offset

    def advance_clock(self, seconds: float) -> float:
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            raise AdminError("'advance_seconds' must be a number >= 0 (the clock only moves forward)")
        if seconds != seconds or seconds > 100 * 365 * 86400:
            raise AdminError("'advance_seconds' is out of range")
        with self._lock:
            self._offset += float(seconds)
            return self.now()

    def reset(self) -> None:
        with self._lock:
            self._reset()

    # ---- channels and keys --------------------------------------------------------------------------
    def create_channel(
        self,
        name: str | None = None,
        monthly_quota: int | None = None,
        *,
        channel_id: str | None = None,
        channel_secret: str | None = None,
    ) -> Channel:
        if name is not None and not isinstance(name, str):
            raise AdminError("'name' must be a string")
        if monthly_quota is not None and (
            isinstance(monthly_quota, bool) or not isinstance(monthly_quota, int) or monthly_quota < 0
        ):
            raise AdminError("'monthly_quota' must be a non-negative integer or null")
        if channel_id is not None and not (
            isinstance(channel_id, str) and re.fullmatch(r"[0-9]{10}", channel_id)
        ):
            raise AdminError("a channel id is a string of 10 digits")
        if channel_secret is not None and not (
            isinstance(channel_secret, str) and re.fullmatch(r"[0-9a-f]{32}", channel_secret)
        ):
            raise AdminError("a channel secret is 32 lowercase hex digits")
        with self._lock:
            if channel_id is None:
                channel_id = str(secrets.randbelow(9 * 10**9) + 10**9)
                while channel_id in self.channels:
                    channel_id = str(secrets.randbelow(9 * 10**9) + 10**9)
            elif channel_id in self.channels:
                raise AdminError(f"channel {channel_id} already exists")
            quota = monthly_quota if monthly_quota is not None else self.config.default_monthly_quota
            channel = Channel(
                channel_id=channel_id,
                channel_secret=channel_secret or secrets.token_hex(16),
                name=name or f"channel {channel_id}",
                monthly_quota=quota,
            )
            self.channels[channel_id] = channel
            return channel

    def channel(self, channel_id: str) -> Channel:
        with self._lock:
            channel = self.channels.get(channel_id)
        if channel is None:
            raise AdminError(f"no channel {channel_id!r}", status=404)
        return channel

    def register_key(self, channel_id: str, jwk: Any) -> str:
        channel = self.channel(channel_id)
        key = public_key_from_jwk(jwk)
        kid = str(uuid.uuid4())
        with self._lock:
            channel.keys[kid] = key
            self._kids[kid] = channel_id
        return kid

    def find_key(self, kid: str) -> tuple[Channel, RSAPublicKey] | None:
        with self._lock:
            channel_id = self._kids.get(kid)
            if channel_id is None:
                return None
            channel = self.channels[channel_id]
            return channel, channel.keys[kid]

    def set_recipient(self, channel_id: str, recipient_id: str, state: str) -> None:
        channel = self.channel(channel_id)
        if not isinstance(recipient_id, str) or not RECIPIENT_ID.fullmatch(recipient_id):
            raise AdminError("'id' must be a user, group or room id: U, C or R followed by 32 hex digits")
        if state not in RECIPIENT_STATES:
            raise AdminError(f"'state' must be one of {', '.join(RECIPIENT_STATES)}")
        with self._lock:
            channel.recipients[recipient_id] = state  # type: ignore[assignment]

    def recipient_state(self, channel: Channel, recipient_id: str) -> RecipientState:
        with self._lock:
            return channel.recipients.get(recipient_id, "friend")

    # ---- simulated users, groups and rooms ---------------------------------------------------------------
    def profile(self, channel: Channel, user_id: str) -> Profile | None:
        """The profile the bot may read: users who are friends (the default for an id never seen)."""
        if not re.fullmatch(r"U[0-9a-f]{32}", user_id) or self.recipient_state(channel, user_id) != "friend":
            return None
        with self._lock:
            found = channel.profiles.get(user_id)
            if found is None:
                found = channel.profiles[user_id] = Profile(user_id, f"User {user_id[-4:]}")
            return found

    def followers(self, channel: Channel) -> list[str]:
        with self._lock:
            return [rid for rid, st in channel.recipients.items() if st == "friend" and rid.startswith("U")]

    def chat(self, channel: Channel, chat_id: str) -> Chat | None:
        """A group or room the bot is in: one it joined, or (like a push) one never heard of."""
        if (
            not re.fullmatch(r"[CR][0-9a-f]{32}", chat_id)
            or self.recipient_state(channel, chat_id) != "friend"
        ):
            return None
        with self._lock:
            found = channel.chats.get(chat_id)
            if found is None:
                kind = "Group" if chat_id.startswith("C") else "Room"
                found = channel.chats[chat_id] = Chat(chat_id, f"{kind} {chat_id[-4:]}")
            return found

    def apply_event(self, channel: Channel, kind: str, chat: str, user: str | None) -> bool:
        """What a simulated user's event changes: follow/unfollow make the user a friend or a blocker, join
        and leave put the bot in a group or room or take it out, and a user seen in a group becomes a member.
        True when the chat had been blocked (a follow is then an unblock)."""
        with self._lock:
            was_blocked = self.recipient_state(channel, chat) == "blocked"
            state: RecipientState = (
                "blocked" if kind == "unfollow" else "unknown" if kind == "leave" else "friend"
            )
            channel.recipients[chat] = state
            if kind == "join":
                channel.chats.pop(chat, None)  # a group joined again starts without members
            if user is not None:
                channel.profiles.setdefault(user, Profile(user, f"User {user[-4:]}"))
                joined = self.chat(channel, chat) if chat != user else None
                if joined is not None and user not in joined.members:
                    joined.members.append(user)
            return was_blocked

    def issue_reply_token(self, channel_id: str, to: str) -> str:
        """A reply token as a webhook event would carry it: one use, within ``reply_token_lifetime``."""
        self.channel(channel_id)
        if not isinstance(to, str) or not RECIPIENT_ID.fullmatch(to):
            raise AdminError("'to' must be a user, group or room id: U, C or R followed by 32 hex digits")
        value = secrets.token_hex(16)
        with self._lock:
            self._reply_tokens[value] = ReplyToken(
                channel_id, to, self.now() + self.config.reply_token_lifetime
            )
        return value

    def use_reply_token(self, channel: Channel, value: str) -> str | None:
        """The recipient of a usable reply token of ``channel`` (which is then spent), or None."""
        with self._lock:
            reply = self._reply_tokens.get(value)
            if reply is None or reply.channel_id != channel.channel_id or self.now() >= reply.expires_at:
                return None
            del self._reply_tokens[value]
            self._spent_replies[value] = reply
            return reply.to

    # ---- tokens -------------------------------------------------------------------------------------
    def _new_value(self, kind: TokenKind) -> str:
        if kind in ("v2.1", "v3"):
            # Looks like a JWS (header.payload.signature) so "not JWS" can be told apart; carries no secret.
            header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
            payload = _b64url(json.dumps({"jti": secrets.token_urlsafe(16), "kind": kind}).encode())
            return f"{header}.{payload}.{_b64url(secrets.token_bytes(32))}"
        value = secrets.token_urlsafe(120)
        while value.startswith("eyJ"):
            value = secrets.token_urlsafe(120)
        return value

    def _store(self, channel: Channel, kind: TokenKind, lifetime: float | None, key_id: str | None) -> Token:
        now = self.now()
        token = Token(
            value=self._new_value(kind),
            channel_id=channel.channel_id,
            kind=kind,
            issued_at=now,
            expires_at=None if lifetime is None else now + lifetime,
            key_id=key_id,
        )
        self._tokens[token.value] = token
        return token

    def valid_tokens(self, channel_id: str, kind: TokenKind) -> list[Token]:
        with self._lock:
            now = self.now()
            return [
                t
                for t in self._tokens.values()
                if t.channel_id == channel_id and t.kind == kind and t.status(now) == "valid"
            ]

    def issue_short_lived(self, channel: Channel) -> Token:
        with self._lock:
            valid = sorted(self.valid_tokens(channel.channel_id, "v2"), key=lambda t: t.issued_at)
            # FACTS §1.1: the 31st short-lived token succeeds and the oldest valid one is revoked.
            while valid and len(valid) >= self.config.max_short_lived_tokens:
                valid.pop(0).revoked = True
            return self._store(channel, "v2", self.config.short_lived_lifetime, None)

    def issue_v21(self, channel: Channel, lifetime: int) -> Token | None:
        """A new v2.1 token, or None when the channel already has the maximum of valid ones."""
        with self._lock:
            if len(self.valid_tokens(channel.channel_id, "v2.1")) >= self.config.max_v21_tokens:
                return None
            return self._store(channel, "v2.1", lifetime, secrets.token_urlsafe(16)[:22])

    def issue_stateless(self, channel: Channel) -> Token:
        with self._lock:
            now = self.now()
            # Stateless tokens are unbounded; forget expired ones so a long run does not grow without end.
            if len(self._tokens) > 10_000:
                self._tokens = {
                    v: t for v, t in self._tokens.items() if t.kind != "v3" or t.status(now) == "valid"
                }
            return self._store(channel, "v3", self.config.stateless_lifetime, None)

    def issue_long_lived(self, channel_id: str) -> str:
        channel = self.channel(channel_id)
        with self._lock:
            # FACTS §1.1: one long-lived token per channel; reissuing invalidates the current one.
            for token in self._tokens.values():
                if token.channel_id == channel_id and token.kind == "long-lived":
                    token.revoked = True
            return self._store(channel, "long-lived", None, None).value

    def token(self, value: str) -> Token | None:
        with self._lock:
            return self._tokens.get(value)

    def revoke(self, token: Token) -> None:
        with self._lock:
            token.revoked = True

    def describe_tokens(self, channel_id: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            now = self.now()
            return [
                {
                    "channel_id": t.channel_id,
                    "kind": t.kind,
                    "key_id": t.key_id,
                    "issued_at": t.issued_at,
                    "expires_at": t.expires_at,
                    "state": t.status(now),
                    "access_token": mask(t.value),
                }
                for t in sorted(self._tokens.values(), key=lambda t: t.issued_at)
                if channel_id is None or t.channel_id == channel_id
            ]

    # ---- rate limits, quota, retry keys ---------------------------------------------------------------
    def take_rate(self, channel_id: str, endpoint: str) -> bool:
        """Take one token from the channel's bucket for ``endpoint``; False when the bucket is empty."""
        limits = self.config.rate_limits
        if limits is None or endpoint not in limits:
            return True
        limit = limits[endpoint]
        with self._lock:
            channel = self.channels.get(channel_id)
            if channel is None:
                return True
            now = self.now()
            bucket = channel.buckets.get(endpoint)
            if bucket is None:
                bucket = channel.buckets[endpoint] = Bucket(tokens=float(limit.count), updated=now)
            elapsed = max(0.0, now - bucket.updated)
            bucket.tokens = min(float(limit.count), bucket.tokens + elapsed * limit.count / limit.period)
            bucket.updated = now
            # Epoch-sized float times carry ~1e-7 s of error; a refill of exactly period/count seconds must
            # still give a whole token back, so one microsecond's worth of refill is forgiven.
            if bucket.tokens < 1.0 - 1e-6 * limit.count / limit.period:
                return False
            bucket.tokens = max(0.0, bucket.tokens - 1.0)
            return True

    def _month(self) -> tuple[int, int]:
        # LINE does not document when its monthly count starts again; its plans are Japanese, so the month
        # is taken in Japan time (UTC+9, no daylight saving), as the library's default reset expects.
        t = time.gmtime(self.now() + _JAPAN_OFFSET)
        return (t.tm_year, t.tm_mon)

    def usage(self, channel: Channel) -> int:
        with self._lock:
            return channel.usage.get(self._month(), 0)

    def consume_quota(self, channel: Channel, count: int) -> bool:
        """Count ``count`` messages against this month's quota, or refuse (and count nothing)."""
        with self._lock:
            month = self._month()
            used = channel.usage.get(month, 0)
            if channel.monthly_quota is not None and used + count > channel.monthly_quota:
                return False
            channel.usage[month] = used + count
            return True

    def accepted_retry(self, channel: Channel, key: str) -> AcceptedRequest | None:
        with self._lock:
            accepted = channel.retry_keys.get(key.lower())
            if accepted is None:
                return None
            if self.now() - accepted.accepted_at >= self.config.retry_key_window:
                del channel.retry_keys[key.lower()]
                return None
            return accepted

    def note_retry_use(self, channel: Channel, key: str, body: Any) -> None:
        """A send with a retry key arrived (whatever its answer): LINE expects a retry to be the very same
        request (FACTS §3.7), which :meth:`retry_uses` lets a test check."""
        text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        with self._lock:
            count, bodies = self._retry_uses.get((channel.channel_id, key.lower()), (0, set()))
            bodies.add(text)
            self._retry_uses[(channel.channel_id, key.lower())] = (count + 1, bodies)

    def retry_uses(self, channel_id: str | None = None) -> list[dict[str, Any]]:
        """Per retry key seen: how many sends carried it and how many different bodies they had."""
        with self._lock:
            return [
                {"channel_id": cid, "retry_key": key, "requests": count, "bodies": len(bodies)}
                for (cid, key), (count, bodies) in self._retry_uses.items()
                if channel_id is None or cid == channel_id
            ]

    def remember_retry(self, channel: Channel, key: str, request_id: str, body: dict[str, Any]) -> None:
        with self._lock:
            channel.retry_keys[key.lower()] = AcceptedRequest(request_id, self.now(), body)

    # ---- deliveries and request log -----------------------------------------------------------------
    def record_delivery(self, delivery: Delivery) -> None:
        with self._lock:
            self._deliveries.append(delivery)
            shown = list(dict.fromkeys([*delivery.to, *delivery.delivered_to]))
            self._note("sent", delivery.channel_id, shown, delivery.as_json())
            if delivery.endpoint == "narrowcast":
                self._narrowcasts[delivery.request_id] = delivery

    def _note(self, kind: str, channel_id: str | None, chats: list[str], detail: dict[str, Any]) -> None:
        self._timeline.append(
            {
                "seq": len(self._timeline) + 1,
                "kind": kind,
                "channel_id": channel_id,
                "chats": chats,
                "time": self.now(),
                **detail,
            }
        )

    def record_refusal(
        self,
        *,
        endpoint: str,
        channel_id: str | None,
        body: Any,
        status: int,
        error: dict[str, Any] | None,
        request_id: str,
        retry_key: str | None,
    ) -> None:
        """A send LINE would have refused (4xx, or 409 for a repeated retry key), for the inbox."""
        to: list[str] = []
        messages: Any = None
        if isinstance(body, dict):
            target = body.get("to")
            if isinstance(target, str):
                to = [target]
            elif isinstance(target, list):
                to = [t for t in target if isinstance(t, str)]
            if endpoint == "reply" and isinstance(body.get("replyToken"), str):
                with self._lock:
                    reply = self._reply_tokens.get(body["replyToken"]) or self._spent_replies.get(
                        body["replyToken"]
                    )
                if reply is not None:
                    to = [reply.to]
            messages = body.get("messages")
        with self._lock:
            self._note(
                "refused",
                channel_id,
                to[:20],
                {
                    "endpoint": endpoint,
                    "status": status,
                    "error": error,
                    "messages": messages if isinstance(messages, list) else None,
                    "request_id": request_id,
                    "retry_key": retry_key,
                },
            )

    def record_event(self, channel_id: str, chat: str, event: dict[str, Any]) -> int:
        """Note a user's event before it is sent, so that the bot's answer to it comes after it; the
        webhook's outcome follows as a "webhook" entry (see :meth:`record_webhook`)."""
        with self._lock:
            pending = {"status": None, "pending": True}
            self._note("event", channel_id, [chat], {"event": event, "webhook": pending})
            return len(self._timeline)

    def record_webhook(self, seq: int, outcome: dict[str, Any]) -> None:
        with self._lock:
            event = self._timeline[seq - 1]
            event["webhook"] = outcome
            self._note("webhook", event["channel_id"], [], {"of": seq, "webhook": outcome})

    def timeline(self, after: int = 0) -> dict[str, Any]:
        """Timeline entries after ``after``; ``generation`` changes on reset so a page starts over."""
        with self._lock:
            return {
                "generation": self._generation,
                "items": [dict(item) for item in self._timeline[max(0, after) :]],
                "last": len(self._timeline),
                "channels": [
                    {
                        "channel_id": c.channel_id,
                        "name": c.name,
                        "bot_user_id": c.bot_user_id,
                        "webhook_url": c.webhook.url,
                        "webhook_active": c.webhook.active,
                        "chats": {
                            **{uid: p.display_name for uid, p in c.profiles.items()},
                            **{cid: chat.name for cid, chat in c.chats.items()},
                        },
                        "recipients": dict(c.recipients),
                    }
                    for c in self.channels.values()
                ],
            }

    def narrowcast(self, request_id: str) -> Delivery | None:
        with self._lock:
            return self._narrowcasts.get(request_id)

    def deliveries(self, channel_id: str | None = None, to: str | None = None) -> list[dict[str, Any]]:
        """Accepted sends, oldest first; ``to`` matches a requested or a reached (broadcast) recipient."""
        with self._lock:
            return [
                d.as_json()
                for d in self._deliveries
                if (channel_id is None or d.channel_id == channel_id)
                and (to is None or to in d.to or to in d.delivered_to)
            ]

    def count_request(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self._request_counts[(method, path, status)] += 1

    def request_counts(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {"method": m, "path": p, "status": s, "count": c}
                for (m, p, s), c in sorted(self._request_counts.items())
            ]

    # ---- faults -------------------------------------------------------------------------------------
    def add_fault(self, spec: dict[str, Any]) -> dict[str, Any]:
        try:
            fault = parse_fault(spec)
        except FaultError as exc:
            raise AdminError(str(exc)) from exc
        with self._lock:
            self._faults.append(fault)
        return fault.describe()

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def faults(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.describe() for f in self._faults]

    def fault_for(self, path: str) -> FaultAction:
        with self._lock:
            if not self._faults:
                return FaultAction()
            return decide(self._faults, path)
