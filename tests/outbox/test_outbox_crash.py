"""Crash test: a worker process killed with SIGKILL at random points, again and again, loses no message and
delivers none twice."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

import linepush
from linepush.emulator import running
from linepush.outbox import Outbox, push_item
from linepush.store import open_store
from linepush.transport import Urllib3Transport
from tests.outbox.kit import user
from tests.support.emulator import Admin

MESSAGES = 10_000
KILLS = 20
WORKER = "from linepush.cli import main; main()"


def _worker(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, "worker", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


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
                box.enqueue([push_item(channel_id, user(i % 500), f"message {i}") for i in range(start, start + 1000)])
            env = {
                **os.environ,
                "PYTHONPATH": str(Path(linepush.__file__).resolve().parents[1]),
                "LINE_CHANNEL_ID": channel_id,
                "LINE_CHANNEL_ACCESS_TOKEN": token,
                "LINEPUSH_API_BASE": server.url,
                "LINEPUSH_STORE": db,
            }
            args = ("--lease-seconds", "1", "--concurrency", "32", "--batch-size", "64", "--poll-interval", "0.05")
            kills = 0
            began = time.monotonic()
            while kills < KILLS:
                before = store.counts(channel_id)
                if before["queued"] == 0 and before["sending"] == 0:
                    break
                proc = _worker(env, *args)
                # Kill it at a random moment once it is at work (claimed or settled something).
                while proc.poll() is None:
                    now = store.counts(channel_id)
                    if now["delivered"] > before["delivered"] or now["sending"] > before["sending"]:
                        break
                    time.sleep(0.01)
                time.sleep(rng.uniform(0.0, 0.25))
                if proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)
                    kills += 1
                proc.wait(timeout=30)
                assert proc.returncode in (-signal.SIGKILL, 0), proc.stderr.read() if proc.stderr else ""
            assert kills >= KILLS, f"the queue ran dry after {kills} kills; send more messages"
            in_flight_at_last_kill = store.counts(channel_id)["sending"]
            print("kill phase", time.monotonic() - began, store.counts(channel_id))
            # One last worker, left alone: it takes over the dead ones' rows once their leases run out.
            final = _worker(env, "--once", *args)
            _, err = final.communicate(timeout=60)
            assert final.returncode == 0, err.decode()
            counts = store.counts(channel_id)
            print("final", time.monotonic() - began)
        deliveries = admin.deliveries(channel_id)
    assert counts == {"queued": 0, "sending": 0, "delivered": MESSAGES, "failed": 0}
    per_key = Counter(d["retry_key"] for d in deliveries)
    assert len(per_key) == MESSAGES and max(per_key.values()) == 1
    texts = Counter(d["messages"][0]["text"] for d in deliveries)
    assert len(texts) == MESSAGES and max(texts.values()) == 1
    assert in_flight_at_last_kill >= 0
    assert time.monotonic() - began < 90
