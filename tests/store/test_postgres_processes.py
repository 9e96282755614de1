"""Many processes on one PostgreSQL schema: starting at once on a fresh schema, claiming without overlap, and
surviving a process killed while it holds rows, a lease or a transaction."""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest
from tests.support.pg import PG_URL, admin_connect, fresh_schema

from linepush.store import NewMessage
from linepush.store import postgres as pg_backend
from linepush.store.postgres import PostgresStore

# spawn: a clean interpreter per worker, as separate worker processes (or hosts) would be in production.
SPAWN = multiprocessing.get_context("spawn")
PROCESSES = 8


@pytest.fixture
def schema() -> Iterator[str]:
    with fresh_schema() as name:
        yield name


def _open_and_enqueue(schema: str, name: str, ready: Any, go: Any, results: Any) -> None:
    ready.put(name)
    go.wait(60)
    with PostgresStore(PG_URL, schema=schema) as store:
        store.enqueue([NewMessage("1000", "push", {"n": n, "by": name}) for n in range(10)], now=1.0)
        results.put((name, store.schema_version))


def _claim_until_empty(schema: str, name: str, ready: Any, go: Any, results: Any) -> None:
    with PostgresStore(PG_URL, schema=schema) as store:
        ready.put(name)
        go.wait(60)
        ids: list[int] = []
        while batch := store.claim(name, limit=25, lease_seconds=600.0, now=1000.0):
            ids.extend(row.id for row in batch)
        results.put((name, ids))


def _reserve_slots(schema: str, name: str, ready: Any, go: Any, results: Any) -> None:
    with PostgresStore(PG_URL, schema=schema) as store:
        ready.put(name)
        go.wait(60)
        results.put((name, [store.reserve_rate("1000:push", 0.25, 0.0, now=100.0) for _ in range(50)]))


def _run(target: Any, schema: str, workers: int = PROCESSES) -> dict[str, Any]:
    ready, go, results = SPAWN.Queue(), SPAWN.Event(), SPAWN.Queue()
    procs = [SPAWN.Process(target=target, args=(schema, f"w{n}", ready, go, results)) for n in range(workers)]
    for proc in procs:
        proc.start()
    for _ in procs:
        ready.get(timeout=60)
    go.set()  # everyone is up: they start together
    # Read before joining: a child cannot exit while its result is still in the pipe.
    got = dict(results.get(timeout=60) for _ in procs)
    for proc in procs:
        proc.join(timeout=30)
        assert proc.exitcode == 0
    return got


def test_eight_processes_opening_a_fresh_schema_at_once_migrate_it_once(schema: str) -> None:
    versions = _run(_open_and_enqueue, schema)

    assert set(versions.values()) == {len(pg_backend.MIGRATIONS)}
    with admin_connect() as conn:
        rows = conn.execute(f'SELECT version FROM "{schema}".linepush_migrations ORDER BY version').fetchall()
        assert [r[0] for r in rows] == list(range(1, len(pg_backend.MIGRATIONS) + 1))
    with PostgresStore(PG_URL, schema=schema) as store:
        assert store.counts()["queued"] == 80
        assert {m.payload["by"] for m in store.list_messages(limit=100)} == set(versions)


def test_eight_processes_claiming_at_once_get_every_row_exactly_once(schema: str) -> None:
    with PostgresStore(PG_URL, schema=schema) as store:
        rows = store.enqueue([NewMessage("1000", "push", {"n": n}) for n in range(4000)], now=1.0)

    claimed = _run(_claim_until_empty, schema)

    every = [i for ids in claimed.values() for i in ids]
    assert len(every) == len(set(every)) == 4000
    assert sorted(every) == [r.id for r in rows]
    assert sum(1 for ids in claimed.values() if ids) > 1  # they did run side by side
    with PostgresStore(PG_URL, schema=schema) as store:
        assert store.counts() == {"queued": 0, "sending": 4000, "delivered": 0, "failed": 0}
        owners = {row.id: row.lease_owner for row in store.list_messages(limit=5000)}
    assert all(owners[i] == name for name, ids in claimed.items() for i in ids)


def test_eight_processes_share_one_rate_limit_slot_by_slot(schema: str) -> None:
    waits = _run(_reserve_slots, schema)

    every = sorted(w for ws in waits.values() for w in ws)
    # 400 reservations at the same moment: each got a slot of its own, none was handed out twice.
    assert every == [n * 0.25 for n in range(PROCESSES * 50)]


def _hold_then_die(schema: str, what: str, ready: Any) -> None:
    store = PostgresStore(PG_URL, schema=schema)
    if what == "lease":
        assert store.try_lock("refresh:1000:v2.1", "doomed", ttl=30.0, now=100.0)
    elif what == "claim":
        store.claim("doomed", limit=10, lease_seconds=30.0, now=100.0)
    else:
        # Die inside a transaction that holds row locks: the server must let them go.
        conn = store._connection()
        conn.execute("SELECT id FROM outbox ORDER BY id LIMIT 5 FOR UPDATE")
    ready.put(what)
    signal.pause()


def _kill_holding(schema: str, what: str) -> None:
    ready = SPAWN.Queue()
    proc = SPAWN.Process(target=_hold_then_die, args=(schema, what, ready))
    proc.start()
    assert ready.get(timeout=60) == what
    assert proc.pid is not None
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(30)
    assert proc.exitcode == -signal.SIGKILL


def test_a_killed_holders_lease_expires_and_is_taken_over(schema: str) -> None:
    with PostgresStore(PG_URL, schema=schema) as store:
        _kill_holding(schema, "lease")
        assert not store.try_lock("refresh:1000:v2.1", "survivor", ttl=30.0, now=129.9)
        assert store.try_lock("refresh:1000:v2.1", "survivor", ttl=30.0, now=130.0)


def test_a_killed_workers_claimed_rows_come_back_when_the_lease_runs_out(schema: str) -> None:
    with PostgresStore(PG_URL, schema=schema) as store:
        store.enqueue([NewMessage("1000", "push", {"n": n}) for n in range(10)], now=1.0)
        _kill_holding(schema, "claim")
        assert store.claim("survivor", 100, 30.0, now=129.9) == []
        taken = store.claim("survivor", 100, 30.0, now=130.0)
        assert len(taken) == 10 and {row.attempts for row in taken} == {2}


def test_rows_locked_by_a_process_killed_mid_transaction_are_skipped_then_freed(schema: str) -> None:
    with PostgresStore(PG_URL, schema=schema) as store:
        store.enqueue([NewMessage("1000", "push", {"n": n}) for n in range(10)], now=1.0)
        ready = SPAWN.Queue()
        proc = SPAWN.Process(target=_hold_then_die, args=(schema, "transaction", ready))
        proc.start()
        assert ready.get(timeout=60) == "transaction"
        # Claims neither wait for the locked rows nor hand them out.
        assert [row.payload["n"] for row in store.claim("w", 100, 30.0, now=2.0)] == [5, 6, 7, 8, 9]
        assert proc.pid is not None
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(30)
        # The server notices the dead client and rolls its transaction back: waiting for the rows' locks
        # (not skipping them) returns once it has.
        with admin_connect() as conn:
            conn.execute(f'SET search_path TO "{schema}"')
            conn.execute("SET lock_timeout = '30s'")
            with conn.transaction(force_rollback=True):
                conn.execute("SELECT id FROM outbox FOR UPDATE")
        assert [row.payload["n"] for row in store.claim("w", 100, 30.0, now=3.0)] == [0, 1, 2, 3, 4]
