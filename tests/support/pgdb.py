"""Make sure the PostgreSQL database the test suite uses exists (called by `make test`).

The suite keeps its tables in a database of its own, `linepush_test`, created on the server named by
LINEPUSH_TEST_PG_ADMIN (default: the local server, database `test`, trust auth).
"""

from __future__ import annotations

import os
import sys

ADMIN_URL = os.environ.get("LINEPUSH_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/test")
DB_NAME = os.environ.get("LINEPUSH_TEST_PG_DB", "linepush_test")


def main() -> int:
    try:
        import psycopg
    except ImportError:
        print(
            "pgdb: psycopg is not installed; run `make test`, which installs the dev extras.", file=sys.stderr
        )
        return 2
    try:
        with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    except psycopg.errors.DuplicateDatabase:
        pass  # another run created it at the same moment
    except psycopg.OperationalError as exc:
        print(
            f"pgdb: PostgreSQL is not reachable at {ADMIN_URL} ({str(exc).strip()}).\n"
            "The test suite needs a PostgreSQL server: start the local one "
            "(pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start) "
            "or point LINEPUSH_TEST_PG_ADMIN at one.",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
