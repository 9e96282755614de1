"""`linepush worker --metrics-port` as a real process after real sends, read with prometheus_client's own
parser (`linepush serve --worker`'s /metrics: tests/service/test_e2e.py)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from linepush.config import Channel
from linepush.keys import PrivateKey
from linepush.outbox import Outbox, push_item
from linepush.store import SQLiteStore
from tests.conftest import Emulator, make_channel
from tests.service.conftest import USER
from tests.service.serve_process import SRC, free_port, worker_env

pytestmark = pytest.mark.e2e
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def line_channel(live_emulator: Emulator, assertion_key: PrivateKey, tmp_path: Path) -> Channel:
    return make_channel(live_emulator, assertion_key, tmp_path)


def scrape(url: str) -> tuple[str, Samples]:
    with urllib.request.urlopen(url, timeout=10) as answer:  # loopback only
        text: str = answer.read().decode()
    found = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    return text, found


def wait_for(condition: object, what: str) -> None:
    deadline = time.monotonic() + 20
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def delivered(store_path: Path, channel_id: str) -> int:
    with SQLiteStore(store_path) as store:
        return store.counts(channel_id)["delivered"]


def start_worker(
    emulator: Emulator, channel: Channel, db: Path, home: Path, *args: str
) -> subprocess.Popen[str]:
    """`linepush worker ARGS` for ``channel`` on the store ``db``, sending to ``emulator``."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("LINE_", "LINEPUSH_"))},
        **worker_env(db, channel),
        "PYTHONPATH": str(SRC),
        "XDG_CONFIG_HOME": str(home / "config"),
        "LINEPUSH_API_BASE": str(emulator.url),
    }
    command = [sys.executable, "-m", "linepush", "worker", *args]
    return subprocess.Popen(command, env=env, cwd=home, stderr=subprocess.PIPE, text=True)


def test_worker_metrics_port_json_logs_and_shared_rate_limit(
    live_emulator: Emulator, line_channel: Channel, tmp_path: Path
) -> None:
    db = tmp_path / "worker.db"
    channel_id = line_channel.require_id()
    with SQLiteStore(db) as store:
        Outbox(store, channel_id).enqueue([push_item(channel_id, USER, f"m{i}") for i in range(3)])
    port = free_port()
    process = start_worker(
        live_emulator,
        line_channel,
        db,
        tmp_path,
        "--metrics-port",
        str(port),
        "--log-format",
        "json",
        "--shared-rate-limit",
    )
    try:
        wait_for(lambda: delivered(db, channel_id) == 3, "the worker did not deliver")
        text, found = scrape(f"http://127.0.0.1:{port}/metrics")
    finally:
        process.terminate()
        _, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
    lines = [json.loads(line) for line in err.splitlines()]  # one format: every line is JSON
    messages = [line["message"] for line in lines]
    assert f"metrics on http://127.0.0.1:{port}/metrics" in messages
    assert any(m.startswith("worker ") and f"delivering channel {channel_id}" in m for m in messages)
    assert any(m.startswith("delivered 3") for m in messages)
    channel = (("channel", channel_id),)
    assert found[("linepush_deliveries_total", channel)] == 3
    assert found[("linepush_outbox_messages", (*channel, ("state", "delivered")))] == 3
    assert line_channel.require_secret().reveal() not in text and USER not in text
    # --shared-rate-limit: the sends were paced in the store, where every worker on it shares the limit
    with sqlite3.connect(db) as conn:
        keys = [key for (key,) in conn.execute("SELECT key FROM rate_limits")]
    assert keys and all(key.startswith(f"{channel_id}:") for key in keys)


def test_worker_metrics_count_tokens_refusals_and_the_quota(
    live_emulator: Emulator, assertion_key: PrivateKey, tmp_path: Path
) -> None:
    channel = make_channel(live_emulator, assertion_key, tmp_path, monthly_quota=1000)
    channel_id = channel.require_id()
    db = tmp_path / "worker.db"
    from linepush.client import LineClient

    # One message of the month used before the worker starts: its quota gauges say LINE's figures.
    with LineClient(channel, api_base=live_emulator.url, store=f"sqlite:///{tmp_path / 'other.db'}") as line:
        line.push(USER, "before")
    with SQLiteStore(db) as store:
        Outbox(store, channel_id).enqueue([push_item(channel_id, USER, f"m{i}") for i in range(2)])
    port = free_port()
    process = start_worker(live_emulator, channel, db, tmp_path, "--metrics-port", str(port))
    try:
        wait_for(lambda: delivered(db, channel_id) == 2, "the worker did not deliver")
        # LINE refuses the token once: the worker drops it, gets another and the message still goes.
        live_emulator.admin.call(
            "POST",
            "/_emulator/faults",
            {"path": "/v2/bot/message/push", "mode": "status", "status": 401, "count": 1},
        )
        with SQLiteStore(db) as store:
            Outbox(store, channel_id).enqueue([push_item(channel_id, USER, "after a refusal")])
        wait_for(lambda: delivered(db, channel_id) == 3, "the worker did not deliver after the 401")
        text, found = scrape(f"http://127.0.0.1:{port}/metrics")
    finally:
        process.terminate()
        _, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
    labels = (("channel", channel_id), ("kind", "v2.1"))
    assert found[("linepush_token_issues_total", labels)] == 2
    assert found[("linepush_token_refusals_total", labels)] == 1
    assert found.get(("linepush_token_refreshes_total", labels), 0) == 0
    # The refused send was retried with the new token inside the client: no 401 reached the worker.
    assert found.get(("linepush_line_unauthorized_total", (("channel", channel_id),)), 0) == 0
    assert found[("linepush_quota_limit_messages", (("channel", channel_id),))] == 1000
    assert found[("linepush_quota_used_messages", (("channel", channel_id),))] == 1
    assert found[("linepush_deliveries_total", (("channel", channel_id),))] == 3
    for secret in (channel.require_secret().reveal(), "after a refusal", USER):
        assert secret not in text
