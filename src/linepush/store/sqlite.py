"""The embedded SQLite backend: one file per host, shared by every process on it, in WAL mode.

Connections are per thread (WAL lets readers go on while another thread or process writes, so a token read
never waits behind an outbox claim); every write is one ``BEGIN IMMEDIATE`` transaction, which makes claims
atomic across processes.
"""

# S608: the SQL here is assembled only from this module's constants and "?" marks; every value is bound.
# ruff: noqa: S608

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any, Final

from linepush._secret import Secret
from linepush.errors import ConfigurationError, ValidationError
from linepush.store._rows import (
    _gateway_token,
    _json_or_none,
    _message,
    _prepare,
    _recipient,
    _token,
)
from linepush.store.base import (
    REVOCABLE_KINDS,
    GatewayToken,
    MessageState,
    NewMessage,
    OutboxMessage,
    RecipientSighting,
    Settlement,
    Store,
    StoreError,
    TokenKind,
    TokenRecord,
    TokenState,
    WebhookRecipient,
    check_gateway_token,
    check_limit,
    check_message_states,
    check_name,
    check_positive,
    check_rate,
    check_sightings,
    check_time,
    check_token_kind,
    check_token_states,
    is_token_hash,
)
from linepush.store.base import (
    new_retry_key as fresh_retry_key,
)

__all__ = ["DEFAULT_BUSY_TIMEOUT", "MIGRATIONS", "SQLiteStore"]

#: Seconds a write waits for another process's transaction before giving up with StoreError.
DEFAULT_BUSY_TIMEOUT: Final = 30.0

# Ordered schema migrations: MIGRATIONS[n] takes the database from version n to n + 1 (PRAGMA user_version).
# Append only; never edit one that has shipped.
MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (
        """
        CREATE TABLE tokens (
            id            INTEGER PRIMARY KEY AUTOINCREMENT,
            channel_id    TEXT NOT NULL,
            kind          TEXT NOT NULL CHECK (kind IN ('v2.1', 'v3', 'v2', 'static')),
            access_token  TEXT NOT NULL,
            key_id        TEXT,
            issued_at     REAL NOT NULL,
            expires_at    REAL,
            state         TEXT NOT NULL CHECK (state IN ('active', 'superseded', 'invalid', 'revoked')),
            superseded_at REAL
        )
        """,
        "CREATE INDEX tokens_by_channel ON tokens (channel_id, kind, state, issued_at)",
        """
        CREATE TABLE locks (
            name       TEXT PRIMARY KEY,
            owner      TEXT NOT NULL,
            expires_at REAL NOT NULL
        ) WITHOUT ROWID
        """,
        # AUTOINCREMENT so that an id is never reused after a purge: logs and the CLI name messages by id.
        """
        CREATE TABLE outbox (
            id               INTEGER PRIMARY KEY AUTOINCREMENT,
            channel_id       TEXT NOT NULL,
            kind             TEXT NOT NULL CHECK (kind IN ('push', 'multicast', 'broadcast', 'narrowcast')),
            payload          TEXT NOT NULL,
            retry_key        TEXT NOT NULL,
            retry_key_given  INTEGER NOT NULL DEFAULT 0 CHECK (retry_key_given IN (0, 1)),
            state            TEXT NOT NULL CHECK (state IN ('queued', 'sending', 'delivered', 'failed')),
            attempts         INTEGER NOT NULL DEFAULT 0,
            not_before       REAL NOT NULL,
            first_attempt_at REAL,
            lease_owner      TEXT,
            lease_expires_at REAL,
            created_at       REAL NOT NULL,
            updated_at       REAL NOT NULL,
            delivered_at     REAL,
            request_id       TEXT,
            result           TEXT,
            last_error       TEXT
        )
        """,
        # Serves claim (state range, then not_before order; the rowid breaks ties), counts and purge.
        "CREATE INDEX outbox_due ON outbox (state, not_before)",
        # Finds expired leases without reading every in-flight row.
        "CREATE INDEX outbox_leases ON outbox (lease_expires_at) WHERE state = 'sending'",
        # Retry keys the caller chose must not repeat (LINE would take the second message for the first).
        # Generated ones are random UUIDs and are left out: indexing them costs half of enqueue's time.
        "CREATE UNIQUE INDEX outbox_given_retry_key ON outbox (retry_key) WHERE retry_key_given = 1",
    ),
    # 1 → 2: the gateway's tables (gateway tokens, recipients learnt from webhooks).
    (
        # Only the token's SHA-256 is kept; the unique index serves the lookup on every gateway request.
        """
        CREATE TABLE gateway_tokens (
            id           INTEGER PRIMARY KEY AUTOINCREMENT,
            channel_id   TEXT NOT NULL,
            token_hash   TEXT NOT NULL UNIQUE,
            recipient_id TEXT NOT NULL,
            name         TEXT,
            created_at   REAL NOT NULL,
            revoked_at   REAL
        )
        """,
        """
        CREATE TABLE webhook_recipients (
            channel_id      TEXT NOT NULL,
            recipient_id    TEXT NOT NULL,
            type            TEXT NOT NULL CHECK (type IN ('user', 'group', 'room')),
            first_seen_at   REAL NOT NULL,
            last_seen_at    REAL NOT NULL,
            last_event_type TEXT NOT NULL,
            sightings       INTEGER NOT NULL,
            PRIMARY KEY (channel_id, recipient_id)
        ) WITHOUT ROWID
        """,
    ),
    # 2 → 3: shared rate limits.
    (
        # Shared rate limits: the theoretical arrival time (GCRA) of the next request, per key.
        "CREATE TABLE rate_limits (key TEXT PRIMARY KEY, tat REAL NOT NULL) WITHOUT ROWID",
    ),
)

_TOKEN_COLUMNS: Final = (
    "id, channel_id, kind, access_token, key_id, issued_at, expires_at, state, superseded_at"
)
_GATEWAY_TOKEN_COLUMNS: Final = "id, channel_id, token_hash, recipient_id, name, created_at, revoked_at"
_RECIPIENT_COLUMNS: Final = (
    "channel_id, recipient_id, type, first_seen_at, last_seen_at, last_event_type, sightings"
)
_OUTBOX_COLUMNS: Final = (
    "id, channel_id, kind, payload, retry_key, state, attempts, not_before, first_attempt_at, lease_owner, "
    "lease_expires_at, created_at, updated_at, delivered_at, request_id, result, last_error"
)
# Bound parameters per statement, well under SQLite's limit.
_CHUNK: Final = 500
_LEASE_HELD: Final = "state = 'sending' AND lease_owner = ? AND lease_expires_at > ?"
_DELIVERED: Final = (
    "UPDATE outbox SET state = 'delivered', delivered_at = ?, updated_at = ?, request_id = ?,"
    f" result = ?, lease_owner = NULL, lease_expires_at = NULL WHERE id = ? AND {_LEASE_HELD}"
)
_RETRY: Final = (
    "UPDATE outbox SET state = 'queued', not_before = ?, updated_at = ?, last_error = ?,"
    f" lease_owner = NULL, lease_expires_at = NULL WHERE id = ? AND {_LEASE_HELD}"
)
_FAILED: Final = (
    "UPDATE outbox SET state = 'failed', updated_at = ?, last_error = ?,"
    f" lease_owner = NULL, lease_expires_at = NULL WHERE id = ? AND {_LEASE_HELD}"
)


def _claim_sql(by_channel: bool) -> str:
    channel = " AND channel_id = :channel" if by_channel else ""
    # Queued rows: walk outbox_due in (not_before, id) order and stop at the limit. Expired leases: the
    # planner, without statistics, would read every in-flight row through outbox_due instead.
    due = (
        "SELECT id, not_before FROM (SELECT id, not_before FROM outbox"
        f" WHERE state = 'queued' AND not_before <= :now{channel} ORDER BY not_before, id LIMIT :limit)"
        " UNION ALL SELECT id, not_before FROM (SELECT id, not_before FROM outbox INDEXED BY outbox_leases"
        f" WHERE state = 'sending' AND lease_expires_at <= :now{channel}"
        " ORDER BY not_before, id LIMIT :limit)"
    )
    return (
        "UPDATE outbox SET state = 'sending', lease_owner = :worker, lease_expires_at = :until,"
        " attempts = attempts + 1, first_attempt_at = coalesce(first_attempt_at, :now), updated_at = :now"
        f" WHERE id IN (SELECT id FROM ({due}) ORDER BY not_before, id LIMIT :limit)"
        f" RETURNING {_OUTBOX_COLUMNS}"
    )


_CLAIM: Final = _claim_sql(by_channel=False)
_CLAIM_BY_CHANNEL: Final = _claim_sql(by_channel=True)


class SQLiteStore(Store):
    """The store in one SQLite file. Open it with :func:`linepush.store.open_store` or directly by path."""

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> None:
        self._path = os.path.abspath(os.path.expanduser(os.fspath(path)))
        self._busy_timeout = check_positive(busy_timeout, "busy_timeout")
        self._closed = False
        self._reset_connections()
        _create_private_file(self._path)
        conn = self._connection()
        try:
            self._schema_version = _open_database(conn, self._path)
        except BaseException:
            self.close()
            raise

    @property
    def path(self) -> str:
        return self._path

    @property
    def schema_version(self) -> int:
        return self._schema_version

    def __repr__(self) -> str:
        return f"SQLiteStore({self._path!r})"

    # -- connections -----------------------------------------------------------------------------------------

    def _reset_connections(self) -> None:
        # Also run in a forked child: a connection must never cross fork(), and a lock held by another thread
        # at fork time would never be released in the child.
        self._pid = os.getpid()
        self._local = threading.local()
        self._registry_lock = threading.Lock()
        self._connections: list[tuple[threading.Thread, sqlite3.Connection]] = []

    def _connection(self) -> sqlite3.Connection:
        if self._pid != os.getpid():
            self._reset_connections()
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        if self._closed:
            raise StoreError("this store has been closed")
        try:
            # check_same_thread is off only so close() may close every thread's connection; in use, each
            # connection stays with the thread that opened it.
            conn = sqlite3.connect(
                self._path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as exc:
            raise ConfigurationError(f"cannot open the store at {self._path}: {exc}") from None
        with self._registry_lock:
            if self._closed:  # close() ran while this connection was being opened
                conn.close()
                raise StoreError("this store has been closed")
            # Threads come and go (asyncio's executor, for one): close the connections of dead ones.
            alive = []
            for thread, other in self._connections:
                if thread.is_alive():
                    alive.append((thread, other))
                else:
                    other.close()
            alive.append((threading.current_thread(), conn))
            self._connections = alive
        self._local.conn = conn
        return conn

    def close(self) -> None:
        if self._pid != os.getpid():
            self._reset_connections()
        with self._registry_lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for _, conn in connections:
            conn.close()
        self._local = threading.local()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; IMMEDIATE takes the write lock up front, so what it reads stays true."""
        conn = self._connection()
        with _store_errors():
            conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            # A failed rollback must not hide the error that caused it.
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        with _store_errors():
            conn.execute("COMMIT")

    def _read(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[tuple[Any, ...]]:
        conn = self._connection()
        with _store_errors():
            return conn.execute(sql, params).fetchall()

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
        with self._write() as conn, _store_errors():
            row = conn.execute(
                "INSERT INTO tokens (channel_id, kind, access_token, key_id, issued_at, expires_at, state)"
                f" VALUES (?, ?, ?, ?, ?, ?, 'active') RETURNING {_TOKEN_COLUMNS}",
                (channel_id, kind, token, key_id, issued, expires),
            ).fetchone()
        return _token(row)

    def current_token(self, channel_id: str, kind: TokenKind, now: float) -> TokenRecord | None:
        check_token_kind(kind)
        rows = self._read(
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
            wanted = check_token_states(states)
            sql += f" AND state IN ({_marks(wanted)})"
            params.extend(wanted)
        return [_token(row) for row in self._read(sql + " ORDER BY issued_at, id", params)]

    def set_token_state(self, token_id: int, state: TokenState, now: float) -> None:
        check_token_states([state])
        moment = check_time(now, "now")
        with self._write() as conn, _store_errors():
            changed = conn.execute(
                "UPDATE tokens SET state = ?, superseded_at = CASE ? WHEN 'superseded' THEN ?"
                " WHEN 'active' THEN NULL ELSE superseded_at END WHERE id = ?",
                (state, state, moment, token_id),
            ).rowcount
        if not changed:
            raise LookupError(f"no stored token has id {token_id!r}")

    def supersede_others(self, channel_id: str, kind: TokenKind, keep_id: int, now: float) -> int:
        check_token_kind(kind)
        moment = check_time(now, "now")
        with self._write() as conn, _store_errors():
            return conn.execute(
                "UPDATE tokens SET state = 'superseded', superseded_at = ?"
                " WHERE channel_id = ? AND kind = ? AND state = 'active' AND id != ?",
                (moment, channel_id, kind, keep_id),
            ).rowcount

    def tokens_due_for_revocation(
        self, channel_id: str, superseded_before: float, now: float
    ) -> list[TokenRecord]:
        rows = self._read(
            f"SELECT {_TOKEN_COLUMNS} FROM tokens WHERE channel_id = ? AND state = 'superseded'"
            f" AND kind IN ({_marks(REVOCABLE_KINDS)}) AND superseded_at <= ?"
            " AND (expires_at IS NULL OR expires_at > ?) ORDER BY superseded_at, id",
            (
                channel_id,
                *REVOCABLE_KINDS,
                check_time(superseded_before, "superseded_before"),
                check_time(now, "now"),
            ),
        )
        return [_token(row) for row in rows]

    def delete_expired_tokens(self, now: float) -> int:
        moment = check_time(now, "now")
        with self._write() as conn, _store_errors():
            return conn.execute("DELETE FROM tokens WHERE expires_at <= ?", (moment,)).rowcount

    # -- locks -----------------------------------------------------------------------------------------------

    def try_lock(self, name: str, owner: str, ttl: float, now: float) -> bool:
        check_name(name, "name")
        check_name(owner, "owner")
        moment = check_time(now, "now")
        until = moment + check_positive(ttl, "ttl")
        with self._write() as conn, _store_errors():
            # One upsert: insert when free; take over when expired; extend when ours; otherwise no change.
            return (
                conn.execute(
                    "INSERT INTO locks (name, owner, expires_at) VALUES (?, ?, ?)"
                    " ON CONFLICT (name) DO UPDATE SET owner = excluded.owner,"
                    " expires_at = excluded.expires_at"
                    " WHERE locks.owner = excluded.owner OR locks.expires_at <= ?",
                    (name, owner, until, moment),
                ).rowcount
                == 1
            )

    def unlock(self, name: str, owner: str) -> None:
        with self._write() as conn, _store_errors():
            conn.execute("DELETE FROM locks WHERE name = ? AND owner = ?", (name, owner))

    # -- shared rate limits ----------------------------------------------------------------------------------

    def reserve_rate(self, key: str, interval: float, tolerance: float, now: float) -> float:
        check_name(key, "key")
        step, slack = check_rate(interval, tolerance)
        moment = check_time(now, "now")
        # This commit does not wait for the disk (synchronous NORMAL, on this thread's connection and for this
        # transaction only): a slot lost in a crash costs nothing, and a sync per request would cost more
        # than the request. Every other write stays FULL.
        conn = self._connection()
        with _store_errors():
            conn.execute("PRAGMA synchronous = NORMAL")
        try:
            with self._write() as conn, _store_errors():
                tat: float = conn.execute(
                    "INSERT INTO rate_limits (key, tat) VALUES (:key, :now + :step)"
                    " ON CONFLICT (key) DO UPDATE SET tat = max(rate_limits.tat, :now) + :step RETURNING tat",
                    {"key": key, "now": moment, "step": step},
                ).fetchone()[0]
        finally:
            with _store_errors():
                conn.execute("PRAGMA synchronous = FULL")
        start = tat - step - slack
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
        with self._write() as conn, _store_errors():
            keys = list(given)
            for start in range(0, len(keys), _CHUNK):
                chunk = keys[start : start + _CHUNK]
                taken = conn.execute(
                    "SELECT retry_key FROM outbox WHERE retry_key_given = 1"
                    f" AND retry_key IN ({_marks(chunk)}) LIMIT 1",
                    chunk,
                ).fetchone()
                if taken:
                    raise ValidationError(
                        "this retry key is already in the outbox",
                        property=f"items[{given[taken[0]]}].retry_key",
                    )
            # Ids are given explicitly, so the rows can be returned without reading them back; the write lock
            # is held, so nobody else can take these numbers in between.
            first: int = conn.execute(
                "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'outbox'), 0),"
                " coalesce((SELECT max(id) FROM outbox), 0)) + 1"
            ).fetchone()[0]
            conn.executemany(
                "INSERT INTO outbox (id, channel_id, kind, payload, retry_key, not_before, retry_key_given,"
                " state, attempts, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', 0, ?, ?)",
                [(first + offset, *row, moment, moment) for offset, row in enumerate(prepared)],
            )
        return [
            OutboxMessage(
                id=first + offset,
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
            )
            for offset, (item, (channel_id, kind, _, retry_key, not_before, _)) in enumerate(
                zip(items, prepared, strict=True)
            )
        ]

    def claim(
        self,
        worker_id: str,
        limit: int,
        lease_seconds: float,
        now: float,
        channel_id: str | None = None,
    ) -> list[OutboxMessage]:
        check_name(worker_id, "worker_id")
        check_limit(limit)
        moment = check_time(now, "now")
        until = moment + check_positive(lease_seconds, "lease_seconds")
        with self._write() as conn, _store_errors():
            rows = conn.execute(
                _CLAIM_BY_CHANNEL if channel_id is not None else _CLAIM,
                {"worker": worker_id, "until": until, "now": moment, "limit": limit, "channel": channel_id},
            ).fetchall()
        return sorted((_message(row) for row in rows), key=lambda m: (m.not_before, m.id))

    def renew_leases(self, ids: Sequence[int], worker_id: str, lease_seconds: float, now: float) -> int:
        moment = check_time(now, "now")
        until = moment + check_positive(lease_seconds, "lease_seconds")
        return self._update_each(
            f"UPDATE outbox SET lease_expires_at = ? WHERE id = ? AND {_LEASE_HELD}",
            [(until, message_id, worker_id, moment) for message_id in ids],
        )

    # -- outbox: settling ------------------------------------------------------------------------------------

    def mark_delivered(
        self,
        message_id: int,
        worker_id: str,
        now: float,
        request_id: str | None,
        result: Mapping[str, Any] | None,
    ) -> bool:
        moment = check_time(now, "now")
        body = _json_or_none(result, "result")
        return (
            self._update_each(_DELIVERED, [(moment, moment, request_id, body, message_id, worker_id, moment)])
            == 1
        )

    def mark_retry(
        self,
        message_id: int,
        worker_id: str,
        now: float,
        not_before: float,
        error: Mapping[str, Any] | None,
    ) -> bool:
        moment = check_time(now, "now")
        due = check_time(not_before, "not_before")
        body = _json_or_none(error, "error")
        return self._update_each(_RETRY, [(due, moment, body, message_id, worker_id, moment)]) == 1

    def mark_failed(
        self, message_id: int, worker_id: str, now: float, error: Mapping[str, Any] | None
    ) -> bool:
        moment = check_time(now, "now")
        body = _json_or_none(error, "error")
        return self._update_each(_FAILED, [(moment, body, message_id, worker_id, moment)]) == 1

    def settle(self, worker_id: str, now: float, items: Sequence[Settlement]) -> list[bool]:
        moment = check_time(now, "now")
        # Everything is checked and encoded before the transaction, so a bad item changes nothing.
        statements: list[tuple[str, tuple[Any, ...]]] = []
        for index, item in enumerate(items):
            if not isinstance(item, Settlement):
                raise ValidationError("must be a Settlement", property=f"items[{index}]")
            if item.outcome == "delivered":
                body = _json_or_none(item.result, "result")
                values: tuple[Any, ...] = (moment, moment, item.request_id, body, item.message_id)
                statements.append((_DELIVERED, (*values, worker_id, moment)))
            elif item.outcome == "retry":
                due = moment if item.not_before is None else check_time(item.not_before, "not_before")
                body = _json_or_none(item.error, "error")
                statements.append((_RETRY, (due, moment, body, item.message_id, worker_id, moment)))
            elif item.outcome == "failed":
                body = _json_or_none(item.error, "error")
                statements.append((_FAILED, (moment, body, item.message_id, worker_id, moment)))
            else:
                raise ValidationError(
                    f"must be delivered, retry or failed, not {item.outcome!r}",
                    property=f"items[{index}].outcome",
                )
        if not statements:
            return []
        with self._write() as conn, _store_errors():
            return [conn.execute(sql, params).rowcount == 1 for sql, params in statements]

    def release(self, ids: Sequence[int], worker_id: str, now: float) -> int:
        moment = check_time(now, "now")
        return self._update_each(
            "UPDATE outbox SET state = 'queued', attempts = max(attempts - 1, 0),"
            " first_attempt_at = CASE WHEN attempts <= 1 THEN NULL ELSE first_attempt_at END,"
            f" updated_at = ?, lease_owner = NULL, lease_expires_at = NULL WHERE id = ? AND {_LEASE_HELD}",
            [(moment, message_id, worker_id, moment) for message_id in ids],
        )

    def _update_each(self, sql: str, rows: list[tuple[Any, ...]]) -> int:
        if not rows:
            return 0
        with self._write() as conn, _store_errors():
            return conn.executemany(sql, rows).rowcount

    # -- outbox: inspection and maintenance ------------------------------------------------------------------

    def get_message(self, message_id: int) -> OutboxMessage | None:
        rows = self._read(f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE id = ?", (message_id,))
        return _message(rows[0]) if rows else None

    def list_messages(
        self,
        state: MessageState | None = None,
        channel_id: str | None = None,
        limit: int = 100,
        after_id: int | None = None,
    ) -> list[OutboxMessage]:
        sql = f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE id > ?"
        params: list[Any] = [after_id or 0]
        if state is not None:
            sql += " AND state = ?"
            params.extend(check_message_states([state]))
        if channel_id is not None:
            sql += " AND channel_id = ?"
            params.append(channel_id)
        params.append(check_limit(limit))
        return [_message(row) for row in self._read(sql + " ORDER BY id LIMIT ?", params)]

    def counts(self, channel_id: str | None = None) -> dict[MessageState, int]:
        where = "" if channel_id is None else " WHERE channel_id = ?"
        rows = self._read(
            f"SELECT state, count(*) FROM outbox{where} GROUP BY state",
            () if channel_id is None else (channel_id,),
        )
        found = dict(rows)
        return {state: found.get(state, 0) for state in ("queued", "sending", "delivered", "failed")}

    def requeue(self, ids: Sequence[int] | None = None, *, now: float, new_retry_key: bool = False) -> int:
        moment = check_time(now, "now")
        with self._write() as conn, _store_errors():
            if ids is None:
                chosen = [row[0] for row in conn.execute("SELECT id FROM outbox WHERE state = 'failed'")]
            else:
                chosen = list(ids)
            if not chosen:
                return 0
            if new_retry_key:
                return conn.executemany(
                    "UPDATE outbox SET state = 'queued', not_before = ?, updated_at = ?, retry_key = ?,"
                    " retry_key_given = 0, attempts = 0, first_attempt_at = NULL"
                    " WHERE id = ? AND state = 'failed'",
                    [(moment, moment, fresh_retry_key(), message_id) for message_id in chosen],
                ).rowcount
            return conn.executemany(
                "UPDATE outbox SET state = 'queued', not_before = ?, updated_at = ?"
                " WHERE id = ? AND state = 'failed'",
                [(moment, moment, message_id) for message_id in chosen],
            ).rowcount

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
        with self._write() as conn, _store_errors():
            return conn.execute(
                f"DELETE FROM outbox WHERE state IN ({_marks(chosen)}) AND updated_at < ?", (*chosen, cutoff)
            ).rowcount

    # -- gateway tokens and webhook recipients (the service's tables) ----------------------------------------

    def create_gateway_token(
        self, channel_id: str, token_hash: str, recipient_id: str, name: str | None, now: float
    ) -> GatewayToken:
        check_name(channel_id, "channel_id")
        check_gateway_token(token_hash, recipient_id, name)
        moment = check_time(now, "now")
        with self._write() as conn:
            try:
                row = conn.execute(
                    "INSERT INTO gateway_tokens (channel_id, token_hash, recipient_id, name, created_at)"
                    f" VALUES (?, ?, ?, ?, ?) RETURNING {_GATEWAY_TOKEN_COLUMNS}",
                    (channel_id, token_hash, recipient_id, name, moment),
                ).fetchone()
            except sqlite3.IntegrityError:
                raise ValidationError("this token hash is already stored", property="token_hash") from None
            except sqlite3.Error as exc:
                raise StoreError(f"the SQLite store failed: {exc}") from exc
        return _gateway_token(row)

    def find_gateway_token(self, token_hash: str) -> GatewayToken | None:
        if not is_token_hash(token_hash):
            return None
        rows = self._read(
            f"SELECT {_GATEWAY_TOKEN_COLUMNS} FROM gateway_tokens WHERE token_hash = ?", (token_hash,)
        )
        return _gateway_token(rows[0]) if rows else None

    def list_gateway_tokens(
        self, channel_id: str | None = None, *, include_revoked: bool = True
    ) -> list[GatewayToken]:
        sql = f"SELECT {_GATEWAY_TOKEN_COLUMNS} FROM gateway_tokens WHERE 1 = 1"
        params: list[Any] = []
        if channel_id is not None:
            sql += " AND channel_id = ?"
            params.append(channel_id)
        if not include_revoked:
            sql += " AND revoked_at IS NULL"
        return [_gateway_token(row) for row in self._read(sql + " ORDER BY created_at, id", params)]

    def revoke_gateway_token(self, token_id: int, now: float) -> bool:
        moment = check_time(now, "now")
        with self._write() as conn, _store_errors():
            changed = conn.execute(
                "UPDATE gateway_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (moment, token_id),
            ).rowcount
            if changed:
                return True
            if conn.execute("SELECT 1 FROM gateway_tokens WHERE id = ?", (token_id,)).fetchone() is None:
                raise LookupError(f"no gateway token has id {token_id!r}")
            return False

    def record_recipients(self, channel_id: str, sightings: Sequence[RecipientSighting], now: float) -> None:
        check_name(channel_id, "channel_id")
        checked = check_sightings(sightings)
        moment = check_time(now, "now")
        if not checked:
            return
        with self._write() as conn, _store_errors():
            conn.executemany(
                "INSERT INTO webhook_recipients (channel_id, recipient_id, type, first_seen_at, last_seen_at,"
                " last_event_type, sightings) VALUES (?, ?, ?, ?, ?, ?, 1)"
                " ON CONFLICT (channel_id, recipient_id) DO UPDATE SET"
                " last_seen_at = max(last_seen_at, excluded.last_seen_at),"
                " last_event_type = excluded.last_event_type, sightings = sightings + 1",
                [(channel_id, rid, kind, moment, moment, event) for rid, kind, event in checked],
            )

    def list_recipients(self, channel_id: str | None = None) -> list[WebhookRecipient]:
        where = "" if channel_id is None else " WHERE channel_id = ?"
        rows = self._read(
            f"SELECT {_RECIPIENT_COLUMNS} FROM webhook_recipients{where}"
            " ORDER BY last_seen_at DESC, channel_id, recipient_id",
            () if channel_id is None else (channel_id,),
        )
        return [_recipient(row) for row in rows]


# -- opening -------------------------------------------------------------------------------------------------


def _create_private_file(path: str) -> None:
    """Create the database file readable by its owner only, before SQLite opens it.

    SQLite creates the -wal and -shm files with the database file's permissions, so they are private too.
    """
    directory = os.path.dirname(path)
    try:
        if not os.path.isdir(directory):
            os.makedirs(directory, mode=0o700, exist_ok=True)
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    except OSError as exc:
        raise ConfigurationError(f"cannot create the store file {path}: {exc.strerror}") from None


def _open_database(conn: sqlite3.Connection, path: str) -> int:
    """Switch to WAL and bring the schema up to date; returns the schema version."""
    latest = len(MIGRATIONS)
    try:
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        if mode != "wal":
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                raise ConfigurationError(f"the store {path} cannot use WAL mode (it stays in {mode!r} mode)")
        version: int = conn.execute("PRAGMA user_version").fetchone()[0]
        if version < latest:
            # Several processes may open a fresh file at once: the first one to get the write lock migrates,
            # the others find the work done once they get it.
            conn.execute("BEGIN IMMEDIATE")
            try:
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                for statements in MIGRATIONS[version:]:
                    for statement in statements:
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {latest}")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            version = latest
    except sqlite3.DatabaseError as exc:
        if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
            raise StoreError(f"the store {path} stayed locked by another process: {exc}") from None
        raise ConfigurationError(f"{path} is not a usable linepush store: {exc}") from None
    if version > latest:
        raise ConfigurationError(
            f"the store {path} has schema version {version}, newer than this linepush knows ({latest}); "
            "upgrade linepush"
        )
    return version


# -- rows ----------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _store_errors() -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        # SQLite's texts name tables and columns, never bound values, so no secret can leak through here.
        raise StoreError(f"the SQLite store failed: {exc}") from exc
    except UnicodeEncodeError as exc:
        # A lone surrogate: a Python string may hold one, UTF-8 (and so the database) cannot. The text itself
        # may be a token: only where it failed is said.
        raise ValidationError(
            f"cannot be stored: text must be valid Unicode ({exc.reason} at position {exc.start})"
        ) from None


def _marks(values: Collection[object]) -> str:
    return ", ".join("?" * len(values))
