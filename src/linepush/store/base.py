"""The storage interface every backend implements: tokens, single-flight locks, rate limits, the outbox.

Backends are synchronous and safe to call from many threads and processes; every method that depends on the
time takes ``now`` (UNIX seconds) from the caller, so tests and the emulator's clock stay in charge. The
records are in :mod:`linepush.store.records` (and named here too), the input checks in
:mod:`linepush.store.checks`.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Collection, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

from linepush._secret import Secret
from linepush.errors import StoreCorruptError, StoreError, StoreFullError, StoreSettingsError, ValidationError
from linepush.store.checks import (
    MAX_RECIPIENT_NAME,
    RECIPIENT_TYPES,
    RecipientType,
    check_recipient_name,
    check_retry_key,
    is_recipient_id,
    new_retry_key,
    recipient_type,
)
from linepush.store.records import (
    MAX_DIGEST_WINDOW,
    MESSAGE_KINDS,
    MESSAGE_STATES,
    REVOCABLE_KINDS,
    TOKEN_KINDS,
    TOKEN_STATES,
    DigestAppend,
    DigestPart,
    MessageKind,
    MessageState,
    NewMessage,
    OutboxMessage,
    Settlement,
    SettlementOutcome,
    TokenKind,
    TokenRecord,
    TokenState,
)

__all__ = [
    "MAX_DIGEST_WINDOW",
    "MAX_RECIPIENT_NAME",
    "MESSAGE_KINDS",
    "MESSAGE_STATES",
    "RECIPIENT_TYPES",
    "REVOCABLE_KINDS",
    "TOKEN_KINDS",
    "TOKEN_STATES",
    "DigestAppend",
    "DigestPart",
    "DigestRender",
    "MessageKind",
    "MessageState",
    "NewMessage",
    "OutboxMessage",
    "RecipientType",
    "Settlement",
    "SettlementOutcome",
    "Store",
    "StoreCorruptError",
    "StoreError",
    "StoreFullError",
    "StoreSettingsError",
    "TokenKind",
    "TokenRecord",
    "TokenState",
    "check_recipient_name",
    "check_retry_key",
    "is_recipient_id",
    "new_retry_key",
    "recipient_type",
]

#: Renders a digest's notifications (oldest first) as the JSON body of its push, or None when they do not
#: fit in one push (see :meth:`Store.append_digest`).
DigestRender = Callable[[Sequence[DigestPart]], Mapping[str, Any] | None]


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
    def stored_schema_version(self) -> int:
        """The schema version the database holds now, read from it (another process may have migrated it
        since this store was opened: then it differs from :attr:`schema_version`)."""

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
    def lock_owner(self, name: str, now: float) -> str | None:
        """Who holds the lease ``name`` at ``now``; None when it is free or its time ran out."""

    @abc.abstractmethod
    def take_over_lock(self, name: str, previous: str, owner: str, ttl: float, now: float) -> bool:
        """Take the lease ``name`` from ``previous`` (a holder known to be gone, such as a killed process of
        this host) for ``owner`` until ``now + ttl``. False, changing nothing, unless ``previous`` holds
        it."""

    @abc.abstractmethod
    def delete_expired_locks(self, prefix: str, now: float) -> int:
        """Forget the leases whose name starts with ``prefix`` and whose time ran out at or before ``now``
        (what short-lived marks leave behind); returns how many."""

    @abc.abstractmethod
    def live_locks(self, prefix: str, now: float) -> dict[str, float]:
        """The leases whose name starts with ``prefix`` and that are still live at ``now``: name → the time
        they run out. (Marks that outlive a process, such as a channel's paused sends, are read this way.)"""

    # -- shared rate limits ----------------------------------------------------------------------------------

    @abc.abstractmethod
    def reserve_rate(self, key: str, interval: float, tolerance: float, now: float) -> float:
        """Reserve the next slot of the rate limit ``key``; returns the seconds to wait before using it.

        GCRA, as :class:`linepush.ratelimit.RateLimiter` does it in memory: one request per ``interval``
        seconds, of which ``tolerance / interval + 1`` may go at once. The state (one theoretical arrival time
        per key) is in the store, read and advanced atomically, so every thread, process and host sharing the
        store shares the limit; they must agree on the interval and tolerance of a key, and on the clock. A
        slot found more than ten minutes (or 64 intervals) ahead of ``now`` was reserved by a clock that was
        ahead: the limit starts again from ``now`` rather than hold every sender back for as long.
        """

    # -- outbox ----------------------------------------------------------------------------------------------

    @abc.abstractmethod
    def enqueue(self, items: Sequence[NewMessage], now: float) -> list[OutboxMessage]:
        """Store messages as ``queued`` in one transaction: all of them or, on any bad item, none.

        Raises :class:`ValidationError` naming the item (``items[3].payload``) and stores nothing when an item
        is malformed or its retry key is already in the outbox. Returns the rows in the order given.
        """

    @abc.abstractmethod
    def append_digest(
        self,
        channel_id: str,
        to: str,
        part: DigestPart,
        *,
        window: float,
        now: float,
        render: DigestRender,
        notification_disabled: bool = False,
    ) -> DigestAppend:
        """Merge a notification into the open digest of one chat, in one transaction.

        The open digest of (``channel_id``, ``to``, ``notification_disabled``) is a queued push row whose
        window has not closed at ``now``, never claimed since it was made (its payload was never sent
        under its retry key). ``part`` is added to its notifications and ``render`` gives the row's new
        payload. With no open digest, or when ``render`` says the notifications no longer fit in one push
        (None), a new digest row holding ``part`` alone is opened, due at ``now + window`` (the full one is
        closed and due at once). Concurrent appenders of one chat, in any process, never lose a part and
        never hold two open digests. Raises :class:`ValidationError` (storing nothing) when ``part`` alone
        does not render.
        """

    @abc.abstractmethod
    def claim(
        self,
        worker_id: str,
        limit: int,
        lease_seconds: float,
        now: float,
        channel_id: str | None = None,
        *,
        gather: float = 0.0,
    ) -> list[OutboxMessage]:
        """Lease up to ``limit`` due rows to ``worker_id``: queued with ``not_before <= now``, or sending with
        an expired lease (a dead worker's). Longest due first. Each gets ``state=sending``, the lease,
        ``attempts + 1`` and ``first_attempt_at`` if it had none. Concurrent claimers never share a row.

        Batches: fresh batchable pushes (never attempted, see :attr:`NewMessage.batchable`) to one chat, due
        now and with the same options, are formed into batches of up to 5 message objects in all, in queue
        order (a row to the chat that goes another way in between closes the batch, so each chat's order
        holds); each batch of two or more rows is recorded in the same transaction (``batch_key``, its one
        retry key, and ``batch_pos``). A batch formed before is claimed whole, the same rows in the same
        order under the same key, or not at all (when one of its rows is not claimable now); ``limit`` never
        cuts a batch (the first one is taken even when larger). A batch's rows come out together, in order.
        A new batch with room left (under 5 objects) is left for a later claim, with what follows it to its
        chat, while a push to its chat is in flight (sending under a live lease), or with ``gather``
        (seconds) while its last row became due less than ``gather`` ago: what is queued meanwhile then goes
        out with it, in one push. Full batches (a backlog) are never held back."""

    @abc.abstractmethod
    def renew_leases(self, ids: Sequence[int], worker_id: str, lease_seconds: float, now: float) -> int:
        """Extend the live leases ``worker_id`` holds among ``ids`` to ``now + lease_seconds``; returns how
        many. An expired lease is not renewed (another worker may already be taking it over)."""

    # Settling: each acts only while the row is sending and leased to worker_id with a live lease, and
    # returns False otherwise, so a worker whose lease ran out never overwrites the one that took over.
    # Settling a row of a batch settles every row of the batch the same way, in the same transaction.

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
        :meth:`mark_failed` would (same lease rule); returns, per item, whether it was applied. A retry with
        ``split`` also dissolves the row's batch: its rows go alone from then on, under their own keys.

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
    def counts_by_channel(self) -> dict[tuple[str, MessageState], int]:
        """How many rows each (channel, state) has; pairs without rows are left out."""

    @abc.abstractmethod
    def oldest_due(self, now: float, channel_id: str | None = None) -> float | None:
        """When the longest-waiting queued row due at ``now`` became due (its ``not_before``), or None."""

    @abc.abstractmethod
    def requeue(self, ids: Sequence[int] | None = None, *, now: float, new_retry_key: bool = False) -> int:
        """failed → queued, due at ``now``; ``ids=None`` means every failed row. Returns how many. A row of
        a batch brings back the batch's other failed rows with it.

        Without ``new_retry_key`` the message keeps its identity at LINE (retry key, attempts and
        ``first_attempt_at``, so an expired retry window still stops it). With it, the row gets a fresh retry
        key and its attempts and ``first_attempt_at`` are reset: LINE sees a new message, which may deliver a
        second copy if the first one did arrive.
        """

    @abc.abstractmethod
    def purge(self, states: Collection[MessageState], older_than: float, now: float) -> int:
        """Delete rows in ``states`` last updated more than ``older_than`` seconds before ``now``.

        ``sending`` cannot be purged (a worker holds those rows). A batch is deleted whole. Returns how many
        were deleted.
        """
