"""The storage interface every backend implements: tokens, single-flight locks, rate limits, the outbox.

Backends are synchronous and safe to call from many threads and processes; every method that depends on the
time takes ``now`` (UNIX seconds) from the caller, so tests and the emulator's clock stay in charge.
"""

from __future__ import annotations

import abc
import math
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Literal, Self, get_args

from linepush._secret import Secret
from linepush.errors import StoreCorruptError, StoreError, StoreFullError, ValidationError

# The retry-key rule is the library's (one rule for a direct send and the outbox); the store re-exports it.
from linepush.retry_key import check_retry_key as check_retry_key
from linepush.retry_key import new_retry_key as new_retry_key

__all__ = [
    "MESSAGE_KINDS",
    "MESSAGE_STATES",
    "RECIPIENT_TYPES",
    "REVOCABLE_KINDS",
    "TOKEN_KINDS",
    "TOKEN_STATES",
    "GatewayToken",
    "MessageKind",
    "MessageState",
    "NewMessage",
    "OutboxMessage",
    "RecipientSighting",
    "RecipientType",
    "Settlement",
    "SettlementOutcome",
    "Store",
    "StoreCorruptError",
    "StoreError",
    "StoreFullError",
    "TokenKind",
    "TokenRecord",
    "TokenState",
    "WebhookRecipient",
    "recipient_type",
]

TokenKind = Literal["v2.1", "v3", "v2", "static"]
TokenState = Literal["active", "superseded", "invalid", "revoked"]
MessageKind = Literal["push", "multicast", "broadcast", "narrowcast"]
MessageState = Literal["queued", "sending", "delivered", "failed"]
SettlementOutcome = Literal["delivered", "retry", "failed"]

TOKEN_KINDS: Final[tuple[TokenKind, ...]] = get_args(TokenKind)
TOKEN_STATES: Final[tuple[TokenState, ...]] = get_args(TokenState)
MESSAGE_KINDS: Final[tuple[MessageKind, ...]] = get_args(MessageKind)
MESSAGE_STATES: Final[tuple[MessageState, ...]] = get_args(MessageState)
#: Kinds LINE lets us revoke and that the token manager issues itself. v3 tokens cannot be revoked, and a
#: static token belongs to the user who pasted it, so neither is ever offered for automatic revocation.
REVOCABLE_KINDS: Final[tuple[TokenKind, ...]] = ("v2.1", "v2")


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A channel access token as kept in the store. ``access_token`` is a :class:`Secret`: it never shows."""

    id: int
    channel_id: str
    kind: TokenKind
    access_token: Secret
    key_id: str | None
    issued_at: float
    #: None for a static (long-lived) token that never expires.
    expires_at: float | None
    state: TokenState
    superseded_at: float | None

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at <= now


@dataclass(frozen=True, slots=True)
class NewMessage:
    """One message to put in the outbox. ``payload`` is LINE's JSON request body for ``kind``'s endpoint.

    ``retry_key`` (a UUID) is generated when not given; give one to make a message's identity your own.
    ``not_before`` defaults to the enqueue time.
    """

    channel_id: str
    kind: MessageKind
    payload: Mapping[str, Any]
    not_before: float | None = None
    retry_key: str | None = None


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """A row of the outbox.

    States: queued → sending (claimed, leased to ``lease_owner`` until ``lease_expires_at``) → delivered or
    failed; a retry goes back to queued with a later ``not_before``. ``attempts`` counts claims that may have
    reached LINE; ``first_attempt_at`` starts the retry key's window at LINE.
    """

    id: int
    channel_id: str
    kind: MessageKind
    payload: dict[str, Any]
    retry_key: str
    state: MessageState
    attempts: int
    not_before: float
    first_attempt_at: float | None
    lease_owner: str | None
    lease_expires_at: float | None
    created_at: float
    updated_at: float
    delivered_at: float | None
    request_id: str | None
    result: dict[str, Any] | None
    last_error: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Settlement:
    """How one claimed row ended, for :meth:`Store.settle`: ``delivered`` (with LINE's ``request_id`` and
    ``result``), ``retry`` (queued again until ``not_before``, keeping ``error``) or ``failed``."""

    message_id: int
    outcome: SettlementOutcome
    request_id: str | None = None
    result: Mapping[str, Any] | None = None
    error: Mapping[str, Any] | None = None
    #: For ``retry``: when the row is due again (default: ``now``).
    not_before: float | None = None


# -- the gateway's records: gateway tokens and recipients learnt from webhooks -------------------------------

RecipientType = Literal["user", "group", "room"]
RECIPIENT_TYPES: Final[tuple[RecipientType, ...]] = get_args(RecipientType)
_RECIPIENT_ID = re.compile(r"[UCR][0-9a-f]{32}")
_RECIPIENT_TYPE_BY_PREFIX: Final[dict[str, RecipientType]] = {"U": "user", "C": "group", "R": "room"}
_TOKEN_HASH = re.compile(r"[0-9a-f]{64}")
#: Longest gateway token name and webhook event type a store keeps.
MAX_GATEWAY_TOKEN_NAME: Final = 100
MAX_EVENT_TYPE: Final = 64
#: Longest recipient name; names are what people type after --to, so they stay short and plain.
MAX_RECIPIENT_NAME: Final = 64
_RECIPIENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True, slots=True)
class GatewayToken:
    """A token of the LINE Notify–compatible gateway, bound to one recipient of one channel.

    Only ``token_hash`` is kept: the SHA-256 of the token, as 64 lowercase hex digits. The token itself is
    shown once, when created, and stored nowhere. ``revoked_at`` is None while the token works.
    """

    id: int
    channel_id: str
    token_hash: str
    recipient_id: str
    name: str | None
    created_at: float
    revoked_at: float | None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


@dataclass(frozen=True, slots=True)
class RecipientSighting:
    """A user (``U…``), group (``C…``) or room (``R…``) id seen in a webhook event of type ``event_type``."""

    recipient_id: str
    event_type: str


@dataclass(frozen=True, slots=True)
class WebhookRecipient:
    """A recipient id the webhook has seen: when first and last, in how many sightings, and the type of the
    last event it was seen in (``unfollow`` or ``leave`` there means messages will no longer reach it)."""

    channel_id: str
    recipient_id: str
    type: RecipientType
    first_seen_at: float
    last_seen_at: float
    last_event_type: str
    sightings: int


class Store(abc.ABC):
    """Everything linepush keeps: tokens, locks, shared rate limits, the outbox. One serves a whole process.

    Ordering rules all backends share: tokens list oldest first (``issued_at``, then ``id``); messages
    list by ``id``; ``claim`` hands out the rows that have been due the longest first (``not_before``, then
    ``id``).
    """

    # -- lifecycle -------------------------------------------------------------------------------------------

    @property
    @abc.abstractmethod
    def schema_version(self) -> int:
        """The version of the schema in the database (after the migrations this code knows were applied)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the connections. The store must not be used afterwards; closing twice is harmless."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- tokens ----------------------------------------------------------------------------------------------

    @abc.abstractmethod
    def save_token(
        self,
        channel_id: str,
        kind: TokenKind,
        access_token: str | Secret,
        key_id: str | None,
        issued_at: float,
        expires_at: float | None,
    ) -> TokenRecord:
        """Keep a newly issued (or pasted) token as ``active``. Others of the channel are left as they are."""

    @abc.abstractmethod
    def current_token(self, channel_id: str, kind: TokenKind, now: float) -> TokenRecord | None:
        """The newest (by ``issued_at``) active token of this channel and kind not expired at ``now``."""

    @abc.abstractmethod
    def list_tokens(
        self,
        channel_id: str,
        kind: TokenKind | None = None,
        states: Collection[TokenState] | None = None,
    ) -> list[TokenRecord]:
        """Tokens of a channel, oldest first, optionally only of one kind and of some states."""

    @abc.abstractmethod
    def set_token_state(self, token_id: int, state: TokenState, now: float) -> None:
        """Move a token to ``state``. ``superseded_at`` becomes ``now`` when superseded and is cleared when
        made active again; other moves keep it. Raises LookupError for an unknown id."""

    @abc.abstractmethod
    def supersede_others(self, channel_id: str, kind: TokenKind, keep_id: int, now: float) -> int:
        """Mark every other active token of this channel and kind superseded; returns how many."""

    @abc.abstractmethod
    def tokens_due_for_revocation(
        self, channel_id: str, superseded_before: float, now: float
    ) -> list[TokenRecord]:
        """Superseded tokens worth revoking at LINE: of a revocable kind (:data:`REVOCABLE_KINDS`),
        superseded at or before ``superseded_before`` (now minus the grace period), and not yet expired at
        ``now`` (an expired token no longer counts against LINE's cap). Oldest superseded first."""

    @abc.abstractmethod
    def delete_expired_tokens(self, now: float) -> int:
        """Forget tokens of any state whose expiry is at or before ``now``; returns how many."""

    # -- single-flight locks ---------------------------------------------------------------------------------

    @abc.abstractmethod
    def try_lock(self, name: str, owner: str, ttl: float, now: float) -> bool:
        """Take the lease ``name`` for ``owner`` until ``now + ttl``.

        True when it was free, expired (a crashed holder's), or already held by ``owner`` (whose lease is then
        extended). False while someone else holds a live lease. Never waits.
        """

    @abc.abstractmethod
    def unlock(self, name: str, owner: str) -> None:
        """Give the lease back; does nothing unless ``owner`` holds it (a taken-over lease is not freed)."""

    @abc.abstractmethod
    def delete_expired_locks(self, prefix: str, now: float) -> int:
        """Forget the leases whose name starts with ``prefix`` and whose time ran out at or before ``now``
        (what short-lived marks leave behind); returns how many."""

    # -- shared rate limits ----------------------------------------------------------------------------------

    @abc.abstractmethod
    def reserve_rate(self, key: str, interval: float, tolerance: float, now: float) -> float:
        """Reserve the next slot of the rate limit ``key``; returns the seconds to wait before using it.

        GCRA, as :class:`linepush.ratelimit.RateLimiter` does it in memory: one request per ``interval``
        seconds, of which ``tolerance / interval + 1`` may go at once. The state (one theoretical arrival time
        per key) is in the store, read and advanced atomically, so every thread, process and host sharing the
        store shares the limit; they must agree on the interval and tolerance of a key, and on the clock.
        """

    # -- outbox ----------------------------------------------------------------------------------------------

    @abc.abstractmethod
    def enqueue(self, items: Sequence[NewMessage], now: float) -> list[OutboxMessage]:
        """Store messages as ``queued`` in one transaction: all of them or, on any bad item, none.

        Raises :class:`ValidationError` naming the item (``items[3].payload``) and stores nothing when an item
        is malformed or its retry key is already in the outbox. Returns the rows in the order given.
        """

    @abc.abstractmethod
    def claim(
        self,
        worker_id: str,
        limit: int,
        lease_seconds: float,
        now: float,
        channel_id: str | None = None,
    ) -> list[OutboxMessage]:
        """Lease up to ``limit`` due rows to ``worker_id``: queued with ``not_before <= now``, or sending with
        an expired lease (a dead worker's). Longest due first. Each gets ``state=sending``, the lease,
        ``attempts + 1`` and ``first_attempt_at`` if it had none. Concurrent claimers never share a row."""

    @abc.abstractmethod
    def renew_leases(self, ids: Sequence[int], worker_id: str, lease_seconds: float, now: float) -> int:
        """Extend the live leases ``worker_id`` holds among ``ids`` to ``now + lease_seconds``; returns how
        many. An expired lease is not renewed (another worker may already be taking it over)."""

    # Settling: each acts only while the row is sending and leased to worker_id with a live lease, and
    # returns False otherwise, so a worker whose lease ran out never overwrites the one that took over.

    @abc.abstractmethod
    def mark_delivered(
        self,
        message_id: int,
        worker_id: str,
        now: float,
        request_id: str | None,
        result: Mapping[str, Any] | None,
    ) -> bool:
        """sending → delivered, keeping LINE's request id and response body."""

    @abc.abstractmethod
    def mark_retry(
        self,
        message_id: int,
        worker_id: str,
        now: float,
        not_before: float,
        error: Mapping[str, Any] | None,
    ) -> bool:
        """sending → queued until ``not_before``, keeping the error; the attempt stays counted."""

    @abc.abstractmethod
    def mark_failed(
        self, message_id: int, worker_id: str, now: float, error: Mapping[str, Any] | None
    ) -> bool:
        """sending → failed (final until requeued), keeping the error."""

    def settle(self, worker_id: str, now: float, items: Sequence[Settlement]) -> list[bool]:
        """Apply many outcomes at once, each exactly as :meth:`mark_delivered`, :meth:`mark_retry` or
        :meth:`mark_failed` would (same lease rule); returns, per item, whether it was applied.

        Backends should do it in one transaction (a worker settles hundreds of rows per second, and each
        transaction costs a disk sync); this default applies them one by one.
        """
        done: list[bool] = []
        for item in items:
            if item.outcome == "delivered":
                done.append(
                    self.mark_delivered(item.message_id, worker_id, now, item.request_id, item.result)
                )
            elif item.outcome == "retry":
                due = now if item.not_before is None else item.not_before
                done.append(self.mark_retry(item.message_id, worker_id, now, due, item.error))
            elif item.outcome == "failed":
                done.append(self.mark_failed(item.message_id, worker_id, now, item.error))
            else:
                raise ValidationError(f"outcome must be delivered, retry or failed, not {item.outcome!r}")
        return done

    @abc.abstractmethod
    def release(self, ids: Sequence[int], worker_id: str, now: float) -> int:
        """sending → queued for rows that were claimed but never sent (a worker shutting down): the claim's
        attempt is taken back, and so is ``first_attempt_at`` when that claim was the first.

        Returns how many rows were released."""

    @abc.abstractmethod
    def get_message(self, message_id: int) -> OutboxMessage | None:
        """One row by id, or None."""

    @abc.abstractmethod
    def list_messages(
        self,
        state: MessageState | None = None,
        channel_id: str | None = None,
        limit: int = 100,
        after_id: int | None = None,
    ) -> list[OutboxMessage]:
        """Rows by ascending id; page with ``after_id`` = the last id of the previous page."""

    @abc.abstractmethod
    def counts(self, channel_id: str | None = None) -> dict[MessageState, int]:
        """How many rows are in each state (every state is present, zero included)."""

    @abc.abstractmethod
    def requeue(self, ids: Sequence[int] | None = None, *, now: float, new_retry_key: bool = False) -> int:
        """failed → queued, due at ``now``; ``ids=None`` means every failed row. Returns how many.

        Without ``new_retry_key`` the message keeps its identity at LINE (retry key, attempts and
        ``first_attempt_at``, so an expired retry window still stops it). With it, the row gets a fresh retry
        key and its attempts and ``first_attempt_at`` are reset: LINE sees a new message, which may deliver a
        second copy if the first one did arrive.
        """

    @abc.abstractmethod
    def purge(self, states: Collection[MessageState], older_than: float, now: float) -> int:
        """Delete rows in ``states`` last updated more than ``older_than`` seconds before ``now``.

        ``sending`` cannot be purged (a worker holds those rows). Returns how many were deleted.
        """

    # -- gateway tokens and webhook recipients (the service's tables) ----------------------------------------

    @abc.abstractmethod
    def create_gateway_token(
        self, channel_id: str, token_hash: str, recipient_id: str, name: str | None, now: float
    ) -> GatewayToken:
        """Keep a new gateway token (created at ``now``, not revoked).

        Raises :class:`ValidationError` and stores nothing when ``token_hash`` is not 64 lowercase hex digits
        or is already stored, ``recipient_id`` is not a user, group or room id (``[UCR]`` + 32 lowercase hex
        digits), or ``name`` is neither None nor a string of 1 to :data:`MAX_GATEWAY_TOKEN_NAME` characters.
        """

    @abc.abstractmethod
    def find_gateway_token(self, token_hash: str) -> GatewayToken | None:
        """The gateway token with this hash, revoked or not; None when there is none (or the hash is not
        64 lowercase hex digits)."""

    @abc.abstractmethod
    def list_gateway_tokens(
        self, channel_id: str | None = None, *, include_revoked: bool = True
    ) -> list[GatewayToken]:
        """Gateway tokens (of one channel, or of all), oldest first (``created_at``, then ``id``)."""

    @abc.abstractmethod
    def revoke_gateway_token(self, token_id: int, now: float) -> bool:
        """Revoke a gateway token: ``revoked_at`` becomes ``now``. True when it was working until now, False
        when it was already revoked (its ``revoked_at`` is kept). Raises LookupError for an unknown id."""

    @abc.abstractmethod
    def record_recipients(self, channel_id: str, sightings: Sequence[RecipientSighting], now: float) -> None:
        """Record ids seen by the webhook at ``now``, in one transaction.

        A new id gets ``first_seen_at = last_seen_at = now`` and ``sightings = 1``; a known one gets
        ``last_seen_at = max(last_seen_at, now)``, ``last_event_type`` of this sighting and ``sightings + 1``
        (an id repeated in ``sightings`` counts each time; the last one sets the event type). ``type`` follows
        the id's first letter (U user, C group, R room). Raises :class:`ValidationError` and records nothing
        when a sighting's id is malformed or its event type is not a string of 1 to :data:`MAX_EVENT_TYPE`
        characters.
        """

    @abc.abstractmethod
    def list_recipients(self, channel_id: str | None = None) -> list[WebhookRecipient]:
        """Recipients seen (of one channel, or of all), most recently seen first (``last_seen_at``
        descending, then ``channel_id`` and ``recipient_id``)."""

    # -- recipient names (the service's) ---------------------------------------------------------------------

    @abc.abstractmethod
    def name_recipient(self, channel_id: str, name: str, recipient_id: str, now: float) -> None:
        """Give ``recipient_id`` the name ``name`` in ``channel_id`` (a name already given now names this id).

        Raises :class:`ValidationError` and stores nothing when the name is not 1 to
        :data:`MAX_RECIPIENT_NAME` letters, digits, ``-``, ``_`` or ``.`` (or looks like an id), or the id is
        not a user, group or room id.
        """

    @abc.abstractmethod
    def unname_recipient(self, channel_id: str, name: str) -> bool:
        """Forget a name; False when there was no such name."""

    @abc.abstractmethod
    def recipient_names(self, channel_id: str) -> dict[str, str]:
        """The names of ``channel_id``'s recipients: name → id, in the names' byte order."""


# -- input checks shared by every backend --------------------------------------------------------------------


def check_token_kind(kind: object) -> TokenKind:
    if kind not in TOKEN_KINDS:
        raise ValidationError(f"token kind must be one of {', '.join(TOKEN_KINDS)}, not {kind!r}")
    return kind


def check_token_states(states: Collection[object]) -> list[TokenState]:
    for state in states:
        if state not in TOKEN_STATES:
            raise ValidationError(f"token state must be one of {', '.join(TOKEN_STATES)}, not {state!r}")
    return list(states)  # type: ignore[arg-type]


def check_message_states(states: Collection[object]) -> list[MessageState]:
    if isinstance(states, str):
        states = [states]
    for state in states:
        if state not in MESSAGE_STATES:
            raise ValidationError(f"message state must be one of {', '.join(MESSAGE_STATES)}, not {state!r}")
    return list(states)  # type: ignore[arg-type]


def check_time(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValidationError(f"{name} must be a finite number of seconds, not {value!r}")
    return float(value)


def check_positive(value: object, name: str) -> float:
    seconds = check_time(value, name)
    if seconds <= 0:
        raise ValidationError(f"{name} must be more than 0, not {value!r}")
    return seconds


def check_rate(interval: object, tolerance: object) -> tuple[float, float]:
    step = check_positive(interval, "interval")
    slack = check_time(tolerance, "tolerance")
    if slack < 0:
        raise ValidationError(f"tolerance must be 0 or more seconds, not {tolerance!r}")
    return step, slack


def check_name(value: object, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValidationError(f"{name} must be a non-empty string, not {value!r}")
    return value


def check_limit(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError(f"limit must be a whole number of at least 1, not {value!r}")
    return value


def recipient_type(recipient_id: str) -> RecipientType:
    """``user``, ``group`` or ``room`` for a well-formed id; raises :class:`ValidationError` otherwise."""
    if not isinstance(recipient_id, str) or _RECIPIENT_ID.fullmatch(recipient_id) is None:
        raise ValidationError(
            "must be a user ID (U...), group ID (C...) or room ID (R...): the letter followed by 32 "
            "lowercase hex digits",
            property="recipient_id",
        )
    return _RECIPIENT_TYPE_BY_PREFIX[recipient_id[0]]


def is_token_hash(value: object) -> bool:
    return isinstance(value, str) and _TOKEN_HASH.fullmatch(value) is not None


def check_gateway_token(token_hash: object, recipient_id: object, name: object) -> None:
    if not is_token_hash(token_hash):
        raise ValidationError("must be a SHA-256 as 64 lowercase hex digits", property="token_hash")
    recipient_type(recipient_id)  # type: ignore[arg-type]
    if name is not None and (not isinstance(name, str) or not 1 <= len(name) <= MAX_GATEWAY_TOKEN_NAME):
        raise ValidationError(
            f"must be None or a string of 1 to {MAX_GATEWAY_TOKEN_NAME} characters", property="name"
        )


def check_sightings(sightings: Sequence[object]) -> list[tuple[str, RecipientType, str]]:
    """Each sighting as (recipient_id, type, event_type), or ValidationError naming the first bad one."""
    checked: list[tuple[str, RecipientType, str]] = []
    for index, sighting in enumerate(sightings):
        where = f"sightings[{index}]"
        if not isinstance(sighting, RecipientSighting):
            raise ValidationError("must be a RecipientSighting", property=where)
        try:
            kind = recipient_type(sighting.recipient_id)
        except ValidationError as exc:
            raise ValidationError(exc.reason, property=f"{where}.recipient_id") from None
        event = sighting.event_type
        if not isinstance(event, str) or not 1 <= len(event) <= MAX_EVENT_TYPE:
            raise ValidationError(
                f"must be a string of 1 to {MAX_EVENT_TYPE} characters", property=f"{where}.event_type"
            )
        checked.append((sighting.recipient_id, kind, event))
    return checked


def is_recipient_id(value: object) -> bool:
    return isinstance(value, str) and _RECIPIENT_ID.fullmatch(value) is not None


def check_recipient_name(name: object) -> str:
    if not isinstance(name, str) or _RECIPIENT_NAME.fullmatch(name) is None or is_recipient_id(name):
        raise ValidationError(
            f"must be 1 to {MAX_RECIPIENT_NAME} letters, digits, '-', '_' or '.', starting with a letter or "
            "digit, and not an id",
            property="name",
        )
    return name
