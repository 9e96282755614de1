"""The test PostgreSQL database: a fresh schema per test, dropped afterwards, so runs never see each other.

The server is named by LINEPUSH_TEST_PG (default: the local one, database `linepush_test`, which `make test`
creates through tests/support/pgdb.py). When it cannot be reached the tests FAIL, saying so: CI has a server.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

PG_URL = os.environ.get("LINEPUSH_TEST_PG", "postgresql://postgres@127.0.0.1:5432/linepush_test")

_created: list[bool] = []
# Once the server is found unreachable, every later test fails at once with the same message instead of
# waiting for its own connection timeout.
_unreachable: list[str] = []


def admin_connect(**kw: Any) -> Any:
    """An autocommit connection to the test database (fails the test, clearly, when there is none)."""
    import psycopg

    if not _unreachable:
        try:
            return psycopg.connect(PG_URL, autocommit=True, connect_timeout=5, **kw)
        except psycopg.OperationalError as exc:
            if "does not exist" in str(exc) and not _created:
                # Run without `make test`: create the database the way make would, once.
                from tests.support import pgdb

                _created.append(pgdb.main() == 0)
                if _created[0]:
                    return admin_connect(**kw)
            reason = " ".join(str(exc).split())
            _unreachable.append(
                f"PostgreSQL is not reachable at {PG_URL} ({reason}). The PostgreSQL tests need a server: "
                "start the local one (pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main "
                "start), run `python tests/support/pgdb.py`, or point LINEPUSH_TEST_PG at one."
            )
    pytest.fail(_unreachable[0], pytrace=False)


def new_schema_name() -> str:
    return f"t_{uuid.uuid4().hex[:16]}"


def drop_schema(name: str) -> None:
    with admin_connect() as conn:
        # A test that leaked a transaction must not hang the suite: give up on the drop instead.
        conn.execute("SET lock_timeout = '10s'")
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@contextmanager
def fresh_schema() -> Iterator[str]:
    """A schema name nobody uses yet (not created: the store creates it); dropped on the way out."""
    name = new_schema_name()
    with admin_connect():
        pass  # fail now, clearly, if there is no server
    try:
        yield name
    finally:
        drop_schema(name)


def schema_url(schema: str, url: str = PG_URL) -> str:
    """The store URL of ``schema`` in the test database."""
    return f"{url}{'&' if '?' in url else '?'}schema={schema}"
