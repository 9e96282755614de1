"""The durable outbox: validated messages go into the store in one transaction, workers claim them with a
lease and settle each one as delivered, retried later or failed, keeping what LINE answered.

Every row carries its ``X-Line-Retry-Key`` from the moment it is stored, so a resend after a crash or a lost
answer is recognised by LINE (409 "already accepted") instead of delivered twice. LINE remembers a key for
24 hours only (FACTS §3.7): a row whose first attempt is older than that (minus a margin) is never resent.

    box = Outbox(open_store(), channel_id)
    box.push("U4af4980629...", "disk full")                  # stored; a worker sends it
    box.multicast(user_ids, "news", not_before=tomorrow_9am)  # one row per 500 users, sent at 9
    await Worker(store, async_client, channel_id=channel_id).run_until_idle()
"""

from __future__ import annotations

import datetime as dt
import os
import re
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from linepush.api import messaging
from linepush.api.messaging import PushResult, SendKind, SendResult
from linepush.errors import (
    ConfigurationError,
    LineApiError,
    LinePushError,
    RetryWindowExpiredError,
    TransportError,
    ValidationError,
    safe_to_resend,
)
from linepush.messages import MULTICAST_MAX_RECIPIENTS, MessageLike, validate_user_ids
from linepush.retry import Backoff
from linepush.retry_key import check_retry_key
from linepush.store.base import (
    MessageState,
    NewMessage,
    OutboxMessage,
    Settlement,
    SettlementOutcome,
    Store,
)

__all__ = [
    "DEFAULT_BACKOFF",
    "DEFAULT_MONTHLY_RESET",
    "DEFAULT_RETRY_WINDOW",
    "Backoff",
    "MonthlyReset",
    "Outbox",
    "RetryWindow",
    "SendCost",
    "Settlement",
    "batch_operation",
    "batch_results",
    "broadcast_item",
    "error_record",
    "multicast_items",
    "narrowcast_item",
    "pause_channel",
    "paused_channels",
    "paused_until",
    "push_item",
    "result_record",
    "resume_channel",
    "retry_reason",
    "send_cost",
    "send_items",
    "window_expired_error",
]

Messages = MessageLike | Sequence[MessageLike]


@dataclass(frozen=True, slots=True)
class RetryWindow:
    """How long a retry key protects a message, as seen from here.

    LINE remembers a key for ``window`` seconds from the first request (FACTS §3.7). Our clock and LINE's may
    differ and a request may spend a while in flight, so a row is resent only while its first attempt is less
    than ``window - margin`` seconds old.
    """

    window: float = 86_400.0
    margin: float = 3_600.0

    def __post_init__(self) -> None:
        if not 0 <= self.margin < self.window:
            raise ConfigurationError("the retry window margin must be at least 0 and less than the window")

    @property
    def usable(self) -> float:
        return self.window - self.margin

    def deadline(self, first_attempt_at: float) -> float:
        """The last moment a row first attempted at ``first_attempt_at`` may be sent."""
        return first_attempt_at + self.usable

    def expired(self, message: OutboxMessage, now: float) -> bool:
        first = message.first_attempt_at
        return first is not None and now >= self.deadline(first)


DEFAULT_RETRY_WINDOW: Final = RetryWindow()


DEFAULT_BACKOFF: Final = Backoff()


# -- the monthly message limit: a pause of the channel, not a failure of its rows ----------------------------


@dataclass(frozen=True, slots=True)
class MonthlyReset:
    """When a channel's monthly message count starts again.

    LINE counts messages per calendar month (FACTS §3.8) but does not document the moment the count starts
    again. The plausible one is midnight on the 1st in Japan time (LINE's plans and prices are Japanese; Japan
    has no daylight saving time, so a fixed offset is exact), and that is the default; ``utc_offset_hours``
    moves it (``0`` for UTC) should LINE's reset prove to be another.
    """

    utc_offset_hours: float = 9.0

    def __post_init__(self) -> None:
        if not -14 <= self.utc_offset_hours <= 14:
            raise ConfigurationError("the monthly reset's UTC offset must be between -14 and 14 hours")

    @property
    def timezone(self) -> dt.timezone:
        return dt.timezone(dt.timedelta(hours=self.utc_offset_hours))

    def next_after(self, now: float) -> float:
        """The first reset after ``now``: the 1st of the next month, 00:00 at the offset."""
        local = dt.datetime.fromtimestamp(now, self.timezone)
        year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
        return dt.datetime(year, month, 1, tzinfo=self.timezone).timestamp()

    def describe(self, moment: float) -> str:
        """``moment`` as the reset's local time, e.g. ``2027-02-01 00:00 +0900``."""
        return dt.datetime.fromtimestamp(moment, self.timezone).strftime("%Y-%m-%d %H:%M %z")


DEFAULT_MONTHLY_RESET: Final = MonthlyReset()

#: A paused channel is a lease in the store's ``locks`` (held by this name until the reset), so the pause
#: outlives the worker that found the limit and is seen by every worker and host on the store.
_PAUSE_PREFIX: Final = "paused:monthly-limit:"
_PAUSE_OWNER: Final = "monthly-limit"


def paused_channels(store: Store, now: float) -> dict[str, float]:
    """The channels whose sends are paused at ``now`` (their monthly limit reached): id → paused until."""
    return {
        name.removeprefix(_PAUSE_PREFIX): until
        for name, until in store.live_locks(_PAUSE_PREFIX, now).items()
    }


def paused_until(store: Store, channel_id: str, now: float) -> float | None:
    """Until when the channel's sends are paused, or None when they are not."""
    name = _PAUSE_PREFIX + channel_id
    return store.live_locks(name, now).get(name)


def pause_channel(store: Store, channel_id: str, until: float, now: float) -> float:
    """Pause the channel's sends until ``until`` (kept if already paused until later); returns until when."""
    held = paused_until(store, channel_id, now)
    if held is not None and held >= until:
        return held
    store.try_lock(_PAUSE_PREFIX + channel_id, _PAUSE_OWNER, until - now, now)
    return until


def resume_channel(store: Store, channel_id: str, now: float) -> bool:
    """Lift the channel's pause; False when it was not paused."""
    was = paused_until(store, channel_id, now) is not None
    store.unlock(_PAUSE_PREFIX + channel_id, _PAUSE_OWNER)
    return was


# -- building rows (validated before anything is stored) -------------------------------------------------


def push_item(
    channel_id: str,
    to: str,
    messages: Messages,
    *,
    not_before: float | None = None,
    retry_key: str | None = None,
    notification_disabled: bool = False,
    custom_aggregation_units: Sequence[str] | None = None,
    batchable: bool = False,
) -> NewMessage:
    """One push as an outbox row; raises :class:`ValidationError` for anything LINE would refuse.

    ``batchable``: it may go out in one push with the other batchable pushes to ``to`` that are due with it
    (see :class:`Outbox`); never with a ``retry_key`` of its own."""
    payload = messaging.push_payload(
        to,
        messages,
        notification_disabled=notification_disabled,
        custom_aggregation_units=custom_aggregation_units,
    )
    return NewMessage(channel_id, "push", payload, not_before, _key(retry_key), batchable=batchable)


def multicast_items(
    channel_id: str,
    to: Iterable[str],
    messages: Messages,
    *,
    not_before: float | None = None,
    retry_key: str | None = None,
    notification_disabled: bool = False,
    custom_aggregation_units: Sequence[str] | None = None,
    chunk_size: int = MULTICAST_MAX_RECIPIENTS,
) -> list[NewMessage]:
    """A multicast to any number of users: one row per ``chunk_size`` (at most 500) recipients.

    With ``retry_key``, chunk 0 uses it and the others derive theirs from it, exactly as
    :meth:`LineClient.multicast` does, so the same list under the same key always yields the same rows' keys.
    """
    if not 1 <= chunk_size <= MULTICAST_MAX_RECIPIENTS:
        raise ValidationError(f"chunk_size must be between 1 and {MULTICAST_MAX_RECIPIENTS}")
    ids = _user_ids(to, chunk_size)
    base = _key(retry_key)
    items: list[NewMessage] = []
    normalized: list[dict[str, Any]] | None = None
    for index, start in enumerate(range(0, len(ids), chunk_size)):
        payload = messaging.multicast_payload(
            ids[start : start + chunk_size],
            normalized if normalized is not None else messages,
            notification_disabled=notification_disabled,
            custom_aggregation_units=custom_aggregation_units,
        )
        normalized = payload["messages"]
        key = None if base is None else messaging.chunk_retry_key(base, index)
        items.append(NewMessage(channel_id, "multicast", payload, not_before, key))
    return items


def _user_ids(to: Iterable[str], chunk_size: int) -> list[str]:
    """Every recipient checked up front (any number of them); errors name the place in the whole list."""
    if isinstance(to, str | bytes) or not isinstance(to, Iterable):
        raise ValidationError("Must be a list of user IDs", property="to")
    ids = list(to)
    if not ids:
        raise ValidationError("Size must be at least 1", property="to")
    for start in range(0, len(ids), chunk_size):
        try:
            validate_user_ids(ids[start : start + chunk_size])
        except ValidationError as exc:
            index = (exc.property or "")[3:-1]
            where = f"to[{start + int(index)}]" if index.isdigit() else "to"
            raise ValidationError(exc.reason, property=where) from None
    return ids


def broadcast_item(
    channel_id: str,
    messages: Messages,
    *,
    not_before: float | None = None,
    retry_key: str | None = None,
    notification_disabled: bool = False,
) -> NewMessage:
    payload = messaging.broadcast_payload(messages, notification_disabled=notification_disabled)
    return NewMessage(channel_id, "broadcast", payload, not_before, _key(retry_key))


def narrowcast_item(
    channel_id: str,
    messages: Messages,
    *,
    not_before: float | None = None,
    retry_key: str | None = None,
    recipient: Mapping[str, Any] | None = None,
    filter: Mapping[str, Any] | None = None,
    limit: Mapping[str, Any] | None = None,
    notification_disabled: bool = False,
) -> NewMessage:
    payload = messaging.narrowcast_payload(
        messages,
        recipient=recipient,
        filter=filter,
        limit=limit,
        notification_disabled=notification_disabled,
    )
    return NewMessage(channel_id, "narrowcast", payload, not_before, _key(retry_key))


def send_items(
    channel_id: str,
    messages: Messages,
    *,
    to: Sequence[str] = (),
    broadcast: bool = False,
    not_before: float | None = None,
    retry_key: str | None = None,
    notification_disabled: bool = False,
    batchable: bool = False,
) -> list[NewMessage]:
    """The rows for one send to ``to``: a push for one recipient (of any kind), a multicast (one row per 500)
    for several user ids, a push per group or room, or a broadcast. Everything is validated before any row
    exists. ``batchable`` applies to the pushes (see :func:`push_item`)."""
    if broadcast:
        if to:
            raise ValidationError("a broadcast sends to every friend: give no recipients with it")
        return [
            broadcast_item(
                channel_id,
                messages,
                not_before=not_before,
                retry_key=retry_key,
                notification_disabled=notification_disabled,
            )
        ]
    if not to:
        raise ValidationError("say who gets it: give at least one recipient, or send a broadcast")
    if len(to) == 1:
        return [
            push_item(
                channel_id,
                to[0],
                messages,
                not_before=not_before,
                retry_key=retry_key,
                notification_disabled=notification_disabled,
                batchable=batchable,
            )
        ]
    users = [r for r in to if r.startswith("U")]
    others = [r for r in to if not r.startswith("U")]
    if retry_key is not None and others:
        raise ValidationError("a retry key can name one push or one multicast to user ids only")
    items: list[NewMessage] = []
    if users:
        items.extend(
            multicast_items(
                channel_id,
                users,
                messages,
                not_before=not_before,
                retry_key=retry_key,
                notification_disabled=notification_disabled,
            )
        )
    # Multicast takes user ids only (FACTS §3.3): groups and rooms get a push each.
    items.extend(
        push_item(
            channel_id,
            r,
            messages,
            not_before=not_before,
            notification_disabled=notification_disabled,
            batchable=batchable,
        )
        for r in others
    )
    return items


def _key(retry_key: str | None) -> str | None:
    return None if retry_key is None else check_retry_key(retry_key, "retry_key")


# -- what a settled row keeps ------------------------------------------------------------------------------


def error_record(error: BaseException, *, now: float | None = None) -> dict[str, Any]:
    """What is kept of an error on the row: LINE's status, message, details and request id when LINE
    answered; the error's text otherwise. Never a secret: error texts never hold one."""
    record: dict[str, Any] = {"type": type(error).__name__}
    if isinstance(error, LineApiError):
        record["status"] = error.status
        record["message"] = error.message
        if error.details:
            record["details"] = [
                {k: v for k, v in (("message", d.message), ("property", d.property)) if v is not None}
                for d in error.details
            ]
        if error.request_id:
            record["request_id"] = error.request_id
    else:
        record["message"] = str(error) or type(error).__name__
    if isinstance(error, LinePushError):
        record["retryable"] = bool(error.retryable)
        if error.hint:
            record["hint"] = error.hint
    if now is not None:
        record["at"] = now
    return record


def retry_reason(error: BaseException) -> str:
    """Why a send did not go through, in a few words: "connection refused (could not connect to …)",
    "LINE answered 500: Internal server error"."""
    if isinstance(error, LineApiError):
        return f"LINE answered {error.status}: {error.message}"
    text = str(error) or type(error).__name__
    if isinstance(error, TransportError):
        # The libraries' texts differ ("Connection refused", "Connect call failed"); the errno says it.
        found = _ERRNO.search(text)
        if found:
            return f"{os.strerror(int(found.group(1))).lower()} ({text.split(': ', 1)[0]})"
    return text


_ERRNO: Final = re.compile(r"\[Errno (\d+)\]")


def result_record(result: SendResult) -> tuple[str | None, dict[str, Any]]:
    """The request id to keep, and the response worth keeping, of a send LINE accepted.

    On a 409 "already accepted" the request id kept is the one of the request LINE accepted first.
    """
    body: dict[str, Any] = {}
    if isinstance(result, PushResult):
        body["sentMessages"] = [
            {"id": m.id, **({"quoteToken": m.quote_token} if m.quote_token else {})}
            for m in result.sent_messages
        ]
    if result.duplicate:
        body["duplicate"] = True
        body["acceptedRequestId"] = result.accepted_request_id
        body["requestId"] = result.request_id
    return (result.accepted_request_id or result.request_id), body


def window_expired_error(message: OutboxMessage, window: RetryWindow, now: float) -> RetryWindowExpiredError:
    first = message.first_attempt_at if message.first_attempt_at is not None else now
    hours = (now - first) / 3600
    return RetryWindowExpiredError(
        f"message {message.id} was first attempted {hours:.1f} h ago; LINE remembers a retry key for "
        f"{window.window / 3600:g} h (this outbox stops {window.margin / 3600:g} h earlier), so sending it "
        "again could deliver it twice. It was not resent; requeue it with a new retry key if it must go "
        "anyway (`linepush queue retry --new-key`)"
    )


def settle_many(store: Store, worker_id: str, now: float, items: Sequence[Settlement]) -> list[bool]:
    """Write back many rows in one transaction (see :meth:`Store.settle`)."""
    return store.settle(worker_id, now, items)


@dataclass(frozen=True, slots=True)
class SendCost:
    """What a send costs against the monthly limit: one message per user, and per member of a group or room
    (FACTS §3.8), whatever the number of message objects."""

    units: int
    #: Groups and rooms whose member count could not be had: each is counted as 1.
    unknown: tuple[str, ...] = ()


def send_cost(recipients: Iterable[str], members: Mapping[str, int | None]) -> SendCost:
    """The cost of sending once to each of ``recipients``; ``members`` gives the member count of the groups
    and rooms among them (None, or missing: not known)."""
    units = 0
    unknown: list[str] = []
    for recipient in recipients:
        if recipient[:1] in ("C", "R"):
            count = members.get(recipient)
            if count is None:
                unknown.append(recipient)
                count = 1
            units += count
        else:
            units += 1
    return SendCost(units, tuple(unknown))


# -- the library face --------------------------------------------------------------------------------------


@dataclass
class Outbox:
    """The outbox of one channel over a :class:`~linepush.store.Store`.

    ``clock`` gives UNIX seconds (inject one in tests). Methods that add rows validate everything first and
    store nothing when any part is refused.

    ``batch``: the pushes it queues (without a retry key of their own) may be batched. A worker then sends the
    pushes to one chat that are due together, with the same options, as one push of up to 5 message objects
    in queue order, which LINE counts as one message per recipient (FACTS §3.8) instead of one per push. The
    batch is recorded when it is first claimed, so a resend is always the same request under the same retry
    key. Off by default: each push is a request of its own, with its own ``sentMessages``. The gateway and
    the alert receivers queue their pushes batchable.
    """

    store: Store
    channel_id: str
    clock: Callable[[], float] = time.time
    window: RetryWindow = field(default=DEFAULT_RETRY_WINDOW)
    batch: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.channel_id, str) or not self.channel_id:
            raise ConfigurationError("the outbox needs a channel id (LINE_CHANNEL_ID)")

    # adding
    def enqueue(self, items: Sequence[NewMessage]) -> list[OutboxMessage]:
        """Store rows built with :func:`push_item` and friends in one transaction (all or none)."""
        return self.store.enqueue(items, self.clock())

    def send(
        self,
        to: Sequence[str],
        messages: Messages,
        *,
        broadcast: bool = False,
        not_before: float | None = None,
        retry_key: str | None = None,
        notification_disabled: bool = False,
    ) -> list[OutboxMessage]:
        """One send to any mix of recipients (see :func:`send_items`), stored in one transaction."""
        return self.enqueue(
            send_items(
                self.channel_id,
                messages,
                to=to,
                broadcast=broadcast,
                not_before=not_before,
                retry_key=retry_key,
                notification_disabled=notification_disabled,
                batchable=self.batch,
            )
        )

    def push(
        self,
        to: str,
        messages: Messages,
        *,
        not_before: float | None = None,
        retry_key: str | None = None,
        notification_disabled: bool = False,
        custom_aggregation_units: Sequence[str] | None = None,
    ) -> OutboxMessage:
        item = push_item(
            self.channel_id,
            to,
            messages,
            not_before=not_before,
            retry_key=retry_key,
            notification_disabled=notification_disabled,
            custom_aggregation_units=custom_aggregation_units,
            batchable=self.batch,
        )
        return self.enqueue([item])[0]

    def multicast(
        self,
        to: Iterable[str],
        messages: Messages,
        *,
        not_before: float | None = None,
        retry_key: str | None = None,
        notification_disabled: bool = False,
        custom_aggregation_units: Sequence[str] | None = None,
    ) -> list[OutboxMessage]:
        """One row per 500 recipients, all stored in one transaction."""
        return self.enqueue(
            multicast_items(
                self.channel_id,
                to,
                messages,
                not_before=not_before,
                retry_key=retry_key,
                notification_disabled=notification_disabled,
                custom_aggregation_units=custom_aggregation_units,
            )
        )

    def broadcast(
        self,
        messages: Messages,
        *,
        not_before: float | None = None,
        retry_key: str | None = None,
        notification_disabled: bool = False,
    ) -> OutboxMessage:
        item = broadcast_item(
            self.channel_id,
            messages,
            not_before=not_before,
            retry_key=retry_key,
            notification_disabled=notification_disabled,
        )
        return self.enqueue([item])[0]

    def narrowcast(
        self,
        messages: Messages,
        *,
        not_before: float | None = None,
        retry_key: str | None = None,
        recipient: Mapping[str, Any] | None = None,
        filter: Mapping[str, Any] | None = None,
        limit: Mapping[str, Any] | None = None,
        notification_disabled: bool = False,
    ) -> OutboxMessage:
        item = narrowcast_item(
            self.channel_id,
            messages,
            not_before=not_before,
            retry_key=retry_key,
            recipient=recipient,
            filter=filter,
            limit=limit,
            notification_disabled=notification_disabled,
        )
        return self.enqueue([item])[0]

    # working
    def claim(self, worker_id: str, limit: int, lease_seconds: float) -> list[OutboxMessage]:
        return self.store.claim(worker_id, limit, lease_seconds, self.clock(), channel_id=self.channel_id)

    def renew(self, ids: Sequence[int], worker_id: str, lease_seconds: float) -> int:
        return self.store.renew_leases(ids, worker_id, lease_seconds, self.clock())

    def release(self, ids: Sequence[int], worker_id: str) -> int:
        return self.store.release(ids, worker_id, self.clock())

    def delivered(self, message_id: int, worker_id: str, result: SendResult) -> bool:
        request_id, body = result_record(result)
        return self.store.mark_delivered(message_id, worker_id, self.clock(), request_id, body)

    def retry_later(self, message_id: int, worker_id: str, error: BaseException, not_before: float) -> bool:
        now = self.clock()
        return self.store.mark_retry(message_id, worker_id, now, not_before, error_record(error, now=now))

    def failed(self, message_id: int, worker_id: str, error: BaseException) -> bool:
        now = self.clock()
        return self.store.mark_failed(message_id, worker_id, now, error_record(error, now=now))

    def settle(self, worker_id: str, items: Sequence[Settlement]) -> list[bool]:
        """Write back many rows at once; False for a row whose lease this worker no longer holds."""
        return settle_many(self.store, worker_id, self.clock(), items)

    # inspecting and maintaining
    def get(self, message_id: int) -> OutboxMessage | None:
        message = self.store.get_message(message_id)
        return message if message is not None and message.channel_id == self.channel_id else None

    def messages(
        self, state: MessageState | None = None, *, limit: int = 100, after_id: int | None = None
    ) -> list[OutboxMessage]:
        return self.store.list_messages(state, self.channel_id, limit, after_id)

    def counts(self) -> dict[MessageState, int]:
        return self.store.counts(self.channel_id)

    def requeue(self, ids: Sequence[int] | None = None, *, new_retry_key: bool = False) -> int:
        """failed → queued. See :meth:`Store.requeue` for what ``new_retry_key`` risks."""
        if ids is None:
            ids = [m.id for m in self._all("failed")]
        else:
            ids = [i for i in ids if self.get(i) is not None]
        return self.store.requeue(ids, now=self.clock(), new_retry_key=new_retry_key)

    def purge(self, states: Collection[MessageState], older_than: float = 0.0) -> int:
        """Delete rows in ``states`` older than ``older_than`` seconds, of every channel in the store."""
        return self.store.purge(states, older_than, self.clock())

    def paused_until(self) -> float | None:
        """Until when the channel's sends are paused (its monthly message limit reached), or None."""
        return paused_until(self.store, self.channel_id, self.clock())

    def resume(self) -> bool:
        """Lift the channel's pause now (more messages were bought, say); False when it was not paused."""
        return resume_channel(self.store, self.channel_id, self.clock())

    def _all(self, state: MessageState) -> list[OutboxMessage]:
        out: list[OutboxMessage] = []
        after: int | None = None
        while True:
            page = self.store.list_messages(state, self.channel_id, 1000, after)
            out.extend(page)
            if len(page) < 1000:
                return out
            after = page[-1].id


def classify(error: BaseException) -> SettlementOutcome:
    """Retry what may succeed later (no answer, 429, 5xx); fail what LINE refused for good. Every row carries
    its retry key, so a send with an unknown outcome is safe to repeat."""
    return "retry" if safe_to_resend(error, idempotent=True) else "failed"


def send_operation(message: OutboxMessage) -> Any:
    """The request for a stored row, with its own retry key."""
    kind: SendKind = message.kind
    return messaging.send_payload(kind, message.payload, message.retry_key)


def batch_operation(rows: Sequence[OutboxMessage]) -> Any:
    """The one push for the rows of a batch (as a claim hands them out: in their order), under the batch's
    retry key: the first row's options with every row's messages, in order."""
    key = rows[0].batch_key
    if key is None or any(row.batch_key != key or row.kind != "push" for row in rows):
        raise ValueError("the rows of one batch are pushes with its batch key")
    payload = dict(rows[0].payload)
    payload["messages"] = [message for row in rows for message in row.payload["messages"]]
    return messaging.send_payload("push", payload, key)


def batch_results(rows: Sequence[OutboxMessage], body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """What each row of a delivered batch keeps: its own messages' part of ``sentMessages`` (in order), and
    the batch it went in."""
    sent = body.get("sentMessages")
    counts = [len(row.payload["messages"]) for row in rows]
    results: list[dict[str, Any]] = []
    start = 0
    for row, count in zip(rows, counts, strict=True):
        record = {k: v for k, v in body.items() if k != "sentMessages"}
        if isinstance(sent, list) and len(sent) == sum(counts):
            record["sentMessages"] = sent[start : start + count]
        elif sent is not None:
            record["sentMessages"] = sent
        record["batch"] = {"retryKey": row.batch_key, "rows": len(rows), "position": row.batch_pos}
        results.append(record)
        start += count
    return results
