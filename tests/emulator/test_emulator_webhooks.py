"""Simulated users: webhook events as LINE sends them, signed, delivered to a bot on a loopback socket, and
accepted by the official SDK's parser; redelivery; the webhook endpoint API."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import pytest
import yaml
from emulator_kit import Channel, FakeClock, LoopbackBot, user_id
from linebot.v3 import WebhookParser  # type: ignore[import-untyped]
from linebot.v3.webhooks import (  # type: ignore[import-untyped]
    FollowEvent,
    GroupSource,
    JoinEvent,
    MessageEvent,
    StickerMessageContent,
    TextMessageContent,
    UnfollowEvent,
)

from linepush.emulator import EmulatorState
from linepush.emulator.webhooks import signature

pytestmark = pytest.mark.e2e
GROUP = "C" + "ab" * 16
WEBHOOK_YML = Path(__file__).parent / "data" / "line-openapi" / "webhook.yml"
EVENT_SCHEMAS = {"message": "MessageEvent", "follow": "FollowEvent", "unfollow": "UnfollowEvent"}
EVENT_SCHEMAS |= {"join": "JoinEvent", "leave": "LeaveEvent"}
CONTENT_SCHEMAS = {"text": "TextMessageContent", "sticker": "StickerMessageContent"}
SOURCE_SCHEMAS = {"user": "UserSource", "group": "GroupSource", "room": "RoomSource"}


def conforms(payload: dict[str, Any]) -> None:
    """Check a webhook body against webhook.yml: the envelope, each event, its source and its message."""
    components = yaml.safe_load(WEBHOOK_YML.read_text())["components"]

    def check(name: str, value: Any) -> None:
        validator = jsonschema_rs.Draft4Validator(
            {"$ref": f"#/components/schemas/{name}", "components": components}
        )
        errors = [e.message for e in validator.iter_errors(value)]
        assert not errors, (name, value, errors)

    check("CallbackRequest", payload)
    for event in payload["events"]:
        check(EVENT_SCHEMAS[event["type"]], event)
        check(SOURCE_SCHEMAS[event["source"]["type"]], event["source"])
        if "message" in event:
            check(CONTENT_SCHEMAS[event["message"]["type"]], event["message"])


def test_signature_matches_the_documented_vector() -> None:
    body = b'{"destination":"U8e742f61d673b39c7fff3cecb7536ef0","events":[]}'
    assert (
        signature("8c570fa6dd201bb328f1c1eac23a96d8", body) == "GhRKmvmHys4Pi8DxkF4+EayaH0OqtJtaZxgTD9fMDLs="
    )


async def _hook(client: httpx.AsyncClient, channel: Channel, url: str, **flags: bool) -> None:
    response = await client.put(
        f"/_emulator/channels/{channel.channel_id}/webhook", json={"url": url, **flags}
    )
    assert response.status_code == 200, response.text


async def _event(client: httpx.AsyncClient, channel: Channel, spec: dict[str, object]) -> dict[str, object]:
    response = await client.post(f"/_emulator/channels/{channel.channel_id}/events", json=spec)
    assert response.status_code == 200, response.text
    answer: dict[str, object] = response.json()
    return answer


async def test_users_talk_to_the_bot_through_signed_webhooks(
    client: httpx.AsyncClient, channel: Channel, state: EmulatorState, clock: FakeClock, auth: dict[str, str]
) -> None:
    parser = WebhookParser(channel.channel_secret)
    user = {"type": "user", "userId": user_id(7)}
    with LoopbackBot() as bot:
        await _hook(client, channel, bot.url)
        follow = await _event(client, channel, {"type": "follow", "source": user})
        text = await _event(
            client,
            channel,
            {"type": "message", "source": user, "message": {"type": "text", "text": "hi 🍎\nthere"}},
        )
        sticker = await _event(
            client,
            channel,
            {
                "type": "message",
                "source": user,
                "message": {"type": "sticker", "packageId": "446", "stickerId": "1988"},
            },
        )
        await _event(client, channel, {"type": "unfollow", "source": user})
        await _event(client, channel, {"type": "join", "source": {"type": "group", "groupId": GROUP}})
        await _event(
            client,
            channel,
            {
                "type": "message",
                "source": {"type": "group", "groupId": GROUP, "userId": user_id(8)},
                "message": {"type": "text", "text": "yo"},
            },
        )
    assert follow["status"] == 200 and follow["attempts"] == [
        {"status": 200, "reason": "OK", "isRedelivery": False}
    ]
    parsed = []
    for headers, body in bot.received:
        # The SDK checks the signature over the body exactly as sent, and parses every event.
        assert headers["content-type"].startswith("application/json")
        conforms(json.loads(body))
        payload = parser.parse(body.decode("utf-8"), headers["x-line-signature"], as_payload=True)
        assert payload.destination == state.channels[channel.channel_id].bot_user_id
        parsed.extend(payload.events)
    assert [type(e) for e in parsed] == [
        FollowEvent,
        MessageEvent,
        MessageEvent,
        UnfollowEvent,
        JoinEvent,
        MessageEvent,
    ]
    assert isinstance(parsed[1].message, TextMessageContent) and parsed[1].message.text == "hi 🍎\nthere"
    assert isinstance(parsed[2].message, StickerMessageContent) and parsed[2].message.sticker_id == "1988"
    assert isinstance(parsed[5].source, GroupSource) and parsed[5].source.user_id == user_id(8)
    assert all(e.timestamp == int(clock.now * 1000) and e.mode == "active" for e in parsed)
    assert all(not e.delivery_context.is_redelivery and len(e.webhook_event_id) == 26 for e in parsed)
    assert json.loads(bot.received[1][1])["events"][0] == text["event"]
    assert sticker["event"]["replyToken"] != text["event"]["replyToken"]  # type: ignore[index]

    # What the events did: the user followed then blocked; the group has the bot and one member.
    profile = await client.get(f"/v2/bot/profile/{user_id(7)}", headers=auth)
    assert profile.status_code == 404
    count = await client.get(f"/v2/bot/group/{GROUP}/members/count", headers=auth)
    assert count.json() == {"count": 1}
    reply = await client.post(
        "/v2/bot/message/reply",
        json={"replyToken": text["event"]["replyToken"], "messages": [{"type": "text", "text": "back"}]},  # type: ignore[index]
        headers=auth,
    )
    assert reply.status_code == 200 and state.deliveries()[-1]["to"] == [user_id(7)]
    items = state.timeline()["items"]
    kinds = [(i["kind"], i["chats"]) for i in items if i["kind"] != "webhook"]
    assert kinds[:2] == [("event", [user_id(7)])] * 2
    assert kinds[-1] == ("sent", [user_id(7)])
    # Each event's outcome follows it, and the event itself carries it once known.
    outcome = {"status": 200, "attempts": follow["attempts"]}
    assert (items[1]["kind"], items[1]["of"], items[1]["webhook"]) == ("webhook", 1, outcome)
    assert items[0]["webhook"] == outcome


async def test_failed_webhooks_are_redelivered_when_redelivery_is_on(
    client: httpx.AsyncClient, channel: Channel
) -> None:
    spec = {
        "type": "message",
        "source": {"type": "user", "userId": user_id()},
        "message": {"type": "text", "text": "x"},
    }
    with LoopbackBot(statuses=(500, 502, 200)) as bot:
        await _hook(client, channel, bot.url, redelivery=True)
        answer = await _event(client, channel, spec)
    assert [a["isRedelivery"] for a in answer["attempts"]] == [False, True, True]  # type: ignore[union-attr]
    assert [a["status"] for a in answer["attempts"]] == [500, 502, 200] and answer["status"] == 200  # type: ignore[union-attr]
    events = [json.loads(body)["events"][0] for _, body in bot.received]
    assert [e["deliveryContext"]["isRedelivery"] for e in events] == [False, True, True]
    assert len({e["webhookEventId"] for e in events}) == 1  # the same event, delivered again

    with LoopbackBot(statuses=(500,)) as bot:
        await _hook(client, channel, bot.url, redelivery=False)
        once = await _event(client, channel, spec)
    assert once["status"] == 500 and len(bot.received) == 1


async def test_a_follow_after_an_unfollow_is_an_unblock(client: httpx.AsyncClient, channel: Channel) -> None:
    user = {"type": "user", "userId": user_id(3)}
    first = await _event(client, channel, {"type": "follow", "source": user})
    await _event(client, channel, {"type": "unfollow", "source": user})
    again = await _event(client, channel, {"type": "follow", "source": user})
    assert [e["event"]["follow"] for e in (first, again)] == [{"isUnblocked": False}, {"isUnblocked": True}]  # type: ignore[index]
    assert "replyToken" not in (await _event(client, channel, {"type": "unfollow", "source": user}))["event"]  # type: ignore[operator]


async def test_no_webhook_url_means_no_delivery(
    client: httpx.AsyncClient, channel: Channel, state: EmulatorState
) -> None:
    answer = await _event(
        client, channel, {"type": "follow", "source": {"type": "user", "userId": user_id()}}
    )
    assert answer["status"] is None and answer["attempts"] == []
    assert state.timeline()["items"][-1]["webhook"]["reason"] == "the channel has no active webhook URL"


@pytest.mark.parametrize(
    "spec",
    [
        {},
        {"type": "postback", "source": {"type": "user", "userId": user_id()}},
        {"type": "follow", "source": {"type": "group", "groupId": GROUP}},
        {"type": "join", "source": {"type": "user", "userId": user_id()}},
        {
            "type": "message",
            "source": {"type": "user", "userId": "U1"},
            "message": {"type": "text", "text": "x"},
        },
        {
            "type": "message",
            "source": {"type": "user", "userId": user_id()},
            "message": {"type": "text", "text": ""},
        },
        {"type": "message", "source": {"type": "user", "userId": user_id()}, "message": {"type": "image"}},
        {
            "type": "message",
            "source": {"type": "room", "roomId": GROUP},
            "message": {"type": "text", "text": "x"},
        },
    ],
)
async def test_bad_event_specs_are_refused(
    client: httpx.AsyncClient, channel: Channel, spec: dict[str, object]
) -> None:
    response = await client.post(f"/_emulator/channels/{channel.channel_id}/events", json=spec)
    assert response.status_code == 400 and response.json()["message"]


async def test_webhook_endpoint_api(
    client: httpx.AsyncClient, channel: Channel, auth: dict[str, str]
) -> None:
    endpoint = "/v2/bot/channel/webhook/endpoint"
    unset = await client.get(endpoint, headers=auth)
    assert (unset.status_code, unset.json()) == (404, {"message": "Not found"})
    untested = await client.post("/v2/bot/channel/webhook/test", headers=auth)
    assert untested.status_code == 400
    with LoopbackBot(statuses=(200, 403)) as bot:
        assert (await client.put(endpoint, json={"endpoint": bot.url}, headers=auth)).status_code == 200
        assert (await client.get(endpoint, headers=auth)).json() == {"endpoint": bot.url, "active": True}
        ok = (await client.post("/v2/bot/channel/webhook/test", headers=auth)).json()
        refused = (
            await client.post("/v2/bot/channel/webhook/test", json={"endpoint": bot.url}, headers=auth)
        ).json()
    assert (
        ok["success"] is True and ok["statusCode"] == 200 and ok["detail"] == "200" and ok["reason"] == "OK"
    )
    assert refused["success"] is False and refused["statusCode"] == 403
    headers, body = bot.received[0]
    assert json.loads(body)["events"] == []
    expected = base64.b64encode(
        hmac.new(channel.channel_secret.encode(), body, hashlib.sha256).digest()
    ).decode()
    assert headers["x-line-signature"] == expected
    closed = (
        await client.post("/v2/bot/channel/webhook/test", json={"endpoint": bot.url}, headers=auth)
    ).json()
    assert closed["success"] is False and closed["statusCode"] == 0
    for bad in ("ftp://x", "not a url", "http://", "https://x/" + "a" * 500, 5):
        response = await client.put(endpoint, json={"endpoint": bad}, headers=auth)
        assert response.status_code == 400, bad
