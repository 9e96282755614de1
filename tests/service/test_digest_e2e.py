"""Digests end to end, over real sockets to the emulator: LINE Notify calls within a window arrive as ONE
push with every text in order; `linepush serve --worker` killed mid-window loses nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from linepush.client import AsyncLineClient
from linepush.config import Channel
from linepush.service import GatewayConfig, create_gateway_app, create_gateway_token, serving
from linepush.service.store import gateway_store
from linepush.store import SQLiteStore, Store
from linepush.worker import Worker
from tests.conftest import Emulator
from tests.service.conftest import GROUP, USER, Clock
from tests.service.serve_process import linepush_serve, worker_env
from tests.service.test_e2e import line_channel, received, store

pytestmark = pytest.mark.e2e

IMAGE = "https://images.example.test/graph.png"


__all__ = ["line_channel", "store"]


def digest_token(store: Store, channel: Channel, to: str, window: float) -> str:
    assert channel.channel_id is not None
    secret, record = create_gateway_token(store, channel.channel_id, to, None, 0.0)
    gateway_store(store).set_gateway_token_digest(record.id, window)
    return secret.reveal()


def deliver(store: Store, channel: Channel, emulator: Emulator, clock: Clock) -> None:
    async def run() -> None:
        async with AsyncLineClient(channel, store=store, api_base=emulator.url) as client:
            await Worker(store, client, channel_id=channel.channel_id, clock=clock).run_until_idle()

    asyncio.run(run())


def test_notifications_within_a_window_arrive_as_one_push_with_every_text_in_order(
    live_emulator: Emulator, line_channel: Channel, store: Store
) -> None:
    clock = Clock()
    app = create_gateway_app(store, line_channel, GatewayConfig(time_zone="Asia/Tokyo"), clock=clock)
    to_user = digest_token(store, line_channel, USER, 30.0)
    to_group = digest_token(store, line_channel, GROUP, 30.0)
    with serving(app) as server, httpx.Client(base_url=server.url) as http:
        for n in range(12):
            answer = http.post(
                "/api/notify",
                data={"message": f"disk {80 + n}% on db1"},
                headers={"Authorization": f"Bearer {to_user}"},
            )
            assert answer.json() == {"status": 200, "message": "ok"}
            clock.advance(2)
        graph = {"message": "graph", "imageThumbnail": IMAGE}
        assert (
            http.post("/api/notify", data=graph, headers={"Authorization": f"Bearer {to_group}"}).status_code
            == 200
        )
        deliver(store, line_channel, live_emulator, clock)
        assert received(live_emulator, line_channel, USER) == []  # the window is open: nothing sent yet
        clock.advance(30)
        deliver(store, line_channel, live_emulator, clock)
    [push] = received(live_emulator, line_channel, USER)
    [message] = push
    lines = message["text"].splitlines()
    assert lines[0] == "🔔 12 notifications, 2026-11-27 17:20:00 – 17:20:22 JST"
    assert lines[1:] == [f"[17:20:{2 * n:02d}] disk {80 + n}% on db1" for n in range(12)]
    # One notification alone goes as it came, its image as an object of its own.
    assert received(live_emulator, line_channel, GROUP) == [
        [
            {"type": "text", "text": "graph"},
            {"type": "image", "originalContentUrl": IMAGE, "previewImageUrl": IMAGE},
        ]
    ]
    assert store.counts()["delivered"] == 2


def test_serve_killed_mid_window_loses_no_notification(
    live_emulator: Emulator, line_channel: Channel, tmp_path: Path
) -> None:
    db = tmp_path / "serve.db"
    with SQLiteStore(db) as store:
        token = digest_token(store, line_channel, USER, 3.0)
    env = worker_env(db, line_channel)
    args = ("--worker", "--api-base", live_emulator.url)
    sent = [f"alert {n}" for n in range(8)]
    with linepush_serve(tmp_path, env, *args) as served:
        with httpx.Client(base_url=served.url, headers={"Authorization": f"Bearer {token}"}) as http:
            for text in sent:
                assert http.post("/api/notify", data={"message": text}).status_code == 200
        os.kill(served.process.pid, signal.SIGKILL)  # every notification was answered 200: each must arrive
        served.process.wait(10)
    with SQLiteStore(db) as store:
        kept = [m["text"] for row in store.list_messages() for m in row.payload["messages"]]
    assert all(any(text in k for k in kept) for text in sent)
    with linepush_serve(tmp_path, env, *args, port=served.port):
        deadline = time.monotonic() + 30
        while not received(live_emulator, line_channel, USER):
            assert time.monotonic() < deadline, "the digest was not delivered after the restart"
            time.sleep(0.1)
    pushes = received(live_emulator, line_channel, USER)
    texts = [line.split("] ", 1)[-1] for push in pushes for m in push for line in m["text"].splitlines()]
    assert [t for t in texts if t.startswith("alert ")] == sent
    with SQLiteStore(db) as store:
        assert store.counts()["delivered"] == len(pushes) <= 2
