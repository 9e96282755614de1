"""Fixtures of the gateway tests: a store, a channel, a clock the tests move, a gateway app and its tokens."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette

with warnings.catch_warnings():
    # Starlette 1.x would rather its test client ran on "httpx2"; the httpx it finds works the same here.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from linepush.config import Channel
from linepush.service import GatewayConfig, create_gateway_app, create_gateway_token
from linepush.store import OutboxMessage, SQLiteStore, Store

CHANNEL_ID = "1234567890"
#: The channel secret of FACTS §6's signature test vector.
SECRET = "8c570fa6dd201bb328f1c1eac23a96d8"
USER = "U" + "4af4980629" + "0" * 22
GROUP = "C" + "ab" * 16
PUBLIC_URL = "https://gateway.example.test"
#: A whole clock hour (2026-11-27 07:00 UTC); tests start 20 minutes into it, so the window ends at +1 h.
HOUR = 1_795_766_400.0
START = HOUR + 20 * 60


class Clock:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Gateway:
    app: Starlette
    store: Store
    clock: Clock
    client: TestClient

    def token(self, to: str = USER, name: str | None = "alerts") -> str:
        secret, _ = create_gateway_token(self.store, CHANNEL_ID, to, name, self.clock())
        return secret.reveal()

    def queued(self) -> list[OutboxMessage]:
        return self.store.list_messages(state="queued")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with SQLiteStore(tmp_path / "gateway.db") as opened:
        yield opened


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def channel() -> Channel:
    return Channel(CHANNEL_ID, SECRET)


def make_gateway(store: Store, channel: Channel, clock: Clock, **config: Any) -> Gateway:
    app = create_gateway_app(store, channel, GatewayConfig(**config), clock=clock)
    return Gateway(app, store, clock, TestClient(app, raise_server_exceptions=False))


@pytest.fixture
def gateway(store: Store, channel: Channel, clock: Clock, tmp_path: Path) -> Iterator[Gateway]:
    made = make_gateway(store, channel, clock, public_url=PUBLIC_URL, image_dir=str(tmp_path / "images"))
    with made.client:
        yield made
