"""The records a store keeps and hands back: tokens, outbox rows and how a claimed row was settled."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, get_args

from linepush._secret import Secret

__all__ = [
    "MAX_DIGEST_WINDOW",
    "MESSAGE_KINDS",
    "MESSAGE_STATES",
    "REVOCABLE_KINDS",
    "TOKEN_KINDS",
    "TOKEN_STATES",
    "DigestAppend",
    "DigestPart",
    "MessageKind",
    "MessageState",
    "NewMessage",
    "OutboxMessage",
    "Settlement",
    "SettlementOutcome",
    "TokenKind",
    "TokenRecord",
    "TokenState",
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

    ``batchable``: the push may go out in one request with other batchable pushes to the same chat (up to 5
    message objects in all, see :meth:`Store.claim`), which LINE counts as one message. Ignored for other
    kinds and for a row with a given ``retry_key``: those always go alone.
    """

    channel_id: str
    kind: MessageKind
    payload: Mapping[str, Any]
    not_before: float | None = None
    retry_key: str | None = None
    batchable: bool = False


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """A row of the outbox.

    States: queued → sending (claimed, leased to ``lease_owner`` until ``lease_expires_at``) → delivered or
    failed; a retry goes back to queued with a later ``not_before``. ``attempts`` counts claims that may have
    reached LINE; ``first_attempt_at`` starts the retry key's window at LINE.

    A row of a batch (``batch_key`` set) goes out in one push with the other rows of its batch, under the
    batch's retry key ``batch_key``, at place ``batch_pos``: the batch was recorded when it was first claimed
    and never changes, so every resend is the same request. Its rows are claimed and settled together.
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
    #: Whether the row may be batched with other pushes to its chat (decided when it was queued).
    batchable: bool = False
    batch_key: str | None = None
    batch_pos: int | None = None


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
    #: For ``retry`` of a row of a batch that LINE refused (400, nothing delivered): the batch is dissolved,
    #: and each of its rows goes alone, under its own retry key, from then on.
    split: bool = False


#: The longest digest window: a day (a digest row waits that long at most before it is sent).
MAX_DIGEST_WINDOW: Final = 86_400.0


@dataclass(frozen=True, slots=True)
class DigestPart:
    """One notification merged into a digest: when it came, its text (may be empty), and its message objects
    that are not plain text (images, stickers, …), which the digest sends as objects of their own."""

    at: float
    text: str
    extras: tuple[Mapping[str, Any], ...] = ()

    def record(self) -> dict[str, Any]:
        """As kept in the store (JSON)."""
        return {"at": self.at, "text": self.text, "extras": [dict(e) for e in self.extras]}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> DigestPart:
        return cls(float(record["at"]), str(record["text"]), tuple(record.get("extras") or ()))


@dataclass(frozen=True, slots=True)
class DigestAppend:
    """Where :meth:`Store.append_digest` put a notification: the digest row as it is now (a queued push due
    when its window closes), how many notifications it holds, and whether this one opened it."""

    message: OutboxMessage
    parts: int
    opened: bool
