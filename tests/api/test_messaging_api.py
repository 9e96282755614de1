"""Pure tests of the messaging request builders and parsers (no I/O)."""

from __future__ import annotations

import json
import uuid

import pytest

from linepush.api import messaging
from linepush.api._base import ApiResponse
from linepush.errors import BadRequestError, ConflictError, LineApiError, ValidationError

USER = "U" + "3" * 32


def test_new_retry_keys_are_random_version_4_uuids() -> None:
    keys = {messaging.new_retry_key() for _ in range(2000)}
    assert len(keys) == 2000
    for key in list(keys)[:200]:
        parsed = uuid.UUID(key)
        assert str(parsed) == key
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_a_given_retry_key_must_be_a_uuid() -> None:
    assert messaging.check_retry_key("123E4567-E89B-12D3-A456-426614174000")
    with pytest.raises(ValidationError, match="UUID"):
        messaging.push(USER, "x", retry_key="not-a-uuid")


def test_push_request_carries_the_body_and_the_key() -> None:
    op = messaging.push(USER, ["a", "b"], notification_disabled=True, custom_aggregation_units=["promo"])
    assert op.request.method == "POST" and op.request.path == "/v2/bot/message/push"
    assert op.request.needs_token and op.request.idempotent
    assert json.loads(op.request.body or b"") == {
        "to": USER,
        "messages": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
        "notificationDisabled": True,
        "customAggregationUnits": ["promo"],
    }
    assert op.request.retry_key


def test_a_409_for_an_accepted_key_parses_as_a_duplicate_success() -> None:
    op = messaging.push(USER, "x")
    body = {"message": "The retry key is already accepted", "sentMessages": [{"id": "1", "quoteToken": "q"}]}
    response = ApiResponse(
        409,
        {"x-line-request-id": "r2", "x-line-accepted-request-id": "r1"},
        json.dumps(body).encode(),
    )
    result = op.parse(response)
    assert result.duplicate and result.accepted_request_id == "r1"
    assert result.sent_messages[0].id == "1"


def test_a_409_that_is_not_about_the_retry_key_is_an_error() -> None:
    op = messaging.broadcast("x")
    response = ApiResponse(409, {}, b'{"message":"Conflict on something else"}')
    with pytest.raises(ConflictError):
        op.parse(response)


def test_multicast_chunk_keys_derive_from_the_callers_key() -> None:
    key = "123e4567-e89b-12d3-a456-426614174000"
    ids = [f"U{i:032x}" for i in range(1001)]
    pairs = messaging.multicast_chunks(ids, "x", retry_key=key)
    keys = [chunk.retry_key for chunk, _ in pairs]
    assert keys[0] == key and len(set(keys)) == 3
    assert keys == [c.retry_key for c, _ in messaging.multicast_chunks(ids, "x", retry_key=key)]


def test_narrowcast_checks_the_limit_options_and_expects_202() -> None:
    with pytest.raises(ValidationError, match="upToRemainingQuota"):
        messaging.narrowcast("x", limit={"forbidPartialDelivery": True})
    op = messaging.narrowcast("x")
    with pytest.raises(BadRequestError):
        op.parse(ApiResponse(400, {}, b'{"message":"Invalid audience group id: 1"}'))
    assert op.parse(ApiResponse(202, {"x-line-request-id": "n1"}, b"{}")).request_id == "n1"


def test_the_body_is_compact_utf8_json_and_non_string_keys_become_strings() -> None:
    op = messaging.push(USER, [{"type": "text", "text": "こんにちは 👋", 7: "seven"}])
    assert op.request.body == (
        f'{{"to":"{USER}","messages":[{{"type":"text","text":"こんにちは 👋","7":"seven"}}]}}'.encode()
    )
    assert json.loads(op.request.body)["messages"][0]["7"] == "seven"


@pytest.mark.parametrize(
    "message",
    [
        {"type": "text", "text": "half a pair \ud83d"},
        {"type": "text", "text": "x", "extra": {1, 2}},
        {"type": "text", "text": "x", "extra": 2**70},
    ],
    ids=["lone-surrogate", "set", "huge-int"],
)
def test_a_body_json_cannot_hold_is_a_validation_error(message: dict[str, object]) -> None:
    with pytest.raises(ValidationError, match="cannot be sent as JSON"):
        messaging.push(USER, [message])


def test_a_parsed_push_result_is_the_same_frozen_value_the_constructor_makes() -> None:
    import dataclasses

    body = b'{"sentMessages":[{"id":"461230966842064897","quoteToken":"IStG5h1Tz7b"},{"id":"2"}]}'
    key = "123e4567-e89b-42d3-a456-426614174000"
    result = messaging.push(USER, ["a", "b"], retry_key=key).parse(
        ApiResponse(200, {"x-line-request-id": "req-1"}, body)
    )
    expected = messaging.PushResult(
        "req-1",
        key,
        None,
        (messaging.SentMessage("461230966842064897", "IStG5h1Tz7b"), messaging.SentMessage("2", None)),
    )
    assert result == expected and hash(result) == hash(expected)
    assert repr(result) == repr(expected)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.retry_key = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.sent_messages[0].id = "3"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"", None),
        (b"[]", "with JSON that is not an object"),
        (b'{"sentMessages": [', "with a body that is not JSON"),
        (b'"\xff"', "with a body that is not JSON"),
    ],
    ids=["empty", "an array", "cut short", "not UTF-8"],
)
def test_a_200_push_answer_that_is_no_json_object_is_read_as_before(body: bytes, error: str | None) -> None:
    parse = messaging.push(USER, "a").parse
    answer = ApiResponse(200, {"x-line-request-id": "req-1"}, body)
    if error is None:
        assert parse(answer).sent_messages == ()
        return
    with pytest.raises(LineApiError, match=error) as caught:
        parse(answer)
    assert caught.value.status == 200 and caught.value.request_id == "req-1"
