"""reserve_rate commits without waiting for the disk, and leaves every other write as durable as before."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.support.pg import PG_URL, fresh_schema

from linepush.store import SQLiteStore, StoreError
from linepush.store.postgres import PostgresStore

FULL = 2  # PRAGMA synchronous


def test_sqlite_reserve_rate_restores_full_sync_for_the_next_write(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "s.db") as store:
        assert store.reserve_rate("k", 1.0, 0.0, now=1.0) == 0.0
        assert store._connection().execute("PRAGMA synchronous").fetchone() == (FULL,)
        assert store.reserve_rate("k", 1.0, 0.0, now=1.0) == 1.0


def test_sqlite_reserve_rate_restores_full_sync_when_it_fails(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "s.db") as store:
        conn = store._connection()
        conn.execute("DROP TABLE rate_limits")
        with pytest.raises(StoreError, match="rate_limits"):
            store.reserve_rate("k", 1.0, 0.0, now=1.0)
        assert conn.execute("PRAGMA synchronous").fetchone() == (FULL,)


def test_postgresql_reserve_rate_relaxes_only_its_own_transaction() -> None:
    with fresh_schema() as schema, PostgresStore(PG_URL, schema=schema) as store:
        assert store.reserve_rate("k", 1.0, 0.0, now=1.0) == 0.0
        assert store._read("SHOW synchronous_commit") == [("on",)]
        assert store.reserve_rate("k", 1.0, 0.0, now=1.0) == 1.0
