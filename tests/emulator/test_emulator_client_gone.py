"""A client that goes away in the middle of its request (a sender killed with kill -9): the emulator notes
it as such (499, as nginx does), not as a 500 of its own, and prints no traceback."""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from tests.emulator.emulator_process import emulator_process, v3_token

pytestmark = pytest.mark.e2e


def test_a_client_gone_mid_body_is_a_499_and_no_traceback(tmp_path: Path) -> None:
    log = tmp_path / "emulator.log"
    with emulator_process(log) as base:
        token = v3_token(base)
        head = (
            "POST /v2/bot/message/push HTTP/1.1\r\nHost: api.line.me\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {token}\r\nContent-Length: 1000\r\n\r\n"
        ).encode()
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", urlsplit(base).port or 80), timeout=5) as sock:
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
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
