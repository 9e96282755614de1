"""The PostgreSQL backend: one database shared by every process on every host, through psycopg 3.

Connections are per thread with autocommit off; every call is one explicit transaction. Claims take rows with
``FOR UPDATE SKIP LOCKED``, locks are leases in a table, and migrations run under an advisory lock.
"""

# S608: the SQL here is assembled only from this module's constants and %s marks; every value is bound.
# ruff: noqa: S608

from __future__ import annotations

import contextlib
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

from linepush._secret import Secret
from linepush.errors import ConfigurationError, StoreCorruptError, StoreFullError, ValidationError

# The item checks and JSON encoders are the SQLite backend's, so both backends refuse exactly the same input.
from linepush.store._rows import (
    _gateway_token,
    _json_or_none,
    _prepare,
    _recipient,
    _token,
)
from linepush.store._rows import (
    _message as _message_row,
)
from linepush.store.base import (
    REVOCABLE_KINDS,
    GatewayToken,
    MessageState,
    NewMessage,
    OutboxMessage,
    RecipientSighting,
    RecipientType,
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
    check_recipient_name,
    check_sightings,
    check_time,
    check_token_kind,
    check_token_states,
    is_token_hash,
    recipient_type,
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
    # 3 → 4: the gateway's names of recipients.
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
)

_VERSIONS_TABLE: Final = "linepush_migrations"
_FORM: Final = (
    "the form is postgresql://user:password@host:port/dbname?schema=name (percent-encode @ : / in parts)"
)
_SCHEMA_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_TOKEN_COLUMNS: Final = (
    "id, channel_id, kind, access_token, key_id, issued_at, expires_at, state, superseded_at"
)
_OUTBOX_FIELDS: Final = (
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
)
_OUTBOX_COLUMNS: Final = ", ".join(_OUTBOX_FIELDS)
_GATEWAY_TOKEN_COLUMNS: Final = "id, channel_id, token_hash, recipient_id, name, created_at, revoked_at"
_RECIPIENT_COLUMNS: Final = (
    "channel_id, recipient_id, type, first_seen_at, last_seen_at, last_event_type, sightings"
)
_LEASE_HELD: Final = "state = 'sending' AND lease_owner = %(worker)s AND lease_expires_at > %(now)s"
# Rows per INSERT of an enqueue; all chunks of one call share its transaction.
_CHUNK: Final = 5000
# Tries of one call when the connection turns out dead before anything was committed, or the server breaks
# a deadlock by cancelling it: the transaction was rolled back, so running it again is safe.
_TRIES: Final = 3


def _claim_sql(by_channel: bool) -> str:
    channel = " AND channel_id = %(channel)s" if by_channel else ""
    # Each arm locks at most `limit` rows in due order and skips those another claimer holds; the rows it
    # locked but does not keep are let go at commit. FOR UPDATE cannot sit under a UNION, hence two CTEs.
    return (
        "WITH queued AS (SELECT id, not_before FROM outbox"
        f" WHERE state = 'queued' AND not_before <= %(now)s{channel}"
        " ORDER BY not_before, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED),"
        " expired AS (SELECT id, not_before FROM outbox"
        f" WHERE state = 'sending' AND lease_expires_at <= %(now)s{channel}"
        " ORDER BY not_before, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED),"
        " chosen AS (SELECT id FROM (SELECT id, not_before FROM queued"
        " UNION ALL SELECT id, not_before FROM expired) AS due ORDER BY not_before, id LIMIT %(limit)s)"
        " UPDATE outbox AS o SET state = 'sending', lease_owner = %(worker)s, lease_expires_at = %(until)s,"
        " attempts = o.attempts + 1, first_attempt_at = coalesce(o.first_attempt_at, %(now)s),"
        " updated_at = %(now)s FROM chosen WHERE o.id = chosen.id"
        f" RETURNING {', '.join('o.' + name for name in _OUTBOX_FIELDS)}"
    )


CLAIM_SQL: Final = _claim_sql(by_channel=False)
CLAIM_BY_CHANNEL_SQL: Final = _claim_sql(by_channel=True)


class PostgresStore(Store):
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
            raise StoreError(
                f"cannot connect to the PostgreSQL store at {self._where}: {self._text(exc)}"
            ) from None
        try:
            if self._schema is not None:
                # A schema that does not exist yet is accepted here; the migration creates it.
                conn.execute(f'SET search_path TO "{self._schema}"')
                conn.commit()
        except psycopg.Error as exc:
            conn.close()
            raise StoreError(f"the PostgreSQL store at {self._where} failed: {self._text(exc)}") from None
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
            conn = self._connection()
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
        rows = self._read(
            "INSERT INTO tokens (channel_id, kind, access_token, key_id, issued_at, expires_at, state)"
            f" VALUES (%s, %s, %s, %s, %s, %s, 'active') RETURNING {_TOKEN_COLUMNS}",
            (channel_id, kind, token, key_id, issued, expires),
        )
        return _token(rows[0])

    def current_token(self, channel_id: str, kind: TokenKind, now: float) -> TokenRecord | None:
        check_token_kind(kind)
        rows = self._read(
            f"SELECT {_TOKEN_COLUMNS} FROM tokens WHERE channel_id = %s AND kind = %s AND state = 'active'"
            " AND (expires_at IS NULL OR expires_at > %s) ORDER BY issued_at DESC, id DESC LIMIT 1",
            (channel_id, kind, check_time(now, "now")),
        )
        return _token(rows[0]) if rows else None

    def list_tokens(
        self,
        channel_id: str,
        kind: TokenKind | None = None,
        states: Collection[TokenState] | None = None,
    ) -> list[TokenRecord]:
        sql = f"SELECT {_TOKEN_COLUMNS} FROM tokens WHERE channel_id = %s"
        params: list[Any] = [channel_id]
        if kind is not None:
            sql += " AND kind = %s"
            params.append(check_token_kind(kind))
        if states is not None:
            sql += " AND state = ANY(%s::text[])"
            params.append(check_token_states(states))
        return [_token(row) for row in self._read(sql + " ORDER BY issued_at, id", params)]

    def set_token_state(self, token_id: int, state: TokenState, now: float) -> None:
        check_token_states([state])
        moment = check_time(now, "now")
        changed = self._write(
            "UPDATE tokens SET state = %(state)s, superseded_at = CASE %(state)s::text"
            " WHEN 'superseded' THEN %(now)s::float8 WHEN 'active' THEN NULL ELSE superseded_at END"
            " WHERE id = %(id)s",
            {"state": state, "now": moment, "id": _row_id(token_id)},
        )
        if not changed:
            raise LookupError(f"no stored token has id {token_id!r}")

    def supersede_others(self, channel_id: str, kind: TokenKind, keep_id: int, now: float) -> int:
        check_token_kind(kind)
        moment = check_time(now, "now")
        return self._write(
            "UPDATE tokens SET state = 'superseded', superseded_at = %s"
            " WHERE channel_id = %s AND kind = %s AND state = 'active' AND id != %s",
            (moment, channel_id, kind, _row_id(keep_id)),
        )

    def tokens_due_for_revocation(
        self, channel_id: str, superseded_before: float, now: float
    ) -> list[TokenRecord]:
        rows = self._read(
            f"SELECT {_TOKEN_COLUMNS} FROM tokens WHERE channel_id = %s AND state = 'superseded'"
            " AND kind = ANY(%s::text[]) AND superseded_at <= %s"
            " AND (expires_at IS NULL OR expires_at > %s) ORDER BY superseded_at, id",
            (
                channel_id,
                list(REVOCABLE_KINDS),
                check_time(superseded_before, "superseded_before"),
                check_time(now, "now"),
            ),
        )
        return [_token(row) for row in rows]

    def delete_expired_tokens(self, now: float) -> int:
        return self._write("DELETE FROM tokens WHERE expires_at <= %s", (check_time(now, "now"),))

    # -- locks -----------------------------------------------------------------------------------------------

    def try_lock(self, name: str, owner: str, ttl: float, now: float) -> bool:
        check_name(name, "name")
        check_name(owner, "owner")
        moment = check_time(now, "now")
        until = moment + check_positive(ttl, "ttl")
        # One upsert: insert when free; take over when expired; extend when ours; otherwise no change. The
        # unique index settles a race between two inserts: the loser sees the winner's row and its lease.
        return (
            self._write(
                "INSERT INTO locks (name, owner, expires_at) VALUES (%s, %s, %s)"
                " ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at"
                " WHERE locks.owner = excluded.owner OR locks.expires_at <= %s",
                (name, owner, until, moment),
            )
            == 1
        )

    def unlock(self, name: str, owner: str) -> None:
        self._write("DELETE FROM locks WHERE name = %s AND owner = %s", (name, owner))

    def delete_expired_locks(self, prefix: str, now: float) -> int:
        check_name(prefix, "prefix")
        moment = check_time(now, "now")
        # Not LIKE: a name may hold % or _.
        return self._write(
            "DELETE FROM locks WHERE left(name, char_length(%s)) = %s AND expires_at <= %s",
            (prefix, prefix, moment),
        )

    # -- shared rate limits ----------------------------------------------------------------------------------

    def reserve_rate(self, key: str, interval: float, tolerance: float, now: float) -> float:
        check_name(key, "key")
        step, slack = check_rate(interval, tolerance)
        moment = check_time(now, "now")
        # The row lock of the upsert makes read-and-advance atomic across every process and host. The commit
        # does not wait for the disk (synchronous_commit off, for this transaction only): a slot lost in a
        # server crash costs nothing, and a sync per request would cost more than the request.
        rows = self._read(
            "INSERT INTO rate_limits AS r (key, tat) SELECT %(key)s, %(now)s + %(step)s"
            " FROM (SELECT set_config('synchronous_commit', 'off', true)) AS quick"
            " ON CONFLICT (key) DO UPDATE SET tat = greatest(r.tat, %(now)s) + %(step)s RETURNING r.tat",
            {"key": key, "now": moment, "step": step},
        )
        start = float(rows[0][0]) - step - slack
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
            for start in range(0, len(prepared), _CHUNK):
                chunk = prepared[start : start + _CHUNK]
                # Identity values are drawn in the order rows are inserted, which ORDER BY n fixes;
                # sorting the returned ids therefore lines them up with the items.
                try:
                    cur.execute(
                        "INSERT INTO outbox (channel_id, kind, payload, retry_key, not_before,"
                        " retry_key_given, state, attempts, created_at, updated_at)"
                        # %b: arrays go in binary form; the text form escapes every element with a regex.
                        " SELECT c, k, p::json, r, b, g, 'queued', 0, %s, %s FROM unnest(%b::text[],"
                        " %b::text[], %b::text[], %b::text[], %b::float8[], %b::bool[])"
                        " WITH ORDINALITY AS t(c, k, p, r, b, g, n) ORDER BY n RETURNING id",
                        (
                            moment,
                            moment,
                            [row[0] for row in chunk],
                            [row[1] for row in chunk],
                            [row[2] for row in chunk],
                            [row[3] for row in chunk],
                            [row[4] for row in chunk],
                            [bool(row[5]) for row in chunk],
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

        ids = self._run(insert)
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
            )
            for message_id, item, (channel_id, kind, _, retry_key, not_before, _) in zip(
                ids, items, prepared, strict=True
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
        rows = self._read(
            CLAIM_BY_CHANNEL_SQL if channel_id is not None else CLAIM_SQL,
            {"worker": worker_id, "until": until, "now": moment, "limit": limit, "channel": channel_id},
        )
        return sorted((_message(row) for row in rows), key=lambda m: (m.not_before, m.id))

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
            self._write(
                "UPDATE outbox SET state = 'delivered', delivered_at = %(now)s, updated_at = %(now)s,"
                " request_id = %(rid)s, result = %(body)s::json, lease_owner = NULL, lease_expires_at = NULL"
                f" WHERE id = %(id)s AND {_LEASE_HELD}",
                {
                    "now": moment,
                    "rid": request_id,
                    "body": body,
                    "id": _row_id(message_id),
                    "worker": worker_id,
                },
            )
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
        return (
            self._write(
                "UPDATE outbox SET state = 'queued', not_before = %(due)s, updated_at = %(now)s,"
                " last_error = %(body)s::json, lease_owner = NULL, lease_expires_at = NULL"
                f" WHERE id = %(id)s AND {_LEASE_HELD}",
                {"due": due, "now": moment, "body": body, "id": _row_id(message_id), "worker": worker_id},
            )
            == 1
        )

    def mark_failed(
        self, message_id: int, worker_id: str, now: float, error: Mapping[str, Any] | None
    ) -> bool:
        moment = check_time(now, "now")
        body = _json_or_none(error, "error")
        return (
            self._write(
                "UPDATE outbox SET state = 'failed', updated_at = %(now)s, last_error = %(body)s::json,"
                f" lease_owner = NULL, lease_expires_at = NULL WHERE id = %(id)s AND {_LEASE_HELD}",
                {"now": moment, "body": body, "id": _row_id(message_id), "worker": worker_id},
            )
            == 1
        )

    def settle(self, worker_id: str, now: float, items: Sequence[Settlement]) -> list[bool]:
        """Many outcomes in one statement and one transaction (one commit per row would hold a drain to the
        rate at which the server flushes its log); see :meth:`Store.settle`."""
        moment = check_time(now, "now")
        if not items:
            return []
        ids: list[int] = []
        outcomes: list[str] = []
        request_ids: list[str | None] = []
        results: list[str | None] = []
        errors: list[str | None] = []
        due: list[float] = []
        named: list[int] = []
        first: dict[int, int] = {}
        # Everything is checked and encoded before the transaction, so a bad item changes nothing.
        for index, item in enumerate(items):
            if not isinstance(item, Settlement):
                raise ValidationError("must be a Settlement", property=f"items[{index}]")
            outcome = item.outcome
            if outcome not in ("delivered", "retry", "failed"):
                raise ValidationError(
                    f"must be delivered, retry or failed, not {outcome!r}", property=f"items[{index}].outcome"
                )
            delivered = outcome == "delivered"
            result = _json_or_none(item.result, "result") if delivered else None
            error = None if delivered else _json_or_none(item.error, "error")
            retry_at = item.not_before if outcome == "retry" and item.not_before is not None else moment
            retry_at = check_time(retry_at, "not_before")
            message_id = _row_id(item.message_id)
            named.append(message_id)
            if message_id in first:
                continue  # settled by its first item, as one-by-one calls would; later ones find it settled
            first[message_id] = index
            ids.append(message_id)
            outcomes.append(outcome)
            request_ids.append(item.request_id if delivered else None)
            results.append(result)
            errors.append(error)
            due.append(retry_at)
        rows = self._read(
            "UPDATE outbox AS o SET"
            " state = CASE s.outcome WHEN 'delivered' THEN 'delivered' WHEN 'retry' THEN 'queued'"
            " ELSE 'failed' END,"
            " delivered_at = CASE WHEN s.outcome = 'delivered' THEN %(now)s ELSE o.delivered_at END,"
            " request_id = CASE WHEN s.outcome = 'delivered' THEN s.request_id ELSE o.request_id END,"
            " result = CASE WHEN s.outcome = 'delivered' THEN s.result::json ELSE o.result END,"
            " last_error = CASE WHEN s.outcome = 'delivered' THEN o.last_error ELSE s.error::json END,"
            " not_before = CASE WHEN s.outcome = 'retry' THEN s.due ELSE o.not_before END,"
            " updated_at = %(now)s, lease_owner = NULL, lease_expires_at = NULL"
            " FROM unnest(%(ids)b::bigint[], %(outcomes)b::text[], %(rids)b::text[], %(results)b::text[],"
            " %(errors)b::text[], %(due)b::float8[]) AS s(id, outcome, request_id, result, error, due)"
            " WHERE o.id = s.id AND o.state = 'sending' AND o.lease_owner = %(worker)s"
            " AND o.lease_expires_at > %(now)s RETURNING o.id",
            {
                "now": moment,
                "ids": ids,
                "outcomes": outcomes,
                "rids": request_ids,
                "results": results,
                "errors": errors,
                "due": due,
                "worker": worker_id,
            },
        )
        done = {row[0] for row in rows}
        return [index == first[message_id] and message_id in done for index, message_id in enumerate(named)]

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

    # -- outbox: inspection and maintenance ------------------------------------------------------------------

    def get_message(self, message_id: int) -> OutboxMessage | None:
        rows = self._read(f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE id = %s", (_row_id(message_id),))
        return _message(rows[0]) if rows else None

    def list_messages(
        self,
        state: MessageState | None = None,
        channel_id: str | None = None,
        limit: int = 100,
        after_id: int | None = None,
    ) -> list[OutboxMessage]:
        sql = f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE id > %s"
        params: list[Any] = [_row_id(after_id or 0)]
        if state is not None:
            sql += " AND state = %s"
            params.extend(check_message_states([state]))
        if channel_id is not None:
            sql += " AND channel_id = %s"
            params.append(channel_id)
        params.append(check_limit(limit))
        return [_message(row) for row in self._read(sql + " ORDER BY id LIMIT %s", params)]

    def counts(self, channel_id: str | None = None) -> dict[MessageState, int]:
        where = "" if channel_id is None else " WHERE channel_id = %s"
        rows = self._read(
            f"SELECT state, count(*) FROM outbox{where} GROUP BY state",
            () if channel_id is None else (channel_id,),
        )
        found = {state: int(n) for state, n in rows}
        return {state: found.get(state, 0) for state in ("queued", "sending", "delivered", "failed")}

    def requeue(self, ids: Sequence[int] | None = None, *, now: float, new_retry_key: bool = False) -> int:
        moment = check_time(now, "now")
        if ids is not None and not ids:
            return 0
        where = "state = 'failed'" if ids is None else "id = ANY(%(ids)s::bigint[]) AND state = 'failed'"
        fresh = (
            # gen_random_uuid() gives a version 4 UUID in the same canonical spelling as new_retry_key().
            ", retry_key = gen_random_uuid()::text, retry_key_given = false, attempts = 0,"
            " first_attempt_at = NULL"
            if new_retry_key
            else ""
        )
        return self._write(
            f"UPDATE outbox SET state = 'queued', not_before = %(now)s, updated_at = %(now)s{fresh}"
            f" WHERE {where}",
            {"now": moment, "ids": None if ids is None else _row_ids(ids)},
        )

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
        return self._write(
            "DELETE FROM outbox WHERE state = ANY(%s::text[]) AND updated_at < %s", (chosen, cutoff)
        )

    # -- gateway tokens and webhook recipients (the service's tables) ----------------------------------------

    def create_gateway_token(
        self, channel_id: str, token_hash: str, recipient_id: str, name: str | None, now: float
    ) -> GatewayToken:
        check_name(channel_id, "channel_id")
        check_gateway_token(token_hash, recipient_id, name)
        moment = check_time(now, "now")
        rows = self._read(
            "INSERT INTO gateway_tokens (channel_id, token_hash, recipient_id, name, created_at)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (token_hash) DO NOTHING"
            f" RETURNING {_GATEWAY_TOKEN_COLUMNS}",
            (channel_id, token_hash, recipient_id, name, moment),
        )
        if not rows:
            raise ValidationError("this token hash is already stored", property="token_hash")
        return _gateway_token(rows[0])

    def find_gateway_token(self, token_hash: str) -> GatewayToken | None:
        if not is_token_hash(token_hash):
            return None
        rows = self._read(
            f"SELECT {_GATEWAY_TOKEN_COLUMNS} FROM gateway_tokens WHERE token_hash = %s", (token_hash,)
        )
        return _gateway_token(rows[0]) if rows else None

    def list_gateway_tokens(
        self, channel_id: str | None = None, *, include_revoked: bool = True
    ) -> list[GatewayToken]:
        sql = f"SELECT {_GATEWAY_TOKEN_COLUMNS} FROM gateway_tokens WHERE true"
        params: list[Any] = []
        if channel_id is not None:
            sql += " AND channel_id = %s"
            params.append(channel_id)
        if not include_revoked:
            sql += " AND revoked_at IS NULL"
        return [_gateway_token(row) for row in self._read(sql + " ORDER BY created_at, id", params)]

    def revoke_gateway_token(self, token_id: int, now: float) -> bool:
        moment = check_time(now, "now")
        token = _row_id(token_id)

        def revoke(cur: psycopg.Cursor[Any]) -> bool:
            changed = cur.execute(
                "UPDATE gateway_tokens SET revoked_at = %s WHERE id = %s AND revoked_at IS NULL",
                (moment, token),
            ).rowcount
            if changed:
                return True
            if cur.execute("SELECT 1 FROM gateway_tokens WHERE id = %s", (token,)).fetchone() is None:
                raise LookupError(f"no gateway token has id {token_id!r}")
            return False

        return self._run(revoke)

    def record_recipients(self, channel_id: str, sightings: Sequence[RecipientSighting], now: float) -> None:
        check_name(channel_id, "channel_id")
        checked = check_sightings(sightings)
        moment = check_time(now, "now")
        if not checked:
            return
        # One row per id (an upsert may not touch a row twice): how often it was seen, and its last event.
        seen: dict[str, tuple[RecipientType, str, int]] = {}
        for recipient_id, kind, event in checked:
            seen[recipient_id] = (kind, event, seen.get(recipient_id, (kind, event, 0))[2] + 1)
        # In a fixed order, so two webhooks recording the same ids at once cannot deadlock.
        ids = sorted(seen)
        self._write(
            "INSERT INTO webhook_recipients AS w (channel_id, recipient_id, type, first_seen_at,"
            " last_seen_at, last_event_type, sightings)"
            " SELECT %(channel)s, r, t, %(now)s, %(now)s, e, n"
            " FROM unnest(%(ids)s::text[], %(types)s::text[], %(events)s::text[], %(counts)s::int[])"
            " AS s(r, t, e, n)"
            " ON CONFLICT (channel_id, recipient_id) DO UPDATE SET"
            " last_seen_at = greatest(w.last_seen_at, excluded.last_seen_at),"
            " last_event_type = excluded.last_event_type, sightings = w.sightings + excluded.sightings",
            {
                "channel": channel_id,
                "now": moment,
                "ids": ids,
                "types": [seen[i][0] for i in ids],
                "events": [seen[i][1] for i in ids],
                "counts": [seen[i][2] for i in ids],
            },
        )

    def list_recipients(self, channel_id: str | None = None) -> list[WebhookRecipient]:
        where = "" if channel_id is None else " WHERE channel_id = %s"
        # COLLATE "C": ids in byte order, as SQLite sorts them, whatever the database's collation.
        rows = self._read(
            f"SELECT {_RECIPIENT_COLUMNS} FROM webhook_recipients{where}"
            ' ORDER BY last_seen_at DESC, channel_id COLLATE "C", recipient_id COLLATE "C"',
            () if channel_id is None else (channel_id,),
        )
        return [_recipient(row) for row in rows]

    def name_recipient(self, channel_id: str, name: str, recipient_id: str, now: float) -> None:
        check_name(channel_id, "channel_id")
        check_recipient_name(name)
        recipient_type(recipient_id)
        moment = check_time(now, "now")
        self._write(
            "INSERT INTO recipient_names (channel_id, name, recipient_id, named_at) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (channel_id, name) DO UPDATE SET recipient_id = excluded.recipient_id,"
            " named_at = excluded.named_at",
            (channel_id, name, recipient_id, moment),
        )

    def unname_recipient(self, channel_id: str, name: str) -> bool:
        return (
            self._write("DELETE FROM recipient_names WHERE channel_id = %s AND name = %s", (channel_id, name))
            == 1
        )

    def recipient_names(self, channel_id: str) -> dict[str, str]:
        # COLLATE "C": byte order, as SQLite sorts them.
        rows = self._read(
            'SELECT name, recipient_id FROM recipient_names WHERE channel_id = %s ORDER BY name COLLATE "C"',
            (channel_id,),
        )
        return {str(name): str(recipient_id) for name, recipient_id in rows}


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


def _row_id(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"an id must be a whole number, not {value!r}")
    # Out of bigint's range no row can match; clamp rather than let the server refuse the number.
    return max(min(value, 2**63 - 1), -(2**63))


def _row_ids(values: Sequence[int]) -> list[int]:
    return [_row_id(value) for value in values]


def _message(row: tuple[Any, ...]) -> OutboxMessage:
    # psycopg parses json columns itself.
    return _message_row(row, decode=False)
