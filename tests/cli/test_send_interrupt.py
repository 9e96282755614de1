"""Ctrl+C in the middle of `linepush send`: the user learns what may have happened and how to go on
without sending anything twice.

LINE is played by a loopback server that takes a send and never answers it, so the signal surely comes
while the request is at "LINE" and its answer is not back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import linepush
from linepush.store import open_store
from tests.outbox.kit import user
from tests.support.holding_http import Holding, holding_server

CHANNEL_ID = "1234567890"


class _Line(Holding):
    """Answers the quota questions; takes a send and holds it until the test ends."""

    def do_GET(self) -> None:
        body = {"type": "none"} if self.path.endswith("/quota") else {"totalUsage": 0}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def silent_line() -> Iterator[tuple[str, threading.Event]]:
    with holding_server(_Line) as held:
        yield held


def _run_until_sent(api: str, received: threading.Event, tmp_path: Path, *args: str) -> tuple[int, str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("LINE_", "LINEPUSH_"))},
        "PYTHONPATH": str(Path(linepush.__file__).resolve().parents[1]),
        "LINE_CHANNEL_ID": CHANNEL_ID,
        "LINE_CHANNEL_ACCESS_TOKEN": "a-static-token",
        "LINEPUSH_API_BASE": api,
        "LINEPUSH_STORE": str(tmp_path / "interrupt.db"),
        "XDG_CONFIG_HOME": str(tmp_path),
        "XDG_STATE_HOME": str(tmp_path),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "linepush", "send", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while not received.wait(0.05):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()  # type: ignore[union-attr]
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, err.decode()


@pytest.mark.e2e
def test_ctrl_c_during_a_direct_send_prints_the_retry_key(
    silent_line: tuple[str, threading.Event], tmp_path: Path
) -> None:
    code, err = _run_until_sent(*silent_line, tmp_path, "--to", user(1), "hello")
    assert code == 130, err
    assert "may have reached LINE already" in err
    assert "--retry-key " in err
    assert "Traceback" not in err


@pytest.mark.e2e
def test_ctrl_c_while_the_outbox_drains_says_what_stays_queued(
    silent_line: tuple[str, threading.Event], tmp_path: Path
) -> None:
    ids = tmp_path / "ids.txt"
    ids.write_text("".join(f"{user(i)}\n" for i in range(3)))
    code, err = _run_until_sent(*silent_line, tmp_path, "--to-file", str(ids), "--yes", "x")
    assert code == 130, err
    assert "stay queued and `linepush worker` delivers them" in err
    assert "do not run this command again" in err
    with open_store(str(tmp_path / "interrupt.db")) as store:
        counts = store.counts(CHANNEL_ID)
    assert counts["sending"] == 0 and counts["queued"] == 1
