"""Messaging endpoints: sends, LINE's error bodies, validation, retry keys, recipients and quota."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import httpx
import pytest
from emulator_kit import Channel, FakeClock, retry_key, short_lived, user_id

from linepush.emulator import EmulatorState

PUSH = "/v2/bot/message/push"
TEXT = {"type": "text", "text": "Hello, world"}
UNAUTHORIZED = {
    "message": "Authentication failed due to the following reason: invalid token. "
    "Confirm that the access token in the authorization header is valid."
}


def errors(*details: tuple[str, str]) -> dict[str, Any]:
    return {
        "message": f"The request body has {len(details)} error(s)",
        "details": [{"message": m, "property": p} for m, p in details],
    }


async def push(
    client: httpx.AsyncClient, auth: dict[str, str], body: Any, key: str | None = None
) -> httpx.Response:
    headers = dict(auth)
    if key is not None:
        headers["X-Line-Retry-Key"] = key
    return await client.post(PUSH, json=body, headers=headers)


# ---- success shapes -------------------------------------------------------------------------------------
async def test_push_answers_sent_messages(
    client: httpx.AsyncClient, auth: dict[str, str], state: EmulatorState
) -> None:
    messages = [
        TEXT,
        {"type": "sticker", "packageId": "446", "stickerId": "1988"},
        {"type": "location", "title": "t", "address": "a", "latitude": 1.0, "longitude": 2.0},
    ]
    response = await push(client, auth, {"to": user_id(1), "messages": messages})
    assert response.status_code == 200
    sent = response.json()["sentMessages"]
    assert len(sent) == 3
    assert all(re.fullmatch(r"[1-9][0-9]{17}", m["id"]) for m in sent)
    assert "quoteToken" in sent[0] and "quoteToken" in sent[1] and "quoteToken" not in sent[2]
    uuid.UUID(response.headers["x-line-request-id"])
    (delivery,) = state.deliveries(to=user_id(1))
    assert delivery["endpoint"] == "push" and delivery["messages"] == messages
    assert delivery["request_id"] == response.headers["x-line-request-id"]
    assert delivery["delivered_to"] == [user_id(1)]


async def test_every_response_has_a_fresh_request_id(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    ids = set()
    for _ in range(3):
        for response in (
            await push(client, auth, {"to": user_id(), "messages": [TEXT]}),
            await client.get("/v2/bot/message/quota"),
            await client.post("/v2/oauth/verify", data={}),
            await client.get("/nowhere"),
        ):
            ids.add(response.headers["x-line-request-id"])
    assert len(ids) == 12


@pytest.mark.parametrize("to", ["C" + "0" * 32, "R" + "f" * 32])
async def test_push_to_group_and_room(client: httpx.AsyncClient, auth: dict[str, str], to: str) -> None:
    assert (await push(client, auth, {"to": to, "messages": [TEXT]})).status_code == 200


async def test_multicast_broadcast_narrowcast(
    client: httpx.AsyncClient, auth: dict[str, str], state: EmulatorState, channel: Channel
) -> None:
    for n in range(3):
        state.set_recipient(channel.channel_id, user_id(n), "friend")
    state.set_recipient(channel.channel_id, user_id(9), "blocked")
    multi = await client.post(
        "/v2/bot/message/multicast", json={"to": [user_id(0), user_id(9)], "messages": [TEXT]}, headers=auth
    )
    assert (multi.status_code, multi.json()) == (200, {})
    broad = await client.post("/v2/bot/message/broadcast", json={"messages": [TEXT]}, headers=auth)
    assert (broad.status_code, broad.json()) == (200, {})
    narrow = await client.post("/v2/bot/message/narrowcast", json={"messages": [TEXT]}, headers=auth)
    assert (narrow.status_code, narrow.json()) == (202, {})
    found = state.deliveries(channel_id=channel.channel_id)
    assert [d["endpoint"] for d in found] == ["multicast", "broadcast", "narrowcast"]
    assert found[0]["to"] == [user_id(0), user_id(9)] and found[0]["delivered_to"] == [user_id(0)]
    assert found[1]["to"] == [] and sorted(found[1]["delivered_to"]) == [user_id(n) for n in range(3)]
    assert [d["endpoint"] for d in state.deliveries(to=user_id(1))] == ["broadcast", "narrowcast"]
    usage = (await client.get("/v2/bot/message/quota/consumption", headers=auth)).json()
    assert usage == {"totalUsage": 1 + 3 + 3}
    progress = await client.get(
        "/v2/bot/message/progress/narrowcast",
        params={"requestId": narrow.headers["x-line-request-id"]},
        headers=auth,
    )
    assert progress.json()["phase"] == "succeeded" and progress.json()["successCount"] == 3
    unknown = await client.get("/v2/bot/message/progress/narrowcast", params={"requestId": "x"}, headers=auth)
    assert (unknown.status_code, unknown.json()) == (404, {"message": "Not found"})


async def test_narrowcast_forbid_partial_needs_up_to_remaining(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await client.post(
        "/v2/bot/message/narrowcast",
        json={"messages": [TEXT], "limit": {"max": 10, "forbidPartialDelivery": True}},
        headers=auth,
    )
    assert response.json() == {
        "message": "The option forbidPartialDelivery must be used with upToRemainingQuota."
    }


# ---- authentication -------------------------------------------------------------------------------------
async def test_missing_unknown_expired_revoked_tokens_get_401(
    client: httpx.AsyncClient, channel: Channel, token: str, clock: FakeClock
) -> None:
    body = {"to": user_id(), "messages": [TEXT]}
    assert (await client.post(PUSH, json=body)).json() == UNAUTHORIZED
    for header in ("Bearer nope", "Basic abc", token, ""):
        response = await client.post(PUSH, json=body, headers={"Authorization": header})
        assert (response.status_code, response.json()) == (401, UNAUTHORIZED)
    other = await short_lived(client, channel)
    await client.post("/v2/oauth/revoke", data={"access_token": other})
    revoked = await client.post(PUSH, json=body, headers={"Authorization": f"Bearer {other}"})
    assert (revoked.status_code, revoked.json()) == (401, UNAUTHORIZED)
    assert (
        await client.post(PUSH, json=body, headers={"Authorization": f"Bearer {token}"})
    ).status_code == 200
    clock.now += 30 * 86400
    expired = await client.post(PUSH, json=body, headers={"Authorization": f"Bearer {token}"})
    assert (expired.status_code, expired.json()) == (401, UNAUTHORIZED)


async def test_every_token_kind_sends(client: httpx.AsyncClient, channel: Channel, sign: Any) -> None:
    from emulator_kit import JWT_TYPE

    v21 = await client.post(
        "/oauth2/v2.1/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": JWT_TYPE,
            "client_assertion": sign(),
        },
    )
    v3 = await client.post(
        "/oauth2/v3/token",
        data={
            "grant_type": "client_credentials",
            "client_id": channel.channel_id,
            "client_secret": channel.channel_secret,
        },
    )
    long_lived = await client.post(f"/_emulator/channels/{channel.channel_id}/long-lived-token")
    for response in (v21, v3, long_lived):
        token = response.json()["access_token"]
        sent = await push(client, {"Authorization": f"Bearer {token}"}, {"to": user_id(), "messages": [TEXT]})
        assert sent.status_code == 200


# ---- transport-level errors -------------------------------------------------------------------------------
async def test_wrong_content_type_is_415(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    body = json.dumps({"to": user_id(), "messages": [TEXT]})
    for content_type in ("text/plain", "application/x-www-form-urlencoded"):
        response = await client.post(PUSH, content=body, headers={**auth, "Content-Type": content_type})
        assert (response.status_code, response.json()) == (
            415,
            {"message": f"The content type, {content_type}, is not supported"},
        )
    with_charset = await client.post(
        PUSH, content=body, headers={**auth, "Content-Type": "application/json; charset=UTF-8"}
    )
    assert with_charset.status_code == 200


async def test_body_over_2_mb_is_413(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    big = json.dumps({"to": user_id(), "messages": [{"type": "text", "text": "x" * (2 * 1024 * 1024)}]})
    response = await client.post(PUSH, content=big, headers={**auth, "Content-Type": "application/json"})
    assert response.status_code == 413 and "message" in response.json()

    async def chunks() -> Any:  # no content-length: the limit holds while streaming too
        for _ in range(3):
            yield b"x" * (1024 * 1024)

    streamed = await client.post(PUSH, content=chunks(), headers={**auth, "Content-Type": "application/json"})
    assert streamed.status_code == 413


@pytest.mark.parametrize(
    ("raw", "line", "column"),
    [("{", 1, 2), ('{"to": "U",\n  "messages": [}', 2, 16), ("", 1, 1), ("nul", 1, 1)],
)
async def test_unparseable_json(
    client: httpx.AsyncClient, auth: dict[str, str], raw: str, line: int, column: int
) -> None:
    response = await client.post(PUSH, content=raw, headers={**auth, "Content-Type": "application/json"})
    assert (response.status_code, response.json()) == (
        400,
        {"message": f"The request body could not be parsed as JSON (line: {line}, column: {column})"},
    )


async def test_unknown_path_and_wrong_method(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    # A path the emulator does not serve is said so, after authentication; never LINE's own 404.
    assert (await client.get("/v2/bot/nothing")).status_code == 401
    unserved = await client.get("/v2/bot/nothing", headers=auth)
    assert (unserved.status_code, unserved.json()) == (
        501,
        {"message": "GET /v2/bot/nothing is not served by the linepush emulator"},
    )
    assert (await client.get(PUSH, headers=auth)).status_code == 405


# ---- body validation --------------------------------------------------------------------------------------
async def test_six_messages(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    response = await push(client, auth, {"to": user_id(), "messages": [TEXT] * 6})
    assert response.json() == errors(("Size must be between 1 and 5", "messages"))
    empty = await push(client, auth, {"to": user_id(), "messages": []})
    assert empty.json() == errors(("Size must be between 1 and 5", "messages"))


async def test_text_length_counts_utf16_units(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    ok = await push(client, auth, {"to": user_id(), "messages": [{"type": "text", "text": "🍎" * 2500}]})
    assert ok.status_code == 200
    long = await push(
        client, auth, {"to": user_id(), "messages": [{"type": "text", "text": "🍎" * 2500 + "a"}]}
    )
    assert long.json() == errors(("Length must be between 0 and 5000", "messages[0].text"))


async def test_several_errors_are_counted(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    response = await push(
        client, auth, {"to": user_id(), "messages": [{"type": "text", "text": ""}, {"type": "poem"}]}
    )
    types = "[text, textV2, sticker, image, video, audio, location, imagemap, template, flex, coupon]"
    assert response.status_code == 400
    assert response.json() == errors(
        ("May not be empty", "messages[0].text"),
        (f"Must be one of the following values: {types}", "messages[1].type"),
    )
    missing = await push(client, auth, {"messages": [{}]})
    assert missing.json() == errors(("May not be empty", "to"), ("May not be empty", "messages[0].type"))


@pytest.mark.parametrize(
    ("body", "prop"),
    [
        ({"to": 5, "messages": [TEXT]}, "to"),
        ({"to": user_id(), "messages": "hi"}, "messages"),
        ({"to": user_id(), "messages": ["hi"]}, "messages[0]"),
        ({"to": user_id(), "messages": [{"type": "text", "text": ["x"]}]}, "messages[0].text"),
        ({"to": user_id(), "messages": [TEXT], "notificationDisabled": "yes"}, "notificationDisabled"),
        ({"to": "U123", "messages": [TEXT]}, "to"),
        ({"to": "u" + "0" * 32, "messages": [TEXT]}, "to"),
    ],
)
async def test_wrong_types_and_ids_are_invalid_properties(
    client: httpx.AsyncClient, auth: dict[str, str], body: Any, prop: str
) -> None:
    response = await push(client, auth, body)
    assert (response.status_code, response.json()) == (
        400,
        {"message": f"The property, {prop}, in the request body is invalid (line: -, column: -)"},
    )


@pytest.mark.parametrize(
    ("message", "missing"),
    [
        ({"type": "text"}, ["text"]),
        ({"type": "textV2"}, ["text"]),
        ({"type": "sticker"}, ["packageId", "stickerId"]),
        ({"type": "image"}, ["originalContentUrl", "previewImageUrl"]),
        ({"type": "video"}, ["originalContentUrl", "previewImageUrl"]),
        ({"type": "audio"}, ["originalContentUrl", "duration"]),
        ({"type": "location"}, ["title", "address", "latitude", "longitude"]),
        ({"type": "imagemap"}, ["baseUrl", "altText", "baseSize", "actions"]),
        ({"type": "template"}, ["altText", "template"]),
        ({"type": "flex"}, ["altText", "contents"]),
        ({"type": "coupon"}, ["couponId"]),
    ],
)
async def test_required_fields_of_each_type(
    client: httpx.AsyncClient, auth: dict[str, str], message: dict[str, Any], missing: list[str]
) -> None:
    response = await client.post("/v2/bot/message/validate/push", json={"messages": [message]}, headers=auth)
    body = response.json()
    assert response.status_code == 400
    assert [d["property"] for d in body["details"]] == [f"messages[0].{f}" for f in missing]
    assert body["message"] == f"The request body has {len(missing)} error(s)"


@pytest.mark.parametrize(
    "message",
    [
        {
            "type": "textV2",
            "text": "Hi {u}",
            "substitution": {"u": {"type": "mention", "mentionee": {"type": "all"}}},
        },
        {"type": "image", "originalContentUrl": "https://e.x/a.jpg", "previewImageUrl": "https://e.x/p.jpg"},
        {"type": "video", "originalContentUrl": "https://e.x/a.mp4", "previewImageUrl": "https://e.x/p.jpg"},
        {"type": "audio", "originalContentUrl": "https://e.x/a.m4a", "duration": 6000},
        {
            "type": "imagemap",
            "baseUrl": "https://e.x/map",
            "altText": "map",
            "baseSize": {"width": 1040, "height": 1040},
            "actions": [
                {"type": "uri", "linkUri": "https://e.x", "area": {"x": 0, "y": 0, "width": 10, "height": 10}}
            ],
        },
        {
            "type": "template",
            "altText": "t",
            "template": {
                "type": "confirm",
                "text": "Sure?",
                "actions": [
                    {"type": "message", "label": "Yes", "text": "yes"},
                    {"type": "postback", "label": "No", "data": "n"},
                ],
            },
        },
        {
            "type": "flex",
            "altText": "f",
            "contents": {"type": "bubble", "body": {"type": "box", "layout": "vertical", "contents": []}},
        },
        {"type": "coupon", "couponId": "c1", "deliveryTag": "spring_2027"},
        {
            "type": "text",
            "text": "$ LINE emoji $",
            "emojis": [
                {"index": 0, "productId": "p", "emojiId": "001"},
                {"index": 13, "productId": "p", "emojiId": "002"},
            ],
        },
        {
            "type": "text",
            "text": "q",
            "quickReply": {"items": [{"type": "action", "action": {"type": "camera", "label": "Cam"}}]},
        },
    ],
)
async def test_valid_messages_of_each_type(
    client: httpx.AsyncClient, auth: dict[str, str], message: dict[str, Any]
) -> None:
    for kind in ("push", "multicast", "broadcast", "narrowcast", "reply"):
        response = await client.post(
            f"/v2/bot/message/validate/{kind}", json={"messages": [message]}, headers=auth
        )
        assert (response.status_code, response.json()) == (200, {}), response.text


@pytest.mark.parametrize(
    ("message", "prop"),
    [
        (
            {"type": "text", "text": "no dollar", "emojis": [{"index": 0, "productId": "p", "emojiId": "1"}]},
            "messages[0].emojis[0].index",
        ),
        (
            {
                "type": "image",
                "originalContentUrl": "http://e.x/a.jpg",
                "previewImageUrl": "https://e.x/p.jpg",
            },
            "messages[0].originalContentUrl",
        ),
        (
            {"type": "template", "altText": "t", "template": {"type": "confirm", "text": "?", "actions": []}},
            "messages[0].template.actions",
        ),
        (
            {
                "type": "imagemap",
                "baseUrl": "https://e.x",
                "altText": "a",
                "baseSize": {"width": 1000, "height": 1},
                "actions": [],
            },
            "messages[0].baseSize.width",
        ),
        ({"type": "flex", "altText": "a" * 1501, "contents": {"type": "bubble"}}, "messages[0].altText"),
        ({"type": "textV2", "text": "Hi {who}"}, "messages[0].text"),
        ({"type": "coupon", "couponId": "c", "deliveryTag": "bad tag"}, "messages[0].deliveryTag"),
        (
            {"type": "text", "text": "q", "quickReply": {"items": [{"type": "action"}] * 14}},
            "messages[0].quickReply.items",
        ),
    ],
)
async def test_rule_violations(
    client: httpx.AsyncClient, auth: dict[str, str], message: dict[str, Any], prop: str
) -> None:
    response = await client.post("/v2/bot/message/validate/push", json={"messages": [message]}, headers=auth)
    assert response.status_code == 400
    assert prop in [d["property"] for d in response.json()["details"]]


async def test_validate_endpoints(
    client: httpx.AsyncClient, auth: dict[str, str], state: EmulatorState
) -> None:
    ok = await client.post("/v2/bot/message/validate/push", json={"messages": [TEXT]}, headers=auth)
    assert (ok.status_code, ok.json()) == (200, {})
    long = await client.post(
        "/v2/bot/message/validate/broadcast",
        json={"messages": [{"type": "text", "text": "x" * 5001}]},
        headers=auth,
    )
    assert long.json() == errors(("Length must be between 0 and 5000", "messages[0].text"))
    unknown = await client.post("/v2/bot/message/validate/sideways", json={"messages": [TEXT]}, headers=auth)
    assert unknown.status_code == 501
    assert state.deliveries() == []


async def test_multicast_rules(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    url = "/v2/bot/message/multicast"
    group = await client.post(url, json={"to": [user_id(), "C" + "0" * 32], "messages": [TEXT]}, headers=auth)
    assert group.json() == {
        "message": "The property, to[1], in the request body is invalid (line: -, column: -)"
    }
    too_many = await client.post(
        url, json={"to": [user_id(n) for n in range(501)], "messages": [TEXT]}, headers=auth
    )
    assert too_many.json() == errors(("Size must be between 1 and 500", "to"))
    none = await client.post(url, json={"to": [], "messages": [TEXT]}, headers=auth)
    assert none.json() == errors(("Size must be between 1 and 500", "to"))
    full = await client.post(
        url, json={"to": [user_id(n) for n in range(500)], "messages": [TEXT]}, headers=auth
    )
    assert full.status_code == 200


# ---- retry keys -----------------------------------------------------------------------------------------
async def test_push_retry_key_conflict_repeats_sent_messages(
    client: httpx.AsyncClient, auth: dict[str, str], state: EmulatorState
) -> None:
    key = retry_key()
    body = {"to": user_id(), "messages": [TEXT]}
    first = await push(client, auth, body, key)
    second = await push(client, auth, body, key.upper())
    assert second.status_code == 409
    assert second.json() == {
        "message": "The retry key is already accepted",
        "sentMessages": first.json()["sentMessages"],
    }
    assert second.headers["x-line-accepted-request-id"] == first.headers["x-line-request-id"]
    assert second.headers["x-line-request-id"] != first.headers["x-line-request-id"]
    assert len(state.deliveries()) == 1
    assert state.deliveries()[0]["retry_key"] == key


@pytest.mark.parametrize("endpoint", ["multicast", "broadcast", "narrowcast"])
async def test_retry_key_conflict_on_other_sends(
    client: httpx.AsyncClient, auth: dict[str, str], endpoint: str
) -> None:
    body: dict[str, Any] = {"messages": [TEXT]}
    if endpoint == "multicast":
        body["to"] = [user_id()]
    key = retry_key()
    url = f"/v2/bot/message/{endpoint}"
    first = await client.post(url, json=body, headers={**auth, "X-Line-Retry-Key": key})
    assert first.status_code in (200, 202)
    again = await client.post(url, json=body, headers={**auth, "X-Line-Retry-Key": key})
    assert (again.status_code, again.json()) == (409, {"message": "The retry key is already accepted"})
    assert again.headers["x-line-accepted-request-id"] == first.headers["x-line-request-id"]
    # A push under that key gets the accepted request's own answer: that send had no sentMessages, so none
    # are invented (LINE's schema has at least one item whenever sentMessages is present).
    as_push = await push(client, auth, {"to": user_id(), "messages": [TEXT]}, key)
    assert (as_push.status_code, as_push.json()) == (409, {"message": "The retry key is already accepted"})


async def test_retry_key_must_be_uuid_and_only_on_sends(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    bad = await push(client, auth, {"to": user_id(), "messages": [TEXT]}, "not-a-uuid")
    assert bad.status_code == 400 and "message" in bad.json()
    for method, url, body in (
        ("POST", "/v2/bot/message/validate/push", {"messages": [TEXT]}),
        ("GET", "/v2/bot/message/quota", None),
        ("GET", "/v2/bot/message/quota/consumption", None),
    ):
        response = await client.request(
            method, url, json=body, headers={**auth, "X-Line-Retry-Key": retry_key()}
        )
        assert response.status_code == 400, url


async def test_failed_attempt_leaves_the_key_usable(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    key = retry_key()
    failed = await push(client, auth, {"to": user_id(), "messages": [{"type": "text"}]}, key)
    assert failed.status_code == 400
    ok = await push(client, auth, {"to": user_id(), "messages": [TEXT]}, key)
    assert ok.status_code == 200
    assert (await push(client, auth, {"to": user_id(), "messages": [TEXT]}, key)).status_code == 409


async def test_retry_key_window_is_24_hours(
    client: httpx.AsyncClient, auth: dict[str, str], clock: FakeClock, state: EmulatorState
) -> None:
    key = retry_key()
    body = {"to": user_id(), "messages": [TEXT]}
    assert (await push(client, auth, body, key)).status_code == 200
    clock.now += 86400 - 1
    assert (await push(client, auth, body, key)).status_code == 409
    clock.now += 1
    assert (await push(client, auth, body, key)).status_code == 200
    assert len(state.deliveries()) == 2


async def test_retry_keys_are_scoped_per_channel(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    other = (await client.post("/_emulator/channels", json={})).json()
    other_token = await short_lived(client, Channel(other["channel_id"], other["channel_secret"], ""))
    key = retry_key()
    body = {"to": user_id(), "messages": [TEXT]}
    assert (await push(client, auth, body, key)).status_code == 200
    assert (await push(client, {"Authorization": f"Bearer {other_token}"}, body, key)).status_code == 200


# ---- recipients and quota -----------------------------------------------------------------------------
async def test_unknown_and_blocked_recipients(
    client: httpx.AsyncClient, auth: dict[str, str], channel: Channel, state: EmulatorState
) -> None:
    await client.post(
        f"/_emulator/channels/{channel.channel_id}/recipients", json={"id": user_id(1), "state": "unknown"}
    )
    await client.post(
        f"/_emulator/channels/{channel.channel_id}/recipients", json={"id": user_id(2), "state": "blocked"}
    )
    unknown = await push(client, auth, {"to": user_id(1), "messages": [TEXT]})
    assert (unknown.status_code, unknown.json()) == (400, {"message": "Failed to send messages"})
    multi = await client.post(
        "/v2/bot/message/multicast", json={"to": [user_id(3), user_id(1)], "messages": [TEXT]}, headers=auth
    )
    assert multi.json() == {
        "message": "The property, to[1], in the request body is invalid (line: -, column: -)"
    }
    blocked = await push(client, auth, {"to": user_id(2), "messages": [TEXT, TEXT]})
    assert blocked.status_code == 200 and len(blocked.json()["sentMessages"]) == 2
    (delivery,) = state.deliveries()
    assert delivery["to"] == [user_id(2)] and delivery["delivered_to"] == []
    assert (await client.get("/v2/bot/message/quota/consumption", headers=auth)).json() == {"totalUsage": 0}


async def test_quota_counts_recipients_and_refuses_over_limit(
    client: httpx.AsyncClient, state: EmulatorState, clock: FakeClock
) -> None:
    created = (await client.post("/_emulator/channels", json={"monthly_quota": 3})).json()
    token = state.issue_long_lived(created["channel_id"])  # outlives the month change below
    auth = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/v2/bot/message/quota", headers=auth)).json() == {"type": "limited", "value": 3}
    assert (await push(client, auth, {"to": user_id(), "messages": [TEXT, TEXT, TEXT]})).status_code == 200
    multi = await client.post(
        "/v2/bot/message/multicast",
        json={"to": [user_id(1), user_id(2), user_id(3)], "messages": [TEXT]},
        headers=auth,
    )
    assert (multi.status_code, multi.json()) == (429, {"message": "You have reached your monthly limit."})
    assert (await client.get("/v2/bot/message/quota/consumption", headers=auth)).json() == {"totalUsage": 1}
    assert len(state.deliveries()) == 1
    ok = await client.post(
        "/v2/bot/message/multicast", json={"to": [user_id(1), user_id(2)], "messages": [TEXT]}, headers=auth
    )
    assert ok.status_code == 200
    refused = await push(client, auth, {"to": user_id(), "messages": [TEXT]})
    assert refused.status_code == 429
    clock.now += 31 * 86400  # next month: the count starts again
    assert (await client.get("/v2/bot/message/quota/consumption", headers=auth)).json() == {"totalUsage": 0}
    assert (await push(client, auth, {"to": user_id(), "messages": [TEXT]})).status_code == 200


async def test_unlimited_quota_by_default(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    assert (await client.get("/v2/bot/message/quota", headers=auth)).json() == {"type": "none"}


# ---- reply ----------------------------------------------------------------------------------------------
async def test_reply_with_a_reply_token(
    client: httpx.AsyncClient, auth: dict[str, str], channel: Channel, clock: FakeClock, state: EmulatorState
) -> None:
    url = f"/_emulator/channels/{channel.channel_id}/reply-tokens"
    reply_token = (await client.post(url, json={"to": user_id(4)})).json()["replyToken"]
    body = {"replyToken": reply_token, "messages": [TEXT]}
    with_key = await client.post(
        "/v2/bot/message/reply", json=body, headers={**auth, "X-Line-Retry-Key": retry_key()}
    )
    assert with_key.status_code == 400  # retry keys are refused on reply (FACTS §3.7)
    replied = await client.post("/v2/bot/message/reply", json=body, headers=auth)
    assert replied.status_code == 200 and len(replied.json()["sentMessages"]) == 1
    assert state.deliveries(to=user_id(4))[0]["endpoint"] == "reply"
    assert (await client.get("/v2/bot/message/quota/consumption", headers=auth)).json() == {"totalUsage": 0}
    used = await client.post("/v2/bot/message/reply", json=body, headers=auth)
    assert (used.status_code, used.json()) == (400, {"message": "Invalid reply token"})
    stale = (await client.post(url, json={"to": user_id(4)})).json()["replyToken"]
    clock.now += 60
    expired = await client.post(
        "/v2/bot/message/reply", json={"replyToken": stale, "messages": [TEXT]}, headers=auth
    )
    assert expired.json() == {"message": "Invalid reply token"}
    missing = await client.post("/v2/bot/message/reply", json={"messages": [TEXT]}, headers=auth)
    assert missing.json() == errors(("May not be empty", "replyToken"))
    assert (await client.post(url, json={"to": "nobody"})).status_code == 400
