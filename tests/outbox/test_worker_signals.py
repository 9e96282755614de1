"""`linepush worker` stops cleanly on SIGTERM and SIGINT: sends in flight finish, the rest is given back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.conftest import Emulator
from tests.outbox.kit import user

import linepush
from linepush.outbox import Outbox, push_item
from linepush.store import open_store

PUSH = "/v2/bot/message/push"


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("sig", "once", "code"),
    [(signal.SIGTERM, False, 0), (signal.SIGINT, False, 0), (signal.SIGTERM, True, 3)],
    ids=["SIGTERM", "SIGINT", "SIGTERM --once"],
)
def test_a_signal_stops_the_worker_cleanly(
    live_emulator: Emulator, tmp_path: Path, sig: int, once: bool, code: int
) -> None:
    admin = live_emulator.admin
    channel_id, _ = admin.create_channel()
    token = admin.long_lived_token(channel_id)
    db = str(tmp_path / "signals.db")
    n = 200
    with open_store(db) as store:
        Outbox(store, channel_id).enqueue([push_item(channel_id, user(i), f"m{i}") for i in range(n)])
        # Slow answers, so that sends are in flight when the signal comes.
        admin.fault(path=PUSH, mode="latency", latency_ms=200, count=None)
        env = {
            **os.environ,
            "PYTHONPATH": str(Path(linepush.__file__).resolve().parents[1]),
            "LINE_CHANNEL_ID": channel_id,
            "LINE_CHANNEL_ACCESS_TOKEN": token,
            "LINEPUSH_API_BASE": str(live_emulator.url),
            "LINEPUSH_STORE": db,
        }
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from linepush.cli import main; main()",
                "worker",
                "--concurrency",
                "8",
                *(["--once"] if once else []),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 30
            while store.counts(channel_id)["sending"] == 0:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()  # type: ignore[union-attr]
                time.sleep(0.01)
            proc.send_signal(sig)
            _, err = proc.communicate(timeout=20)
        finally:
            admin.clear_faults()
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == code, err.decode()
        counts = store.counts(channel_id)
        assert counts["sending"] == 0 and counts["failed"] == 0
        assert counts["delivered"] + counts["queued"] == n
        queued = store.list_messages("queued", channel_id, limit=n)
        # Given back unsent: no attempt counted, and their retry window has not started.
        assert all(r.attempts == 0 and r.first_attempt_at is None for r in queued)
        assert "given back" in err.decode()
    # What was in flight was finished and recorded, not abandoned: LINE got exactly the delivered rows.
    assert len(admin.deliveries(channel_id)) == counts["delivered"]
