"""Fixtures for the outbox and worker tests (helpers live in kit.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from tests.conftest import Emulator
from tests.outbox.kit import FakeTime, Line

from linepush.client import AsyncLineClient
from linepush.outbox import Outbox
from linepush.store import Store, open_store


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def store(tmp_path: Any) -> Iterator[Store]:
    with open_store(str(tmp_path / "outbox.db")) as s:
        yield s


@pytest.fixture
def line(emulator: Emulator) -> Line:
    channel_id, _ = emulator.admin.create_channel()
    return Line(emulator, channel_id, emulator.admin.long_lived_token(channel_id))


@pytest.fixture
def outbox(store: Store, line: Line, fake_time: FakeTime) -> Outbox:
    return Outbox(store, line.channel_id, clock=fake_time.clock)


@pytest.fixture
async def client(line: Line) -> AsyncIterator[AsyncLineClient]:
    c = line.client()
    yield c
    await c.aclose()
