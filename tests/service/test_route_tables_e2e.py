"""End to end: `linepush serve --worker` as a real process, two gateway tokens bound to different route
tables of linepush.toml, the same Alertmanager payload sent with each, and what the emulator's recipients
received."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pytest

from linepush.config import Channel
from linepush.keys import PrivateKey
from linepush.service import create_gateway_token
from linepush.store import SQLiteStore
from tests.conftest import Emulator, make_channel
from tests.service.alert_fixtures import alertmanager_payload, am_alert
from tests.service.serve_process import linepush_serve, worker_env
from tests.service.test_e2e import received

pytestmark = pytest.mark.e2e

DBA = "U" + "d" * 32
DB_ROOM = "C" + "d" * 32
WEB_ROOM = "C" + "e" * 32
CONFIG = f"""
[recipients]
dba = "{DBA}"
db-room = "{DB_ROOM}"

[[alerts.route_tables.db-team.routes]]
match = {{ severity = "critical" }}
to = ["dba", "db-room"]

[alerts.route_tables.db-team]
default = "db-room"

[alerts.route_tables.web-team]
default = "{WEB_ROOM}"
"""


def post(url: str, token: str, payload: object) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy
    with direct.open(request, timeout=10) as answer:
        return answer.status, json.loads(answer.read())


def test_two_tokens_with_different_tables_route_the_same_payload_apart(
    live_emulator: Emulator, assertion_key: PrivateKey, tmp_path: Path
) -> None:
    channel: Channel = make_channel(live_emulator, assertion_key, tmp_path)
    channel_id = channel.require_id()
    db = tmp_path / "serve.db"
    with SQLiteStore(db) as store:
        db_token, _ = create_gateway_token(store, channel_id, None, "db", 0.0, route_table="db-team")
        web_token, _ = create_gateway_token(store, channel_id, None, "web", 0.0, route_table="web-team")
    (tmp_path / "linepush.toml").write_text(CONFIG, encoding="utf-8")
    payload = alertmanager_payload(am_alert())  # one critical alert
    args = ("--worker", "--api-base", str(live_emulator.url))
    with linepush_serve(tmp_path, worker_env(db, channel), *args) as served:
        for token in (db_token, web_token):
            assert post(f"{served.url}/alertmanager", token.reveal(), payload) == (
                200,
                {"status": 200, "message": "ok", "queued": 2 if token is db_token else 1},
            )
        deadline = time.monotonic() + 20
        while sum(len(received(live_emulator, channel, to)) for to in (DBA, DB_ROOM, WEB_ROOM)) < 3:
            assert time.monotonic() < deadline, "the worker did not deliver"
            time.sleep(0.05)
    assert served.process.returncode == 0, served.stderr
    # db-team: its critical route, to the DBA and the db room; web-team: its default, the web room.
    for to in (DBA, DB_ROOM, WEB_ROOM):
        [[message]] = received(live_emulator, channel, to)
        assert message["text"].startswith("🔥 FIRING · 🔴 critical · HighLatency (1 firing)")
    for token in (db_token, web_token):
        assert token.reveal() not in served.stderr
