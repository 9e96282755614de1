"""The embedded SQLite backend: one file per host, shared by every process on it, in WAL mode.

Connections are per thread (WAL lets readers go on while another thread or process writes, so a token read
never waits behind an outbox claim); every write is one ``BEGIN IMMEDIATE`` transaction, which makes claims
atomic across processes. The methods' checks and statements are :class:`~linepush.store.sql.SQLStore`'s;
this module has the file, its connections and migrations, and what SQLite spells its own way.
"""

# S608: the SQL here is assembled only from this module's constants and "?" marks; every value is bound.
# ruff: noqa: S608

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import Any, Final, TypeVar

from linepush.errors import ConfigurationError, StoreCorruptError, StoreFullError, ValidationError
from linepush.store.base import StoreError
from linepush.store.base import new_retry_key as fresh_retry_key
from linepush.store.checks import check_positive, check_row_id, check_time
from linepush.store.records import Settlement
from linepush.store.sql import (
    CheckedSettlement,
    Execute,
    Prepared,
    Run,
    SQLStore,
    add_for_this_thread,
    claim_fields,
)

__all__ = ["DEFAULT_BUSY_TIMEOUT", "MIGRATIONS", "SQLiteStore"]

T = TypeVar("T")

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
    # 3 → 4: the gateway's names of recipients.
    (
        """
        CREATE TABLE recipient_names (
            channel_id   TEXT NOT NULL,
            name         TEXT NOT NULL,
            recipient_id TEXT NOT NULL,
            named_at     REAL NOT NULL,
            PRIMARY KEY (channel_id, name)
        ) WITHOUT ROWID
        """,
    ),
    # 4 → 5: a gateway token bound to a route table of the configuration instead of one recipient. Its
    # recipient_id is '' (not NULL: making the column nullable would mean rebuilding the table in SQLite).
    (
        "ALTER TABLE gateway_tokens ADD COLUMN route_table TEXT"
        " CHECK ((route_table IS NULL) = (recipient_id <> ''))",
    ),
    # 5 → 6: digests (several notifications to one chat merged into one push), and gateway tokens' windows.
    (
        # One row per digest push: the notifications merged so far, and when its window closes. Deleted with
        # its outbox row.
        """
        CREATE TABLE outbox_digests (
            message_id   INTEGER PRIMARY KEY REFERENCES outbox (id) ON DELETE CASCADE,
            channel_id   TEXT NOT NULL,
            recipient_id TEXT NOT NULL,
            silent       INTEGER NOT NULL CHECK (silent IN (0, 1)),
            closes_at    REAL NOT NULL,
            parts        TEXT NOT NULL
        )
        """,
        # Finds a chat's open digest on every append.
        "CREATE INDEX outbox_digests_open ON outbox_digests (channel_id, recipient_id, silent, closes_at)",
        """
        CREATE TABLE gateway_token_digests (
            token_id       INTEGER PRIMARY KEY REFERENCES gateway_tokens (id) ON DELETE CASCADE,
            window_seconds REAL NOT NULL
        )
        """,
    ),
    # 6 → 7: the outbox's rows counted by channel and state, kept by triggers in the transaction of every
    # insert, change of state and delete, so that counts (and a /metrics scrape) read a handful of rows
    # instead of every row of the outbox. Rows whose count fell to 0 stay; readers leave them out.
    (
        """
        CREATE TABLE outbox_counts (
            channel_id TEXT NOT NULL,
            state      TEXT NOT NULL,
            n          INTEGER NOT NULL,
            PRIMARY KEY (channel_id, state)
        ) WITHOUT ROWID
        """,
        """
        CREATE TRIGGER outbox_counts_insert AFTER INSERT ON outbox BEGIN
            INSERT INTO outbox_counts (channel_id, state, n) VALUES (NEW.channel_id, NEW.state, 1)
            ON CONFLICT (channel_id, state) DO UPDATE SET n = n + 1;
        END
        """,
        """
        CREATE TRIGGER outbox_counts_update AFTER UPDATE OF channel_id, state ON outbox
        WHEN OLD.channel_id IS NOT NEW.channel_id OR OLD.state IS NOT NEW.state BEGIN
            UPDATE outbox_counts SET n = n - 1 WHERE channel_id = OLD.channel_id AND state = OLD.state;
            INSERT INTO outbox_counts (channel_id, state, n) VALUES (NEW.channel_id, NEW.state, 1)
            ON CONFLICT (channel_id, state) DO UPDATE SET n = n + 1;
        END
        """,
        """
        CREATE TRIGGER outbox_counts_delete AFTER DELETE ON outbox BEGIN
            UPDATE outbox_counts SET n = n - 1 WHERE channel_id = OLD.channel_id AND state = OLD.state;
        END
        """,
        "INSERT INTO outbox_counts (channel_id, state, n)"
        " SELECT channel_id, state, count(*) FROM outbox GROUP BY channel_id, state",
    ),
    # 7 → 8: the Notify API's per-token counts of the current window, shared by every gateway process.
    (
        """
        CREATE TABLE notify_usage (
            token_id     INTEGER PRIMARY KEY,
            window_start REAL NOT NULL,
            calls        INTEGER NOT NULL,
            images       INTEGER NOT NULL
        )
        """,
    ),
    # 8 → 9: batches of pushes to one chat: a push's chat, whether it may be batched (decided when it is
    # queued), and once a claim has formed its batch, the batch's retry key and the row's place in it.
    (
        "ALTER TABLE outbox ADD COLUMN chat TEXT",
        "ALTER TABLE outbox ADD COLUMN batchable INTEGER NOT NULL DEFAULT 0 CHECK (batchable IN (0, 1))",
        "ALTER TABLE outbox ADD COLUMN batch_key TEXT",
        "ALTER TABLE outbox ADD COLUMN batch_pos INTEGER",
        "CREATE INDEX outbox_batches ON outbox (batch_key) WHERE batch_key IS NOT NULL",
    ),
)

# Bound parameters per statement, well under SQLite's limit.
_CHUNK: Final = 500
_LEASE_HELD: Final = "state = 'sending' AND lease_owner = ? AND lease_expires_at > ?"
_DELIVERED: Final = (
    "UPDATE outbox SET state = 'delivered', delivered_at = ?, updated_at = ?, request_id = ?,"
    f" result = ?, lease_owner = NULL, lease_expires_at = NULL WHERE id = ? AND {_LEASE_HELD} RETURNING id"
)
_RETRY: Final = (
    "UPDATE outbox SET state = 'queued', not_before = ?, updated_at = ?, last_error = ?,"
    f" lease_owner = NULL, lease_expires_at = NULL WHERE id = ? AND {_LEASE_HELD} RETURNING id"
)
_RETRY_SPLIT: Final = (
    "UPDATE outbox SET state = 'queued', not_before = ?, updated_at = ?, last_error = ?, batch_key = NULL,"
    " batch_pos = NULL, lease_owner = NULL, lease_expires_at = NULL"
    f" WHERE id = ? AND {_LEASE_HELD} RETURNING id"
)
_FAILED: Final = (
    "UPDATE outbox SET state = 'failed', updated_at = ?, last_error = ?,"
    f" lease_owner = NULL, lease_expires_at = NULL WHERE id = ? AND {_LEASE_HELD} RETURNING id"
)
_FIELDS: Final = claim_fields("batchable = 1")
# Queued rows: walk outbox_due in (not_before, id) order and stop at the limit. Expired leases: the planner,
# without statistics, would read every in-flight row through outbox_due instead.
_CLAIM_CANDIDATES: Final = (
    "SELECT id, channel_id, chat, batch_key, payload, not_before FROM ("
    f"SELECT * FROM (SELECT {_FIELDS} FROM outbox"
    " WHERE state = 'queued' AND not_before <= ?{channel}"
    " ORDER BY not_before, id LIMIT ?)"
    f" UNION ALL SELECT * FROM (SELECT {_FIELDS} FROM outbox INDEXED BY outbox_leases"
    " WHERE state = 'sending' AND lease_expires_at <= ?{channel} ORDER BY not_before, id LIMIT ?)"
    ") ORDER BY not_before, id LIMIT ?"
)


class SQLiteStore(SQLStore):
    """The store in one SQLite file. Open it with :func:`linepush.store.open_store` or directly by path.

    Every store opened on one file in one process is a handle on the same connections (see
    :class:`_Database`): closing a handle lets go of that handle only.
    """

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> None:
        self._path = os.path.abspath(os.path.expanduser(os.fspath(path)))
        self._busy_timeout = check_positive(busy_timeout, "busy_timeout")
        self._closed = False
        self._database = _acquire(self._path, self._busy_timeout)

    @property
    def path(self) -> str:
        return self._path

    @property
    def schema_version(self) -> int:
        return self._database.schema_version

    def __repr__(self) -> str:
        return f"SQLiteStore({self._path!r})"

    def exposed_files(self) -> list[str]:
        """The store files others may read (tokens are in them), each with the command that mends it."""
        return _exposed_files(self._path)

    # -- connections -----------------------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreError("this store has been closed")
        database = self._database
        if database.pid != os.getpid():
            # Opened before fork(): the child has SQLite's memory of the parent's locks but not the locks
            # themselves. It gets connections of its own (see _acquire), never the parent's.
            database = self._database = _acquire(self._path, self._busy_timeout)
        if _current_identity(self._path) != database.identity:
            raise self._moved(database)
        return database.connection()

    def _moved(self, database: _Database) -> StoreError:
        gone = _current_identity(self._path) is None
        return StoreError(
            f"the store file {self._path} was {'deleted' if gone else 'replaced'} while this process had it "
            "open: what it wrote would go to the old file, which no other process sees, so nothing was "
            f"written; restart this process to use {'a new store' if gone else 'the file now'} at that path"
        )

    @property
    def _connections(self) -> list[tuple[threading.Thread, sqlite3.Connection]]:
        return self._database.connections

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            _release(self._database)

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; IMMEDIATE takes the write lock up front, so what it reads stays true."""
        conn = self._connection()
        with _store_errors(self._path):
            conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            with _store_errors(self._path):
                conn.execute("COMMIT")
        except BaseException as exc:
            # A failed rollback must not hide the error that caused it (after a failed COMMIT, SQLite may
            # have rolled back already).
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            if isinstance(exc, StoreFullError):
                self._give_back_wal_space(conn)
            raise

    def _give_back_wal_space(self, conn: sqlite3.Connection) -> None:
        """On a full disk, copy the -wal file into the database and truncate it, so that the next write
        (settling a message already sent, say) finds room. It waits briefly for readers, never for long."""
        try:
            conn.execute("PRAGMA busy_timeout = 200")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.Error as exc:
            _log.debug("could not truncate the -wal file of %s: %s", self._path, exc)
        finally:
            with contextlib.suppress(sqlite3.Error):
                conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")

    def _read(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[tuple[Any, ...]]:
        conn = self._connection()
        with _store_errors(self._path):
            return conn.execute(sql, params).fetchall()

    # -- the dialect ---------------------------------------------------------------------------------------

    json_as_text = True
    set_token_state_sql = (
        "UPDATE tokens SET state = ?, superseded_at = CASE ? WHEN 'superseded' THEN ?"
        " WHEN 'active' THEN NULL ELSE superseded_at END WHERE id = ?"
    )
    name_starts_with_sql = "substr(name, 1, length(?)) = ?"
    greatest_sql = "max"
    byte_order_sql = ""  # SQLite compares text as bytes (BINARY) unless told otherwise
    claim_candidates_sql = _CLAIM_CANDIDATES
    claim_lock_sql = ""  # a write transaction holds the whole file
    claim_peeks = True
    stored_schema_version_sql = "PRAGMA user_version"
    json_value_sql = "?"
    digest_lock_sql = None  # BEGIN IMMEDIATE: one writer at a time
    digest_row_lock_sql = ""

    def _transaction(self, work: Callable[[Run], T]) -> T:
        with self._write() as conn, _store_errors(self._path):
            return work(lambda sql, params: conn.execute(sql, params).fetchall())

    def select(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[tuple[Any, ...]]:
        return self._read(sql, params)

    def change(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> int:
        with self._write() as conn, _store_errors(self._path):
            return conn.execute(sql, params).rowcount

    def change_returning(
        self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()
    ) -> list[tuple[Any, ...]]:
        with self._write() as conn, _store_errors(self._path):
            return conn.execute(sql, params).fetchall()

    def change_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        if not rows:
            return 0
        with self._write() as conn, _store_errors(self._path):
            return conn.executemany(sql, rows).rowcount

    def among(self, column: str, values: Collection[Any], sql_type: str = "text") -> tuple[str, list[Any]]:
        chosen = list(values)
        return f"{column} IN ({_marks(chosen)})", chosen

    def row_id(self, value: object) -> Any:
        return check_row_id(value)

    def _advance_rate(self, key: str, step: float, now: float, horizon: float) -> float:
        # This commit does not wait for the disk (synchronous NORMAL, on this thread's connection and for this
        # transaction only): a slot lost in a crash costs nothing, and a sync per request would cost more
        # than the request. Every other write stays FULL.
        conn = self._connection()
        with _store_errors(self._path):
            conn.execute("PRAGMA synchronous = NORMAL")
        try:
            with self._write() as conn, _store_errors(self._path):
                tat: float = conn.execute(
                    "INSERT INTO rate_limits (key, tat) VALUES (:key, :now + :step)"
                    " ON CONFLICT (key) DO UPDATE SET tat = CASE WHEN rate_limits.tat > :now + :horizon"
                    " THEN :now ELSE max(rate_limits.tat, :now) END + :step RETURNING tat",
                    {"key": key, "now": now, "step": step, "horizon": horizon},
                ).fetchone()[0]
        finally:
            with _store_errors(self._path):
                conn.execute("PRAGMA synchronous = FULL")
        return float(tat)

    # -- outbox ----------------------------------------------------------------------------------------------

    def _insert_messages(self, rows: Sequence[Prepared], given: Mapping[str, int], now: float) -> list[int]:
        with self._write() as conn, _store_errors(self._path):
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
                " chat, batchable, state, attempts, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', 0, ?, ?)",
                [(first + offset, *row, now, now) for offset, row in enumerate(rows)],
            )
        return list(range(first, first + len(rows)))

    def renew_leases(self, ids: Sequence[int], worker_id: str, lease_seconds: float, now: float) -> int:
        moment = check_time(now, "now")
        until = moment + check_positive(lease_seconds, "lease_seconds")
        return self.change_many(
            f"UPDATE outbox SET lease_expires_at = ? WHERE id = ? AND {_LEASE_HELD}",
            [(until, message_id, worker_id, moment) for message_id in ids],
        )

    def settle(self, worker_id: str, now: float, items: Sequence[Settlement]) -> list[bool]:
        moment = check_time(now, "now")
        checked = self._check_settlements(items, moment)
        if not checked:
            return []

        def work(execute: Execute) -> list[bool]:
            # The other rows of their batches follow them (see _whole_batches), found before any is changed.
            everything = self._whole_batches(execute, checked)
            done = [bool(execute(*_settle_statement(item, worker_id, moment))) for item in everything]
            return done[: len(checked)]

        return self._transaction(work)

    def release(self, ids: Sequence[int], worker_id: str, now: float) -> int:
        moment = check_time(now, "now")
        return self.change_many(
            "UPDATE outbox SET state = 'queued', attempts = max(attempts - 1, 0),"
            " first_attempt_at = CASE WHEN attempts <= 1 THEN NULL ELSE first_attempt_at END,"
            f" updated_at = ?, lease_owner = NULL, lease_expires_at = NULL WHERE id = ? AND {_LEASE_HELD}",
            [(moment, message_id, worker_id, moment) for message_id in ids],
        )

    def requeue(self, ids: Sequence[int] | None = None, *, now: float, new_retry_key: bool = False) -> int:
        moment = check_time(now, "now")
        with self._write() as conn, _store_errors(self._path):
            if ids is None:
                chosen = [row[0] for row in conn.execute("SELECT id FROM outbox WHERE state = 'failed'")]
            else:
                chosen = list(dict.fromkeys(map(check_row_id, ids)))
                # A batch goes back whole: what is left of it under its key would be another request.
                for start in range(0, len(chosen), _CHUNK):
                    chunk = chosen[start : start + _CHUNK]
                    chosen.extend(
                        row[0]
                        for row in conn.execute(
                            "SELECT m.id FROM outbox AS o JOIN outbox AS m ON m.batch_key = o.batch_key"
                            f" WHERE o.id IN ({_marks(chunk)}) AND m.state = 'failed' ORDER BY m.id",
                            chunk,
                        )
                    )
                chosen = list(dict.fromkeys(chosen))
            if not chosen:
                return 0
            if new_retry_key:
                # A new identity at LINE: the batch is dissolved, its rows may be batched afresh.
                return conn.executemany(
                    "UPDATE outbox SET state = 'queued', not_before = ?, updated_at = ?, retry_key = ?,"
                    " retry_key_given = 0, attempts = 0, first_attempt_at = NULL, batch_key = NULL,"
                    " batch_pos = NULL WHERE id = ? AND state = 'failed'",
                    [(moment, moment, fresh_retry_key(), message_id) for message_id in chosen],
                ).rowcount
            return conn.executemany(
                "UPDATE outbox SET state = 'queued', not_before = ?, updated_at = ?"
                " WHERE id = ? AND state = 'failed'",
                [(moment, moment, message_id) for message_id in chosen],
            ).rowcount


def _settle_statement(item: CheckedSettlement, worker_id: str, now: float) -> tuple[str, tuple[Any, ...]]:
    held = (item.message_id, worker_id, now)
    if item.outcome == "delivered":
        return _DELIVERED, (now, now, item.request_id, item.result, *held)
    if item.outcome == "retry":
        return (_RETRY_SPLIT if item.split else _RETRY), (item.not_before, now, item.error, *held)
    return _FAILED, (now, item.error, *held)


# -- opening -------------------------------------------------------------------------------------------------


class _Database:
    """One SQLite file's connections in this process: one per thread, shared by every store on the file.

    A POSIX lock belongs to a process and a file, and closing *any* descriptor of the file releases all of
    the process's locks on it while SQLite's own table still believes it holds them. So the file is opened
    by SQLite alone, and every store on it in one process goes through one of these.
    """

    def __init__(self, path: str, busy_timeout: float, identity: tuple[int, int]) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self.identity = identity
        self.pid = os.getpid()
        self.users = 0
        self.closed = False
        self._local = threading.local()
        self._lock = threading.Lock()
        self.connections: list[tuple[threading.Thread, sqlite3.Connection]] = []
        try:
            self.schema_version = _open_database(self.connection(), path, busy_timeout)
        except BaseException:
            self.close()
            raise

    def connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        if self.closed:
            raise StoreError("this store has been closed")
        try:
            # check_same_thread is off only so close() may close every thread's connection; in use, each
            # connection stays with the thread that opened it.
            conn = sqlite3.connect(
                self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as exc:
            if _code(exc) in _NAMED_FAILURES:
                raise store_error(exc, self.path) from None  # a full disk is no setting to fix
            raise ConfigurationError(
                f"cannot open the store at {self.path}: {exc}{_why_not_opened(self.path)}"
            ) from None
        with self._lock:
            if self.closed:  # close() ran while this connection was being opened
                conn.close()
                raise StoreError("this store has been closed")
            self.connections = add_for_this_thread(self.connections, conn)
        self._local.conn = conn
        return conn

    def close(self, *, locked: bool = True) -> None:
        # locked=False only in a forked child, where another thread of the parent may have held the lock.
        with self._lock if locked else contextlib.nullcontext():
            self.closed = True
            connections, self.connections = self.connections, []
        for _, conn in connections:
            conn.close()
        self._local = threading.local()


def _why_not_opened(path: str) -> str:
    """What keeps SQLite from opening an existing store, when it is its folder: SQLite makes the -wal and
    -shm files beside the store even to read it, so a folder it may not write is a store it cannot open."""
    directory = os.path.dirname(path) or "."
    if os.access(directory, os.W_OK):
        return ""
    try:
        read_only = bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    where = "is on a read-only file system" if read_only else "cannot be written by this user"
    return (
        f". Its folder {directory} {where}, and SQLite writes {os.path.basename(path)}-wal and -shm beside "
        "the store even to read it: make the folder writable, or give a store in a folder that is"
    )


_registry_lock = threading.Lock()
_registry_pid = os.getpid()
_databases: dict[tuple[str, float], _Database] = {}
_warned: set[str] = set()
_log = logging.getLogger("linepush.store")


def _after_fork_in_child() -> None:
    global _registry_lock
    _registry_lock = threading.Lock()  # another thread of the parent may have held it at fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _acquire(path: str, busy_timeout: float) -> _Database:
    """The file's connections in this process (created, migrated and registered on first use)."""
    global _registry_pid
    with _registry_lock:
        if _registry_pid != os.getpid():
            # A forked child: the parent's connections are closed here, in the child only (its descriptors
            # hold no locks in the child, so closing them takes nothing from the parent). Until they are,
            # SQLite would lend a new connection the parent's lock state instead of taking real locks.
            inherited = list(_databases.values())
            _databases.clear()
            _registry_pid = os.getpid()
            for old in inherited:
                old.close(locked=False)
        created = _create_private_file(path)
        identity = _identity(path)
        database = _databases.get((path, busy_timeout))
        if database is None or database.identity != identity:
            # None yet, or the file was replaced since (the old one's handles keep what they had).
            try:
                database = _Database(path, busy_timeout, identity)
            except BaseException:
                if created:
                    _remove_if_empty(path, identity)
                raise
            _databases[(path, busy_timeout)] = database
        database.users += 1
    if not created and path not in _warned:
        _warned.add(path)
        for problem in _exposed_files(path):
            _log.warning("%s", problem)
    return database


def _release(database: _Database) -> None:
    with _registry_lock:
        if database.pid != os.getpid():
            return  # the parent's: a child never closes what it did not open (see _acquire)
        database.users -= 1
        if database.users > 0:
            return
        key = (database.path, database.busy_timeout)
        if _databases.get(key) is database:
            del _databases[key]
    database.close()


def _current_identity(path: str) -> tuple[int, int] | None:
    """The identity of the file at ``path`` now, None when there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _identity(path: str) -> tuple[int, int]:
    try:
        st = os.stat(path)
    except OSError as exc:
        raise ConfigurationError(f"cannot open the store file {path}: {exc.strerror}") from None
    return st.st_dev, st.st_ino


def _remove_if_empty(path: str, identity: tuple[int, int]) -> None:
    """Remove the file this process just created for a store it could not set up (a full disk, say), if
    nothing was written to it: an empty file would later be taken for a store. SQLite's -wal and -shm files
    go with it; they hold nothing without the database."""
    try:
        st = os.stat(path)
        if (st.st_dev, st.st_ino) != identity or st.st_size:
            return
        for name in (path + "-wal", path + "-shm", path):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)
    except OSError:
        pass  # left as it is: the error that brought us here is the one to report


def _create_private_file(path: str) -> bool:
    """Create the database file readable by its owner only, if it is absent; True if it was created.

    SQLite creates the -wal and -shm files with the database file's permissions, so they are private too.
    An existing file is never opened here: closing that descriptor would drop SQLite's locks on it.
    """
    directory = os.path.dirname(path)
    try:
        if not os.path.isdir(directory):
            os.makedirs(directory, mode=0o700, exist_ok=True)
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        return False
    except OSError as exc:
        raise ConfigurationError(f"cannot create the store file {path}: {exc.strerror}") from None
    return True


def _exposed_files(path: str) -> list[str]:
    if os.name != "posix":
        return []
    found = []
    for name in (path, path + "-wal", path + "-shm"):
        try:
            loose = os.stat(name).st_mode & 0o077
        except OSError:
            continue
        if loose:
            found.append(
                f"the store file {name} holds channel access tokens but others can read it: chmod 600 {name}"
            )
    return found


def _open_database(conn: sqlite3.Connection, path: str, busy_timeout: float) -> int:
    """Switch to WAL and bring the schema up to date; returns the schema version."""
    latest = len(MIGRATIONS)
    try:
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        if mode != "wal":
            mode = _switch_to_wal(conn, busy_timeout)
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
    except sqlite3.Error as exc:
        code = _code(exc)
        if code == sqlite3.SQLITE_NOTADB:
            raise ConfigurationError(
                f"{path} is not a usable linepush store ({exc}): if it is the right path, the file is "
                f"damaged; {_RESTORE.format(path=path)}"
            ) from None
        if code in _NAMED_FAILURES:
            raise store_error(exc, path) from None
        raise ConfigurationError(f"{path} is not a usable linepush store: {exc}") from None
    if version > latest:
        raise ConfigurationError(
            f"the store {path} has schema version {version}, newer than this linepush knows ({latest}); "
            "upgrade linepush"
        )
    return version


def _switch_to_wal(conn: sqlite3.Connection, busy_timeout: float) -> str:
    """``PRAGMA journal_mode = WAL``, waiting out other processes that are opening the same new file.

    The switch turns a read lock into a write lock, and SQLite does not call its busy handler for that (it
    could deadlock two readers that both want to write), so "database is locked" comes back at once while
    another process reads the file: that is retried here, within the busy timeout.
    """
    deadline = time.monotonic() + busy_timeout
    pause = 0.001
    while True:
        try:
            mode: str = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            return mode
        except sqlite3.OperationalError as exc:
            if _code(exc) not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


_RESTORE: Final = (
    "stop every linepush process that uses it, keep a copy of {path} and of {path}-wal if present (the "
    "-wal file holds the latest writes: never delete it), run `sqlite3 {path} 'PRAGMA integrity_check'`, "
    "and restore the file from a backup or move it aside to start afresh"
)


# Failures named for what they are even while opening; any other failure to open is a setup error.
_NAMED_FAILURES: Final = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_CORRUPT,
    }
)


_SQLITE_IOERR_SHMSIZE: Final = getattr(sqlite3, "SQLITE_IOERR_SHMSIZE", 4874)


def _code(exc: sqlite3.Error) -> int:
    """SQLite's primary result code (the low byte of the extended one), or -1 where none is known."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else -1


def store_error(exc: sqlite3.Error, path: str) -> StoreError | ConfigurationError:
    """The linepush error for a SQLite failure on the store at ``path``, named for what it is."""
    code = _code(exc)
    # SQLite's texts name tables and columns, never bound values, so no secret can leak through here.
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return StoreError(f"the store {path} stayed locked by another process: {exc}; try again later")
    # SQLite cannot grow the -shm file it maps (made anew when a process opens a store no other holds open):
    # on a full disk, that is how the disk's being full shows.
    if code == sqlite3.SQLITE_FULL or getattr(exc, "sqlite_errorcode", None) == _SQLITE_IOERR_SHMSIZE:
        return StoreFullError(
            f"the disk holding the store {path} is full: nothing was written; free some space "
            "(linepush queue purge removes old delivered rows) and it carries on"
        )
    if code == sqlite3.SQLITE_IOERR:
        name = getattr(exc, "sqlite_errorname", "SQLITE_IOERR")
        return StoreError(
            f"the store {path} met an I/O error ({name}): nothing was written; this is often passing "
            "(a full or failing disk, a network filesystem), so it is tried again later"
        )
    if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return StoreCorruptError(f"the store {path} is damaged ({exc}): {_RESTORE.format(path=path)}")
    if code in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM, sqlite3.SQLITE_CANTOPEN):
        return ConfigurationError(
            f"the store {path} cannot be written ({exc}): check that this user owns it and its folder"
        )
    return StoreError(f"the SQLite store {path} failed: {exc}")


# -- rows ----------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _store_errors(path: str) -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        raise store_error(exc, path) from exc
    except UnicodeEncodeError as exc:
        # A lone surrogate: a Python string may hold one, UTF-8 (and so the database) cannot. The text itself
        # may be a token: only where it failed is said.
        raise ValidationError(
            f"cannot be stored: text must be valid Unicode ({exc.reason} at position {exc.start})"
        ) from None


def _marks(values: Collection[object]) -> str:
    return ", ".join("?" * len(values))
