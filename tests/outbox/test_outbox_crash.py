"""Crash test: a worker process killed with SIGKILL at random points, again and again, loses no message and
delivers none twice."""

from __future__ import annotations

import multiprocessing
import random
import signal
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from tests.outbox.cli_preload import run_cli
from tests.outbox.kit import user
from tests.support.emulator import Admin

from linepush.emulator import running
from linepush.outbox import Outbox, push_item
from linepush.store import open_store
from linepush.transport import Urllib3Transport

MESSAGES = 10_000
KILLS = 20


def _fork_server() -> Any:
    """Worker processes forked from a server that has imported the CLI already: starting one costs a fork,
    not seconds of imports (on a busy 2-core machine), so the test spends its time killing workers at work.
    Each is still a real process of its own, with its own sockets and store connections."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["tests.outbox.cli_preload"])
    return context


def _worker(context: Any, env: dict[str, str], *args: str) -> Any:
    proc = context.Process(target=run_cli, args=(env, ["worker", *args]), daemon=True)
    proc.start()
    return proc


def _kill_and_finish(
    store: Any, channel_id: str, env: dict[str, str], rng: random.Random, *, lease: str, pause: float
) -> dict[str, int]:
    """Start a worker, kill it with SIGKILL at a random moment once it is at work, KILLS times; then let one
    last worker, left alone, take over the dead ones' rows once their leases run out. Returns the counts at
    the last kill."""
    args = ("--lease-seconds", lease, "--concurrency", "32", "--batch-size", "64", "--poll-interval", "0.05")
    kills = 0
    context = _fork_server()
    while kills < KILLS:
        before = store.counts(channel_id)
        if before["queued"] == 0 and before["sending"] == 0:
            break
        proc = _worker(context, env, *args)
        # Kill it at a random moment once it is at work (it claimed or settled something).
        while proc.is_alive():
            now = store.counts(channel_id)
            if now["delivered"] > before["delivered"] or now["sending"] > before["sending"]:
                break
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, pause))
        if proc.is_alive():
            proc.kill()
            kills += 1
        proc.join(30)
        assert proc.exitcode in (-signal.SIGKILL, 0), proc.exitcode
    assert kills >= KILLS, f"the queue ran dry after {kills} kills; send more messages"
    killed_at: dict[str, int] = store.counts(channel_id)
    final = _worker(context, env, "--once", *args)
    final.join(80)
    assert final.exitcode == 0, final.exitcode
    return killed_at


def _env(server: Any, channel_id: str, token: str, db: str) -> dict[str, str]:
    return {
        "LINE_CHANNEL_ID": channel_id,
        "LINE_CHANNEL_ACCESS_TOKEN": token,
        "LINEPUSH_API_BASE": server.url,
        "LINEPUSH_STORE": db,
    }


@pytest.mark.slow
@pytest.mark.e2e
def test_sigkilled_workers_lose_nothing_and_deliver_nothing_twice(tmp_path: Path) -> None:
    rng = random.Random(20261127)
    db = str(tmp_path / "crash.db")
    with running() as server:
        admin = Admin(Urllib3Transport(server.url))
        channel_id, _ = admin.create_channel()
        token = admin.long_lived_token(channel_id)
        with open_store(db) as store:
            box = Outbox(store, channel_id)
            for start in range(0, MESSAGES, 1000):
                box.enqueue(
                    [push_item(channel_id, user(i % 500), f"message {i}") for i in range(start, start + 1000)]
                )
            env = _env(server, channel_id, token, db)
            killed_at = _kill_and_finish(store, channel_id, env, rng, lease="1", pause=0.5)
            counts = store.counts(channel_id)
        deliveries = admin.deliveries(channel_id)
    assert counts == {"queued": 0, "sending": 0, "delivered": MESSAGES, "failed": 0}
    per_key = Counter(d["retry_key"] for d in deliveries)
    assert len(per_key) == MESSAGES and max(per_key.values()) == 1
    texts = Counter(d["messages"][0]["text"] for d in deliveries)
    assert len(texts) == MESSAGES and max(texts.values()) == 1
    # The kills did land mid-work: some messages were delivered before the last one, some after.
    assert 0 < killed_at["delivered"] < MESSAGES


BATCHED_ROWS = 8000
CHATS = 40


@pytest.mark.slow
@pytest.mark.e2e
def test_sigkilled_workers_resend_each_batch_as_the_same_request(tmp_path: Path) -> None:
    """Batchable pushes to a few chats drain as batches while workers are killed: a batch cut off by a kill
    (its lease runs out, or its answer never came) goes again with the same rows under the same key, so LINE
    delivers every message once, and never sees one retry key with two different bodies."""
    rng = random.Random(20261201)
    db = str(tmp_path / "crash-batches.db")
    with running() as server:
        admin = Admin(Urllib3Transport(server.url))
        channel_id, _ = admin.create_channel()
        token = admin.long_lived_token(channel_id)
        with open_store(db) as store:
            items = []
            for i in range(BATCHED_ROWS):
                texts = [f"message {i}.{n}" for n in range(rng.choice((1, 1, 1, 2, 3)))]
                # Now and then a row of the library's kind (alone) or one with a key of its own, in between.
                if i % 97 == 0:
                    items.append(
                        push_item(channel_id, user(i % CHATS), texts, retry_key=str(uuid.UUID(int=i)))
                    )
                else:
                    items.append(push_item(channel_id, user(i % CHATS), texts, batchable=i % 53 != 0))
            store.enqueue(items, now=time.time())
            texts_queued = [m["text"] for item in items for m in item.payload["messages"]]
            killed_at = _kill_and_finish(
                store, channel_id, _env(server, channel_id, token, db), rng, lease="0.5", pause=0.2
            )
            counts = store.counts(channel_id)
            rows = store.list_messages("delivered", channel_id, BATCHED_ROWS)
            batched = {row.batch_key for row in rows if row.batch_key is not None}
        deliveries = admin.deliveries(channel_id)
        uses = admin.retry_keys(channel_id)
    assert counts == {"queued": 0, "sending": 0, "delivered": BATCHED_ROWS, "failed": 0}
    # Every message object delivered exactly once.
    delivered = Counter(m["text"] for d in deliveries for m in d["messages"])
    assert sorted(delivered) == sorted(texts_queued) and max(delivered.values()) == 1
    # No retry key went to LINE with two different bodies (a batch resent as another mix of rows).
    assert all(use["bodies"] == 1 for use in uses), [use for use in uses if use["bodies"] != 1][:3]
    # Batches were cut off by the kills and sent again: the case this test is about.
    resent = {use["retry_key"] for use in uses if use["requests"] > 1}
    assert len(resent & batched) > 10
    assert len(deliveries) < BATCHED_ROWS / 2 and len(batched) > 100
    assert 0 < killed_at["delivered"] < BATCHED_ROWS
