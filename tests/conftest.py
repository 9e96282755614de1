"""Fixtures shared by the suite: an emulator (in-process or on a loopback port), channels and clients."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from linepush.config import Channel
from linepush.keys import PrivateKey, generate_key_pair
from linepush.transport import ASGITransport, SyncASGITransport
from tests.support.emulator import Admin

# CI runs every property test with the same derandomized draws, so a red run is the code's doing, not a new
# seed's; a local run keeps exploring with fresh draws (and hypothesis's example database).
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("dev")
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))


@dataclass
class Emulator:
    app: Any
    admin: Admin
    url: str | None = None  # set when served on a real socket

    @property
    def state(self) -> Any:
        return self.app.state.emulator

    def now(self) -> float:
        return float(self.state.now())


@pytest.fixture(scope="session")
def assertion_key() -> PrivateKey:
    """One RSA key for the whole run: generating one costs tens of milliseconds."""
    return generate_key_pair()


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """A fresh emulator, called in-process."""
    from linepush.emulator import create_app

    app = create_app()
    transport = SyncASGITransport(app)
    try:
        yield Emulator(app, Admin(transport))
    finally:
        transport.close()


@pytest.fixture(scope="module")
def live_emulator_server() -> Iterator[Any]:
    """The emulator on a free loopback port (shared by a module; tests make their own channels)."""
    from linepush.emulator import running

    with running() as server:
        yield server


@pytest.fixture
def live_emulator(live_emulator_server: Any) -> Emulator:
    from linepush.transport import Urllib3Transport

    admin = Admin(Urllib3Transport(live_emulator_server.url))
    admin.call("POST", "/_emulator/reset", {})  # counts and faults start from zero for every test
    return Emulator(live_emulator_server.app, admin, live_emulator_server.url)


def make_channel(emulator: Emulator, key: PrivateKey, tmp_path: Path, **quota: Any) -> Channel:
    channel_id, secret = emulator.admin.create_channel(**quota)
    kid = emulator.admin.register_key(channel_id, key.public_jwk())
    key_file = tmp_path / f"key-{channel_id}.json"
    if not key_file.exists():
        key.write_private_jwk(key_file)
    return Channel(channel_id, secret, key_file, kid)


@pytest.fixture
def channel(emulator: Emulator, assertion_key: PrivateKey, tmp_path: Path) -> Channel:
    """A channel at the emulator with a registered assertion key (so v2.1, v3 and v2 tokens all work)."""
    return make_channel(emulator, assertion_key, tmp_path)


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'linepush.db'}"


def async_transport(emulator: Emulator) -> Any:
    if emulator.url is not None:
        from linepush.transport import AiohttpTransport

        return AiohttpTransport(emulator.url)
    return ASGITransport(emulator.app)


def sync_transport(emulator: Emulator) -> Any:
    if emulator.url is not None:
        from linepush.transport import Urllib3Transport

        return Urllib3Transport(emulator.url)
    return SyncASGITransport(emulator.app)


@pytest.fixture
def runner() -> Iterator[asyncio.Runner]:
    with asyncio.Runner() as r:
        yield r
