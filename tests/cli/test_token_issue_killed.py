"""`linepush send` killed with SIGKILL while it asks LINE for a token (an OOM kill, a cron timeout's kill -9):
the next `linepush send` on the same store must not wait for the dead process's refresh lock to run out.

A loopback server plays LINE's token endpoint and never answers, so the kill surely comes while the dead
process holds the lock; the next send goes to the emulator."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import linepush
from tests.cli.conftest import Cli
from tests.support.holding_http import holding_server

USER = "U" + "6" * 32


@pytest.fixture
def holding_line() -> Iterator[tuple[str, threading.Event]]:
    with holding_server() as held:
        yield held


def _send(api: str, *args: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(linepush.__file__).resolve().parents[1]),
        "LINEPUSH_API_BASE": api,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "linepush", "send", "--to", USER, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.mark.e2e
def test_a_send_killed_while_issuing_a_token_does_not_hold_up_the_next(
    cli: Cli, holding_line: tuple[str, threading.Event]
) -> None:
    api, received = holding_line
    killed = _send(api, "first")
    try:
        assert received.wait(20), killed.communicate(timeout=5)
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait(10)
    finally:
        if killed.poll() is None:
            killed.kill()
    assert cli.emulator.url is not None
    second = _send(cli.emulator.url, "second")
    try:
        # Without the fix it waits for the lock's 60 s lease to run out.
        _, err = second.communicate(timeout=20)
    finally:
        if second.poll() is None:
            second.kill()
    assert second.returncode == 0, err.decode()
    delivered = cli.emulator.admin.deliveries(cli.channel_id, USER)
    assert [m["text"] for d in delivered for m in d["messages"]] == ["second"]
