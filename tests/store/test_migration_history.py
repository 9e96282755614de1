"""Databases made by earlier linepush versions: their migrations never change, and every one still opens.

A store at each shipped schema version (the migrations up to it applied, a row written in each table it
has) is opened by today's code, which brings it up to date and finds the rows as they were, through both the
library's interface and the gateway's.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.pg import PG_URL, admin_connect, fresh_schema

from linepush.service.store import RecipientSighting, gateway_store
from linepush.store import NewMessage, Store
from linepush.store import postgres as pg_backend
from linepush.store import sqlite as sqlite_backend

USER = "U" + "4" * 32
TOKEN_HASH = "ab" * 32

# The first 16 hex digits of the SHA-256 of each shipped migration's repr. Append a migration and its digest;
# never change one of these: databases in the field were made by those statements.
SHIPPED = {
    "sqlite": [
        "8211f0e85f68b1be",
        "b21b553700d326da",
        "8b47207b6cbb8a2d",
        "31867138a23c3aad",
        "5eeaab75512f0817",
        "11960a08706b440c",
        "3e6d1cba3c335886",
        "67a41aea59300565",
        "9473af22037747bc",
    ],
    "postgresql": [
        "c4d320a39d80b486",
        "bdfbd2d1026e306f",
        "e353583ca0c6eedd",
        "56af572b4bd609d9",
        "f14406b7dc32ebd9",
        "e407c912f158433d",
        "23e1dfeb92ed873c",
        "93dfa57f0d4aab46",
    ],
}
MIGRATIONS = {"sqlite": sqlite_backend.MIGRATIONS, "postgresql": pg_backend.MIGRATIONS}


def digest(migration: tuple[str, ...]) -> str:
    return hashlib.sha256(repr(migration).encode()).hexdigest()[:16]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_shipped_migrations_are_never_edited(backend: str) -> None:
    shipped = SHIPPED[backend]
    assert len(MIGRATIONS[backend]) >= len(shipped), "a shipped migration was removed"
    assert [digest(m) for m in MIGRATIONS[backend][: len(shipped)]] == shipped


def _tables(statements: tuple[tuple[str, ...], ...]) -> set[str]:
    text = " ".join(" ".join(m) for m in statements)
    return {
        name
        for name in ("tokens", "gateway_tokens", "webhook_recipients", "recipient_names")
        if f"CREATE TABLE {name} " in text
    }


# Rows an old version could have written, per table; both backends take the same statements here.
_ROWS = {
    "tokens": (
        "INSERT INTO tokens (channel_id, kind, access_token, key_id, issued_at, expires_at, state)"
        " VALUES ('1000', 'v2.1', 'old-token', 'kid', 10.0, NULL, 'active')"
    ),
    "gateway_tokens": (
        "INSERT INTO gateway_tokens (channel_id, token_hash, recipient_id, name, created_at)"
        f" VALUES ('1000', '{TOKEN_HASH}', '{USER}', 'ops', 20.0)"
    ),
    "webhook_recipients": (
        "INSERT INTO webhook_recipients (channel_id, recipient_id, type, first_seen_at, last_seen_at,"
        f" last_event_type, sightings) VALUES ('1000', '{USER}', 'user', 30.0, 30.0, 'follow', 1)"
    ),
    "recipient_names": (
        "INSERT INTO recipient_names (channel_id, name, recipient_id, named_at)"
        f" VALUES ('1000', 'me', '{USER}', 40.0)"
    ),
}


def _check_rows_survive(store: Store, tables: set[str]) -> None:
    gateway = gateway_store(store)
    if "tokens" in tables:
        (token,) = store.list_tokens("1000")
        assert (token.access_token.reveal(), token.key_id, token.issued_at) == ("old-token", "kid", 10.0)
    if "gateway_tokens" in tables:
        found = gateway.find_gateway_token(TOKEN_HASH)
        assert found is not None and (found.recipient_id, found.name) == (USER, "ops")
        assert found.route_table is None  # bound to its recipient, as it was
    if "webhook_recipients" in tables:
        gateway.record_recipients("1000", [RecipientSighting(USER, "message")], 50.0)
        (seen,) = gateway.list_recipients("1000")
        assert (seen.first_seen_at, seen.last_seen_at, seen.sightings) == (30.0, 50.0, 2)
    if "recipient_names" in tables:
        assert gateway.recipient_names("1000") == {"me": USER}
    # Whatever the old version had, today's tables all work.
    gateway.name_recipient("1000", "ops", USER, 60.0)
    assert store.reserve_rate("r", 1.0, 0.0, now=70.0) == 0.0
    assert store.counts()["queued"] == 0


def _old_sqlite_file(path: Path, applied: tuple[tuple[str, ...], ...], rows: list[str]) -> None:
    """An SQLite store as a linepush of ``len(applied)`` migrations left it, with ``rows`` written."""
    old = sqlite3.connect(path, isolation_level=None)
    try:
        old.execute("PRAGMA journal_mode = WAL")
        for statements in applied:
            for statement in statements:
                old.execute(statement)
        for row in rows:
            old.execute(row)
        old.execute(f"PRAGMA user_version = {len(applied)}")
    finally:
        old.close()
    path.chmod(0o600)


def _old_postgresql_schema(schema: str, applied: tuple[tuple[str, ...], ...], rows: list[str]) -> None:
    """A PostgreSQL schema as a linepush of ``len(applied)`` migrations left it, with ``rows`` written."""
    with admin_connect() as conn:
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        conn.execute(f'SET search_path TO "{schema}"')
        conn.execute(
            "CREATE TABLE linepush_migrations"
            " (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for number, statements in enumerate(applied, start=1):
            for statement in statements:
                conn.execute(statement)
            conn.execute("INSERT INTO linepush_migrations (version) VALUES (%s)", (number,))
        for row in rows:
            conn.execute(row)


@pytest.mark.parametrize("version", range(1, len(sqlite_backend.MIGRATIONS)))
def test_a_sqlite_file_of_an_earlier_version_opens_and_keeps_its_rows(tmp_path: Path, version: int) -> None:
    path = tmp_path / "old.db"
    applied = sqlite_backend.MIGRATIONS[:version]
    tables = _tables(applied)
    _old_sqlite_file(path, applied, [_ROWS[table] for table in tables])
    with sqlite_backend.SQLiteStore(path) as store:
        assert store.schema_version == len(sqlite_backend.MIGRATIONS)
        _check_rows_survive(store, tables)


@pytest.fixture
def schema() -> Iterator[str]:
    with fresh_schema() as name:
        yield name


@pytest.mark.parametrize("version", range(1, len(pg_backend.MIGRATIONS)))
def test_a_postgresql_schema_of_an_earlier_version_opens_and_keeps_its_rows(
    schema: str, version: int
) -> None:
    applied = pg_backend.MIGRATIONS[:version]
    tables = _tables(applied)
    _old_postgresql_schema(schema, applied, [_ROWS[table] for table in tables])
    with pg_backend.PostgresStore(PG_URL, schema=schema) as store:
        assert store.schema_version == len(pg_backend.MIGRATIONS)
        _check_rows_survive(store, tables)


# -- the outbox's counts, backfilled ---------------------------------------------------------------------

_OUTBOX_ROWS = [("1000", "queued"), ("1000", "queued"), ("1000", "delivered"), ("2000", "failed")]


def _before_counts(migrations: tuple[tuple[str, ...], ...]) -> tuple[tuple[str, ...], ...]:
    """The migrations up to the one that adds outbox_counts (wherever others' land around it)."""
    index = next(i for i, m in enumerate(migrations) if any("CREATE TABLE outbox_counts" in s for s in m))
    return migrations[:index]


def _outbox_row(channel: str, state: str, n: int, false: str = "0") -> str:
    return (
        "INSERT INTO outbox (channel_id, kind, payload, retry_key, retry_key_given, state, attempts,"
        f" not_before, created_at, updated_at) VALUES ('{channel}', 'push', '{{}}', 'k{n}', {false},"
        f" '{state}', 0, 1.0, 1.0, 1.0)"
    )


def test_a_sqlite_file_from_before_the_counts_gets_them_counted(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    applied = _before_counts(sqlite_backend.MIGRATIONS)
    _old_sqlite_file(path, applied, [_outbox_row(c, state, n) for n, (c, state) in enumerate(_OUTBOX_ROWS)])
    with sqlite_backend.SQLiteStore(path) as store:
        _assert_counted(store)


def test_a_postgresql_schema_from_before_the_counts_gets_them_counted(schema: str) -> None:
    applied = _before_counts(pg_backend.MIGRATIONS)
    rows = [_outbox_row(c, state, n, false="false") for n, (c, state) in enumerate(_OUTBOX_ROWS)]
    _old_postgresql_schema(schema, applied, rows)
    with pg_backend.PostgresStore(PG_URL, schema=schema) as store:
        _assert_counted(store)


def _assert_counted(store: Store) -> None:
    """The rows an old database held are counted, and the triggers count on from there."""
    assert store.counts_by_channel() == {
        ("1000", "queued"): 2,
        ("1000", "delivered"): 1,
        ("2000", "failed"): 1,
    }
    store.enqueue([NewMessage("2000", "push", {"to": USER, "messages": []})], now=2.0)
    assert store.counts("2000") == {"queued": 1, "sending": 0, "delivered": 0, "failed": 1}
