"""Processes appending to one chat's digest at once, while another claims what is due: on SQLite and on
PostgreSQL, every notification ends in exactly one row, and each process's in the order it sent them."""

from __future__ import annotations

import multiprocessing
import re
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest

from linepush.digest import append_to_digest
from linepush.store import SQLiteStore, Store

SPAWN = multiprocessing.get_context("spawn")
TO = "U" + "7" * 32
APPENDERS = 3
EACH = 20


def _open(url: str) -> Store:
    if url.startswith("postgresql://"):
        from tests.support.pg import PG_URL

        from linepush.store.postgres import PostgresStore

        return PostgresStore(PG_URL, schema=url.rsplit("=", 1)[1])
    return SQLiteStore(url)


def _append(url: str, name: str, go: Any, done: Any) -> None:
    with _open(url) as store:
        go.wait(60)
        for n in range(EACH):
            message = [{"type": "text", "text": f"{name}-{n:02d}"}]
            append_to_digest(store, "1000", TO, message, window=30.0, now=1000.0 + n, zone=UTC)
    done.put(name)


def _claim(url: str, go: Any, stop: Any, done: Any) -> None:
    # A worker whose clock is past every window: it takes digests while they are being appended to.
    claimed = 0
    with _open(url) as store:
        go.wait(60)
        while not stop.is_set():
            claimed += len(store.claim("claimer", 5, 600.0, now=5000.0))
    done.put(("claimer", claimed))


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        path = tmp_path / "digest.db"
        SQLiteStore(path).close()  # made and migrated before the processes race
        yield str(path)
        return
    from tests.support.pg import PG_URL, fresh_schema

    from linepush.store.postgres import PostgresStore

    with fresh_schema() as schema:
        PostgresStore(PG_URL, schema=schema).close()
        yield f"postgresql://schema={schema}"


def test_processes_appending_and_a_claimer_lose_no_notification(url: str) -> None:
    go, stop, done = SPAWN.Event(), SPAWN.Event(), SPAWN.Queue()
    appenders = [SPAWN.Process(target=_append, args=(url, f"p{n}", go, done)) for n in range(APPENDERS)]
    claimer = SPAWN.Process(target=_claim, args=(url, go, stop, done))
    for proc in [*appenders, claimer]:
        proc.start()
    go.set()
    finished = {done.get(timeout=120) for _ in appenders}
    stop.set()
    claimed = done.get(timeout=60)
    for proc in [*appenders, claimer]:
        proc.join(60)
        assert proc.exitcode == 0
    assert finished == {f"p{n}" for n in range(APPENDERS)}
    with _open(url) as store:
        rows = store.list_messages(limit=10_000)
    found = [t for row in rows for m in row.payload["messages"] for t in re.findall(r"p\d-\d\d", m["text"])]
    assert sorted(found) == sorted(f"p{p}-{n:02d}" for p in range(APPENDERS) for n in range(EACH))
    for p in range(APPENDERS):
        mine = [t for t in found if t.startswith(f"p{p}-")]
        assert mine == sorted(mine)
    assert claimed[0] == "claimer"
    # What the claimer took was never changed after: each claimed row's text is whole in it.
    assert {row.state for row in rows} <= {"queued", "sending"}
