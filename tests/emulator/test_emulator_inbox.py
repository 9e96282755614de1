"""The inbox's page and the timeline it polls, in-process: no secrets, a fresh start after a reset."""

from __future__ import annotations

import httpx
from emulator_kit import Channel, user_id

from linepush.emulator import EmulatorState


async def test_the_page_is_served_plain(client: httpx.AsyncClient) -> None:
    page = await client.get("/_emulator/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "Send text as this user" in page.text and "/_emulator/timeline" in page.text


async def test_the_timeline_shows_no_secret_or_token(
    client: httpx.AsyncClient, channel: Channel, auth: dict[str, str], token: str
) -> None:
    await client.post(
        "/v2/bot/message/push",
        json={"to": user_id(), "messages": [{"type": "text", "text": "x"}]},
        headers=auth,
    )
    await client.post("/v2/bot/message/push", json={"to": user_id()}, headers=auth)
    timeline = await client.get("/_emulator/timeline")
    assert timeline.headers["cache-control"] == "no-store"
    assert [i["kind"] for i in timeline.json()["items"]] == ["sent", "refused"]
    assert channel.channel_secret not in timeline.text and token not in timeline.text
    secret = await client.get(f"/_emulator/channels/{channel.channel_id}/secret")
    assert secret.json()["channel_secret"] == channel.channel_secret  # only when asked for by name


async def test_a_reset_starts_the_page_over(
    client: httpx.AsyncClient, state: EmulatorState, auth: dict[str, str]
) -> None:
    await client.post(
        "/v2/bot/message/push",
        json={"to": user_id(), "messages": [{"type": "text", "text": "x"}]},
        headers=auth,
    )
    before = (await client.get("/_emulator/timeline")).json()
    state.reset()
    after = (await client.get("/_emulator/timeline", params={"after": before["last"]})).json()
    assert after["generation"] != before["generation"] and after["last"] == 0 and after["items"] == []
    assert (await client.get("/_emulator/timeline", params={"after": "-1"})).status_code == 400
