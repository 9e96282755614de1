"""The webhook receiver: LINE's signature (with the documented test vector) and the ids it records."""

from __future__ import annotations

import json
from typing import Any

import pytest

from linepush.config import Channel
from linepush.service.store import RecipientSighting, gateway_store
from linepush.service.webhook import sightings, signature, signature_matches
from linepush.store import Store
from tests.service.conftest import CHANNEL_ID, GROUP, SECRET, START, USER, Clock, Gateway, make_gateway

# FACTS §6, from LINE's documentation.
VECTOR_BODY = b'{"destination":"U8e742f61d673b39c7fff3cecb7536ef0","events":[]}'
VECTOR_SIGNATURE = "GhRKmvmHys4Pi8DxkF4+EayaH0OqtJtaZxgTD9fMDLs="
ROOM = "R" + "5" * 32
OTHER_USER = "U" + "b" * 32


def test_the_documented_test_vector() -> None:
    assert signature(SECRET, VECTOR_BODY) == VECTOR_SIGNATURE
    assert signature_matches(SECRET, VECTOR_BODY, VECTOR_SIGNATURE)
    assert not signature_matches(SECRET, VECTOR_BODY + b" ", VECTOR_SIGNATURE)
    assert not signature_matches(SECRET[:-1] + "0", VECTOR_BODY, VECTOR_SIGNATURE)
    assert not signature_matches(SECRET, VECTOR_BODY, None)
    assert not signature_matches(SECRET, VECTOR_BODY, "")
    assert not signature_matches(SECRET, VECTOR_BODY, "ÿ" + VECTOR_SIGNATURE[1:])


def post(gateway: Gateway, body: bytes, sig: str | None) -> Any:
    headers = {"Content-Type": "application/json"}
    if sig is not None:
        headers["X-Line-Signature"] = sig
    return gateway.client.post("/webhook", content=body, headers=headers)


def signed(gateway: Gateway, payload: Any) -> Any:
    body = json.dumps(payload).encode()
    return post(gateway, body, signature(SECRET, body))


def test_the_documented_request_gets_200(gateway: Gateway) -> None:
    answer = post(gateway, VECTOR_BODY, VECTOR_SIGNATURE)
    assert answer.status_code == 200
    assert gateway_store(gateway.store).list_recipients() == []


def test_the_header_name_is_case_insensitive(gateway: Gateway) -> None:
    answer = gateway.client.post(
        "/webhook", content=VECTOR_BODY, headers={"x-line-signature": VECTOR_SIGNATURE}
    )
    assert answer.status_code == 200


EVENTS: dict[str, Any] = {
    "destination": "U" + "f" * 32,
    "events": [
        {
            "type": "follow",
            "mode": "active",
            "timestamp": int(START * 1000) - 1000,
            "source": {"type": "user", "userId": USER},
            "replyToken": "r1",
            "webhookEventId": "01H",
            "deliveryContext": {"isRedelivery": False},
        },
        {"type": "join", "source": {"type": "group", "groupId": GROUP}, "replyToken": "r2"},
        {
            "type": "message",
            "source": {"type": "room", "roomId": ROOM, "userId": OTHER_USER},
            "message": {"type": "text", "id": "1", "text": "hi"},
        },
        {
            "type": "memberJoined",
            "source": {"type": "group", "groupId": GROUP},
            "joined": {"members": [{"type": "user", "userId": "U" + "c" * 32}]},
        },
    ],
}


def test_ids_in_events_are_recorded_with_type_and_times(gateway: Gateway) -> None:
    assert signed(gateway, EVENTS).status_code == 200
    found = {r.recipient_id: r for r in gateway_store(gateway.store).list_recipients(CHANNEL_ID)}
    assert {i: (r.type, r.last_event_type) for i, r in found.items()} == {
        USER: ("user", "follow"),
        GROUP: ("group", "memberJoined"),
        ROOM: ("room", "message"),
        OTHER_USER: ("user", "message"),
        "U" + "c" * 32: ("user", "memberJoined"),
    }
    assert found[GROUP].sightings == 2
    assert {(r.first_seen_at, r.last_seen_at) for r in found.values()} == {(START, START)}


def test_a_later_event_moves_last_seen(gateway: Gateway) -> None:
    signed(gateway, EVENTS)
    gateway.clock.advance(60)
    signed(gateway, {"events": [{"type": "unfollow", "source": {"type": "user", "userId": USER}}]})
    (user,) = [r for r in gateway_store(gateway.store).list_recipients() if r.recipient_id == USER]
    assert (user.first_seen_at, user.last_seen_at, user.last_event_type) == (START, START + 60, "unfollow")


@pytest.mark.parametrize(
    "sig",
    [None, "", "not base64!", VECTOR_SIGNATURE, signature("0" * 32, json.dumps(EVENTS).encode())],
)
def test_a_bad_or_missing_signature_gets_401_and_nothing_is_recorded(
    gateway: Gateway, sig: str | None
) -> None:
    answer = post(gateway, json.dumps(EVENTS).encode(), sig)
    assert (answer.status_code, answer.json()["status"]) == (401, 401)
    assert gateway_store(gateway.store).list_recipients() == []


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"[]", b'{"events": {}}', b'{"destination": "U1"}', b"\xff\xfe", b"[" * 100_000],
)
def test_signed_but_malformed_bodies_get_400(gateway: Gateway, body: bytes) -> None:
    answer = post(gateway, body, signature(SECRET, body))
    assert answer.status_code == 400
    assert gateway_store(gateway.store).list_recipients() == []


def test_malformed_events_are_skipped_and_good_ones_kept() -> None:
    payload = {
        "events": [
            "junk",
            None,
            {"type": 5, "source": {"userId": USER}},
            {"type": "message", "source": {"userId": "U123", "groupId": ["C"]}},
            {"type": "message", "source": "user"},
            {"type": "memberJoined", "joined": {"members": "everyone"}},
            {"type": "x" * 500, "source": {"groupId": GROUP}},
        ]
    }
    assert sightings(payload) == [RecipientSighting(USER, "unknown"), RecipientSighting(GROUP, "x" * 64)]
    assert sightings([]) == [] and sightings({"events": None}) == []


def test_an_oversized_body_is_refused_before_anything(store: Store, channel: Channel) -> None:
    gateway = make_gateway(store, channel, Clock(), max_webhook_bytes=100)
    body = json.dumps(EVENTS).encode()
    assert post(gateway, body, signature(SECRET, body)).status_code == 413
    assert gateway_store(gateway.store).list_recipients() == []


def test_without_a_channel_secret_the_webhook_says_it_is_off(store: Store) -> None:
    gateway = make_gateway(store, Channel(CHANNEL_ID), Clock())
    answer = post(gateway, VECTOR_BODY, VECTOR_SIGNATURE)
    assert answer.status_code == 404
    assert "needs the channel secret" in answer.json()["message"]


def test_a_request_without_a_well_formed_signature_is_refused_before_its_body_is_read(
    gateway: Gateway,
) -> None:
    # Longer than the body limit: a 413 would mean the gateway looked at the body first.
    body = b"{" * (300 * 1024)
    for sig in (None, "forged", VECTOR_SIGNATURE[:-4]):
        assert post(gateway, body, sig).status_code == 401


def follow(event_id: str, at: float) -> dict[str, Any]:
    return {
        "type": "follow",
        "mode": "active",
        "timestamp": int(at * 1000),
        "source": {"type": "user", "userId": USER},
        "webhookEventId": event_id,
        "deliveryContext": {"isRedelivery": False},
    }


def test_an_event_far_older_than_the_window_is_ignored(gateway: Gateway) -> None:
    assert signed(gateway, {"events": [follow("01OLD", START - 400 * 86_400)]}).status_code == 200
    assert gateway_store(gateway.store).list_recipients() == []


@pytest.mark.parametrize(
    "stamp", [b"NaN", b"Infinity", b"-Infinity", b"1" + b"0" * 400], ids=["nan", "inf", "-inf", "huge"]
)
def test_an_event_whose_time_is_no_number_of_this_world_is_ignored(gateway: Gateway, stamp: bytes) -> None:
    """Python's JSON reads NaN, Infinity and integers of any size: such a time is out of every window."""
    body = json.dumps({"events": [follow("01ODD", START)]}).encode()
    body = body.replace(str(int(START * 1000)).encode(), stamp)
    assert stamp in body
    answer = post(gateway, body, signature(SECRET, body))
    assert answer.status_code == 200, answer.text
    assert gateway_store(gateway.store).list_recipients() == []
    # The id took no lease: the same event with a real time is recorded.
    assert signed(gateway, {"events": [follow("01ODD", START)]}).status_code == 200
    assert len(gateway_store(gateway.store).list_recipients()) == 1


def test_a_replayed_event_counts_once_also_on_another_gateway_of_the_store(
    gateway: Gateway, channel: Channel
) -> None:
    payload = {"events": [follow("01HREPLAYED", START - 5)]}
    for _ in range(50):
        assert signed(gateway, payload).status_code == 200
    other = make_gateway(gateway.store, channel, gateway.clock)
    assert signed(other, payload).status_code == 200
    (user,) = gateway_store(gateway.store).list_recipients()
    assert user.sightings == 1
    # Once out of the window, the age alone refuses it.
    gateway.clock.advance(2 * 86_400)
    signed(gateway, payload)
    assert gateway_store(gateway.store).list_recipients()[0].sightings == 1


def test_a_redelivered_event_with_a_new_id_is_kept_and_the_window_is_configurable(
    store: Store, channel: Channel
) -> None:
    gateway = make_gateway(store, channel, Clock(), webhook_max_age=60)
    assert signed(gateway, {"events": [follow("01A", START - 120)]}).status_code == 200
    assert gateway_store(store).list_recipients() == []
    fresh = {"events": [follow("01B", START - 30), follow("01C", START + 30)]}
    assert signed(gateway, fresh).status_code == 200
    assert gateway_store(store).list_recipients()[0].sightings == 2
