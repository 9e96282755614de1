"""A client that goes away in the middle of its request (a sender killed with kill -9): the emulator notes
it as such (499, as nginx does), not as a 500 of its own, and prints no traceback."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

CHANNEL_ID = "1234567890"
SECRET = "0123456789abcdef0123456789abcdef"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_client_gone_mid_body_is_a_499_and_no_traceback(tmp_path: Path) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "emulator.stderr"
    with log.open("wb") as stderr:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "linepush", "emulator", "--port", str(port)),
                *("--channel-id", CHANNEL_ID, "--channel-secret", SECRET),
            ],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.02)
        form = urllib.parse.urlencode(
            {"grant_type": "client_credentials", "client_id": CHANNEL_ID, "client_secret": SECRET}
        ).encode()
        with urllib.request.urlopen(f"{base}/oauth2/v3/token", data=form, timeout=5) as answer:
            token = json.load(answer)["access_token"]
        head = (
            "POST /v2/bot/message/push HTTP/1.1\r\nHost: api.line.me\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {token}\r\nContent-Length: 1000\r\n\r\n"
        ).encode()
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(head + b'{"to": "U')
        deadline = time.monotonic() + 10
        while True:
            with urllib.request.urlopen(f"{base}/_emulator/requests", timeout=5) as answer:
                counts = json.load(answer)["counts"]
            pushes = {c["status"]: c["count"] for c in counts if c["path"] == "/v2/bot/message/push"}
            if sum(pushes.values()) >= 3 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert pushes == {499: 3}, counts
    finally:
        proc.terminate()
        proc.wait(10)
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
