"""Fixtures for the emulator tests: a fake clock, an in-process client, a channel with a registered key."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from emulator_kit import Channel, FakeClock, assertion, public_jwk, short_lived
from starlette.applications import Starlette

from linepush.emulator import EmulatorConfig, EmulatorState, create_app


@pytest.fixture(scope="session")
def private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def other_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def config() -> EmulatorConfig:
    return EmulatorConfig()


@pytest.fixture
def app(config: EmulatorConfig, clock: FakeClock) -> Starlette:
    return create_app(config, clock=clock)


@pytest.fixture
def state(app: Starlette) -> EmulatorState:
    emulator: EmulatorState = app.state.emulator
    return emulator


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://emulator") as c:
        yield c


@pytest.fixture
async def channel(client: httpx.AsyncClient, private_key: rsa.RSAPrivateKey) -> Channel:
    created = (await client.post("/_emulator/channels", json={"name": "test"})).json()
    kid = (
        await client.post(f"/_emulator/channels/{created['channel_id']}/keys", json=public_jwk(private_key))
    ).json()["kid"]
    return Channel(created["channel_id"], created["channel_secret"], kid)


@pytest.fixture
def sign(private_key: rsa.RSAPrivateKey, channel: Channel, clock: FakeClock) -> Any:
    """sign(**claims) -> a valid assertion for ``channel`` at the fake clock's time, claims overridable."""

    def make(**claims: Any) -> str:
        return assertion(private_key, channel.kid, channel.channel_id, clock.now, **claims)

    return make


@pytest.fixture
async def token(client: httpx.AsyncClient, channel: Channel) -> str:
    return await short_lived(client, channel)


@pytest.fixture
def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
