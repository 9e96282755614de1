"""Contract: ``Store.settle`` writes back many outcomes at once, each under the same lease rule as
``mark_delivered`` / ``mark_retry`` / ``mark_failed``. Run on every backend, for its own ``settle`` and for
the interface's one-by-one default, which must agree."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from linepush.errors import ValidationError
from linepush.store import NewMessage, Store
from linepush.store.base import Settlement

SettleFn = Callable[[Store, str, float, Sequence[Settlement]], list[bool]]


def _own(store: Store, worker: str, now: float, items: Sequence[Settlement]) -> list[bool]:
    return store.settle(worker, now, items)


def _default(store: Store, worker: str, now: float, items: Sequence[Settlement]) -> list[bool]:
    return Store.settle(store, worker, now, items)


@pytest.fixture(params=[_own, _default], ids=["backend", "interface default"])
def settle(request: pytest.FixtureRequest) -> SettleFn:
    return request.param  # type: ignore[no-any-return]


def _rows(store: Store, n: int, worker: str = "w1") -> list[int]:
    store.enqueue(
        [
            NewMessage(
                "1000", "push", {"to": "U" + "0" * 32, "messages": [{"type": "text", "text": f"m{i}"}]}
            )
            for i in range(n)
        ],
        now=100.0,
    )
    return [row.id for row in store.claim(worker, n, lease_seconds=30.0, now=100.0)]


def test_mixed_outcomes_in_one_call(store: Store, settle: SettleFn) -> None:
    a, b, c = _rows(store, 3)
    result = {"sentMessages": [{"id": "461230966842064897"}]}
    done = settle(
        store,
        "w1",
        110.0,
        [
            Settlement(a, "delivered", request_id="rid-a", result=result),
            Settlement(b, "retry", error={"status": 500}, not_before=150.0),
            Settlement(c, "failed", error={"status": 400, "message": "Failed to send messages"}),
        ],
    )
    assert done == [True, True, True]
    ra, rb, rc = (store.get_message(i) for i in (a, b, c))
    assert ra is not None and (ra.state, ra.request_id, ra.result, ra.delivered_at) == (
        "delivered",
        "rid-a",
        result,
        110.0,
    )
    assert rb is not None and (rb.state, rb.not_before, rb.last_error, rb.attempts) == (
        "queued",
        150.0,
        {"status": 500},
        1,
    )
    assert rc is not None and (rc.state, rc.last_error["status"]) == ("failed", 400)  # type: ignore[index]
    assert all(r is not None and r.lease_owner is None for r in (ra, rb, rc))
    assert store.counts()["sending"] == 0


def test_retry_without_a_time_is_due_at_once(store: Store, settle: SettleFn) -> None:
    (a,) = _rows(store, 1)
    assert settle(store, "w1", 120.0, [Settlement(a, "retry")]) == [True]
    row = store.get_message(a)
    assert row is not None and (row.state, row.not_before) == ("queued", 120.0)


def test_each_row_answers_for_its_own_lease(store: Store, settle: SettleFn) -> None:
    mine = _rows(store, 2, "w1")
    theirs = _rows(store, 1, "w2")
    done = settle(
        store,
        "w1",
        110.0,
        [
            Settlement(mine[0], "delivered"),
            Settlement(theirs[0], "failed"),  # leased to w2: not ours to settle
            Settlement(mine[1], "delivered"),
            Settlement(mine[0], "failed"),  # already settled above
            Settlement(10_000, "delivered"),  # no such row
        ],
    )
    assert done == [True, False, True, False, False]
    assert store.get_message(theirs[0]).state == "sending"  # type: ignore[union-attr]
    assert store.get_message(mine[0]).state == "delivered"  # type: ignore[union-attr]


def test_nothing_is_settled_once_the_lease_ran_out(store: Store, settle: SettleFn) -> None:
    ids = _rows(store, 2)
    assert settle(store, "w1", 130.0, [Settlement(i, "delivered") for i in ids]) == [False, False]
    assert store.counts()["sending"] == 2


def test_an_empty_batch_does_nothing(store: Store, settle: SettleFn) -> None:
    assert settle(store, "w1", 110.0, []) == []


@pytest.mark.parametrize(
    "bad",
    [
        Settlement(1, "lost"),  # type: ignore[arg-type]
        Settlement(1, "retry", not_before=math.nan),
    ],
    ids=["unknown outcome", "not_before not finite"],
)
def test_a_bad_item_is_refused_and_the_backend_settles_none(store: Store, bad: Settlement) -> None:
    (_, b) = _rows(store, 2)
    with pytest.raises(ValidationError):
        store.settle("w1", 110.0, [Settlement(b, "delivered"), bad])
    assert store.counts()["sending"] == 2


def test_outcome_values_json_cannot_hold_are_kept_as_text(store: Store, settle: SettleFn) -> None:
    (a,) = _rows(store, 1)
    error: dict[str, Any] = {"exception": ValueError("boom")}
    assert settle(store, "w1", 110.0, [Settlement(a, "failed", error=error)]) == [True]
    assert store.get_message(a).last_error == {"exception": "boom"}  # type: ignore[union-attr]


def test_mark_retry_needs_a_time_where_settle_reads_none_as_now(store: Store) -> None:
    (row,) = _rows(store, 1)
    with pytest.raises(ValidationError):
        store.mark_retry(row, "w1", 101.0, None, {"e": 1})  # type: ignore[arg-type]
    leased = store.get_message(row)
    assert leased is not None and leased.state == "sending"


@pytest.mark.parametrize(
    ("one", "item"),
    [
        (
            lambda s, i: s.mark_delivered(i, "w1", 101.0, "rid", {"sentMessages": []}),
            Settlement(0, "delivered", request_id="rid", result={"sentMessages": []}),
        ),
        (
            lambda s, i: s.mark_retry(i, "w1", 101.0, 150.0, {"status": 503}),
            Settlement(0, "retry", error={"status": 503}, not_before=150.0),
        ),
        (
            lambda s, i: s.mark_failed(i, "w1", 101.0, {"status": 400}),
            Settlement(0, "failed", error={"status": 400}),
        ),
    ],
    ids=["delivered", "retry", "failed"],
)
def test_one_outcome_leaves_the_row_as_a_batch_of_one_does(
    store: Store, one: Callable[[Store, int], bool], item: Settlement
) -> None:
    first, second = _rows(store, 2)
    assert one(store, first)
    assert store.settle("w1", 101.0, [Settlement(**{**_fields(item), "message_id": second})]) == [True]
    a, b = store.get_message(first), store.get_message(second)
    assert a is not None and b is not None
    assert (a.state, a.not_before, a.request_id, a.result, a.last_error, a.lease_owner, a.updated_at) == (
        b.state,
        b.not_before,
        b.request_id,
        b.result,
        b.last_error,
        b.lease_owner,
        b.updated_at,
    )


def _fields(item: Settlement) -> dict[str, Any]:
    return {name: getattr(item, name) for name in Settlement.__slots__}
