"""Contract: batches of pushes to one chat. A claim forms them from fresh batchable pushes and records them
(rows, order, one retry key) in the same transaction; from then on a batch is claimed whole with the same key
and members, settled together, split only on request (a 400), purged and requeued whole. Every backend."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from linepush.store import NewMessage, OutboxMessage, Store
from linepush.store.base import Settlement

CHANNEL = "1000"
A = "U" + "a" * 32
B = "U" + "b" * 32
LEASE = 30.0


def _push(to: str, *texts: str, batchable: bool = True, **options: Any) -> NewMessage:
    messages = [{"type": "text", "text": t} for t in texts]
    return NewMessage(CHANNEL, "push", {"to": to, "messages": messages, **options}, batchable=batchable)


def _texts(row: OutboxMessage) -> list[str]:
    return [m["text"] for m in row.payload["messages"]]


def _groups(rows: Sequence[OutboxMessage]) -> list[list[str]]:
    """The claimed rows as sends: a batch's rows together (in their order), a row alone by itself."""
    groups: list[list[str]] = []
    last: str | None = None
    for row in rows:
        if row.batch_key is not None and row.batch_key == last:
            groups[-1].extend(_texts(row))
        else:
            groups.append(_texts(row))
        last = row.batch_key
    return groups


def _batch(rows: Sequence[OutboxMessage]) -> list[tuple[int, str | None, int | None]]:
    return [(r.id, r.batch_key, r.batch_pos) for r in rows]


def test_a_claim_batches_each_chats_pushes_in_queue_order_up_to_five_objects(store: Store) -> None:
    store.enqueue(
        [
            _push(A, "a1"),
            _push(B, "b1"),
            _push(A, "a2", "a3"),
            _push(A, "a4", "a5"),
            _push(A, "a6"),  # would make six objects: starts the next batch
            _push(B, "b2", "b3"),
            _push(A, "a7", "a8", "a9", "a10"),
        ],
        now=100.0,
    )
    rows = store.claim("w1", 100, LEASE, now=100.0)
    assert _groups(rows) == [
        ["a1", "a2", "a3", "a4", "a5"],
        ["b1", "b2", "b3"],
        ["a6", "a7", "a8", "a9", "a10"],
    ]
    keys = {r.batch_key for r in rows}
    assert len(keys) == 3 and None not in keys
    # One retry key per batch, not any row's own; positions in queue order.
    assert all(r.batch_key != r.retry_key for r in rows)
    first = [r for r in rows if r.batch_key == rows[0].batch_key]
    assert [r.batch_pos for r in first] == [0, 1, 2]
    assert all(r.batchable and r.state == "sending" and r.attempts == 1 for r in rows)
    # Recorded in the store with the claim.
    assert [store.get_message(r.id).batch_key for r in rows] == [r.batch_key for r in rows]  # type: ignore[union-attr]


def test_a_backlog_of_many_chats_still_fills_its_batches(store: Store) -> None:
    C = "U" + "c" * 32
    store.enqueue([_push(to, f"{to[1]}{i}") for i in range(5) for to in (A, B, C)], now=100.0)
    # The five rows due first are of three chats; the claim looks past them to fill the first batch.
    first = store.claim("w1", 5, LEASE, now=200.0)
    assert _groups(first) == [["a0", "a1", "a2", "a3", "a4"]]
    rest = store.claim("w1", 10, LEASE, now=200.0)
    assert _groups(rest) == [["b0", "b1", "b2", "b3", "b4"], ["c0", "c1", "c2", "c3", "c4"]]


def test_rows_that_may_not_be_mixed_go_alone_and_keep_each_chats_order(store: Store) -> None:
    store.enqueue(
        [
            _push(A, "a1"),
            _push(A, "a2"),
            _push(A, "quiet", notificationDisabled=True),  # other options: a batch of its own
            _push(A, "a3"),
            _push(A, "library", batchable=False),
            _push(A, "a4"),
            NewMessage(CHANNEL, "push", {"to": A, "messages": [{"type": "text", "text": "own key"}]},
                       retry_key="123e4567-e89b-42d3-a456-426614174000", batchable=True),
            _push(A, "a5"),
            _push(A, "a6"),
        ],
        now=100.0,
    )  # fmt: skip
    rows = store.claim("w1", 100, LEASE, now=100.0)
    assert _groups(rows) == [["a1", "a2"], ["quiet"], ["a3"], ["library"], ["a4"], ["own key"], ["a5", "a6"]]
    alone = [r for r in rows if _texts(r)[0] in ("quiet", "a3", "library", "a4", "own key")]
    assert all(r.batch_key is None for r in alone)
    own = next(r for r in rows if _texts(r) == ["own key"])
    assert own.retry_key == "123e4567-e89b-42d3-a456-426614174000" and not own.batchable
    assert not next(r for r in rows if _texts(r) == ["library"]).batchable


def test_a_batch_comes_back_whole_with_the_same_key_after_its_lease_runs_out(store: Store) -> None:
    store.enqueue([_push(A, f"a{i}") for i in range(3)], now=100.0)
    first = store.claim("w1", 100, LEASE, now=100.0)
    assert len({r.batch_key for r in first}) == 1
    store.enqueue([_push(A, "later")], now=110.0)
    # The worker died: its lease runs out and another takes the very same batch, and the late row apart.
    again = store.claim("w2", 100, LEASE, now=100.0 + LEASE + 1)
    assert _batch(again[:3]) == _batch(first)
    assert all(r.lease_owner == "w2" and r.attempts == 2 for r in again[:3])
    assert _texts(again[3]) == ["later"] and again[3].batch_key is None
    # A claim too small for the batch still takes it whole; it never cuts one.
    store.release([r.id for r in again], "w2", now=100.0 + LEASE + 2)
    small = store.claim("w3", 1, LEASE, now=100.0 + LEASE + 3)
    assert _batch(small) == _batch(first)


def test_a_claim_takes_whole_batches_or_none(store: Store) -> None:
    store.enqueue(
        [_push(A, "a1", "a2"), _push(A, "a3", "a4"), _push(A, "a5", "a6"), _push(A, "a7")], now=100.0
    )
    formed = store.claim("w1", 100, LEASE, now=100.0)
    assert _groups(formed) == [["a1", "a2", "a3", "a4"], ["a5", "a6", "a7"]]
    store.release([r.id for r in formed], "w1", now=101.0)
    assert store.get_message(formed[0].id).attempts == 0  # type: ignore[union-attr]
    # The batches stay as they were formed; a limit of 3 takes the first one (2 rows), not a part of the next.
    part = store.claim("w1", 3, LEASE, now=102.0)
    assert _batch(part) == _batch(formed[:2])
    rest = store.claim("w1", 3, LEASE, now=102.0)
    assert _batch(rest) == _batch(formed[2:])


def test_fresh_pushes_wait_while_one_to_their_chat_is_in_flight_then_go_as_one(store: Store) -> None:
    store.enqueue([_push(A, "a1")], now=100.0)
    (alone,) = store.claim("w1", 100, LEASE, now=100.0)
    store.enqueue([_push(A, "a2"), _push(B, "b1"), _push(A, "a3")], now=101.5)
    # a2 and a3 would overtake nothing, but they are better sent as one push once a1 is done.
    assert _groups(store.claim("w1", 100, LEASE, now=102.0)) == [["b1"]]
    assert store.settle("w1", 102.2, [Settlement(alone.id, "delivered", request_id="r1")]) == [True]
    assert _groups(store.claim("w1", 100, LEASE, now=102.4)) == [["a2", "a3"]]


def test_a_full_batch_goes_even_while_one_to_its_chat_is_in_flight(store: Store) -> None:
    store.enqueue([_push(A, "a1")], now=100.0)
    store.claim("w1", 100, LEASE, now=100.0)
    store.enqueue([_push(A, "a2", "a3"), _push(A, "a4", "a5", "a6"), _push(A, "a7")], now=100.5)
    # A backlog: its batches are full, waiting would gain nothing; the one with room left waits.
    assert _groups(store.claim("w1", 100, LEASE, now=101.0)) == [["a2", "a3", "a4", "a5", "a6"]]


def test_the_rows_of_a_batch_settle_together(store: Store) -> None:
    store.enqueue([_push(A, f"d{i}") for i in range(3)] + [_push(B, f"r{i}") for i in range(2)], now=100.0)
    rows = store.claim("w1", 100, LEASE, now=100.0)
    delivered, retried = rows[:3], rows[3:]
    # One settlement names one row; the rest of its batch goes with it, the same way.
    done = store.settle(
        "w1",
        110.0,
        [
            Settlement(delivered[1].id, "delivered", request_id="rid", result={"x": 1}),
            Settlement(retried[0].id, "retry", error={"status": 500}, not_before=200.0),
        ],
    )
    assert done == [True, True]
    for row in delivered:
        got = store.get_message(row.id)
        assert got is not None and got.state == "delivered" and got.request_id == "rid"
    for row in retried:
        got = store.get_message(row.id)
        assert got is not None and got.state == "queued" and got.not_before == 200.0
        assert got.last_error == {"status": 500}
    # The retry is the same request: the same rows, key and order.
    assert store.claim("w1", 100, LEASE, now=150.0) == []
    again = store.claim("w1", 100, LEASE, now=200.0)
    assert _batch(again) == _batch(retried)


def test_a_batch_split_after_a_400_goes_row_by_row_under_their_own_keys(store: Store) -> None:
    store.enqueue([_push(A, "good"), _push(A, "bad"), _push(A, "fine")], now=100.0)
    rows = store.claim("w1", 100, LEASE, now=100.0)
    assert len({r.batch_key for r in rows}) == 1
    error = {"status": 400, "message": "The request body has 1 error(s)"}
    assert store.settle("w1", 101.0, [Settlement(rows[0].id, "retry", error=error, split=True)]) == [True]
    for row in rows:
        got = store.get_message(row.id)
        assert got is not None and got.state == "queued" and got.batch_key is None and got.batch_pos is None
        assert got.retry_key == row.retry_key and got.last_error == error
    # Each goes alone now (they were attempted in the batch: never batched again), in queue order.
    again = store.claim("w1", 100, LEASE, now=102.0)
    assert [r.id for r in again] == [r.id for r in rows]
    assert all(r.batch_key is None for r in again)
    assert len({r.retry_key for r in again}) == 3


def test_a_row_attempted_alone_never_joins_a_batch(store: Store) -> None:
    (first,) = store.enqueue([_push(A, "a1")], now=100.0)
    store.claim("w1", 100, LEASE, now=100.0)
    # No answer: LINE may have taken it under its own key, so it must be resent alone under that key.
    store.settle("w1", 101.0, [Settlement(first.id, "retry", error={"type": "Timeout"}, not_before=101.0)])
    store.enqueue([_push(A, "a2"), _push(A, "a3")], now=101.0)
    rows = store.claim("w1", 100, LEASE, now=102.0)
    assert _groups(rows) == [["a1"], ["a2", "a3"]]
    assert rows[0].batch_key is None and rows[0].retry_key == first.retry_key


def test_purge_takes_a_batch_whole_and_leaves_the_others(store: Store) -> None:
    store.enqueue([_push(A, "a1"), _push(A, "a2"), _push(B, "b1"), _push(B, "b2")], now=100.0)
    rows = store.claim("w1", 100, LEASE, now=100.0)
    store.settle(
        "w1",
        110.0,
        [Settlement(rows[0].id, "delivered"), Settlement(rows[2].id, "failed", error={"status": 403})],
    )
    assert store.purge(["delivered"], 5.0, now=120.0) == 2
    assert store.get_message(rows[0].id) is None and store.get_message(rows[1].id) is None
    assert all(store.get_message(r.id) is not None for r in rows[2:])
    assert store.purge(["failed"], 5.0, now=120.0) == 2
    assert store.counts() == {"queued": 0, "sending": 0, "delivered": 0, "failed": 0}


def test_requeue_takes_a_failed_batch_whole(store: Store) -> None:
    store.enqueue([_push(A, "a1"), _push(A, "a2"), _push(A, "a3")], now=100.0)
    rows = store.claim("w1", 100, LEASE, now=100.0)
    store.settle("w1", 101.0, [Settlement(rows[0].id, "failed", error={"status": 500})])
    # Naming one row brings its whole batch back, as it was: the same request under the same key.
    assert store.requeue([rows[1].id], now=200.0) == 3
    again = store.claim("w1", 100, LEASE, now=200.0)
    assert _batch(again) == _batch(rows) and all(r.attempts == 2 for r in again)
    store.settle("w1", 201.0, [Settlement(rows[0].id, "failed", error={"status": 500})])
    # With new retry keys: a new identity at LINE; the batch is dissolved and formed afresh.
    assert store.requeue([rows[2].id], now=300.0, new_retry_key=True) == 3
    fresh = store.claim("w1", 100, LEASE, now=300.0)
    assert [r.id for r in fresh] == [r.id for r in rows]
    assert len({r.batch_key for r in fresh}) == 1 and fresh[0].batch_key not in (None, rows[0].batch_key)
    assert not {r.retry_key for r in fresh} & {r.retry_key for r in rows}


def test_with_gather_a_young_batch_with_room_left_waits_for_more(store: Store) -> None:
    store.enqueue([_push(A, "a1"), _push(A, "a2"), _push(B, "b1", "b2", "b3", "b4", "b5")], now=100.0)
    store.enqueue([_push(A, "a3", batchable=False)], now=100.0)  # behind the waiting batch: waits too
    # B's batch is full: it goes at once; A's has room and its last row is younger than the gather time.
    assert _groups(store.claim("w1", 100, LEASE, now=100.02, gather=0.05)) == [["b1", "b2", "b3", "b4", "b5"]]
    store.enqueue([_push(A, "a4")], now=100.03)
    # A's first batch is old enough now (a3 closed it); a4 starts another, young one.
    assert _groups(store.claim("w1", 100, LEASE, now=100.06, gather=0.05)) == [["a1", "a2"], ["a3"]]
    # Then a4 waits while A's pushes are in flight, and goes once they are settled.
    assert store.claim("w1", 100, LEASE, now=101.0, gather=0.05) == []
    sent = [r.id for r in store.list_messages("sending")]
    assert store.settle("w1", 101.0, [Settlement(i, "delivered") for i in sent]) == [True] * len(sent)
    assert _groups(store.claim("w1", 100, LEASE, now=101.1, gather=0.05)) == [["a4"]]


def test_a_digest_between_two_pushes_to_its_chat_keeps_them_apart(store: Store) -> None:
    """A digest row is a push to its chat like any other: a batch never jumps over it."""
    from linepush.store.base import DigestPart

    def render(parts: Any) -> dict[str, Any]:
        return {"to": A, "messages": [{"type": "text", "text": "|".join(p.text for p in parts)}]}

    store.enqueue([_push(A, "first")], now=100.0)
    store.append_digest(CHANNEL, A, DigestPart(100.5, "digest"), window=0.5, render=render, now=100.5)
    store.enqueue([_push(A, "last")], now=101.0)
    rows = store.claim("w1", 100, LEASE, now=200.0)
    assert _groups(rows) == [["first"], ["digest"], ["last"]]
    assert [r.payload["messages"][0]["text"] for r in rows] == ["first", "digest", "last"]
