"""The PostgreSQL backend: one database shared by every process on every host, through psycopg 3.

Connections are per thread with autocommit off; every call is one explicit transaction. Claims take rows with
``FOR UPDATE SKIP LOCKED``, locks are leases in a table, and migrations run under an advisory lock. The
methods' checks and statements are :class:`~linepush.store.sql.SQLStore`'s; this module has the connections,
the migrations, and what PostgreSQL does its own way (arrays, the claim, enqueue's and settle's bulk writes).
"""

# S608: the SQL here is assembled only from this module's constants and %s marks; every value is bound.
# ruff: noqa: S608

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Final, TypeVar
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
import psycopg.conninfo
import psycopg.errors

from linepush.errors import (
    ConfigurationError,
    StoreCorruptError,
    StoreFullError,
    StoreSettingsError,
    ValidationError,
)
from linepush.store.base import StoreError
from linepush.store.checks import check_positive, check_row_id, check_time
from linepush.store.records import Settlement
from linepush.store.sql import (
    Execute,
    Prepared,
    Run,
    SQLStore,
    add_for_this_thread,
    claim_fields,
)

__all__ = ["DEFAULT_CONNECT_TIMEOUT", "MIGRATIONS", "PostgresStore"]

T = TypeVar("T")


#: Seconds to wait for the server when opening a connection.
DEFAULT_CONNECT_TIMEOUT: Final = 10.0

# Ordered schema migrations: MIGRATIONS[n] takes the schema from version n to n + 1 (rows of
# linepush_migrations). Append only; never edit one that has shipped. Times are UNIX seconds, as in the
# interface; JSON columns are `json`, not `jsonb`, because they are written far more often than searched and
# `json` keeps the text as given.
MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (
        """
        CREATE TABLE tokens (
            id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            channel_id    text NOT NULL,
            kind          text NOT NULL CHECK (kind IN ('v2.1', 'v3', 'v2', 'static')),
            access_token  text NOT NULL,
            key_id        text,
            issued_at     double precision NOT NULL,
            expires_at    double precision,
            state         text NOT NULL CHECK (state IN ('active', 'superseded', 'invalid', 'revoked')),
            superseded_at double precision
        )
        """,
        "CREATE INDEX tokens_by_channel ON tokens (channel_id, kind, state, issued_at)",
        """
        CREATE TABLE locks (
            name       text PRIMARY KEY,
            owner      text NOT NULL,
            expires_at double precision NOT NULL
        )
        """,
        # An identity never hands out a number twice, so ids are not reused after a purge.
        """
        CREATE TABLE outbox (
            id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            channel_id       text NOT NULL,
            kind             text NOT NULL CHECK (kind IN ('push', 'multicast', 'broadcast', 'narrowcast')),
            payload          json NOT NULL,
            retry_key        text NOT NULL,
            retry_key_given  boolean NOT NULL DEFAULT false,
            state            text NOT NULL CHECK (state IN ('queued', 'sending', 'delivered', 'failed')),
            attempts         integer NOT NULL DEFAULT 0,
            not_before       double precision NOT NULL,
            first_attempt_at double precision,
            lease_owner      text,
            lease_expires_at double precision,
            created_at       double precision NOT NULL,
            updated_at       double precision NOT NULL,
            delivered_at     double precision,
            request_id       text,
            result           json,
            last_error       json
        )
        """,
        # Claim walks these in (not_before, id) order and stops at the limit. Partial: delivered and failed
        # rows pile up, but the index holds only what is waiting, so it stays small and hot.
        "CREATE INDEX outbox_queued ON outbox (not_before, id) WHERE state = 'queued'",
        "CREATE INDEX outbox_queued_by_channel ON outbox (channel_id, not_before, id) WHERE state = 'queued'",
        # Finds expired leases without reading every in-flight row.
        "CREATE INDEX outbox_leases ON outbox (lease_expires_at) WHERE state = 'sending'",
        # Retry keys the caller chose must not repeat (LINE would take the second message for the first).
        "CREATE UNIQUE INDEX outbox_given_retry_key ON outbox (retry_key) WHERE retry_key_given",
        # Purge and counts by state.
        "CREATE INDEX outbox_by_state ON outbox (state, updated_at)",
        # Shared rate limits: the theoretical arrival time (GCRA) of the next request, per key.
        "CREATE TABLE rate_limits (key text PRIMARY KEY, tat double precision NOT NULL)",
    ),
    # 1 → 2: the gateway's tables (gateway tokens, recipients learnt from webhooks).
    (
        # Only the token's SHA-256 is kept; the unique index serves the lookup on every gateway request.
        """
        CREATE TABLE gateway_tokens (
            id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            channel_id   text NOT NULL,
            token_hash   text NOT NULL UNIQUE,
            recipient_id text NOT NULL,
            name         text,
            created_at   double precision NOT NULL,
            revoked_at   double precision
        )
        """,
        """
        CREATE TABLE webhook_recipients (
            channel_id      text NOT NULL,
            recipient_id    text NOT NULL,
            type            text NOT NULL CHECK (type IN ('user', 'group', 'room')),
            first_seen_at   double precision NOT NULL,
            last_seen_at    double precision NOT NULL,
            last_event_type text NOT NULL,
            sightings       integer NOT NULL,
            PRIMARY KEY (channel_id, recipient_id)
        )
        """,
    ),
    # 2 → 3: the gateway's names of recipients. Shared rate limits came in 0 → 1 here, so from this one on
    # PostgreSQL's versions run one behind SQLite's.
    (
        """
        CREATE TABLE recipient_names (
            channel_id   text NOT NULL,
            name         text NOT NULL,
            recipient_id text NOT NULL,
            named_at     double precision NOT NULL,
            PRIMARY KEY (channel_id, name)
        )
        """,
    ),
    # 3 → 4: a gateway token bound to a route table of the configuration instead of one recipient. Its
    # recipient_id is '', as in SQLite, where making the column nullable would mean rebuilding the table.
    (
        "ALTER TABLE gateway_tokens ADD COLUMN route_table text"
        " CHECK ((route_table IS NULL) = (recipient_id <> ''))",
    ),
    # 4 → 5: digests (several notifications to one chat merged into one push), and gateway tokens' windows.
    (
        # One row per digest push: the notifications merged so far (JSON as text), and when its window
        # closes. Deleted with its outbox row.
        """
        CREATE TABLE outbox_digests (
            message_id   bigint PRIMARY KEY REFERENCES outbox (id) ON DELETE CASCADE,
            channel_id   text NOT NULL,
            recipient_id text NOT NULL,
            silent       boolean NOT NULL,
            closes_at    double precision NOT NULL,
            parts        text NOT NULL
        )
        """,
        # Finds a chat's open digest on every append.
        "CREATE INDEX outbox_digests_open ON outbox_digests (channel_id, recipient_id, silent, closes_at)",
        """
        CREATE TABLE gateway_token_digests (
            token_id       bigint PRIMARY KEY REFERENCES gateway_tokens (id) ON DELETE CASCADE,
            window_seconds double precision NOT NULL
        )
        """,
    ),
    # 5 → 6: the outbox's rows counted by channel and state, kept by statement-level triggers in the
    # transaction of every insert, update and delete, so that counts (and a /metrics scrape) read a handful
    # of rows instead of every row of the outbox. One statement (an enqueue of 5,000 rows, a claim, a settle)
    # adds one delta per channel and state it changed, in key order, so that concurrent writers take the
    # counts' row locks in the same order and cannot deadlock on them. Rows whose count fell to 0 stay;
    # readers leave them out. The functions keep the search path they were made with (the store's schema).
    (
        """
        CREATE TABLE outbox_counts (
            channel_id text NOT NULL,
            state      text NOT NULL,
            n          bigint NOT NULL,
            PRIMARY KEY (channel_id, state)
        )
        """,
        """
        CREATE FUNCTION outbox_counts_insert() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT
        AS $$ BEGIN
            INSERT INTO outbox_counts AS c (channel_id, state, n)
            SELECT channel_id, state, count(*) FROM new_rows GROUP BY channel_id, state
            ORDER BY channel_id, state
            ON CONFLICT (channel_id, state) DO UPDATE SET n = c.n + EXCLUDED.n;
            RETURN NULL;
        END $$
        """,
        """
        CREATE FUNCTION outbox_counts_update() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT
        AS $$ BEGIN
            INSERT INTO outbox_counts AS c (channel_id, state, n)
            SELECT channel_id, state, sum(d) FROM (
                SELECT channel_id, state, -1 AS d FROM old_rows
                UNION ALL SELECT channel_id, state, 1 AS d FROM new_rows
            ) AS changed GROUP BY channel_id, state HAVING sum(d) <> 0
            ORDER BY channel_id, state
            ON CONFLICT (channel_id, state) DO UPDATE SET n = c.n + EXCLUDED.n;
            RETURN NULL;
        END $$
        """,
        """
        CREATE FUNCTION outbox_counts_delete() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT
        AS $$ BEGIN
            UPDATE outbox_counts AS c SET n = c.n - gone.n
            FROM (SELECT channel_id, state, count(*) AS n FROM old_rows GROUP BY channel_id, state
                  ORDER BY channel_id, state) AS gone
            WHERE c.channel_id = gone.channel_id AND c.state = gone.state;
            RETURN NULL;
        END $$
        """,
        "CREATE TRIGGER outbox_counts_insert AFTER INSERT ON outbox REFERENCING NEW TABLE AS new_rows"
        " FOR EACH STATEMENT EXECUTE FUNCTION outbox_counts_insert()",
        "CREATE TRIGGER outbox_counts_update AFTER UPDATE ON outbox"
        " REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"
        " FOR EACH STATEMENT EXECUTE FUNCTION outbox_counts_update()",
        "CREATE TRIGGER outbox_counts_delete AFTER DELETE ON outbox REFERENCING OLD TABLE AS old_rows"
        " FOR EACH STATEMENT EXECUTE FUNCTION outbox_counts_delete()",
        # CREATE TRIGGER holds a SHARE ROW EXCLUSIVE lock on the outbox until the migration commits: no row
        # is written between the backfill's count and the triggers' first delta.
        "INSERT INTO outbox_counts (channel_id, state, n)"
        " SELECT channel_id, state, count(*) FROM outbox GROUP BY channel_id, state",
    ),
    # 6 → 7: the Notify API's per-token counts of the current window, shared by every gateway process.
    (
        """
        CREATE TABLE notify_usage (
            token_id     bigint PRIMARY KEY,
            window_start double precision NOT NULL,
            calls        integer NOT NULL,
            images       integer NOT NULL
        )
        """,
    ),
    # 7 → 8: batches of pushes to one chat: a push's chat, whether it may be batched (decided when it is
    # queued), and once a claim has formed its batch, the batch's retry key and the row's place in it.
    (
        "ALTER TABLE outbox ADD COLUMN chat text, ADD COLUMN batchable boolean NOT NULL DEFAULT false,"
        " ADD COLUMN batch_key text, ADD COLUMN batch_pos integer",
        "CREATE INDEX outbox_batches ON outbox (batch_key) WHERE batch_key IS NOT NULL",
    ),
)

_VERSIONS_TABLE: Final = "linepush_migrations"
# What a refused connection says when its settings are wrong (libpq gives no SQLSTATE before a session
# exists, so its text is all there is): a database or role that does not exist, a refused password or
# host entry, an option libpq does not know or a value it cannot read.
_WRONG_SETTING: Final = re.compile(
    r'(database|role) "[^"]*" does not exist|password authentication failed|no pg_hba\.conf entry'
    r"|invalid \w+ value|invalid connection option|invalid URI|missing \"=\" after|invalid percent-encoded"
)
_FORM: Final = (
    "the form is postgresql://user:password@host:port/dbname?schema=name (percent-encode @ : / in parts)"
)
_SCHEMA_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_LEASE_HELD: Final = "state = 'sending' AND lease_owner = %(worker)s AND lease_expires_at > %(now)s"
# Rows per INSERT of an enqueue; all chunks of one call share its transaction.
_CHUNK: Final = 5000
# Tries of one call when the connection turns out dead before anything was committed, or the server breaks
# a deadlock by cancelling it: the transaction was rolled back, so running it again is safe.
_TRIES: Final = 3


_FIELDS: Final = claim_fields("batchable")
_SETTLE: Final = (
    "UPDATE outbox AS o SET"
    " state = CASE s.outcome WHEN 'delivered' THEN 'delivered' WHEN 'retry' THEN 'queued' ELSE 'failed' END,"
    " delivered_at = CASE WHEN s.outcome = 'delivered' THEN ?::float8 ELSE o.delivered_at END,"
    " request_id = CASE WHEN s.outcome = 'delivered' THEN s.request_id ELSE o.request_id END,"
    " result = CASE WHEN s.outcome = 'delivered' THEN s.result::json ELSE o.result END,"
    " last_error = CASE WHEN s.outcome = 'delivered' THEN o.last_error ELSE s.error::json END,"
    " not_before = CASE WHEN s.outcome = 'retry' THEN s.due ELSE o.not_before END,"
    " batch_key = CASE WHEN s.split THEN NULL ELSE o.batch_key END,"
    " batch_pos = CASE WHEN s.split THEN NULL ELSE o.batch_pos END,"
    " updated_at = ?, lease_owner = NULL, lease_expires_at = NULL"
    # %b: arrays go in binary form; the text form escapes every element with a regex.
    " FROM unnest(%b::bigint[], %b::text[], %b::text[], %b::text[], %b::text[], %b::float8[], %b::bool[])"
    " AS s(id, outcome, request_id, result, error, due, split)"
    " WHERE o.id = s.id AND o.state = 'sending' AND o.lease_owner = ? AND o.lease_expires_at > ?"
    " RETURNING o.id"
)
# Each arm locks at most `limit` rows in due order and skips those another claimer holds; the rows it locked
# but does not keep are let go at commit. FOR UPDATE cannot sit under a UNION, hence two CTEs.
CLAIM_CANDIDATES_SQL: Final = (
    f"WITH queued AS (SELECT {_FIELDS} FROM outbox"
    " WHERE state = 'queued' AND not_before <= ?{channel}"
    " ORDER BY not_before, id LIMIT ? FOR UPDATE SKIP LOCKED),"
    f" expired AS (SELECT {_FIELDS} FROM outbox"
    " WHERE state = 'sending' AND lease_expires_at <= ?{channel}"
    " ORDER BY not_before, id LIMIT ? FOR UPDATE SKIP LOCKED)"
    " SELECT id, channel_id, chat, batch_key, payload, not_before FROM"
    " (SELECT * FROM queued UNION ALL SELECT * FROM expired) AS due ORDER BY not_before, id LIMIT ?"
)


class _LostOnOpening(StoreError):
    """A connection just opened died before its first statement ran: running the call on another is safe."""


class PostgresStore(SQLStore):
    """The store in a PostgreSQL database, shared by many processes and hosts.

    ``url`` is a libpq URL (``postgresql://user:password@host:port/dbname?sslmode=…``). The tables live in
    ``schema`` (created when missing), else in the ``schema`` query parameter of the URL, else in the
    connection's current schema (usually ``public``).
    """

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    ) -> None:
        conninfo, from_url = _split_schema(url)
        schema = schema if schema is not None else from_url
        if schema is not None and not (isinstance(schema, str) and _SCHEMA_NAME.fullmatch(schema)):
            raise ConfigurationError(
                f"the store schema must be a plain name (letters, digits, underscores; at most 63), "
                f"not {schema!r}"
            )
        self._conninfo = conninfo
        self._schema = schema
        self._where, self._password = _describe(conninfo)
        # Sessions show up as "linepush" in pg_stat_activity unless the URL names them otherwise.
        self._extra: dict[str, Any] = (
            {}
            if "application_name" in psycopg.conninfo.conninfo_to_dict(conninfo)
            else {"application_name": "linepush"}
        )
        self._connect_timeout = max(1, round(check_positive(connect_timeout, "connect_timeout")))
        self._closed = False
        self._reset_connections()
        try:
            conn = self._connection()
            self._schema_version = self._migrate(conn)
        except BaseException:
            self.close()
            raise

    @property
    def schema(self) -> str | None:
        return self._schema

    @property
    def schema_version(self) -> int:
        return self._schema_version

    def __repr__(self) -> str:
        schema = "" if self._schema is None else f", schema={self._schema!r}"
        return f"PostgresStore({self._where!r}{schema})"

    # -- connections -----------------------------------------------------------------------------------------

    def _reset_connections(self) -> None:
        # Also run in a forked child: a connection must never cross fork(). The child's copies are let go
        # without a word to the server, which would otherwise end the parent's sessions.
        for _, conn in getattr(self, "_connections", ()):
            _abandon(conn)
        self._pid = os.getpid()
        self._local = threading.local()
        self._registry_lock = threading.Lock()
        self._connections: list[tuple[threading.Thread, psycopg.Connection[Any]]] = []

    def _connection(self) -> psycopg.Connection[Any]:
        if self._pid != os.getpid():
            self._reset_connections()
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        if conn is not None:
            self._forget(conn)
        if self._closed:
            raise StoreError("this store has been closed")
        try:
            conn = psycopg.connect(
                self._conninfo, autocommit=False, connect_timeout=self._connect_timeout, **self._extra
            )
        except psycopg.Error as exc:
            text = self._text(exc)
            if _WRONG_SETTING.search(text):
                # Only a change of settings mends this: not worth retrying (a server that is down is).
                raise StoreSettingsError(
                    f"cannot connect to the PostgreSQL store at {self._where}: {text}; check the store URL "
                    "(database, user, password, options)"
                ) from None
            raise StoreError(f"cannot connect to the PostgreSQL store at {self._where}: {text}") from None
        try:
            if self._schema is not None:
                # A schema that does not exist yet is accepted here; the migration creates it.
                conn.execute(f'SET search_path TO "{self._schema}"')
                conn.commit()
        except psycopg.Error as exc:
            lost = conn.broken or isinstance(exc, psycopg.OperationalError)
            conn.close()
            if lost:
                raise _LostOnOpening(
                    f"lost the connection to the PostgreSQL store at {self._where}: {self._text(exc)}"
                ) from None
            raise StoreError(f"the PostgreSQL store at {self._where} failed: {self._text(exc)}") from None
        with self._registry_lock:
            if self._closed:  # close() ran while this connection was being opened
                conn.close()
                raise StoreError("this store has been closed")
            self._connections = add_for_this_thread(self._connections, conn)
        self._local.conn = conn
        return conn

    def _forget(self, conn: psycopg.Connection[Any]) -> None:
        """Drop a dead connection, so the thread's next call opens a new one."""
        with self._registry_lock:
            self._connections = [(t, c) for t, c in self._connections if c is not conn]
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None
        with contextlib.suppress(Exception):
            conn.close()

    def close(self) -> None:
        if self._pid != os.getpid():
            self._reset_connections()
        with self._registry_lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for _, conn in connections:
            with contextlib.suppress(Exception):
                conn.close()
        self._local = threading.local()

    def _failure(self, exc: psycopg.Error) -> StoreError:
        """The error for a failed statement, named for what it is by its SQLSTATE."""
        state = getattr(exc, "sqlstate", None) or ""
        text = self._text(exc)
        if state.startswith("53"):  # insufficient resources: 53100 disk_full, 53200 out_of_memory, …
            return StoreFullError(
                f"the PostgreSQL store at {self._where} has no room ({text}): nothing was written; "
                "free space on the database server and it carries on"
            )
        if state in ("XX001", "XX002"):  # data_corrupted, index_corrupted
            return StoreCorruptError(
                f"the PostgreSQL store at {self._where} reports damaged data ({text}): ask its administrator "
                "to check the server's log and restore from a backup (REINDEX for a damaged index)"
            )
        return StoreError(f"the PostgreSQL store at {self._where} failed: {text}")

    def _text(self, exc: BaseException) -> str:
        """An error's text for a StoreError: the server's own message, never a bound value or the password."""
        diag = getattr(exc, "diag", None)
        primary = getattr(diag, "message_primary", None) if diag is not None else None
        text = (primary or str(exc).strip() or type(exc).__name__).splitlines()[0]
        if self._password:
            text = text.replace(self._password, "***")
        return text

    def _run(self, work: Callable[[psycopg.Cursor[Any]], T]) -> T:
        """Run ``work`` as one transaction on this thread's connection and commit it.

        A connection found dead before the commit is replaced and the work run again (the server rolled it
        back); one that dies during the commit leaves the outcome unknown, which the error says.
        """
        for attempt in range(1, _TRIES + 1):
            try:
                conn = self._connection()
            except _LostOnOpening:
                # Killed before its first statement (a sweep of sessions, a failover): nothing ran yet.
                if attempt < _TRIES:
                    continue
                raise
            try:
                with conn.cursor() as cur:
                    result = work(cur)
            except BaseException as exc:
                if not conn.broken:
                    # A failed rollback must not hide the error that caused it.
                    with contextlib.suppress(psycopg.Error):
                        conn.rollback()
                if isinstance(exc, psycopg.Error):
                    if conn.broken or conn.closed:
                        self._forget(conn)
                        if attempt < _TRIES and isinstance(exc, psycopg.OperationalError):
                            continue
                        raise StoreError(
                            f"lost the connection to the PostgreSQL store at {self._where}: {self._text(exc)}"
                        ) from None
                    if isinstance(exc, psycopg.errors.DeadlockDetected | psycopg.errors.SerializationFailure):
                        if attempt < _TRIES:
                            continue
                    if isinstance(exc, psycopg.DataError):
                        raise ValidationError(f"cannot be stored: {self._text(exc)}") from None
                    raise self._failure(exc) from None
                if isinstance(exc, UnicodeEncodeError):
                    # A lone surrogate: a Python string may hold one, UTF-8 (and so the database) cannot.
                    raise ValidationError(
                        f"cannot be stored: text must be valid Unicode ({exc.reason} at position {exc.start})"
                    ) from None
                raise
            try:
                conn.commit()
            except psycopg.Error as exc:
                if conn.broken or conn.closed:
                    self._forget(conn)
                    raise StoreError(
                        f"lost the connection to the PostgreSQL store at {self._where} while committing; "
                        f"the change may or may not have been saved: {self._text(exc)}"
                    ) from None
                with contextlib.suppress(psycopg.Error):
                    conn.rollback()
                raise self._failure(exc) from None
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    def _read(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[tuple[Any, ...]]:
        return self._run(lambda cur: cur.execute(sql, params).fetchall())

    def _write(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> int:
        return self._run(lambda cur: cur.execute(sql, params).rowcount)

    # -- migrations ------------------------------------------------------------------------------------------

    def _migrate(self, conn: psycopg.Connection[Any]) -> int:
        """Bring the schema up to date; returns its version. Safe when many processes start at once."""
        latest = len(MIGRATIONS)
        # One key per schema: processes migrating different schemas do not wait for each other.
        key = int.from_bytes(
            hashlib.blake2b(f"linepush migrations {self._schema or ''}".encode(), digest_size=8).digest(),
            "big",
            signed=True,
        )

        def current(cur: psycopg.Cursor[Any]) -> int:
            if cur.execute("SELECT to_regclass(%s)", (_VERSIONS_TABLE,)).fetchone() == (None,):
                return 0
            row = cur.execute(f"SELECT coalesce(max(version), 0) FROM {_VERSIONS_TABLE}").fetchone()
            return int(row[0]) if row else 0

        def migrate(cur: psycopg.Cursor[Any]) -> int:
            version = current(cur)
            if version >= latest:
                return version
            # Whoever gets the lock first migrates; the others wait for it, then find the work done (each
            # statement of a READ COMMITTED transaction sees what committed before it began).
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (key,))
            if self._schema is not None:
                cur.execute(f'CREATE SCHEMA IF NOT EXISTS "{self._schema}"')
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {_VERSIONS_TABLE}"
                " (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            version = current(cur)
            for number, statements in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in statements:
                    cur.execute(statement)
                cur.execute(f"INSERT INTO {_VERSIONS_TABLE} (version) VALUES (%s)", (number,))
                version = number
            return version

        try:
            version = self._run(migrate)
        except StoreError as exc:
            if conn.broken or conn.closed:
                raise
            raise ConfigurationError(f"{self._where} is not a usable linepush store: {exc}") from None
        if version > latest:
            raise ConfigurationError(
                f"the store {self._where} has schema version {version}, newer than this linepush knows "
                f"({latest}); upgrade linepush"
            )
        return version

    # -- the dialect ---------------------------------------------------------------------------------------

    json_as_text = False
    set_token_state_sql = (
        "UPDATE tokens SET state = ?, superseded_at = CASE ?::text"
        " WHEN 'superseded' THEN ?::float8 WHEN 'active' THEN NULL ELSE superseded_at END WHERE id = ?"
    )
    name_starts_with_sql = "left(name, char_length(?)) = ?"
    greatest_sql = "greatest"
    byte_order_sql = ' COLLATE "C"'  # as SQLite sorts text, whatever the database's collation
    claim_candidates_sql = CLAIM_CANDIDATES_SQL
    claim_lock_sql = " FOR UPDATE SKIP LOCKED"
    stored_schema_version_sql = f"SELECT coalesce(max(version), 0) FROM {_VERSIONS_TABLE}"
    json_value_sql = "?::json"
    # Appenders of one chat take turns (a transaction-scoped lock, let go at commit), so two of them never
    # both open a digest; the row lock keeps a claimer from taking the digest while it changes.
    digest_lock_sql = "SELECT pg_advisory_xact_lock(hashtextextended(?, 0))"
    digest_row_lock_sql = " FOR UPDATE OF o"

    def _transaction(self, work: Callable[[Run], T]) -> T:
        def run_all(cur: psycopg.Cursor[Any]) -> T:
            def run(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
                cur.execute(_percent_marks(sql), params)
                return cur.fetchall() if cur.description is not None else []

            return work(run)

        return self._run(run_all)

    def select(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[tuple[Any, ...]]:
        return self._read(_percent_marks(sql), params)

    def change(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> int:
        return self._write(_percent_marks(sql), params)

    def change_returning(
        self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()
    ) -> list[tuple[Any, ...]]:
        return self._read(_percent_marks(sql), params)

    def change_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        if not rows:
            return 0

        def run(cur: psycopg.Cursor[Any]) -> int:
            cur.executemany(_percent_marks(sql), rows)
            return cur.rowcount

        return self._run(run)

    def among(self, column: str, values: Collection[Any], sql_type: str = "text") -> tuple[str, list[Any]]:
        return f"{column} = ANY(?::{sql_type}[])", [list(values)]

    def row_id(self, value: object) -> int:
        return check_row_id(value)

    def _advance_rate(self, key: str, step: float, now: float, horizon: float) -> float:
        # The row lock of the upsert makes read-and-advance atomic across every process and host. The commit
        # does not wait for the disk (synchronous_commit off, for this transaction only): a slot lost in a
        # server crash costs nothing, and a sync per request would cost more than the request.
        rows = self._read(
            "INSERT INTO rate_limits AS r (key, tat) SELECT %(key)s, %(now)s + %(step)s"
            " FROM (SELECT set_config('synchronous_commit', 'off', true)) AS quick"
            " ON CONFLICT (key) DO UPDATE SET tat = CASE WHEN r.tat > %(now)s + %(horizon)s THEN %(now)s"
            " ELSE greatest(r.tat, %(now)s) END + %(step)s RETURNING r.tat",
            {"key": key, "now": now, "step": step, "horizon": horizon},
        )
        return float(rows[0][0])

    # -- outbox ----------------------------------------------------------------------------------------------

    def _insert_messages(self, rows: Sequence[Prepared], given: Mapping[str, int], now: float) -> list[int]:
        def insert(cur: psycopg.Cursor[Any]) -> list[int]:
            if given:
                taken = cur.execute(
                    "SELECT retry_key FROM outbox"
                    " WHERE retry_key_given AND retry_key = ANY(%s::text[]) LIMIT 1",
                    (list(given),),
                ).fetchone()
                if taken:
                    raise ValidationError(
                        "this retry key is already in the outbox",
                        property=f"items[{given[taken[0]]}].retry_key",
                    )
            ids: list[int] = []
            for start in range(0, len(rows), _CHUNK):
                chunk = rows[start : start + _CHUNK]
                # Identity values are drawn in the order rows are inserted, which ORDER BY n fixes;
                # sorting the returned ids therefore lines them up with the items.
                try:
                    cur.execute(
                        "INSERT INTO outbox (channel_id, kind, payload, retry_key, not_before,"
                        " retry_key_given, chat, batchable, state, attempts, created_at, updated_at)"
                        # %b: arrays go in binary form; the text form escapes every element with a regex.
                        " SELECT c, k, p::json, r, b, g, h, a, 'queued', 0, %s, %s FROM unnest(%b::text[],"
                        " %b::text[], %b::text[], %b::text[], %b::float8[], %b::bool[], %b::text[],"
                        " %b::bool[])"
                        " WITH ORDINALITY AS t(c, k, p, r, b, g, h, a, n) ORDER BY n RETURNING id",
                        (
                            now,
                            now,
                            [item[0] for item in chunk],
                            [item[1] for item in chunk],
                            [item[2] for item in chunk],
                            [item[3] for item in chunk],
                            [item[4] for item in chunk],
                            [bool(item[5]) for item in chunk],
                            [item[6] for item in chunk],
                            [bool(item[7]) for item in chunk],
                        ),
                    )
                except psycopg.errors.UniqueViolation as exc:
                    if not given:
                        raise
                    # Another process enqueued the same retry key between our check and our insert.
                    detail = exc.diag.message_detail or ""
                    index = next((i for key, i in given.items() if key in detail), min(given.values()))
                    raise ValidationError(
                        "this retry key is already in the outbox", property=f"items[{index}].retry_key"
                    ) from None
                ids.extend(sorted(row[0] for row in cur.fetchall()))
            return ids

        return self._run(insert)

    def renew_leases(self, ids: Sequence[int], worker_id: str, lease_seconds: float, now: float) -> int:
        moment = check_time(now, "now")
        until = moment + check_positive(lease_seconds, "lease_seconds")
        if not ids:
            return 0
        return self._write(
            "UPDATE outbox SET lease_expires_at = %(until)s"
            f" WHERE id = ANY(%(ids)s::bigint[]) AND {_LEASE_HELD}",
            {"until": until, "ids": _row_ids(ids), "worker": worker_id, "now": moment},
        )

    def settle(self, worker_id: str, now: float, items: Sequence[Settlement]) -> list[bool]:
        """Many outcomes in one statement and one transaction (one commit per row would hold a drain to the
        rate at which the server flushes its log); see :meth:`Store.settle`. The other rows of a batch that
        an item settles are settled with it, the same way."""
        moment = check_time(now, "now")
        if not items:
            return []
        checked = self._check_settlements(items, moment)

        def work(execute: Execute) -> list[bool]:
            ids: list[int] = []
            outcomes: list[str] = []
            request_ids: list[str | None] = []
            results: list[str | None] = []
            errors: list[str | None] = []
            due: list[float] = []
            splits: list[bool] = []
            named: list[int] = []
            first: dict[int, int] = {}
            for index, item in enumerate(self._whole_batches(execute, checked)):
                if index < len(checked):
                    named.append(item.message_id)
                if item.message_id in first:
                    continue  # settled by its first item, as one-by-one calls would; later ones find it so
                first[item.message_id] = index
                ids.append(item.message_id)
                outcomes.append(item.outcome)
                request_ids.append(item.request_id)
                results.append(item.result)
                errors.append(item.error)
                due.append(item.not_before)
                splits.append(item.split)
            rows = execute(
                _SETTLE,
                [moment, moment, ids, outcomes, request_ids, results, errors, due, splits, worker_id, moment],
            )
            done = {row[0] for row in rows}
            return [index == first[mid] and mid in done for index, mid in enumerate(named)]

        return self._transaction(work)

    def release(self, ids: Sequence[int], worker_id: str, now: float) -> int:
        moment = check_time(now, "now")
        if not ids:
            return 0
        # SET expressions all see the row as it was, so first_attempt_at is judged by the old attempts.
        return self._write(
            "UPDATE outbox SET state = 'queued', attempts = greatest(attempts - 1, 0),"
            " first_attempt_at = CASE WHEN attempts <= 1 THEN NULL ELSE first_attempt_at END,"
            " updated_at = %(now)s, lease_owner = NULL, lease_expires_at = NULL"
            f" WHERE id = ANY(%(ids)s::bigint[]) AND {_LEASE_HELD}",
            {"now": moment, "ids": _row_ids(ids), "worker": worker_id},
        )

    def requeue(self, ids: Sequence[int] | None = None, *, now: float, new_retry_key: bool = False) -> int:
        moment = check_time(now, "now")
        if ids is not None and not ids:
            return 0
        # A batch goes back whole: what is left of it under its key would be another request.
        where = (
            "state = 'failed'"
            if ids is None
            else "state = 'failed' AND (id = ANY(%(ids)s::bigint[]) OR batch_key IN (SELECT batch_key FROM"
            " outbox WHERE id = ANY(%(ids)s::bigint[]) AND batch_key IS NOT NULL))"
        )
        fresh = (
            # gen_random_uuid() gives a version 4 UUID in the same canonical spelling as new_retry_key(). A
            # new identity at LINE: the batch is dissolved, its rows may be batched afresh.
            ", retry_key = gen_random_uuid()::text, retry_key_given = false, attempts = 0,"
            " first_attempt_at = NULL, batch_key = NULL, batch_pos = NULL"
            if new_retry_key
            else ""
        )
        return self._write(
            f"UPDATE outbox SET state = 'queued', not_before = %(now)s, updated_at = %(now)s{fresh}"
            f" WHERE {where}",
            {"now": moment, "ids": None if ids is None else _row_ids(ids)},
        )


# -- opening -------------------------------------------------------------------------------------------------


def _abandon(conn: psycopg.Connection[Any]) -> None:
    """Drop a connection inherited through fork() without touching the parent's session.

    Closing it would send the server a Terminate message on the socket the parent still uses; pointing this
    process's copy of the descriptor at /dev/null first makes that message go nowhere. No Python lock is
    taken: another thread of the parent may have held one at the moment of the fork.
    """
    with contextlib.suppress(Exception):
        fd = conn.pgconn.socket
        devnull = os.open(os.devnull, os.O_RDWR)
        try:
            os.dup2(devnull, fd)
        finally:
            os.close(devnull)
        conn.pgconn.finish()


def _split_schema(url: str) -> tuple[str, str | None]:
    """Take linepush's own ``schema`` query parameter out of a URL (libpq would refuse it)."""
    if not isinstance(url, str) or not url.strip():
        raise ConfigurationError("the PostgreSQL store URL is empty")
    url = url.strip()
    if "://" not in url:
        return url, None  # a libpq "key=value" string
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # e.g. an unclosed "[" of an IPv6 host; the text quotes nothing
        raise ConfigurationError(f"cannot read the PostgreSQL store URL ({exc}); {_FORM}") from None
    if parts.netloc.count("@") > 1:
        # libpq takes the first "@" for the end of the password and the rest for the host: its error would
        # then quote the password's tail as a host name it cannot resolve.
        raise ConfigurationError(
            "the PostgreSQL store URL has more than one '@' before its host: percent-encode an '@' in the "
            f"user name or password as %40; {_FORM}"
        )
    query = parse_qsl(parts.query, keep_blank_values=True)
    schemas = [value for name, value in query if name == "schema"]
    if not schemas:
        return url, None
    if len(schemas) > 1:
        raise ConfigurationError("the PostgreSQL store URL names more than one schema")
    # quote, not quote_plus: libpq reads "+" as a plus sign, not as a space.
    rest = urlencode([(name, value) for name, value in query if name != "schema"], quote_via=quote)
    return urlunsplit(parts._replace(query=rest)), schemas[0]


def _describe(conninfo: str) -> tuple[str, str | None]:
    """Where the store is, for messages (``postgresql://user@host:port/dbname``), and the password to hide."""
    try:
        params = psycopg.conninfo.conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError as exc:
        # libpq's text goes on to quote the part it could not read, which may be the password: only its
        # first words (what is wrong) are shown.
        what = str(exc).strip().split(":", 1)[0].split('"', 1)[0].strip()
        raise ConfigurationError(f"cannot read the PostgreSQL store URL ({what}); {_FORM}") from None
    password = params.get("password")
    user = params.get("user")
    host = params.get("host") or params.get("hostaddr") or "localhost"
    port = params.get("port")
    dbname = params.get("dbname") or user or ""
    where = f"postgresql://{f'{user}@' if user else ''}{host}{f':{port}' if port else ''}/{dbname}"
    return where, str(password) if password else None


# -- rows ----------------------------------------------------------------------------------------------------


def _row_ids(values: Sequence[int]) -> list[int]:
    return [check_row_id(value) for value in values]


@functools.cache
def _percent_marks(sql: str) -> str:
    """A shared statement (values marked ``?``, no other ``?`` or ``%``) in psycopg's form (``%s``)."""
    return sql.replace("?", "%s")
