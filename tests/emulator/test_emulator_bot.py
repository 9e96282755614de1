"""The read endpoints a bot calls, refused sends in the inbox's timeline, and paths not served."""

from __future__ import annotations

import httpx
import pytest
from emulator_kit import START, Channel, FakeClock, retry_key, user_id

from linepush.emulator import EmulatorConfig, EmulatorState

TEXT = {"type": "text", "text": "hi"}
NOT_FOUND = {"message": "Not found"}


def group_id(n: int = 0) -> str:
    return "C" + f"{n:032x}"


async def test_bot_info(
    client: httpx.AsyncClient, auth: dict[str, str], state: EmulatorState, channel: Channel
) -> None:
    info = (await client.get("/v2/bot/info", headers=auth)).json()
    bot = state.channels[channel.channel_id]
    assert info == {
        "userId": bot.bot_user_id,
        "basicId": bot.basic_id,
        "displayName": "test",
        "chatMode": "bot",
        "markAsReadMode": "auto",
    }
    assert (await client.get("/v2/bot/info")).status_code == 401


async def test_profile_of_a_friend_and_404_for_others(
    client: httpx.AsyncClient, auth: dict[str, str], state: EmulatorState, channel: Channel
) -> None:
    state.set_recipient(channel.channel_id, user_id(1), "blocked")
    state.set_recipient(channel.channel_id, user_id(2), "unknown")
    friend = await client.get(f"/v2/bot/profile/{user_id(0)}", headers=auth)
    assert friend.json() == {"userId": user_id(0), "displayName": "User 0000", "language": "en"}
    for other in (user_id(1), user_id(2), "Unot-an-id", group_id()):
        response = await client.get(f"/v2/bot/profile/{other}", headers=auth)
        assert (response.status_code, response.json()) == (404, NOT_FOUND), other


async def test_groups_and_rooms(
    client: httpx.AsyncClient, auth: dict[str, str], state: EmulatorState, channel: Channel
) -> None:
    state.set_recipient(channel.channel_id, group_id(1), "unknown")
    summary = (await client.get(f"/v2/bot/group/{group_id()}/summary", headers=auth)).json()
    assert summary == {"groupId": group_id(), "groupName": "Group 0000"}
    state.chat(state.channels[channel.channel_id], group_id()).members.extend([user_id(0), user_id(1)])  # type: ignore[union-attr]
    count = await client.get(f"/v2/bot/group/{group_id()}/members/count", headers=auth)
    assert count.json() == {"count": 2}
    room = "R" + "0" * 32
    assert (await client.get(f"/v2/bot/room/{room}/members/count", headers=auth)).json() == {"count": 0}
    gone = await client.get(f"/v2/bot/group/{group_id(1)}/summary", headers=auth)
    assert (gone.status_code, gone.json()) == (404, NOT_FOUND)
    wrong_kind = await client.get(f"/v2/bot/room/{group_id()}/members/count", headers=auth)
    assert wrong_kind.status_code == 404


async def test_followers_are_paged(
    client: httpx.AsyncClient, auth: dict[str, str], state: EmulatorState, channel: Channel
) -> None:
    for n in range(5):
        state.set_recipient(channel.channel_id, user_id(n), "friend")
    state.set_recipient(channel.channel_id, user_id(2), "blocked")
    state.set_recipient(channel.channel_id, group_id(), "friend")
    first = (await client.get("/v2/bot/followers/ids", params={"limit": 3}, headers=auth)).json()
    assert first["userIds"] == [user_id(0), user_id(1), user_id(3)]
    rest = (await client.get("/v2/bot/followers/ids", params={"start": first["next"]}, headers=auth)).json()
    assert rest == {"userIds": [user_id(4)]}
    for bad in ({"limit": 0}, {"limit": 1001}, {"limit": "x"}, {"start": "%%%"}):
        assert (await client.get("/v2/bot/followers/ids", params=bad, headers=auth)).status_code == 400, bad


@pytest.mark.parametrize("config", [EmulatorConfig(delivery_stats_privacy_threshold=0)])
async def test_delivery_statistics_count_a_finished_day(
    client: httpx.AsyncClient, auth: dict[str, str], state: EmulatorState, clock: FakeClock
) -> None:
    for n in range(3):
        await client.post(
            "/v2/bot/message/push", json={"to": user_id(n), "messages": [TEXT, TEXT]}, headers=auth
        )
    # START is 2027-01-15 08:00 UTC, 17:00 in Japan (UTC+9, the statistics' time zone).
    today = "20270115"
    assert (
        await client.get("/v2/bot/message/delivery/push", params={"date": today}, headers=auth)
    ).json() == {"status": "unready"}
    clock.now = START + 86400
    push = await client.get("/v2/bot/message/delivery/push", params={"date": today}, headers=auth)
    assert push.json() == {"status": "ready", "success": 3}
    reply = await client.get("/v2/bot/message/delivery/reply", params={"date": today}, headers=auth)
    assert reply.json() == {"status": "ready", "success": 0}
    old = await client.get("/v2/bot/message/delivery/broadcast", params={"date": "20180330"}, headers=auth)
    assert old.json() == {"status": "out_of_service"}
    # Malformed dates (the wrong form, a month 13), refused whatever day it is.
    for bad in ({}, {"date": "2027-01-15"}, {"date": "20271345"}):  # fixed date ok
        response = await client.get("/v2/bot/message/delivery/multicast", params=bad, headers=auth)
        assert response.status_code == 400, bad


@pytest.mark.parametrize("config", [EmulatorConfig()])
async def test_small_counts_are_withheld_for_privacy(
    client: httpx.AsyncClient, auth: dict[str, str], clock: FakeClock
) -> None:
    await client.post("/v2/bot/message/push", json={"to": user_id(), "messages": [TEXT]}, headers=auth)
    clock.now = START + 86400
    stats = await client.get("/v2/bot/message/delivery/push", params={"date": "20270115"}, headers=auth)
    assert stats.json() == {"status": "unavailable_for_privacy"}


async def test_reply_tokens_are_single_use_and_expire(
    client: httpx.AsyncClient, auth: dict[str, str], state: EmulatorState, channel: Channel, clock: FakeClock
) -> None:
    token = state.issue_reply_token(channel.channel_id, user_id())
    body = {"replyToken": token, "messages": [TEXT]}
    assert (await client.post("/v2/bot/message/reply", json=body, headers=auth)).status_code == 200
    again = await client.post("/v2/bot/message/reply", json=body, headers=auth)
    assert (again.status_code, again.json()) == (400, {"message": "Invalid reply token"})
    late = state.issue_reply_token(channel.channel_id, user_id())
    clock.now += 60
    expired = await client.post("/v2/bot/message/reply", json={**body, "replyToken": late}, headers=auth)
    assert (expired.status_code, expired.json()) == (400, {"message": "Invalid reply token"})


async def test_unserved_paths_say_so_after_authentication(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    for method, path in (
        ("GET", "/v2/bot/richmenu/list"),
        ("POST", "/v2/bot/chat/loading/start"),
        ("DELETE", "/x"),
    ):
        assert (await client.request(method, path)).status_code == 401
        response = await client.request(method, path, headers=auth)
        assert response.status_code == 501
        assert response.json() == {"message": f"{method} {path} is not served by the linepush emulator"}
    assert (await client.delete("/v2/bot/info", headers=auth)).status_code == 405
    assert (await client.get("/_emulator/nothing")).status_code == 404


async def test_refused_and_repeated_sends_are_in_the_timeline(
    client: httpx.AsyncClient, auth: dict[str, str], state: EmulatorState, channel: Channel
) -> None:
    key = retry_key()
    headers = {**auth, "X-Line-Retry-Key": key}
    body = {"to": user_id(), "messages": [TEXT], "notificationDisabled": True}
    ok = await client.post("/v2/bot/message/push", json=body, headers=headers)
    repeat = await client.post("/v2/bot/message/push", json=body, headers=headers)
    bad = await client.post("/v2/bot/message/push", json={"to": user_id(), "messages": []}, headers=auth)
    items = state.timeline()["items"]
    assert [(i["kind"], i.get("status")) for i in items] == [
        ("sent", None),
        ("refused", 409),
        ("refused", 400),
    ]
    assert (
        items[0]["notification_disabled"] is True
        and items[0]["request_id"] == ok.headers["x-line-request-id"]
    )
    assert items[1]["request_id"] == repeat.headers["x-line-request-id"] and items[1]["retry_key"] == key
    assert items[1]["error"] == {
        "message": "The retry key is already accepted",
        "sentMessages": ok.json()["sentMessages"],
    }
    assert items[2]["error"] == bad.json() and items[2]["chats"] == [user_id()]
    assert all(i["channel_id"] == channel.channel_id for i in items)
    assert state.deliveries()[0]["notification_disabled"] is True
    assert state.timeline(after=2)["items"] == items[2:]
