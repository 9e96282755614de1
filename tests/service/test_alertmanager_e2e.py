"""End to end with the real Alertmanager: an alert posted to its API reaches the emulator as a push through
`linepush serve --worker`, its resolution as a second one, and with the gateway stopped for a while the
retries of Alertmanager still end in exactly one delivery each.

Alertmanager's receiver configuration is README's, as written; only its URL and token file are this test's.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from linepush.config import Channel
from linepush.keys import PrivateKey
from linepush.service import create_gateway_token
from linepush.store import SQLiteStore
from tests.conftest import Emulator, make_channel
from tests.service.conftest import GROUP
from tests.service.serve_process import ServeProcess, free_port, linepush_serve, worker_env
from tests.support.alertmanager import RunningAlertmanager, alertmanager

pytestmark = pytest.mark.e2e

README = Path(__file__).resolve().parents[2] / "README.md"
README_URL = "http://127.0.0.1:8080/alertmanager"
README_TOKEN_FILE = "/etc/prometheus/linepush.token"
#: Short timings, so the whole test takes seconds; the route is the test's own, the receiver README's.
ROUTE = """
route:
  receiver: linepush
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 2s
"""


def readme_receivers() -> str:
    text = README.read_text(encoding="utf-8")
    found = re.search(r"<!-- tested: alertmanager-receivers -->\n```yaml\n(.*?)```", text, re.S)
    assert found is not None, "README.md has no tested alertmanager-receivers block"
    return found.group(1)


def wait_for(what: str, condition: Callable[[], bool], seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def accesses(served: ServeProcess) -> list[int]:
    lines = [json.loads(line) for line in served.stderr.splitlines() if line.startswith("{")]
    return [a["status"] for a in lines if a.get("path") == "/alertmanager"]


def test_alerts_from_a_real_alertmanager_are_delivered_once_each(
    live_emulator: Emulator, assertion_key: PrivateKey, tmp_path: Path
) -> None:
    channel: Channel = make_channel(live_emulator, assertion_key, tmp_path)
    assert channel.channel_id is not None
    db = tmp_path / "serve.db"
    with SQLiteStore(db) as store:
        token, _ = create_gateway_token(store, channel.channel_id, GROUP, "alertmanager", 0.0)
    token_file = tmp_path / "linepush.token"
    token_file.write_text(
        token.reveal() + "\n", encoding="utf-8"
    )  # as `linepush gateway token create >` does
    port = free_port()
    receivers = readme_receivers()
    assert README_URL in receivers and README_TOKEN_FILE in receivers
    config = receivers.replace(README_URL, f"http://127.0.0.1:{port}/alertmanager").replace(
        README_TOKEN_FILE, str(token_file)
    )
    env = worker_env(db, channel)
    serve_args = ("--worker", "--api-base", str(live_emulator.url), "--log-format", "json")

    def pushes() -> list[str]:
        found = live_emulator.admin.deliveries(channel_id=channel.channel_id, to=GROUP)
        return [d["messages"][0]["text"] for d in found]

    alert: dict[str, Any] = {
        "labels": {"alertname": "DiskFull", "severity": "critical", "instance": "db1"},
        "annotations": {"summary": "disk / on db1 is 97% full"},
        "generatorURL": "http://prometheus.example.test/graph?g0.expr=disk",
    }
    statuses: list[int] = []
    with alertmanager(config + ROUTE, tmp_path / "alertmanager") as am:
        with linepush_serve(tmp_path, env, *serve_args, port=port) as served:
            am.post_alerts([alert])
            wait_for("the firing push", lambda: len(pushes()) == 1)
            # repeat_interval (2 s) makes Alertmanager send the same notification again: not a new push.
            wait_for("a repeated notification", lambda: _webhook_requests(am) >= 3)
        statuses += accesses(served)
        assert served.process.returncode == 0, served.stderr
        # The gateway is down: the resolution fails at first, and Alertmanager keeps retrying.
        failed_before = am.metric("alertmanager_notifications_failed_total", integration="webhook")
        ended = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        am.post_alerts([{**alert, "endsAt": ended}])
        wait_for(
            "a failed attempt",
            lambda: (
                am.metric("alertmanager_notifications_failed_total", integration="webhook") > failed_before
            ),
        )
        with linepush_serve(tmp_path, env, *serve_args, port=port) as served:
            wait_for("the resolved push", lambda: len(pushes()) == 2)
            settled = _webhook_requests(am)
            wait_for("Alertmanager to send nothing more", lambda: _settled(am, settled))
        statuses += accesses(served)
        attempts = _webhook_requests(am)
    firing, resolved = pushes()
    assert firing.startswith("🔥 FIRING · 🔴 critical · DiskFull (1 firing)")
    assert "disk / on db1 is 97% full" in firing and "source: http://prometheus.example.test/" in firing
    assert resolved.startswith("✅ RESOLVED · 🔴 critical · DiskFull (1 resolved)")
    # Every request Alertmanager got through was answered 200; the repeats were not queued again.
    assert statuses and set(statuses) == {200}
    assert len(statuses) > len(pushes())
    assert token.reveal() not in served.stderr
    print(
        f"alertmanager e2e: alerts posted 2 (firing, resolved), webhook attempts {attempts:.0f}, "
        f"answered {len(statuses)}, deliveries {len(pushes())}, duplicates kept out {len(statuses) - 2}"
    )


def _webhook_requests(am: RunningAlertmanager) -> float:
    return am.metric("alertmanager_notifications_total", integration="webhook")


def _settled(am: RunningAlertmanager, before: float) -> bool:
    # A resolved group is not sent again; two group intervals with no new attempt means it is done.
    time.sleep(2.5)
    return _webhook_requests(am) == before
