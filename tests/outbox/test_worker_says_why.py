"""`linepush worker` says what it works on and why it retries; `queue list` shows why a row is still queued.

Run as a user runs them: separate processes, a PostgreSQL store whose URL holds a password, and a LINE API
address where nothing listens.
"""

from __future__ import annotations

import os
import re
import select
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.outbox.kit import user
from tests.support.pg import PG_URL, fresh_schema, schema_url

from linepush.outbox import Outbox
from linepush.store import open_store

CHANNEL = "1234567890"
PASSWORD = "hunter2-not-for-logs"


@pytest.fixture
def store_with_password() -> Iterator[str]:
    with fresh_schema() as schema:
        # Trust auth ignores the password; it is there to be kept out of every line printed.
        yield schema_url(schema, PG_URL.replace("postgres@", f"postgres:{PASSWORD}@", 1))


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def environment(tmp_path: Path, env: dict[str, str]) -> dict[str, str]:
    """This test's settings only: none of the developer's LINE_*/LINEPUSH_* variables or config files."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("LINE_", "LINEPUSH_"))}
    return {**clean, **env, "XDG_CONFIG_HOME": str(tmp_path / "config"), "COLUMNS": "1000"}


def linepush(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "linepush", *args]
    env = environment(tmp_path, env)
    return subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)


def test_the_worker_says_what_it_works_on_and_why_it_retries(
    store_with_password: str, tmp_path: Path
) -> None:
    with open_store(store_with_password) as store:
        Outbox(store, CHANNEL).push(user(1), "disk full")
    base = f"http://127.0.0.1:{closed_port()}"
    env = {
        "LINE_CHANNEL_ID": CHANNEL,
        "LINE_CHANNEL_ACCESS_TOKEN": "static-token-for-this-test",
        "LINEPUSH_STORE": store_with_password,
        "LINEPUSH_API_BASE": base,
    }
    ran = linepush(tmp_path, env, "worker", "--once", "-v")
    assert ran.returncode == 3, ran.stderr
    said = ran.stderr
    assert f"delivering channel {CHANNEL} from PostgresStore('postgresql://postgres@127.0.0.1" in said
    assert f"through {base}" in said
    assert re.search(
        rf"INFO outbox message 1: connection refused \(could not connect to {re.escape(base)}\), "
        r"next try in [0-9.]+ s \(attempt 1\)",
        said,
    ), said
    listed = linepush(tmp_path, env, "queue", "list")
    assert listed.returncode == 0, listed.stderr
    assert f"last try: connection refused (could not connect to {base})" in listed.stdout
    for output in (ran.stdout, ran.stderr, listed.stdout, listed.stderr):
        assert PASSWORD not in output and "static-token-for-this-test" not in output


def test_a_long_running_worker_says_what_it_works_on_without_being_asked(
    store_with_password: str, tmp_path: Path
) -> None:
    env = {
        "LINE_CHANNEL_ID": CHANNEL,
        "LINE_CHANNEL_ACCESS_TOKEN": "static-token-for-this-test",
        "LINEPUSH_STORE": store_with_password,
    }
    command = [sys.executable, "-m", "linepush", "worker", "--poll-interval", "0.05"]
    process = subprocess.Popen(command, env=environment(tmp_path, env), stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        # A bound, not a measurement: a worker that never says anything must fail the test, not hang it.
        ready, _, _ = select.select([process.stderr], [], [], 60)
        first = process.stderr.readline() if ready else ""
    finally:
        process.terminate()
        process.wait(30)
        if process.stderr is not None:
            process.stderr.close()
    assert f"delivering channel {CHANNEL} from PostgresStore(" in first
    assert "through https://api.line.me" in first and PASSWORD not in first
