"""Injected faults: status, latency, random and drop-after-accept (the last over a real socket)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
import httpx
import pytest
from emulator_kit import Channel, retry_key, short_lived, user_id

from linepush.emulator import EmulatorState, running

PUSH = "/v2/bot/message/push"
BODY = {"to": user_id(), "messages": [{"type": "text", "text": "hi"}]}


async def add_fault(client: httpx.AsyncClient, **spec: Any) -> httpx.Response:
    return await client.post("/_emulator/faults", json=spec)


async def test_status_fault_fails_the_next_n(
    client: httpx.AsyncClient, auth: dict[str, str], state: EmulatorState
) -> None:
    assert (await add_fault(client, path=PUSH, mode="status", status=500, count=2)).status_code == 200
    key = retry_key()
    for _ in range(2):
        failed = await client.post(PUSH, json=BODY, headers={**auth, "X-Line-Retry-Key": key})
        assert (failed.status_code, failed.json()) == (500, {"message": "Internal server error"})
        assert "x-line-request-id" in failed.headers
    ok = await client.post(PUSH, json=BODY, headers={**auth, "X-Line-Retry-Key": key})
    assert ok.status_code == 200  # the key of failed attempts stays usable
    assert len(state.deliveries()) == 1
    counts = (await client.get("/_emulator/requests")).json()["counts"]
    assert {"method": "POST", "path": PUSH, "status": 500, "count": 2} in counts
    assert {"method": "POST", "path": PUSH, "status": 200, "count": 1} in counts


async def test_faults_apply_to_their_path_only_and_can_be_cleared(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    await add_fault(client, path=PUSH, mode="status", status=503, count=5)
    assert (await client.get("/v2/bot/message/quota", headers=auth)).status_code == 200
    assert len((await client.get("/_emulator/faults")).json()["faults"]) == 1
    await client.delete("/_emulator/faults")
    assert (await client.post(PUSH, json=BODY, headers=auth)).status_code == 200


async def test_fault_on_token_endpoint(client: httpx.AsyncClient, channel: Channel) -> None:
    await add_fault(client, path="/v2/oauth/accessToken", mode="status", status=429)
    form = {
        "grant_type": "client_credentials",
        "client_id": channel.channel_id,
        "client_secret": channel.channel_secret,
    }
    assert (await client.post("/v2/oauth/accessToken", data=form)).status_code == 429
    assert (await client.post("/v2/oauth/accessToken", data=form)).status_code == 200


async def test_latency_fault_sleeps(
    client: httpx.AsyncClient, auth: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    slept: list[float] = []
    real_sleep = asyncio.sleep

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr("linepush.emulator.app.asyncio.sleep", fake_sleep)
    await add_fault(client, path=PUSH, mode="latency", latency_ms=250, count=1)
    assert (await client.post(PUSH, json=BODY, headers=auth)).status_code == 200
    assert (await client.post(PUSH, json=BODY, headers=auth)).status_code == 200
    assert slept == [0.25]


async def test_random_fault_is_seeded(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    async def run() -> list[int]:
        await client.delete("/_emulator/faults")
        await add_fault(client, path=PUSH, mode="random", status=502, rate=0.5, seed=7)
        return [(await client.post(PUSH, json=BODY, headers=auth)).status_code for _ in range(40)]

    first, second = await run(), await run()
    assert first == second
    assert 5 < first.count(502) < 35 and set(first) == {200, 502}


async def test_random_fault_count_limits_failures(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    await add_fault(client, path=PUSH, mode="random", status=500, rate=1.0, count=3, seed=1)
    codes = [(await client.post(PUSH, json=BODY, headers=auth)).status_code for _ in range(5)]
    assert codes == [500, 500, 500, 200, 200]


@pytest.mark.parametrize(
    "spec",
    [
        {"path": PUSH, "mode": "explode"},
        {"path": "push", "mode": "status"},
        {"path": "/_emulator/reset", "mode": "status"},
        {"path": PUSH, "mode": "status", "status": 200},
        {"path": PUSH, "mode": "status", "count": 0},
        {"path": PUSH, "mode": "random", "rate": 2},
        {"path": PUSH, "mode": "latency"},
        {"path": PUSH, "mode": "random", "seed": "x"},
        ["not", "an", "object"],
    ],
)
async def test_bad_fault_specs_are_400(client: httpx.AsyncClient, spec: Any) -> None:
    response = await client.post("/_emulator/faults", json=spec)
    assert response.status_code == 400 and response.json()["message"]


@pytest.mark.e2e
async def test_drop_after_accept_breaks_the_response_over_a_socket(caplog: pytest.LogCaptureFixture) -> None:
    with running() as emulator:
        state = emulator.state
        created = state.create_channel()
        token = state.issue_long_lived(created.channel_id)
        state.add_fault({"path": PUSH, "mode": "drop_after_accept"})
        key = retry_key()
        headers = {"Authorization": f"Bearer {token}", "X-Line-Retry-Key": key}
        caplog.set_level(logging.INFO)
        async with aiohttp.ClientSession(trust_env=False) as session:
            with pytest.raises((aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError)):
                async with session.post(emulator.url + PUSH, json=BODY, headers=headers) as response:
                    await response.read()
            # Accepted before the drop: delivered once, and the retry is a 409.
            assert len(state.deliveries()) == 1
            async with session.post(emulator.url + PUSH, json=BODY, headers=headers) as retry:
                assert retry.status == 409
                accepted = await retry.json()
            assert accepted["sentMessages"]
            assert retry.headers["x-line-accepted-request-id"] == state.deliveries()[0]["request_id"]
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    assert not [r for r in caplog.records if "without completing" in r.getMessage()]


async def test_drop_fault_answers_normally_when_not_accepted(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    await add_fault(client, path=PUSH, mode="drop_after_accept")
    refused = await client.post(PUSH, json={"to": user_id()}, headers=auth)
    assert refused.status_code == 400 and refused.json()["message"].startswith("The request body has")


async def test_short_lived_helper_still_works_under_fault_free_run(
    client: httpx.AsyncClient, channel: Channel
) -> None:
    assert await short_lived(client, channel)
