"""End to end over real sockets: a LINE Notify request to the gateway, the outbox, delivery to the emulator.

The emulator plays LINE; what each recipient received is read back from its admin API.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from linepush.api.messaging import send_payload
from linepush.client import AsyncLineClient, LineClient
from linepush.config import Channel
from linepush.keys import PrivateKey
from linepush.service import GatewayConfig, create_gateway_app, create_gateway_token, serving
from linepush.service.server import RunningGateway
from linepush.store import SQLiteStore, Store
from linepush.worker import Worker
from tests.conftest import Emulator, make_channel
from tests.service.conftest import GROUP, PUBLIC_URL, USER
from tests.service.serve_process import linepush_serve, worker_env
from tests.service.test_curl import curl
from tests.service.test_metrics_e2e import scrape
from tests.service.test_notify import PNG

pytestmark = pytest.mark.e2e


@pytest.fixture
def line_channel(live_emulator: Emulator, assertion_key: PrivateKey, tmp_path: Path) -> Channel:
    return make_channel(live_emulator, assertion_key, tmp_path)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with SQLiteStore(tmp_path / "e2e.db") as opened:
        yield opened


@pytest.fixture
def gateway(store: Store, line_channel: Channel, tmp_path: Path) -> Iterator[RunningGateway]:
    config = GatewayConfig(public_url=PUBLIC_URL, image_dir=str(tmp_path / "images"))
    with serving(create_gateway_app(store, line_channel, config)) as server:
        yield server


def send_notifications(store: Store, channel: Channel, gateway: RunningGateway, tmp_path: Path) -> None:
    """What a LINE Notify script did, twice: a plain text to a user, and a sticker and image to a group."""
    assert channel.channel_id is not None
    to_user, _ = create_gateway_token(store, channel.channel_id, USER, "me", 0.0)
    to_group, _ = create_gateway_token(store, channel.channel_id, GROUP, "ops", 0.0)
    picture = tmp_path / "graph.png"
    picture.write_bytes(PNG)
    for token, fields in (
        (to_user, ["-d", "message=disk full on db1"]),
        (to_group, ["-F", "message=deploy done", "-F", "stickerPackageId=446", "-F", "stickerId=1988"]),
        (to_group, ["-F", "message=graph", "-F", f"imageFile=@{picture}", "-F", "notificationDisabled=true"]),
    ):
        status, _, body = curl(
            "-H", f"Authorization: Bearer {token.reveal()}", *fields, f"{gateway.url}/api/notify"
        )
        assert (status, body) == (200, {"status": 200, "message": "ok"})


def received(emulator: Emulator, channel: Channel, to: str) -> list[list[dict[str, Any]]]:
    return [d["messages"] for d in emulator.admin.deliveries(channel_id=channel.channel_id, to=to)]


def assert_delivered(emulator: Emulator, channel: Channel, store: Store) -> None:
    assert store.counts()["delivered"] == 3
    assert received(emulator, channel, USER) == [[{"type": "text", "text": "disk full on db1"}]]
    deploy, graph = received(emulator, channel, GROUP)
    assert deploy == [
        {"type": "text", "text": "deploy done"},
        {"type": "sticker", "packageId": "446", "stickerId": "1988"},
    ]
    assert graph[0] == {"type": "text", "text": "graph"}
    assert graph[1]["type"] == "image" and graph[1]["originalContentUrl"].startswith(PUBLIC_URL + "/images/")


needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


@needs_curl
def test_queued_notifications_are_what_line_accepts(
    live_emulator: Emulator, line_channel: Channel, store: Store, gateway: RunningGateway, tmp_path: Path
) -> None:
    """Each queued row, sent as the outbox stores it (its payload and retry key), is accepted by LINE."""
    send_notifications(store, line_channel, gateway, tmp_path)
    assert received(live_emulator, line_channel, USER) == []  # queued, not sent: nothing has reached LINE
    with LineClient(line_channel, store=store, api_base=live_emulator.url) as client:
        for row in store.claim("test", 10, 60.0, 1e10):
            result = client.run(send_payload(row.kind, row.payload, row.retry_key))
            assert store.mark_delivered(row.id, "test", 1e10, result.request_id, None)
    assert_delivered(live_emulator, line_channel, store)


@needs_curl
def test_the_worker_delivers_gateway_notifications(
    live_emulator: Emulator, line_channel: Channel, store: Store, gateway: RunningGateway, tmp_path: Path
) -> None:

    send_notifications(store, line_channel, gateway, tmp_path)

    async def deliver() -> None:
        async with AsyncLineClient(line_channel, store=store, api_base=live_emulator.url) as client:
            await Worker(store, client, channel_id=line_channel.channel_id).run_until_idle()

    asyncio.run(deliver())
    assert_delivered(live_emulator, line_channel, store)


@needs_curl
def test_linepush_serve_worker_queues_and_delivers(
    live_emulator: Emulator, line_channel: Channel, tmp_path: Path
) -> None:
    """`linepush serve --worker` as a real process: a Notify request is delivered with no other process,
    and SIGTERM stops it cleanly, with nothing left in flight."""
    assert line_channel.channel_id is not None
    db = tmp_path / "serve.db"
    with SQLiteStore(db) as store:
        token, _ = create_gateway_token(store, line_channel.channel_id, USER, None, 0.0)
    env = worker_env(db, line_channel)
    args = ("--worker", "--api-base", live_emulator.url, "--log-format", "json")
    with linepush_serve(tmp_path, env, *args) as served:
        auth = f"Authorization: Bearer {token.reveal()}"
        status, _, body = curl("-H", auth, "-d", "message=via serve", f"{served.url}/api/notify")
        assert (status, body) == (200, {"status": 200, "message": "ok"})
        deadline = time.monotonic() + 20
        while not received(live_emulator, line_channel, USER):
            assert time.monotonic() < deadline, "the worker did not deliver"
            time.sleep(0.05)
        status, _, body = curl(f"{served.url}/readyz")
        assert (status, body["checks"]) == (200, {"store": "ok", "migrations": "ok", "worker": "ok"})
        text, found = scrape(f"{served.url}/metrics")
    channel = (("channel", line_channel.channel_id),)
    assert found[("linepush_deliveries_total", channel)] == 1
    assert found[("linepush_send_duration_seconds_count", channel)] == 1
    assert found[("linepush_outbox_messages", (*channel, ("state", "delivered")))] == 1
    assert found[("linepush_outbox_messages", (*channel, ("state", "queued")))] == 0
    assert found[("linepush_http_requests_total", (("endpoint", "/api/notify"), ("status", "200")))] == 1
    assert found[("linepush_http_request_duration_seconds_count", (("endpoint", "/api/notify"),))] == 1
    assert found[("linepush_store_up", ())] == 1
    for secret in (token.reveal(), line_channel.require_secret().reveal(), "via serve", USER):
        assert secret not in text
    assert served.process.returncode == 0, served.stderr
    assert received(live_emulator, line_channel, USER) == [[{"type": "text", "text": "via serve"}]]
    with SQLiteStore(db) as store:
        assert store.counts() == {"queued": 0, "sending": 0, "delivered": 1, "failed": 0}
    assert token.reveal() not in served.stderr
    assert line_channel.require_secret().reveal() not in served.stderr
    lines = [json.loads(line) for line in served.stderr.splitlines()]  # one format: every line is JSON
    (start,) = [line for line in lines if line.get("event") == "start"]
    assert (start["channel"], start["runs"], start["api_base"]) == (
        line_channel.channel_id,
        "gateway+worker",
        live_emulator.url,
    )
    assert str(db) in start["store"]
    access = [line for line in lines if line.get("event") == "request"]
    assert [(a["method"], a["path"], a["status"]) for a in access] == [
        ("POST", "/api/notify", 200),
        ("GET", "/readyz", 200),
        ("GET", "/metrics", 200),
    ]


@needs_curl
def test_serve_worker_refused_a_token_keeps_taking_notifications(
    live_emulator: Emulator, line_channel: Channel, tmp_path: Path
) -> None:
    """A key id LINE does not know: the worker cannot get a token, and `linepush serve --worker` goes on
    queueing what it is sent (a Notify script does not retry) while /readyz says why nothing goes out."""
    assert line_channel.channel_id is not None
    db = tmp_path / "serve.db"
    with SQLiteStore(db) as store:
        token, _ = create_gateway_token(store, line_channel.channel_id, USER, None, 0.0)
    env = {**worker_env(db, line_channel), "LINE_ASSERTION_KID": "00000000-0000-0000-0000-000000000000"}
    env.pop("LINE_CHANNEL_SECRET")
    with linepush_serve(tmp_path, env, "--worker", "--api-base", live_emulator.url) as served:
        auth = f"Authorization: Bearer {token.reveal()}"
        assert curl("-H", auth, "-d", "message=first", f"{served.url}/api/notify")[0] == 200
        deadline = time.monotonic() + 20
        while (answer := curl(f"{served.url}/readyz"))[0] != 503:
            assert time.monotonic() < deadline, "readiness never said the worker cannot send"
            time.sleep(0.05)
        assert answer[2]["failed"] == ["worker"]
        assert "no channel access token" in answer[2]["checks"]["worker"]
        assert served.process.poll() is None, served.stderr
        assert curl("-H", auth, "-d", "message=second", f"{served.url}/api/notify")[0] == 200
    assert served.process.returncode == 0, served.stderr
    assert received(live_emulator, line_channel, USER) == []
    with SQLiteStore(db) as store:
        assert store.counts()["queued"] == 2
    assert "next try in 1 min" in served.stderr or "next try in 60 s" in served.stderr
