"""Crash test: a worker process killed with SIGKILL at random points, again and again, loses no message and
delivers none twice."""

from __future__ import annotations

import multiprocessing
import random
import signal
import time
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
            env = {
                "LINE_CHANNEL_ID": channel_id,
                "LINE_CHANNEL_ACCESS_TOKEN": token,
                "LINEPUSH_API_BASE": server.url,
                "LINEPUSH_STORE": db,
            }
            args = (
                "--lease-seconds",
                "1",
                "--concurrency",
                "32",
                "--batch-size",
                "64",
                "--poll-interval",
                "0.05",
            )
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
                time.sleep(rng.uniform(0.0, 0.5))
                if proc.is_alive():
                    proc.kill()
                    kills += 1
                proc.join(30)
                assert proc.exitcode in (-signal.SIGKILL, 0), proc.exitcode
            assert kills >= KILLS, f"the queue ran dry after {kills} kills; send more messages"
            killed_at = store.counts(channel_id)
            # One last worker, left alone: it takes over the dead ones' rows once their leases run out.
            final = _worker(context, env, "--once", *args)
            final.join(80)
            assert final.exitcode == 0, final.exitcode
            counts = store.counts(channel_id)
        deliveries = admin.deliveries(channel_id)
    assert counts == {"queued": 0, "sending": 0, "delivered": MESSAGES, "failed": 0}
    per_key = Counter(d["retry_key"] for d in deliveries)
    assert len(per_key) == MESSAGES and max(per_key.values()) == 1
    texts = Counter(d["messages"][0]["text"] for d in deliveries)
    assert len(texts) == MESSAGES and max(texts.values()) == 1
    # The kills did land mid-work: some messages were delivered before the last one, some after.
    assert 0 < killed_at["delivered"] < MESSAGES
