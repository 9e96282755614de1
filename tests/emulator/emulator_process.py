"""`linepush emulator` run as a user runs it: a process of its own on a free loopback port."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

#: The channel every process here is started with.
CHANNEL_ID = "1234567890"
SECRET = "0123456789abcdef0123456789abcdef"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def emulator_process(log: Path, *args: str) -> Iterator[str]:
    """`linepush emulator` with the channel above and ``args``, what it writes going to ``log``; yields its
    base URL once it accepts connections, and stops it with SIGINT (Ctrl+C) when the block ends."""
    port = _free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "linepush", "emulator", "--port", str(port)),
                *("--channel-id", CHANNEL_ID, "--channel-secret", SECRET, *args),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
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
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def v3_token(base: str) -> str:
    """A stateless token of the channel, by its secret."""
    form = urllib.parse.urlencode(
        {"grant_type": "client_credentials", "client_id": CHANNEL_ID, "client_secret": SECRET}
    ).encode()
    with urllib.request.urlopen(f"{base}/oauth2/v3/token", data=form, timeout=5) as answer:
        return str(json.load(answer)["access_token"])
