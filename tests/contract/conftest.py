"""The `store` fixture: every contract test runs once per storage backend.

To add a backend, add its name to BACKENDS and a branch to `_open`; the tests stay as they are. PostgreSQL
tests get a schema of their own in the test database (tests/support/pg.py), dropped afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from linepush.service.store import GatewayStore, gateway_store
from linepush.store import SQLiteStore, Store

BACKENDS = ["sqlite", "postgresql"]


def _open(backend: str, tmp_path: Path, cleanup: ExitStack) -> Store:
    if backend == "sqlite":
        return SQLiteStore(tmp_path / "contract.db")
    if backend == "postgresql":
        from tests.support.pg import PG_URL, fresh_schema

        from linepush.store.postgres import PostgresStore

        return PostgresStore(PG_URL, schema=cleanup.enter_context(fresh_schema()))
    raise AssertionError(f"unknown backend {backend}")


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with ExitStack() as cleanup:
        opened = _open(request.param, tmp_path, cleanup)
        # Closed before the schema is dropped: the drop would wait for the store's connections otherwise.
        with opened:
            yield opened


@pytest.fixture
def gateway(store: Store) -> GatewayStore:
    """The gateway's tables on the same backend: the service's own interface, run by the same suite."""
    return gateway_store(store)
