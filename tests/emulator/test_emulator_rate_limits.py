"""Per-channel, per-endpoint token buckets (FACTS §3.9), refilled by the emulator clock."""

from __future__ import annotations

import httpx
import pytest
from emulator_kit import Channel, FakeClock, short_lived, user_id

from linepush.emulator import EmulatorConfig, RateLimit, create_app

RATE_LIMITED = {"message": "The API rate limit has been exceeded. Try again later."}
TEXT = {"type": "text", "text": "hi"}


@pytest.fixture
def config() -> EmulatorConfig:
    return EmulatorConfig(
        rate_limits={
            "POST /v2/bot/message/push": RateLimit(3, 1.0),
            "POST /v2/bot/message/broadcast": RateLimit(2, 3600.0),
            "POST /v2/oauth/accessToken": RateLimit(2, 1.0),
            "GET /v2/bot/message/quota": RateLimit(1, 1.0),
        }
    )


async def test_push_bucket_empties_and_refills(
    client: httpx.AsyncClient, auth: dict[str, str], clock: FakeClock
) -> None:
    body = {"to": user_id(), "messages": [TEXT]}
    for _ in range(3):
        assert (await client.post("/v2/bot/message/push", json=body, headers=auth)).status_code == 200
    limited = await client.post("/v2/bot/message/push", json=body, headers=auth)
    assert (limited.status_code, limited.json()) == (429, RATE_LIMITED)
    clock.now += 1 / 3  # continuous refill: one token back after a third of a second
    assert (await client.post("/v2/bot/message/push", json=body, headers=auth)).status_code == 200
    assert (await client.post("/v2/bot/message/push", json=body, headers=auth)).status_code == 429
    # Other endpoints have their own buckets.
    assert (await client.get("/v2/bot/message/quota", headers=auth)).status_code == 200
    assert (await client.get("/v2/bot/message/quota", headers=auth)).status_code == 429


async def test_broadcast_per_hour_via_admin_clock(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    for _ in range(2):
        assert (
            await client.post("/v2/bot/message/broadcast", json={"messages": [TEXT]}, headers=auth)
        ).status_code == 200
    assert (
        await client.post("/v2/bot/message/broadcast", json={"messages": [TEXT]}, headers=auth)
    ).status_code == 429
    await client.post("/_emulator/clock", json={"advance_seconds": 1799})
    assert (
        await client.post("/v2/bot/message/broadcast", json={"messages": [TEXT]}, headers=auth)
    ).status_code == 429
    await client.post("/_emulator/clock", json={"advance_seconds": 1})
    assert (
        await client.post("/v2/bot/message/broadcast", json={"messages": [TEXT]}, headers=auth)
    ).status_code == 200


async def test_buckets_are_per_channel(client: httpx.AsyncClient, channel: Channel, clock: FakeClock) -> None:
    await short_lived(client, channel)
    await short_lived(client, channel)
    form = {
        "grant_type": "client_credentials",
        "client_id": channel.channel_id,
        "client_secret": channel.channel_secret,
    }
    limited = await client.post("/v2/oauth/accessToken", data=form)
    assert (limited.status_code, limited.json()) == (429, RATE_LIMITED)
    other = (await client.post("/_emulator/channels", json={})).json()
    await short_lived(client, Channel(other["channel_id"], other["channel_secret"], ""))
    clock.now += 0.5
    assert (await client.post("/v2/oauth/accessToken", data=form)).status_code == 200


async def test_rejected_requests_do_not_refill(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    body = {"to": user_id(), "messages": [TEXT]}
    for _ in range(3):
        await client.post("/v2/bot/message/push", json=body, headers=auth)
    for _ in range(5):
        assert (await client.post("/v2/bot/message/push", json=body, headers=auth)).status_code == 429


async def test_documented_limits_by_default(clock: FakeClock) -> None:
    app = create_app(clock=clock)
    state = app.state.emulator
    channel = state.create_channel()
    assert (
        sum(state.take_rate(channel.channel_id, "POST /v2/bot/message/multicast") for _ in range(201)) == 200
    )
    assert (
        sum(state.take_rate(channel.channel_id, "POST /v2/bot/message/narrowcast") for _ in range(61)) == 60
    )
    assert sum(state.take_rate(channel.channel_id, "POST /v2/bot/message/push") for _ in range(2001)) == 2000
    assert sum(state.take_rate(channel.channel_id, "POST /v2/oauth/accessToken") for _ in range(371)) == 370


async def test_rate_limits_can_be_turned_off(clock: FakeClock) -> None:
    state = create_app(EmulatorConfig(rate_limits=None), clock=clock).state.emulator
    channel = state.create_channel()
    assert all(state.take_rate(channel.channel_id, "POST /v2/bot/message/broadcast") for _ in range(100))


@pytest.mark.parametrize(("count", "period"), [(0, 1.0), (5, 0.0), (5, -1.0)])
def test_rate_limit_parameters_are_checked(count: int, period: float) -> None:
    with pytest.raises(ValueError, match="rate limit"):
        RateLimit(count, period)
