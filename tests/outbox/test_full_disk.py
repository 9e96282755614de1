"""A full disk under the store: nothing acknowledged is lost, what was sent is recorded once there is room,
``worker --once`` gives up instead of spinning, and health says the store cannot be written.

Each test mounts a small tmpfs of its own, fills it with a file, and frees it by deleting that file.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import Emulator
from tests.outbox.kit import FakeTime, Line, make_worker, until, user
from tests.support.disk import fill, small_disk

from linepush.outbox import Outbox, push_item
from linepush.store import SQLiteStore, StoreFullError

MESSAGES = 40


@pytest.fixture
def disk() -> Iterator[Path]:
    with small_disk("8m") as where:
        yield where


def _queue(store: SQLiteStore, channel_id: str, clock: Any, n: int = MESSAGES) -> None:
    outbox = Outbox(store, channel_id, clock=clock)
    outbox.enqueue([push_item(channel_id, user(i), f"message {i}") for i in range(n)])


def _no_room_left(store: SQLiteStore, disk: Path) -> Path:
    """Empty the -wal file into the database, then fill the disk: the next write has nowhere to go."""
    store._connection().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    return fill(disk)


def test_an_enqueue_on_a_full_disk_fails_whole_and_clearly(disk: Path, line: Line) -> None:
    with SQLiteStore(disk / "outbox.db") as store:
        _queue(store, line.channel_id, lambda: 1.0, n=3)
        filler = _no_room_left(store, disk)
        with pytest.raises(StoreFullError, match=r"full.*nothing was written"):
            _queue(store, line.channel_id, lambda: 2.0, n=50)
        assert store.counts()["queued"] == 3
        filler.unlink()
        _queue(store, line.channel_id, lambda: 3.0, n=50)
        assert store.counts()["queued"] == 53


class FillsTheDiskOnFirstSend:
    """The client, but the disk fills up while the first message is on its way to LINE."""

    def __init__(self, client: Any, store: SQLiteStore, disk: Path) -> None:
        self.client, self.store, self.disk = client, store, disk
        self.filler: Path | None = None

    async def run(self, operation: Any) -> Any:
        if self.filler is None:
            self.filler = _no_room_left(self.store, self.disk)
        return await self.client.run(operation)


async def test_outcomes_of_sent_messages_are_kept_until_the_disk_has_room(
    disk: Path, line: Line, fake_time: FakeTime
) -> None:
    with SQLiteStore(disk / "outbox.db") as store:
        _queue(store, line.channel_id, fake_time.clock)
        client = line.client()
        sender = FillsTheDiskOnFirstSend(client, store, disk)
        worker = make_worker(store, sender, fake_time, line.channel_id, store_patience=3600)
        run = asyncio.create_task(worker.run_until_idle())
        await until(lambda: worker.stats.claimed > 0 and len(line.deliveries()) == worker.stats.claimed)
        sent = len(line.deliveries())
        for _ in range(5):  # the disk stays full for a while: the outcomes wait, nothing new is claimed
            await fake_time.advance(1.0)
        assert worker.stats.claimed == sent and len(line.deliveries()) == sent
        assert worker.stats.lost == 0
        assert sender.filler is not None
        sender.filler.unlink()
        while not run.done():
            await fake_time.advance(1.0)
        stats = await run
        await client.aclose()
        assert stats.lost == 0 and stats.delivered == MESSAGES
        assert store.counts() == {"queued": 0, "sending": 0, "delivered": MESSAGES, "failed": 0}
    # Every message reached LINE once: none was resent for want of its outcome being recorded.
    per_key = Counter(d["retry_key"] for d in line.deliveries())
    assert len(per_key) == MESSAGES and set(per_key.values()) == {1}


async def test_a_run_until_idle_gives_up_on_a_store_that_stays_full(
    disk: Path, line: Line, fake_time: FakeTime
) -> None:
    with SQLiteStore(disk / "outbox.db") as store:
        _queue(store, line.channel_id, fake_time.clock)
        filler = _no_room_left(store, disk)
        client = line.client()
        worker = make_worker(store, client, fake_time, line.channel_id, store_patience=30)
        run = asyncio.create_task(worker.run_until_idle())
        for _ in range(40):
            if run.done():
                break
            await fake_time.advance(1.0)
        with pytest.raises(StoreFullError):
            await run
        await client.aclose()
        filler.unlink()
        assert store.counts()["queued"] == MESSAGES  # nothing was taken, nothing was lost
    assert line.deliveries() == []


@pytest.mark.e2e
def test_worker_once_on_a_full_disk_exits_3(disk: Path, live_emulator: Emulator) -> None:
    admin = live_emulator.admin
    channel_id, _ = admin.create_channel()
    db = disk / "outbox.db"
    with SQLiteStore(db) as store:
        _queue(store, channel_id, lambda: 1.0, n=5)
        filler = _no_room_left(store, disk)
    env = {
        **os.environ,
        "LINE_CHANNEL_ID": channel_id,
        "LINE_CHANNEL_ACCESS_TOKEN": admin.long_lived_token(channel_id),
        "LINEPUSH_API_BASE": str(live_emulator.url),
        "LINEPUSH_STORE": str(db),
    }
    args = [sys.executable, "-m", "linepush", "worker", "--once", "--poll-interval", "0.1"]
    # Before, this never ended ("could not claim" once a second for ever): the timeout is only a guard.
    full = subprocess.run(
        [*args, "--store-patience", "1"], env=env, capture_output=True, text=True, timeout=120
    )
    assert full.returncode == 3, full.stderr
    assert "full" in full.stderr and "Traceback" not in full.stderr
    filler.unlink()
    freed = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert freed.returncode == 0, freed.stderr
    with SQLiteStore(db) as store:
        assert store.counts(channel_id)["delivered"] == 5


def test_opening_a_store_on_a_full_disk_says_the_disk_is_full(disk: Path) -> None:
    """A store every process has closed is opened again on a disk without room for its -shm file: that is
    the full disk it is (retryable, exit 3), not a setting to fix; once there is room it opens as before."""
    path = disk / "outbox.db"
    with SQLiteStore(path) as store:
        _queue(store, "1234567890", lambda: 1.0, n=3)
    filler = fill(disk)
    with pytest.raises(StoreFullError, match=r"the disk holding the store .* is full"):
        SQLiteStore(path)
    filler.unlink()
    with SQLiteStore(path) as store:
        assert store.counts()["queued"] == 3


def test_a_new_store_on_a_full_disk_leaves_no_empty_file_behind(disk: Path) -> None:
    """Nothing could be written, so nothing is left: no empty database file that a later run would take
    for a store (and warn about, or read as empty)."""
    filler = fill(disk)
    path = disk / "new" / "outbox.db"
    with pytest.raises(StoreFullError, match="full"):
        SQLiteStore(path)
    assert sorted(p.name for p in path.parent.iterdir()) == []
    filler.unlink()
    with SQLiteStore(path) as store:
        assert store.counts()["queued"] == 0
