"""What the SQL backends share: every method's checks, its statement, its encoding and the record it returns.

A backend supplies how a statement runs (:meth:`SQLStore.select`, :meth:`SQLStore.change`,
:meth:`SQLStore.change_returning`, :meth:`SQLStore.change_many`), how a list of values is bound
(:meth:`SQLStore.among`), the claim, enqueue's and settle's writes, the rate limit's upsert, and the few
statements its dialect spells differently; everything else is written once, here. Shared statements mark
their values with ``?``; the PostgreSQL backend reads each ``?`` as ``%s``.
"""

# S608: the SQL here is assembled only from this module's constants, the backend's statements and "?" marks;
# every value is bound.
# ruff: noqa: S608

from __future__ import annotations

import abc
import json
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final, NamedTuple, Protocol, TypeVar

from linepush._secret import Secret
from linepush.errors import ValidationError
from linepush.store.base import DigestRender, Store
from linepush.store.checks import (
    check_limit,
    check_message_states,
    check_name,
    check_positive,
    check_rate,
    check_retry_key,
    check_time,
    check_token_kind,
    check_token_states,
    new_retry_key,
)
from linepush.store.records import (
    MAX_DIGEST_WINDOW,
    MESSAGE_KINDS,
    REVOCABLE_KINDS,
    DigestAppend,
    DigestPart,
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
    "BATCH_MAX_OBJECTS",
    "OUTBOX_COLUMNS",
    "OUTBOX_FIELDS",
    "CheckedSettlement",
    "Execute",
    "Prepared",
    "Run",
    "SQLStore",
    "add_for_this_thread",
    "claim_fields",
]

_TOKEN_COLUMNS = "id, channel_id, kind, access_token, key_id, issued_at, expires_at, state, superseded_at"
OUTBOX_FIELDS = (
    "id",
    "channel_id",
    "kind",
    "payload",
    "retry_key",
    "state",
    "attempts",
    "not_before",
    "first_attempt_at",
    "lease_owner",
    "lease_expires_at",
    "created_at",
    "updated_at",
    "delivered_at",
    "request_id",
    "result",
    "last_error",
    "batchable",
    "batch_key",
    "batch_pos",
)
OUTBOX_COLUMNS = ", ".join(OUTBOX_FIELDS)
_MESSAGE_STATES: tuple[MessageState, ...] = ("queued", "sending", "delivered", "failed")
T = TypeVar("T")


_ID_CHUNK: Final = 500
#: How far ahead of now a shared rate limit's next slot may be before it is taken for the mark of a clock that
#: was ahead: ten minutes, or 64 slots of a slow endpoint, more than any queue of senders waiting their turn.
RATE_HORIZON: Final = 600.0
RATE_HORIZON_SLOTS: Final = 64


@dataclass(slots=True)
class _Unit:
    """What one request of a claim sends: the ids of a row alone or of a batch's rows, in order."""

    ids: list[Any]
    key: str | None = None
    #: For a batch being formed: the payload without its messages (what its rows must share), its objects.
    shape: str | None = None
    objects: int = 0
    #: A batch formed by this claim (to be recorded with it).
    new: bool = False
    #: The channel and chat of a push; when the newest row of a batch being formed became due.
    chat: tuple[str, str] | None = None
    newest: float = 0.0


class CheckedSettlement(NamedTuple):
    """A :class:`Settlement` checked and encoded for binding: JSON as text, a retry's due time resolved."""

    message_id: Any
    outcome: SettlementOutcome
    request_id: str | None
    result: str | None
    error: str | None
    #: When a retry is due again; ``now`` for the other outcomes.
    not_before: float
    #: A retry that dissolves the row's batch.
    split: bool = False


#: Runs one statement inside a transaction (values marked ``?``) and returns its rows (none for a statement
#: that returns none).
Run = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]


#: One checked item of an enqueue, as the columns channel_id, kind, payload, retry_key, not_before,
#: retry_key_given, chat, batchable.
Prepared = tuple[str, str, str, str, float, int, str | None, int]

#: Most message objects in one push (FACTS §3.3): a batch holds at most this many in all.
BATCH_MAX_OBJECTS: Final = 5

#: The same as :data:`Run`: what a claim's transaction runs its statements through.
Execute = Run


def claim_fields(batchable: str) -> str:
    """What a backend's claim reads of each due row (see :attr:`SQLStore.claim_candidates_sql`, and
    ``not_before`` to order by), given the dialect's test that a row is batchable."""
    return (
        "id, channel_id, chat, batch_key, not_before,"
        f" CASE WHEN {batchable} AND attempts = 0 AND batch_key IS NULL THEN payload END AS payload"
    )


class SQLStore(Store):
    """A :class:`Store` on a SQL database: the interface's rules, with the dialect left to the backend.

    :meth:`select`, :meth:`change`, :meth:`change_returning`, :meth:`change_many` and :meth:`among` run
    statements whose values are marked ``?``; they are also how tables that others own in the same database
    (the gateway's, see :mod:`linepush.service.store`) are read and written.
    """

    #: True where JSON columns come back as text to parse (SQLite), False where the driver parses them.
    json_as_text: ClassVar[bool]
    #: ``superseded_at`` set by the new state (values: state, state, now, id).
    set_token_state_sql: ClassVar[str]
    #: Whether a lock's name starts with a prefix (values: prefix, prefix); not LIKE, a name may hold % or _.
    name_starts_with_sql: ClassVar[str]
    #: The function giving the larger of two values (SQLite's two-argument max, PostgreSQL's greatest).
    greatest_sql: ClassVar[str]
    #: Put after a text column in ORDER BY to sort it in byte order, whatever the database's collation.
    byte_order_sql: ClassVar[str]
    #: The due rows a claim considers (see :meth:`claim`): queued rows due at ``now`` and rows whose lease
    #: ran out, longest due first, at most ``limit``, as
    #: (id, channel_id, chat, batch_key, payload, not_before), the payload only of a fresh batchable push
    #: (never attempted, in no batch yet); ``{channel}`` is where the condition on the channel goes.
    #: Values: now, [channel], limit, now, [channel], limit, limit. Where rows are locked, they are locked
    #: here.
    claim_candidates_sql: ClassVar[str]
    #: Put after a SELECT of outbox rows that a claim will take (PostgreSQL: FOR UPDATE SKIP LOCKED).
    claim_lock_sql: ClassVar[str]
    #: Whether a claim first looks for due rows outside its write transaction (where reads are cheap and
    #: never wait for a writer, and the write lock is the whole database's: SQLite).
    claim_peeks: ClassVar[bool] = False
    #: The schema version the database holds now (one value).
    stored_schema_version_sql: ClassVar[str]
    #: A bound value written to a JSON column (``?``, or ``?`` cast to json).
    json_value_sql: ClassVar[str]
    #: Taken first by an append to a digest (one value: the chat's key), so that appenders of one chat take
    #: turns; None where every write transaction takes turns anyway (SQLite's one writer).
    digest_lock_sql: ClassVar[str | None]
    #: Put after the select of the open digest: lock its outbox row against a claim meanwhile.
    digest_row_lock_sql: ClassVar[str]

    # -- what each backend supplies --------------------------------------------------------------------------

    @abc.abstractmethod
    def select(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[tuple[Any, ...]]:
        """The rows of one statement that changes nothing."""

    @abc.abstractmethod
    def change(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> int:
        """Run one statement as a transaction of its own; returns how many rows it changed."""

    @abc.abstractmethod
    def change_returning(
        self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()
    ) -> list[tuple[Any, ...]]:
        """Run one statement as a transaction of its own; returns the rows of its RETURNING clause."""

    @abc.abstractmethod
    def change_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        """Run one statement once per row of values, all in one transaction; returns how many rows changed."""

    @abc.abstractmethod
    def among(self, column: str, values: Collection[Any], sql_type: str = "text") -> tuple[str, list[Any]]:
        """A condition that ``column`` is one of ``values``, and the values to bind for it."""

    @abc.abstractmethod
    def row_id(self, value: object) -> Any:
        """An id as this backend binds it."""

    @abc.abstractmethod
    def _transaction(self, work: Callable[[Execute], T]) -> T:
        """Run ``work`` in one write transaction (committed when it returns, rolled back when it raises)."""

    @abc.abstractmethod
    def _advance_rate(self, key: str, step: float, now: float, horizon: float) -> float:
        """Move the rate limit ``key``'s theoretical arrival time to ``max(tat, now) + step`` atomically (a
        first reservation starts at ``now + step``, and so does one whose time is more than ``horizon``
        seconds after ``now``); returns the new time."""

    @abc.abstractmethod
    def _insert_messages(self, rows: Sequence[Prepared], given: Mapping[str, int], now: float) -> list[int]:
        """Insert checked items in one transaction; returns their ids in the order given.

        ``given`` maps each retry key the caller chose to its item's index; one already in the outbox raises
        :class:`ValidationError` naming that item, and nothing is stored."""

    def _outbox_message(self, row: tuple[Any, ...]) -> OutboxMessage:
        return _message(row, decode=self.json_as_text)

    # -- tokens ----------------------------------------------------------------------------------------------

    def save_token(
        self,
        channel_id: str,
        kind: TokenKind,
        access_token: str | Secret,
        key_id: str | None,
        issued_at: float,
        expires_at: float | None,
    ) -> TokenRecord:
        check_name(channel_id, "channel_id")
        check_token_kind(kind)
        token = access_token.reveal() if isinstance(access_token, Secret) else access_token
        if not isinstance(token, str) or not token:
            raise ValidationError("access_token must be a non-empty string")
        if key_id is not None:
            check_name(key_id, "key_id")
        issued = check_time(issued_at, "issued_at")
        expires = None if expires_at is None else check_time(expires_at, "expires_at")
        rows = self.change_returning(
            "INSERT INTO tokens (channel_id, kind, access_token, key_id, issued_at, expires_at, state)"
            f" VALUES (?, ?, ?, ?, ?, ?, 'active') RETURNING {_TOKEN_COLUMNS}",
            (channel_id, kind, token, key_id, issued, expires),
        )
        return _token(rows[0])

    def current_token(self, channel_id: str, kind: TokenKind, now: float) -> TokenRecord | None:
        check_token_kind(kind)
        rows = self.select(
            f"SELECT {_TOKEN_COLUMNS} FROM tokens WHERE channel_id = ? AND kind = ? AND state = 'active'"
            " AND (expires_at IS NULL OR expires_at > ?) ORDER BY issued_at DESC, id DESC LIMIT 1",
            (channel_id, kind, check_time(now, "now")),
        )
        return _token(rows[0]) if rows else None

    def list_tokens(
        self,
        channel_id: str,
        kind: TokenKind | None = None,
        states: Collection[TokenState] | None = None,
    ) -> list[TokenRecord]:
        sql = f"SELECT {_TOKEN_COLUMNS} FROM tokens WHERE channel_id = ?"
        params: list[Any] = [channel_id]
        if kind is not None:
            sql += " AND kind = ?"
            params.append(check_token_kind(kind))
        if states is not None:
            condition, values = self.among("state", check_token_states(states))
            sql += f" AND {condition}"
            params.extend(values)
        return [_token(row) for row in self.select(sql + " ORDER BY issued_at, id", params)]

    def set_token_state(self, token_id: int, state: TokenState, now: float) -> None:
        check_token_states([state])
        moment = check_time(now, "now")
        if not self.change(self.set_token_state_sql, (state, state, moment, self.row_id(token_id))):
            raise LookupError(f"no stored token has id {token_id!r}")

    def supersede_others(self, channel_id: str, kind: TokenKind, keep_id: int, now: float) -> int:
        check_token_kind(kind)
        moment = check_time(now, "now")
        return self.change(
            "UPDATE tokens SET state = 'superseded', superseded_at = ?"
            " WHERE channel_id = ? AND kind = ? AND state = 'active' AND id != ?",
            (moment, channel_id, kind, self.row_id(keep_id)),
        )

    def tokens_due_for_revocation(
        self, channel_id: str, superseded_before: float, now: float
    ) -> list[TokenRecord]:
        revocable, kinds = self.among("kind", REVOCABLE_KINDS)
        rows = self.select(
            f"SELECT {_TOKEN_COLUMNS} FROM tokens WHERE channel_id = ? AND state = 'superseded'"
            f" AND {revocable} AND superseded_at <= ?"
            " AND (expires_at IS NULL OR expires_at > ?) ORDER BY superseded_at, id",
            (
                channel_id,
                *kinds,
                check_time(superseded_before, "superseded_before"),
                check_time(now, "now"),
            ),
        )
        return [_token(row) for row in rows]

    def delete_expired_tokens(self, now: float) -> int:
        return self.change("DELETE FROM tokens WHERE expires_at <= ?", (check_time(now, "now"),))

    # -- locks -----------------------------------------------------------------------------------------------

    def try_lock(self, name: str, owner: str, ttl: float, now: float) -> bool:
        check_name(name, "name")
        check_name(owner, "owner")
        moment = check_time(now, "now")
        until = moment + check_positive(ttl, "ttl")
        # One upsert: insert when free; take over when expired; extend when ours; otherwise no change. The
        # unique key settles a race between two inserts: the loser sees the winner's row and its lease.
        return (
            self.change(
                "INSERT INTO locks (name, owner, expires_at) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at"
                " WHERE locks.owner = excluded.owner OR locks.expires_at <= ?",
                (name, owner, until, moment),
            )
            == 1
        )

    def unlock(self, name: str, owner: str) -> None:
        self.change("DELETE FROM locks WHERE name = ? AND owner = ?", (name, owner))

    def lock_owner(self, name: str, now: float) -> str | None:
        check_name(name, "name")
        moment = check_time(now, "now")
        rows = self.select("SELECT owner FROM locks WHERE name = ? AND expires_at > ?", (name, moment))
        return str(rows[0][0]) if rows else None

    def take_over_lock(self, name: str, previous: str, owner: str, ttl: float, now: float) -> bool:
        check_name(name, "name")
        check_name(previous, "previous")
        check_name(owner, "owner")
        until = check_time(now, "now") + check_positive(ttl, "ttl")
        return (
            self.change(
                "UPDATE locks SET owner = ?, expires_at = ? WHERE name = ? AND owner = ?",
                (owner, until, name, previous),
            )
            == 1
        )

    def delete_expired_locks(self, prefix: str, now: float) -> int:
        check_name(prefix, "prefix")
        moment = check_time(now, "now")
        return self.change(
            f"DELETE FROM locks WHERE {self.name_starts_with_sql} AND expires_at <= ?",
            (prefix, prefix, moment),
        )

    def live_locks(self, prefix: str, now: float) -> dict[str, float]:
        check_name(prefix, "prefix")
        moment = check_time(now, "now")
        rows = self.select(
            f"SELECT name, expires_at FROM locks WHERE {self.name_starts_with_sql} AND expires_at > ?",
            (prefix, prefix, moment),
        )
        return {str(name): float(expires_at) for name, expires_at in rows}

    # -- shared rate limits ----------------------------------------------------------------------------------

    def reserve_rate(self, key: str, interval: float, tolerance: float, now: float) -> float:
        check_name(key, "key")
        step, slack = check_rate(interval, tolerance)
        moment = check_time(now, "now")
        # A slot further ahead than any queue of waiting senders would put it was stamped by a clock that was
        # ahead (stepped back since, or another host's): it starts again from now instead of holding every
        # sender of the key back for as long as that clock was wrong.
        horizon = max(RATE_HORIZON, RATE_HORIZON_SLOTS * step) + slack
        start = self._advance_rate(key, step, moment, horizon) - step - slack
        return start - moment if start > moment else 0.0

    # -- outbox: enqueue and claim ---------------------------------------------------------------------------

    def enqueue(self, items: Sequence[NewMessage], now: float) -> list[OutboxMessage]:
        moment = check_time(now, "now")
        prepared = [_prepare(index, item, moment) for index, item in enumerate(items)]
        if not prepared:
            return []
        given: dict[str, int] = {}
        for index, row in enumerate(prepared):
            if row[5]:
                if row[3] in given:
                    raise ValidationError(
                        f"repeats the retry key of items[{given[row[3]]}]",
                        property=f"items[{index}].retry_key",
                    )
                given[row[3]] = index
        ids = self._insert_messages(prepared, given, moment)
        return [
            OutboxMessage(
                id=message_id,
                channel_id=channel_id,
                kind=kind,  # type: ignore[arg-type]
                payload=item.payload if type(item.payload) is dict else dict(item.payload),
                retry_key=retry_key,
                state="queued",
                attempts=0,
                not_before=not_before,
                first_attempt_at=None,
                lease_owner=None,
                lease_expires_at=None,
                created_at=moment,
                updated_at=moment,
                delivered_at=None,
                request_id=None,
                result=None,
                last_error=None,
                batchable=bool(batchable),
            )
            for message_id, item, (channel_id, kind, _, retry_key, not_before, _, _, batchable) in zip(
                ids, items, prepared, strict=True
            )
        ]

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
        check_name(channel_id, "channel_id")
        check_name(to, "to")
        moment = check_time(now, "now")
        span = check_positive(window, "window")
        if span > MAX_DIGEST_WINDOW:
            raise ValidationError(f"a digest window is at most {MAX_DIGEST_WINDOW:g} seconds (a day)")
        if not isinstance(part, DigestPart):
            raise ValidationError("must be a DigestPart", property="part")
        silent = bool(notification_disabled)

        def work(run: Run) -> tuple[tuple[Any, ...], int, bool]:
            if self.digest_lock_sql is not None:
                run(self.digest_lock_sql, (f"linepush digest {channel_id} {to} {int(silent)}",))
            # Never claimed (attempts = 0) and in no batch: its payload has never gone out under a retry key,
            # so it may still change. A row claimed meanwhile is no longer queued and is left alone; one given
            # back unsent from a batch keeps its place in that batch, so it is left alone too.
            found = run(
                "SELECT d.message_id, d.parts FROM outbox_digests AS d"
                " JOIN outbox AS o ON o.id = d.message_id WHERE d.channel_id = ? AND d.recipient_id = ?"
                " AND d.silent = ? AND d.closes_at > ?"
                " AND o.state = 'queued' AND o.attempts = 0 AND o.batch_key IS NULL"
                f" ORDER BY d.closes_at DESC LIMIT 1{self.digest_row_lock_sql}",
                (channel_id, to, silent, moment),
            )
            if found:
                message_id, stored = found[0]
                parts = [*(DigestPart.from_record(r) for r in json.loads(stored)), part]
                payload = render(parts)
                if payload is not None:
                    run(
                        f"UPDATE outbox SET payload = {self.json_value_sql}, updated_at = ? WHERE id = ?",
                        (_digest_payload(payload), moment, message_id),
                    )
                    run(
                        "UPDATE outbox_digests SET parts = ? WHERE message_id = ?",
                        (_digest_parts(parts), message_id),
                    )
                    return _read_row(run, message_id), len(parts), False
                # Full: nothing more can join it, so it need not wait for the rest of its window.
                run("UPDATE outbox_digests SET closes_at = ? WHERE message_id = ?", (moment, message_id))
                run(
                    "UPDATE outbox SET not_before = ?, updated_at = ? WHERE id = ?",
                    (moment, moment, message_id),
                )
            payload = render([part])
            if payload is None:
                raise ValidationError("this notification alone does not fit in one push", property="part")
            opened = run(
                "INSERT INTO outbox (channel_id, kind, payload, retry_key, not_before, retry_key_given,"
                f" state, attempts, created_at, updated_at, chat) VALUES (?, 'push', {self.json_value_sql},"
                " ?, ?, ?, 'queued', 0, ?, ?, ?) RETURNING id",
                (
                    channel_id,
                    _digest_payload(payload),
                    new_retry_key(),
                    moment + span,
                    False,
                    moment,
                    moment,
                    to,
                ),
            )
            message_id = opened[0][0]
            run(
                "INSERT INTO outbox_digests (message_id, channel_id, recipient_id, silent, closes_at, parts)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (message_id, channel_id, to, silent, moment + span, _digest_parts([part])),
            )
            return _read_row(run, message_id), 1, True

        row, count, opened = self._transaction(work)
        return DigestAppend(self._outbox_message(row), count, opened)

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
        check_name(worker_id, "worker_id")
        check_limit(limit)
        moment = check_time(now, "now")
        until = moment + check_positive(lease_seconds, "lease_seconds")
        wait = check_time(gather, "gather")
        if self.claim_peeks and not self._plan(self.select, limit, moment, channel_id, wait):
            return []  # nothing to take: no write transaction (a worker asks often while its pushes are out)
        return self._transaction(
            lambda execute: self._claim(execute, worker_id, limit, until, moment, channel_id, wait)
        )

    def _claim_candidates(
        self, execute: Execute, limit: int, now: float, channel_id: str | None
    ) -> list[tuple[Any, ...]]:
        channel: list[Any] = [] if channel_id is None else [channel_id]
        sql = self.claim_candidates_sql.format(channel="" if channel_id is None else " AND channel_id = ?")
        return execute(sql, [now, *channel, limit, now, *channel, limit, limit])

    def _claim(
        self,
        execute: Execute,
        worker: str,
        limit: int,
        until: float,
        now: float,
        channel_id: str | None,
        gather: float,
    ) -> list[OutboxMessage]:
        """The claim, in one transaction: the due rows, their batches (formed now for fresh batchable rows,
        whole for those formed before), the new batches recorded, then the lease."""
        picked = self._plan(execute, limit, now, channel_id, gather)
        for unit in picked:
            if unit.new:
                for pos, message_id in enumerate(unit.ids):
                    execute(
                        "UPDATE outbox SET batch_key = ?, batch_pos = ? WHERE id = ?",
                        [unit.key, pos, self.row_id(message_id)],
                    )
        ids = [message_id for unit in picked for message_id in unit.ids]
        claimed: dict[Any, OutboxMessage] = {}
        for start in range(0, len(ids), _ID_CHUNK):
            condition, values = self.among("id", ids[start : start + _ID_CHUNK], "bigint")
            for row in execute(
                "UPDATE outbox SET state = 'sending', lease_owner = ?, lease_expires_at = ?,"
                " attempts = attempts + 1, first_attempt_at = coalesce(first_attempt_at, ?), updated_at = ?"
                f" WHERE {condition} RETURNING {OUTBOX_COLUMNS}",
                [worker, until, now, now, *values],
            ):
                claimed[row[0]] = self._outbox_message(row)
        return [claimed[message_id] for message_id in ids]

    def _plan(
        self, execute: Execute, limit: int, now: float, channel_id: str | None, gather: float
    ) -> list[_Unit]:
        """What a claim takes, in order: whole units (rows alone, batches) of the due rows, up to ``limit``
        rows (the first unit always: a batch has at most 5 rows)."""
        candidates = self._claim_candidates(execute, limit, now, channel_id)
        if not candidates:
            return []
        if len(candidates) == limit and any(row[4] is not None for row in candidates):
            # Fresh batchable pushes among a full window: look further, so that their batches can fill up
            # with the rows queued behind other chats' (a backlog of many chats); ``limit`` still holds.
            candidates = self._claim_candidates(execute, limit * BATCH_MAX_OBJECTS, now, channel_id)
        picked: list[_Unit] = []
        taken = 0
        for unit in self._units(execute, candidates, now, gather):
            if picked and taken + len(unit.ids) > limit:
                break
            picked.append(unit)
            taken += len(unit.ids)
        return picked

    def _units(
        self, execute: Execute, candidates: Sequence[tuple[Any, ...]], now: float, gather: float
    ) -> list[_Unit]:
        """The due rows as what goes out in one request each, in queue order: a row alone, a batch formed
        before (all of its rows, in their order, or none when one of them is not claimable now), or a new
        batch of fresh batchable pushes to one chat with the same options and at most 5 message objects in
        all. A row to a chat that goes another way closes the chat's new batch, so each chat's order holds."""
        units: list[_Unit] = []
        forming: dict[tuple[str, str], _Unit] = {}
        formed: dict[str, _Unit] = {}
        for message_id, channel_id, chat, batch_key, payload, not_before in candidates:
            if chat is not None and payload is None:
                forming.pop((channel_id, chat), None)
            if batch_key is not None:
                if batch_key not in formed:
                    formed[batch_key] = _Unit([message_id], batch_key, chat=(channel_id, chat))
                    units.append(formed[batch_key])
                continue
            if chat is None or payload is None:
                # Not batchable, or attempted alone already (under its own key, which LINE may have taken):
                # the payload is read only of fresh batchable rows.
                units.append(_Unit([message_id], chat=None if chat is None else (channel_id, chat)))
                continue
            body = json.loads(payload) if isinstance(payload, str) else payload
            messages = body.get("messages") if isinstance(body, dict) else None
            objects = len(messages) if isinstance(messages, list) else BATCH_MAX_OBJECTS
            shape = _JSON.encode({k: v for k, v in sorted(body.items()) if k != "messages"})
            current = forming.get((channel_id, chat))
            fits = current is not None and current.objects + objects <= BATCH_MAX_OBJECTS
            if current is not None and fits and current.shape == shape:
                current.ids.append(message_id)
                current.objects += objects
                current.newest = max(current.newest, float(not_before))
                continue
            unit = _Unit([message_id], shape=shape, objects=objects, chat=(channel_id, chat))
            unit.newest = float(not_before)
            forming[(channel_id, chat)] = unit
            units.append(unit)
        # A new batch with room left waits for a later claim, and so does what follows it to its chat, while
        # a push to its chat is in flight (sending, under a live lease) or its last row is younger than
        # ``gather``: the pushes queued meanwhile fill it up. A backlog still goes: its batches are full.
        roomy = [u for u in units if u.shape is not None and u.objects < BATCH_MAX_OBJECTS]
        busy: set[tuple[str, str] | None] = set()
        if roomy:
            busy = {
                (channel_id, chat)
                for channel_id, chat in execute(
                    "SELECT DISTINCT channel_id, chat FROM outbox WHERE state = 'sending'"
                    " AND chat IS NOT NULL AND lease_expires_at > ?",
                    [now],
                )
            }
        waiting: set[tuple[str, str] | None] = set()
        for unit in units:
            room = unit.shape is not None and unit.objects < BATCH_MAX_OBJECTS
            if unit.chat is not None and unit.chat in waiting:
                unit.ids = []
            elif room and (unit.chat in busy or unit.newest > now - gather):
                waiting.add(unit.chat)
                unit.ids = []
            elif unit.shape is not None and len(unit.ids) > 1:
                unit.new = True
                unit.key = new_retry_key()
        if formed:
            self._whole(execute, {key: unit for key, unit in formed.items() if unit.ids}, now)
        return [unit for unit in units if unit.ids]

    def _whole(self, execute: Execute, formed: Mapping[str, _Unit], now: float) -> None:
        """Give each batch formed before all of its rows in their order, or none (it waits for another
        claim) when one of them is not claimable now or another claimer holds it."""
        condition, values = self.among("batch_key", list(formed))
        counted = execute(
            f"SELECT batch_key, count(*) FROM outbox WHERE {condition} GROUP BY batch_key", values
        )
        total = {key: int(n) for key, n in counted}
        found: dict[str, list[tuple[int, Any, bool]]] = {}
        for message_id, key, pos, state, not_before, lease in execute(
            "SELECT id, batch_key, batch_pos, state, not_before, lease_expires_at FROM outbox"
            f" WHERE {condition}{self.claim_lock_sql}",
            values,
        ):
            due = (state == "queued" and not_before <= now) or (
                state == "sending" and lease is not None and lease <= now
            )
            found.setdefault(key, []).append((pos, message_id, due))
        for key, unit in formed.items():
            members = found.get(key, [])
            whole = len(members) == total.get(key) and all(due for _, _, due in members)
            unit.ids = [message_id for _, message_id, _ in sorted(members)] if whole else []

    # -- outbox: settling ------------------------------------------------------------------------------------

    # One outcome is a settlement of one item, so the lease rule and the encoding are those of settle().

    def mark_delivered(
        self,
        message_id: int,
        worker_id: str,
        now: float,
        request_id: str | None,
        result: Mapping[str, Any] | None,
    ) -> bool:
        item = Settlement(message_id, "delivered", request_id=request_id, result=result)
        return self.settle(worker_id, now, [item])[0]

    def mark_retry(
        self,
        message_id: int,
        worker_id: str,
        now: float,
        not_before: float,
        error: Mapping[str, Any] | None,
    ) -> bool:
        check_time(now, "now")
        # Required here, where settle() reads a missing not_before as "now".
        due = check_time(not_before, "not_before")
        item = Settlement(message_id, "retry", error=error, not_before=due)
        return self.settle(worker_id, now, [item])[0]

    def mark_failed(
        self, message_id: int, worker_id: str, now: float, error: Mapping[str, Any] | None
    ) -> bool:
        return self.settle(worker_id, now, [Settlement(message_id, "failed", error=error)])[0]

    @abc.abstractmethod
    def settle(self, worker_id: str, now: float, items: Sequence[Settlement]) -> list[bool]:
        """See :meth:`Store.settle`; a backend checks the items with :meth:`_check_settlements` first."""

    def _check_settlements(self, items: Sequence[Settlement], now: float) -> list[CheckedSettlement]:
        """Every item checked and encoded before anything is written, so a bad one changes nothing."""
        checked: list[CheckedSettlement] = []
        for index, item in enumerate(items):
            if not isinstance(item, Settlement):
                raise ValidationError("must be a Settlement", property=f"items[{index}]")
            outcome = item.outcome
            if outcome not in ("delivered", "retry", "failed"):
                raise ValidationError(
                    f"must be delivered, retry or failed, not {outcome!r}", property=f"items[{index}].outcome"
                )
            due = now
            if outcome == "retry" and item.not_before is not None:
                due = check_time(item.not_before, "not_before")
            delivered = outcome == "delivered"
            split = bool(item.split) and outcome == "retry"
            checked.append(
                CheckedSettlement(
                    message_id=self.row_id(item.message_id),
                    outcome=outcome,
                    request_id=item.request_id if delivered else None,
                    result=_json_or_none(item.result, "result") if delivered else None,
                    error=None if delivered else _json_or_none(item.error, "error"),
                    not_before=due,
                    split=split,
                )
            )
        return checked

    def _whole_batches(self, execute: Execute, items: Sequence[CheckedSettlement]) -> list[CheckedSettlement]:
        """``items``, then the other rows of every batch one of them settles, each settled the same way: the
        rows of a batch were one request, so they are delivered, retried, failed or split together."""
        named = {item.message_id: item for item in items}
        extra: list[CheckedSettlement] = []
        for start in range(0, len(items), _ID_CHUNK):
            condition, values = self.among(
                "o.id", [item.message_id for item in items[start : start + _ID_CHUNK]], "bigint"
            )
            for member, source in execute(
                "SELECT m.id, o.id FROM outbox AS o JOIN outbox AS m ON m.batch_key = o.batch_key"
                f" WHERE {condition} AND o.batch_key IS NOT NULL ORDER BY m.id",
                values,
            ):
                if member not in named:
                    named[member] = named[source]._replace(message_id=member)
                    extra.append(named[member])
        return [*items, *extra]

    # -- outbox: inspection and maintenance ------------------------------------------------------------------

    def get_message(self, message_id: int) -> OutboxMessage | None:
        rows = self.select(f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE id = ?", (self.row_id(message_id),))
        return self._outbox_message(rows[0]) if rows else None

    def list_messages(
        self,
        state: MessageState | None = None,
        channel_id: str | None = None,
        limit: int = 100,
        after_id: int | None = None,
    ) -> list[OutboxMessage]:
        sql = f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE id > ?"
        params: list[Any] = [self.row_id(after_id or 0)]
        if state is not None:
            sql += " AND state = ?"
            params.extend(check_message_states([state]))
        if channel_id is not None:
            sql += " AND channel_id = ?"
            params.append(channel_id)
        params.append(check_limit(limit))
        return [self._outbox_message(row) for row in self.select(sql + " ORDER BY id LIMIT ?", params)]

    # The counts come from outbox_counts, which triggers keep in the transaction of every write to the outbox:
    # a few rows per channel, however many the outbox holds.

    def counts(self, channel_id: str | None = None) -> dict[MessageState, int]:
        where = "" if channel_id is None else " AND channel_id = ?"
        rows = self.select(
            f"SELECT state, sum(n) FROM outbox_counts WHERE n <> 0{where} GROUP BY state",
            () if channel_id is None else (channel_id,),
        )
        found = {state: int(n) for state, n in rows}
        return {state: found.get(state, 0) for state in _MESSAGE_STATES}

    def counts_by_channel(self) -> dict[tuple[str, MessageState], int]:
        rows = self.select("SELECT channel_id, state, n FROM outbox_counts WHERE n <> 0")
        return {(channel_id, state): int(n) for channel_id, state, n in rows}

    def oldest_due(self, now: float, channel_id: str | None = None) -> float | None:
        # Served by the outbox_due index: the first queued row in not_before order.
        where = "" if channel_id is None else " AND channel_id = ?"
        rows = self.select(
            f"SELECT min(not_before) FROM outbox WHERE state = 'queued' AND not_before <= ?{where}",
            (check_time(now, "now"),) if channel_id is None else (check_time(now, "now"), channel_id),
        )
        return None if not rows or rows[0][0] is None else float(rows[0][0])

    def stored_schema_version(self) -> int:
        rows = self.select(self.stored_schema_version_sql)
        return int(rows[0][0]) if rows else 0

    def purge(self, states: Collection[MessageState], older_than: float, now: float) -> int:
        chosen = check_message_states(states)
        if not chosen:
            raise ValidationError("name at least one state to purge")
        if "sending" in chosen:
            raise ValidationError("rows in state 'sending' cannot be purged: a worker holds them")
        age = check_time(older_than, "older_than")
        if age < 0:
            raise ValidationError(f"older_than must be 0 or more seconds, not {older_than!r}")
        cutoff = check_time(now, "now") - age
        condition, values = self.among("state", chosen)
        # A batch goes whole: a resend of what is left under its key would be another request.
        return self.change(
            f"DELETE FROM outbox WHERE ({condition} AND updated_at < ?) OR (state != 'sending'"
            f" AND batch_key IN (SELECT batch_key FROM outbox WHERE {condition} AND updated_at < ?"
            " AND batch_key IS NOT NULL))",
            (*values, cutoff, *values, cutoff),
        )


# -- connections ---------------------------------------------------------------------------------------------


class _Connection(Protocol):
    def close(self) -> None: ...


C = TypeVar("C", bound=_Connection)


def add_for_this_thread(
    connections: list[tuple[threading.Thread, C]], conn: C
) -> list[tuple[threading.Thread, C]]:
    """``connections`` (one per thread) with ``conn`` added for this thread, less those of threads that have
    ended, which are closed: threads come and go (asyncio's executor, for one)."""
    alive = []
    for thread, other in connections:
        if thread.is_alive():
            alive.append((thread, other))
        else:
            other.close()
    alive.append((threading.current_thread(), conn))
    return alive


# -- checking items, encoding values, building records ---------------------------------------------------

# Compact, and refusing NaN and infinities, which LINE's JSON parser would refuse too.
_JSON: Final = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
# Errors and results are records for people: a value JSON cannot hold is kept as its text, not refused.
_JSON_LENIENT: Final = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=str
)


def _prepare(index: int, item: NewMessage, now: float) -> Prepared:
    """One item as the columns channel_id, kind, payload, retry_key, not_before, retry_key_given,
    chat (a push's ``to``; None for other kinds), batchable (1 for a push that may be batched)."""
    where = f"items[{index}]"
    if not isinstance(item, NewMessage):
        raise ValidationError("must be a NewMessage", property=where)
    if not isinstance(item.channel_id, str) or not item.channel_id:
        raise ValidationError("must be a non-empty string", property=f"{where}.channel_id")
    if item.kind not in MESSAGE_KINDS:
        raise ValidationError(f"must be one of {', '.join(MESSAGE_KINDS)}", property=f"{where}.kind")
    if not isinstance(item.payload, Mapping):
        raise ValidationError("must be a JSON object (a dict)", property=f"{where}.payload")
    try:
        payload = _JSON.encode(item.payload)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"cannot be stored as JSON: {exc}", property=f"{where}.payload") from None
    if item.not_before is None:
        not_before = now
    else:
        try:
            not_before = check_time(item.not_before, "not_before")
        except ValidationError as exc:
            raise ValidationError(exc.reason, property=f"{where}.not_before") from None
    to = item.payload.get("to")
    chat = to if item.kind == "push" and isinstance(to, str) else None
    if item.retry_key is None:
        batchable = int(item.batchable is True and chat is not None)
        return item.channel_id, item.kind, payload, new_retry_key(), not_before, 0, chat, batchable
    # A retry key the caller chose names this message alone: it is never mixed with others.
    return (
        item.channel_id,
        item.kind,
        payload,
        check_retry_key(item.retry_key, f"{where}.retry_key"),
        not_before,
        1,
        chat,
        0,
    )


def _digest_payload(payload: Mapping[str, Any]) -> str:
    try:
        return _JSON.encode(payload)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"the digest's payload cannot be stored as JSON: {exc}") from None


def _digest_parts(parts: Sequence[DigestPart]) -> str:
    try:
        return _JSON.encode([p.record() for p in parts])
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"a digest's notification cannot be stored as JSON: {exc}") from None


def _read_row(run: Run, message_id: Any) -> tuple[Any, ...]:
    return run(f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE id = ?", (message_id,))[0]


def _json_or_none(value: Mapping[str, Any] | None, name: str) -> str | None:
    if value is None:
        return None
    try:
        return _JSON_LENIENT.encode(value)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"{name} cannot be stored as JSON: {exc}") from None


def _float(value: float | None) -> float | None:
    # SQLite hands back REAL values that are whole numbers as int; the rows promise floats.
    return None if value is None else float(value)


def _token(row: tuple[Any, ...]) -> TokenRecord:
    return TokenRecord(
        id=row[0],
        channel_id=row[1],
        kind=row[2],
        access_token=Secret(row[3]),
        key_id=row[4],
        issued_at=float(row[5]),
        expires_at=_float(row[6]),
        state=row[7],
        superseded_at=_float(row[8]),
    )


def _message(row: tuple[Any, ...], *, decode: bool = True) -> OutboxMessage:
    """``decode``: the JSON columns arrive as text (SQLite) rather than parsed (psycopg)."""
    load = json.loads if decode else _as_is
    return OutboxMessage(
        id=row[0],
        channel_id=row[1],
        kind=row[2],
        payload=load(row[3]),
        retry_key=row[4],
        state=row[5],
        attempts=row[6],
        not_before=float(row[7]),
        first_attempt_at=_float(row[8]),
        lease_owner=row[9],
        lease_expires_at=_float(row[10]),
        created_at=float(row[11]),
        updated_at=float(row[12]),
        delivered_at=_float(row[13]),
        request_id=row[14],
        result=None if row[15] is None else load(row[15]),
        last_error=None if row[16] is None else load(row[16]),
        batchable=bool(row[17]),
        batch_key=row[18],
        batch_pos=row[19],
    )


def _as_is(value: Any) -> Any:
    return value
