"""/readyz: the store answers and takes writes, the migrations are the database's, the worker is not stuck."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from starlette.testclient import TestClient

from linepush.config import Channel
from linepush.service import GatewayConfig, create_gateway_app
from linepush.service.health import STUCK_AFTER, WorkerWatch
from linepush.store import NewMessage, SQLiteStore, Store
from tests.service.conftest import START, Clock

PAYLOAD = {"to": "U" + "0" * 32, "messages": [{"type": "text", "text": "hi"}]}


def client(store: Store, channel: Channel, clock: Clock, worker: WorkerWatch | None = None) -> TestClient:
    app = create_gateway_app(store, channel, GatewayConfig(), clock=clock, worker=worker)
    return TestClient(app, raise_server_exceptions=False)


def test_ready_says_which_checks_ran(store: Store, channel: Channel, clock: Clock) -> None:
    answer = client(store, channel, clock).get("/readyz")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ready", "checks": {"store": "ok", "migrations": "ok"}}


def test_a_database_migrated_by_a_newer_linepush_is_not_ready(channel: Channel, tmp_path: Path) -> None:
    clock = Clock()
    with SQLiteStore(tmp_path / "gw.db") as store:
        http = client(store, channel, clock)
        assert http.get("/readyz").status_code == 200
        newer = sqlite3.connect(tmp_path / "gw.db")
        newer.execute(f"PRAGMA user_version = {store.schema_version + 1}")
        newer.close()
        assert http.get("/readyz").status_code == 200  # the last answer stands for a second
        clock.advance(1.5)
        answer = http.get("/readyz")
        assert answer.status_code == 503
        assert answer.json()["failed"] == ["migrations"]
        assert f"schema version {store.schema_version + 1}" in answer.json()["checks"]["migrations"]
        assert http.get("/healthz").status_code == 200


def test_a_worker_that_stopped_claiming_while_rows_are_due_is_stuck(
    store: Store, channel: Channel, clock: Clock
) -> None:
    claimed: list[float] = []
    watch = WorkerWatch(START, channel.channel_id, last_claim=lambda: max(claimed, default=None))
    http = client(store, channel, clock, watch)
    assert http.get("/readyz").json()["checks"]["worker"] == "ok"  # nothing due
    store.enqueue([NewMessage(channel.require_id(), "push", PAYLOAD)], now=clock())
    clock.advance(STUCK_AFTER - 1)
    assert http.get("/readyz").status_code == 200  # due, but not for long yet
    clock.advance(2)
    answer = http.get("/readyz")
    assert answer.status_code == 503
    assert answer.json()["failed"] == ["worker"]
    assert answer.json()["checks"]["worker"].startswith("stuck: no claim for 121 s")
    claimed.append(clock() - 5)  # it claims again (the row is taken by another worker, say)
    clock.advance(1)
    assert http.get("/readyz").status_code == 200
    clock.advance(STUCK_AFTER)
    assert http.get("/readyz").json()["failed"] == ["worker"]


def test_a_worker_that_knows_why_it_cannot_send_is_not_ready_at_once(
    store: Store, channel: Channel, clock: Clock
) -> None:
    reason: list[str] = ["no channel access token: LINE refused the key id"]
    watch = WorkerWatch(START, channel.channel_id, blocked=lambda: reason[0] if reason else None)
    http = client(store, channel, clock, watch)
    answer = http.get("/readyz")
    assert answer.status_code == 503
    assert answer.json()["checks"]["worker"] == "no channel access token: LINE refused the key id"
    reason.clear()
    clock.advance(1.5)
    assert http.get("/readyz").status_code == 200
