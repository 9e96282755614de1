"""The Outbox library face: validated rows, one transaction, retry keys at enqueue, records of outcomes."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from tests.outbox.kit import START, FakeTime, user

from linepush.api.messaging import PushResult, SendResult, SentMessage, chunk_retry_key
from linepush.errors import (
    BadRequestError,
    ConfigurationError,
    ErrorDetail,
    MonthlyLimitError,
    OutcomeUnknownError,
    RateLimitError,
    ServerError,
    ValidationError,
)
from linepush.outbox import (
    Backoff,
    Outbox,
    RetryWindow,
    Settlement,
    classify,
    error_record,
    multicast_items,
    push_item,
    result_record,
)
from linepush.store import Store

CHANNEL = "1234567890"


def _empty(store: Store) -> bool:
    return sum(store.counts().values()) == 0


def test_push_row_carries_the_validated_body_and_a_retry_key(outbox: Outbox) -> None:
    row = outbox.push(user(1), "hello", notification_disabled=True)
    assert row.kind == "push"
    assert row.payload == {
        "to": user(1),
        "messages": [{"type": "text", "text": "hello"}],
        "notificationDisabled": True,
    }
    assert str(uuid.UUID(row.retry_key)) == row.retry_key
    assert row.state == "queued" and row.not_before == START and row.first_attempt_at is None
    stored = outbox.get(row.id)
    assert stored is not None and stored.retry_key == row.retry_key


def test_every_row_gets_its_own_retry_key_at_enqueue(outbox: Outbox) -> None:
    rows = outbox.enqueue([push_item(outbox.channel_id, user(i), f"m{i}") for i in range(50)])
    assert len({r.retry_key for r in rows}) == 50
    assert [r.retry_key for r in rows] == [outbox.get(r.id).retry_key for r in rows]  # type: ignore[union-attr]


def test_a_given_retry_key_is_kept(outbox: Outbox) -> None:
    key = str(uuid.uuid4())
    assert outbox.push(user(1), "x", retry_key=key.upper()).retry_key == key


def test_multicast_is_one_row_per_500_recipients_in_one_transaction(outbox: Outbox) -> None:
    ids = [user(i) for i in range(1201)]
    rows = outbox.multicast(ids, "hi")
    assert [len(r.payload["to"]) for r in rows] == [500, 500, 201]
    assert [to for r in rows for to in r.payload["to"]] == ids
    assert all(r.kind == "multicast" for r in rows)
    assert outbox.counts()["queued"] == 3


def test_multicast_under_one_key_reproduces_the_chunk_keys(store: Store) -> None:
    key = str(uuid.uuid4())
    items = multicast_items(CHANNEL, [user(i) for i in range(1001)], "hi", retry_key=key)
    assert [i.retry_key for i in items] == [chunk_retry_key(key, n) for n in range(3)]


def test_broadcast_and_narrowcast_rows(outbox: Outbox) -> None:
    b = outbox.broadcast("all of you")
    n = outbox.narrowcast("some of you", limit={"max": 100})
    assert b.kind == "broadcast" and b.payload == {"messages": [{"type": "text", "text": "all of you"}]}
    assert n.kind == "narrowcast" and n.payload["limit"] == {"max": 100}


@pytest.mark.parametrize(
    "add",
    [
        pytest.param(lambda o: o.push("not-an-id", "x"), id="bad recipient id"),
        pytest.param(lambda o: o.push(user(1), {"type": "text"}), id="text missing"),
        pytest.param(lambda o: o.push(user(1), ["a"] * 6), id="six messages"),
        pytest.param(lambda o: o.push(user(1), {"type": "nope"}), id="unknown type"),
        pytest.param(lambda o: o.push(user(1), "x" * 5001), id="text too long"),
        pytest.param(lambda o: o.push(user(1), "x", retry_key="not-a-uuid"), id="bad retry key"),
        pytest.param(lambda o: o.multicast([user(1), "C" + "0" * 32], "x"), id="group id in a multicast"),
        pytest.param(lambda o: o.multicast([], "x"), id="no recipients"),
        pytest.param(lambda o: o.broadcast([]), id="no messages"),
        pytest.param(
            lambda o: o.narrowcast("x", limit={"forbidPartialDelivery": True}), id="narrowcast option"
        ),
    ],
)
def test_bad_input_is_refused_and_nothing_is_stored(outbox: Outbox, store: Store, add: Any) -> None:
    with pytest.raises(ValidationError):
        add(outbox)
    assert _empty(store)


def test_one_bad_item_in_a_batch_stores_none(outbox: Outbox, store: Store) -> None:
    items = [push_item(outbox.channel_id, user(i), "ok") for i in range(10)]
    key = str(uuid.uuid4())
    items[3] = push_item(outbox.channel_id, user(3), "ok", retry_key=key)
    items[7] = push_item(outbox.channel_id, user(7), "ok", retry_key=key)  # a repeated key
    with pytest.raises(ValidationError) as info:
        outbox.enqueue(items)
    assert "items[7]" in str(info.value)
    assert _empty(store)


def test_an_outbox_needs_a_channel(store: Store) -> None:
    with pytest.raises(ConfigurationError):
        Outbox(store, "")


def test_scheduled_row_waits(outbox: Outbox, fake_time: FakeTime) -> None:
    row = outbox.push(user(1), "later", not_before=START + 3600)
    assert outbox.claim("w", 10, 30) == []
    fake_time.now = START + 3600
    claimed = outbox.claim("w", 10, 30)
    assert [m.id for m in claimed] == [row.id]
    assert claimed[0].first_attempt_at == START + 3600


def test_outbox_is_scoped_to_its_channel(store: Store, fake_time: FakeTime) -> None:
    mine = Outbox(store, "111", clock=fake_time.clock)
    theirs = Outbox(store, "222", clock=fake_time.clock)
    a = mine.push(user(1), "a")
    theirs.push(user(2), "b")
    assert [m.id for m in mine.messages()] == [a.id]
    assert mine.counts()["queued"] == 1
    assert [m.channel_id for m in mine.claim("w", 10, 30)] == ["111"]


def test_settle_records_each_outcome_and_requeue(outbox: Outbox, fake_time: FakeTime) -> None:
    rows = outbox.enqueue([push_item(outbox.channel_id, user(i), "x") for i in range(3)])
    outbox.claim("w", 10, 30)
    done = outbox.settle(
        "w",
        [
            Settlement(rows[0].id, "delivered", request_id="req-1", result={"sentMessages": [{"id": "1"}]}),
            Settlement(rows[1].id, "retry", error={"status": 500}, not_before=START + 60),
            Settlement(rows[2].id, "failed", error={"status": 400, "message": "Failed to send messages"}),
        ],
    )
    assert done == [True, True, True]
    got = [outbox.get(r.id) for r in rows]
    assert [m.state for m in got if m] == ["delivered", "queued", "failed"]
    assert got[0] is not None and got[0].request_id == "req-1"
    assert got[1] is not None and got[1].not_before == START + 60 and got[1].attempts == 1
    assert got[2] is not None and got[2].last_error == {"status": 400, "message": "Failed to send messages"}
    # A row this worker no longer holds is not overwritten.
    assert outbox.settle("w", [Settlement(rows[0].id, "failed")]) == [False]
    assert outbox.requeue() == 1
    again = outbox.get(rows[2].id)
    assert again is not None and again.state == "queued" and again.retry_key == rows[2].retry_key


def test_error_record_keeps_what_line_said() -> None:
    error = BadRequestError(
        400,
        "The request body has 1 error(s)",
        details=(ErrorDetail("May not be empty", "messages[0].text"),),
        request_id="req-9",
    )
    assert error_record(error, now=5.0) == {
        "type": "BadRequestError",
        "status": 400,
        "message": "The request body has 1 error(s)",
        "details": [{"message": "May not be empty", "property": "messages[0].text"}],
        "request_id": "req-9",
        "retryable": False,
        "at": 5.0,
    }
    lost = error_record(OutcomeUnknownError("read timed out"))
    assert lost == {"type": "OutcomeUnknownError", "message": "read timed out", "retryable": True}


def test_result_record_for_push_and_for_a_duplicate() -> None:
    first = PushResult("req-1", "k", None, (SentMessage("111", "qt"), SentMessage("222")))
    assert result_record(first) == (
        "req-1",
        {"sentMessages": [{"id": "111", "quoteToken": "qt"}, {"id": "222"}]},
    )
    again = SendResult("req-2", "k", accepted_request_id="req-1")
    assert result_record(again) == (
        "req-1",
        {"duplicate": True, "acceptedRequestId": "req-1", "requestId": "req-2"},
    )


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (ServerError(500, "Internal server error"), "retry"),
        (RateLimitError(429, "The API rate limit has been exceeded. Try again later."), "retry"),
        (OutcomeUnknownError("dropped"), "retry"),
        (MonthlyLimitError(429, "You have reached your monthly limit."), "failed"),
        (BadRequestError(400, "Failed to send messages"), "failed"),
        (ValidationError("bad"), "failed"),
        (RuntimeError("bug"), "failed"),
    ],
)
def test_classify(error: BaseException, outcome: str) -> None:
    assert classify(error) == outcome


def test_backoff_grows_with_full_jitter_and_a_floor() -> None:
    b = Backoff(initial=2.0, maximum=60.0, factor=2.0, minimum=0.5)
    assert b.delay(1, lambda: 0.0) == 0.5
    assert b.delay(1, lambda: 1.0) == 2.0
    assert b.delay(3, lambda: 1.0) == 8.0
    assert b.delay(30, lambda: 1.0) == 60.0
    assert Backoff(initial=0.1, minimum=0.5).delay(1, lambda: 0.0) == 0.1  # the floor never exceeds the cap


def test_retry_window() -> None:
    w = RetryWindow(window=86_400, margin=3_600)
    assert w.deadline(1000.0) == 1000.0 + 82_800
    with pytest.raises(ConfigurationError):
        RetryWindow(window=10, margin=10)


def test_a_bad_id_deep_in_a_long_multicast_is_named_by_its_place(outbox: Outbox, store: Store) -> None:
    ids = [user(i) for i in range(1200)]
    ids[1042] = "C" + "0" * 32
    with pytest.raises(ValidationError) as info:
        outbox.multicast(ids, "x")
    assert info.value.property == "to[1042]"
    assert _empty(store)


def test_send_routes_each_kind_of_recipient(outbox: Outbox, store: Store) -> None:
    group, room = "C" + "1" * 32, "R" + "2" * 32
    rows = outbox.send([user(i) for i in range(501)] + [group, room], "hi")
    assert [(r.kind, r.payload["to"] if r.kind == "push" else len(r.payload["to"])) for r in rows] == [
        ("multicast", 500),
        ("multicast", 1),
        ("push", group),
        ("push", room),
    ]
    (alone,) = outbox.send([group], "hi")  # one recipient of any kind: one push
    assert alone.kind == "push" and alone.payload["to"] == group
    (everyone,) = outbox.send([], "hi", broadcast=True)
    assert everyone.kind == "broadcast"


@pytest.mark.parametrize(
    ("to", "options", "reason"),
    [
        ([user(1)], {"broadcast": True}, "broadcast sends to every friend"),
        ([], {}, "say who gets it"),
        ([user(1), "C" + "1" * 32], {"retry_key": str(uuid.UUID(int=7))}, "one push or one multicast"),
    ],
)
def test_send_refuses_and_stores_nothing(
    outbox: Outbox, store: Store, to: list[str], options: dict[str, Any], reason: str
) -> None:
    with pytest.raises(ValidationError, match=reason):
        outbox.send(to, "hi", **options)
    assert _empty(store)
