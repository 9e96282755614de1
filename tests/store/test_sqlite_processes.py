"""Several processes on one SQLite file: opening a fresh file at once, and claiming without overlap."""

from __future__ import annotations

import multiprocessing
import os
import signal
from pathlib import Path
from typing import Any

from linepush.store import NewMessage, SQLiteStore
from linepush.store import sqlite as sqlite_backend

# spawn: a clean interpreter per worker, as separate worker processes would be in production.
SPAWN = multiprocessing.get_context("spawn")


def _open_and_enqueue(path: str, name: str, start: Any, results: Any) -> None:
    start.wait(30)
    with SQLiteStore(path) as store:
        store.enqueue([NewMessage("1000", "push", {"n": n, "by": name}) for n in range(10)], now=1.0)
        results.put((name, store.schema_version))


def _claim_until_empty(path: str, name: str, start: Any, results: Any) -> None:
    with SQLiteStore(path) as store:
        start.wait(30)
        ids: list[int] = []
        while batch := store.claim(name, limit=25, lease_seconds=600.0, now=1000.0):
            ids.extend(row.id for row in batch)
        results.put((name, ids))


def _enqueue_then_die(path: str, name: str, start: Any, results: Any) -> None:
    store = SQLiteStore(path)
    rows = store.enqueue([NewMessage("1000", "push", {"n": n}) for n in range(100)], now=1.0)
    results.put((name, [row.id for row in rows]))
    results.close()
    results.join_thread()
    # No close(), no exit handlers: the enqueue was acknowledged, so it must already be on disk.
    os.kill(os.getpid(), signal.SIGKILL)


def _run(target: Any, path: Path, workers: int, expect_exit: int = 0) -> dict[str, Any]:
    start = SPAWN.Event()
    results = SPAWN.Queue()
    procs = [SPAWN.Process(target=target, args=(str(path), f"w{n}", start, results)) for n in range(workers)]
    for proc in procs:
        proc.start()
    start.set()
    # Read before joining: a child cannot exit while its result is still in the pipe.
    got = dict(results.get(timeout=60) for _ in procs)
    for proc in procs:
        proc.join(timeout=30)
        assert proc.exitcode == expect_exit
    return got


def test_processes_opening_a_fresh_file_at_once_all_get_the_migrated_schema(tmp_path: Path) -> None:
    path = tmp_path / "fresh" / "s.db"

    versions = _run(_open_and_enqueue, path, workers=5)

    assert set(versions.values()) == {len(sqlite_backend.MIGRATIONS)}
    with SQLiteStore(path) as store:
        assert store.counts()["queued"] == 50
        assert {m.payload["by"] for m in store.list_messages(limit=100)} == set(versions)


def test_processes_claiming_at_once_get_every_row_exactly_once(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with SQLiteStore(path) as store:
        for chunk in range(2):
            store.enqueue([NewMessage("1000", "push", {"n": chunk * 1000 + n}) for n in range(1000)], now=1.0)
        expected = sorted(m.id for page in _all_pages(store) for m in page)
    assert len(expected) == 2000

    claimed = _run(_claim_until_empty, path, workers=4)

    every = [i for ids in claimed.values() for i in ids]
    assert sorted(every) == expected
    with SQLiteStore(path) as store:
        assert store.counts() == {"queued": 0, "sending": 2000, "delivered": 0, "failed": 0}
        owners = {m.lease_owner for page in _all_pages(store) for m in page}
    assert owners <= set(claimed)


def _all_pages(store: SQLiteStore) -> list[list[Any]]:
    pages = [store.list_messages(limit=500)]
    while len(pages[-1]) == 500:
        pages.append(store.list_messages(limit=500, after_id=pages[-1][-1].id))
    return pages


def test_an_acknowledged_enqueue_survives_the_process_being_killed(tmp_path: Path) -> None:
    path = tmp_path / "s.db"

    acknowledged = _run(_enqueue_then_die, path, workers=1, expect_exit=-signal.SIGKILL)

    with SQLiteStore(path) as store:
        assert [m.id for m in store.list_messages(limit=200)] == acknowledged["w0"]
        assert store.counts()["queued"] == 100
