"""The behaviour every storage backend must show: tokens, single-flight leases and the outbox."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from linepush.errors import ValidationError
from linepush.store import NewMessage, OutboxMessage, Store, StoreError, TokenRecord
from linepush.store.records import Settlement
from linepush.store.sql import SQLStore

TOKEN = "eyJhbGciOiJIUzI1NiJ9.secret-token-value-0123456789"
PAYLOAD: dict[str, Any] = {"to": "U" + "4" * 32, "messages": [{"type": "text", "text": "Hello, world1"}]}


def push(text: str = "hi", channel: str = "1000", **kw: Any) -> NewMessage:
    return NewMessage(
        channel, "push", {"to": "U" + "0" * 32, "messages": [{"type": "text", "text": text}]}, **kw
    )


def texts(rows: list[OutboxMessage]) -> list[str]:
    return [row.payload["messages"][0]["text"] for row in rows]


def save(
    store: Store, channel: str = "1000", kind: Any = "v2.1", issued: float = 100.0, **kw: Any
) -> TokenRecord:
    args: dict[str, Any] = {"key_id": "kid-1", "expires_at": issued + 3600.0} | kw
    return store.save_token(
        channel, kind, f"{TOKEN}-{channel}-{issued}", args["key_id"], issued, args["expires_at"]
    )


# -- tokens


def test_saved_token_is_active_and_comes_back_whole(store: Store) -> None:
    record = store.save_token("1000", "v2.1", TOKEN, "kid-1", 100.0, 3700.0)
    assert record.state == "active"
    assert (record.channel_id, record.kind, record.key_id) == ("1000", "v2.1", "kid-1")
    assert (record.issued_at, record.expires_at, record.superseded_at) == (100.0, 3700.0, None)
    assert record.access_token.reveal() == TOKEN
    assert store.current_token("1000", "v2.1", now=200.0) == record


def test_token_never_shows_in_repr(store: Store) -> None:
    record = store.save_token("1000", "v2.1", TOKEN, None, 100.0, 3700.0)
    assert TOKEN not in repr(record)
    assert TOKEN[8:] not in str(record)
    assert all(TOKEN not in repr(r) for r in store.list_tokens("1000"))


def test_current_token_is_the_newest_active_unexpired_one(store: Store) -> None:
    save(store, issued=100.0)
    newest = save(store, issued=300.0)
    save(store, issued=200.0)
    assert store.current_token("1000", "v2.1", now=400.0) == newest


def test_current_token_expires_at_its_expiry(store: Store) -> None:
    record = save(store, issued=100.0, expires_at=1000.0)
    assert store.current_token("1000", "v2.1", now=999.9) == record
    assert store.current_token("1000", "v2.1", now=1000.0) is None


def test_current_token_falls_back_to_an_older_one_when_the_newest_expired(store: Store) -> None:
    older = save(store, issued=100.0, expires_at=5000.0)
    save(store, issued=200.0, expires_at=1000.0)
    assert store.current_token("1000", "v2.1", now=2000.0) == older


def test_static_token_without_expiry_never_expires(store: Store) -> None:
    record = store.save_token("1000", "static", TOKEN, None, 100.0, None)
    assert store.current_token("1000", "static", now=1e12) == record


@pytest.mark.parametrize("state", ["superseded", "invalid", "revoked"])
def test_current_token_skips_tokens_that_are_not_active(store: Store, state: Any) -> None:
    record = save(store)
    store.set_token_state(record.id, state, now=150.0)
    assert store.current_token("1000", "v2.1", now=200.0) is None


def test_tokens_are_kept_apart_by_kind_and_channel(store: Store) -> None:
    v21 = save(store, "1000", "v2.1")
    v3 = save(store, "1000", "v3", key_id=None)
    other = save(store, "2000", "v2.1")
    assert store.current_token("1000", "v2.1", now=200.0) == v21
    assert store.current_token("1000", "v3", now=200.0) == v3
    assert store.current_token("2000", "v2.1", now=200.0) == other
    assert store.current_token("2000", "v3", now=200.0) is None
    assert store.current_token("3000", "v2.1", now=200.0) is None


def test_many_channels_share_one_store(store: Store) -> None:
    saved = {f"{1000 + n}": save(store, f"{1000 + n}", issued=100.0 + n) for n in range(40)}
    for channel, record in saved.items():
        assert store.current_token(channel, "v2.1", now=500.0) == record
        assert store.list_tokens(channel) == [record]


def test_list_tokens_filters_by_kind_and_state_oldest_first(store: Store) -> None:
    a = save(store, issued=300.0)
    b = save(store, issued=100.0)
    c = save(store, "1000", "v2", issued=200.0)
    store.set_token_state(b.id, "invalid", now=400.0)
    b = store.list_tokens("1000", states=["invalid"])[0]
    assert [t.id for t in store.list_tokens("1000")] == [b.id, c.id, a.id]
    assert [t.id for t in store.list_tokens("1000", kind="v2.1")] == [b.id, a.id]
    assert [t.id for t in store.list_tokens("1000", states=["active"])] == [c.id, a.id]
    assert [t.id for t in store.list_tokens("1000", "v2.1", ["active", "revoked"])] == [a.id]
    assert store.list_tokens("1000", states=[]) == []
    assert store.list_tokens("9999") == []


def test_set_token_state_records_when_a_token_was_superseded(store: Store) -> None:
    record = save(store)
    store.set_token_state(record.id, "superseded", now=500.0)
    (row,) = store.list_tokens("1000")
    assert (row.state, row.superseded_at) == ("superseded", 500.0)
    store.set_token_state(record.id, "revoked", now=600.0)
    (row,) = store.list_tokens("1000")
    assert (row.state, row.superseded_at) == ("revoked", 500.0)
    store.set_token_state(record.id, "active", now=700.0)
    (row,) = store.list_tokens("1000")
    assert (row.state, row.superseded_at) == ("active", None)


def test_set_token_state_of_an_unknown_token_is_an_error(store: Store) -> None:
    with pytest.raises(LookupError, match="12345"):
        store.set_token_state(12345, "invalid", now=1.0)


def test_supersede_others_keeps_one_and_leaves_other_kinds_channels_and_states(store: Store) -> None:
    old1 = save(store, issued=100.0)
    old2 = save(store, issued=110.0)
    broken = save(store, issued=120.0)
    store.set_token_state(broken.id, "invalid", now=130.0)
    keep = save(store, issued=200.0)
    v2 = save(store, "1000", "v2", issued=150.0)
    elsewhere = save(store, "2000", issued=150.0)

    assert store.supersede_others("1000", "v2.1", keep.id, now=250.0) == 2

    states = {t.id: (t.state, t.superseded_at) for t in store.list_tokens("1000")}
    assert states[old1.id] == states[old2.id] == ("superseded", 250.0)
    assert states[broken.id] == ("invalid", None)
    assert states[keep.id] == states[v2.id] == ("active", None)
    assert store.list_tokens("2000") == [elsewhere]
    assert store.supersede_others("1000", "v2.1", keep.id, now=260.0) == 0


def test_tokens_due_for_revocation_waits_out_the_grace_period(store: Store) -> None:
    early = save(store, issued=100.0, expires_at=10_000.0)
    late = save(store, issued=110.0, expires_at=10_000.0)
    store.set_token_state(early.id, "superseded", now=1000.0)
    store.set_token_state(late.id, "superseded", now=2000.0)
    assert store.tokens_due_for_revocation("1000", superseded_before=999.0, now=3000.0) == []
    due = store.tokens_due_for_revocation("1000", superseded_before=1500.0, now=3000.0)
    assert [t.id for t in due] == [early.id]
    due = store.tokens_due_for_revocation("1000", superseded_before=2000.0, now=3000.0)
    assert [t.id for t in due] == [early.id, late.id]


def test_tokens_due_for_revocation_leaves_out_expired_unrevocable_and_foreign_tokens(store: Store) -> None:
    expired = save(store, issued=100.0, expires_at=2000.0)
    v3 = save(store, "1000", "v3", key_id=None, issued=100.0, expires_at=10_000.0)
    static = store.save_token("1000", "static", TOKEN, None, 100.0, None)
    v2 = save(store, "1000", "v2", key_id=None, issued=100.0, expires_at=10_000.0)
    active = save(store, issued=200.0, expires_at=10_000.0)
    foreign = save(store, "2000", issued=100.0, expires_at=10_000.0)
    for record in (expired, v3, static, v2, foreign):
        store.set_token_state(record.id, "superseded", now=1000.0)

    due = store.tokens_due_for_revocation("1000", superseded_before=1500.0, now=2000.0)

    assert [t.id for t in due] == [v2.id]
    assert active.id not in {t.id for t in due}
    assert due[0].access_token.reveal() == v2.access_token.reveal()


def test_delete_expired_tokens_forgets_tokens_of_any_state(store: Store) -> None:
    gone = save(store, issued=100.0, expires_at=1000.0)
    gone_too = save(store, "2000", issued=100.0, expires_at=900.0)
    store.set_token_state(gone_too.id, "revoked", now=500.0)
    kept = save(store, issued=100.0, expires_at=1001.0)
    static = store.save_token("1000", "static", TOKEN, None, 100.0, None)

    assert store.delete_expired_tokens(now=1000.0) == 2

    assert [t.id for t in store.list_tokens("1000")] == [kept.id, static.id]
    assert store.list_tokens("2000") == []
    assert gone not in store.list_tokens("1000")


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.save_token("1000", "v4", TOKEN, None, 1.0, 2.0),
        lambda s: s.save_token("", "v2.1", TOKEN, None, 1.0, 2.0),
        lambda s: s.save_token("1000", "v2.1", "", None, 1.0, 2.0),
        lambda s: s.save_token("1000", "v2.1", TOKEN, None, float("nan"), 2.0),
        lambda s: s.current_token("1000", "V2.1", 1.0),
        lambda s: s.list_tokens("1000", states=["alive"]),
        lambda s: s.set_token_state(1, "gone", 1.0),
    ],
)
def test_bad_token_input_is_refused_clearly(store: Store, call: Any) -> None:
    with pytest.raises(ValidationError):
        call(store)


# -- single-flight leases


def test_lock_is_single_flight(store: Store) -> None:
    assert store.try_lock("refresh:1000:v2.1", "a", ttl=30.0, now=100.0)
    assert not store.try_lock("refresh:1000:v2.1", "b", ttl=30.0, now=101.0)
    assert store.try_lock("refresh:1000:v2.1", "a", ttl=30.0, now=102.0)
    assert store.try_lock("refresh:2000:v2.1", "b", ttl=30.0, now=103.0)


def test_lock_holder_relocking_extends_its_lease(store: Store) -> None:
    assert store.try_lock("l", "a", ttl=10.0, now=100.0)
    assert store.try_lock("l", "a", ttl=10.0, now=108.0)
    assert not store.try_lock("l", "b", ttl=10.0, now=115.0)
    assert store.try_lock("l", "b", ttl=10.0, now=118.0)


def test_expired_lock_is_taken_over_and_the_old_holder_cannot_free_it(store: Store) -> None:
    assert store.try_lock("l", "crashed", ttl=10.0, now=100.0)
    assert not store.try_lock("l", "b", ttl=10.0, now=109.9)
    assert store.try_lock("l", "b", ttl=10.0, now=110.0)
    store.unlock("l", "crashed")
    assert not store.try_lock("l", "c", ttl=10.0, now=111.0)
    assert not store.try_lock("l", "crashed", ttl=10.0, now=111.0)


def test_a_lock_of_a_holder_known_to_be_gone_is_taken_over_only_from_it(store: Store) -> None:
    assert store.lock_owner("l", now=100.0) is None
    assert store.try_lock("l", "killed", ttl=60.0, now=100.0)
    assert store.lock_owner("l", now=101.0) == "killed"
    assert not store.take_over_lock("l", "someone-else", "b", ttl=60.0, now=101.0)
    assert store.lock_owner("l", now=101.0) == "killed"
    assert store.take_over_lock("l", "killed", "b", ttl=60.0, now=101.0)
    assert store.lock_owner("l", now=102.0) == "b"
    assert not store.try_lock("l", "c", ttl=60.0, now=102.0)
    store.unlock("l", "killed")
    assert store.lock_owner("l", now=102.0) == "b"
    assert store.lock_owner("l", now=161.0) is None


def test_unlock_frees_the_lock_only_for_its_owner(store: Store) -> None:
    assert store.try_lock("l", "a", ttl=10.0, now=100.0)
    store.unlock("l", "b")
    assert not store.try_lock("l", "b", ttl=10.0, now=101.0)
    store.unlock("l", "a")
    assert store.try_lock("l", "b", ttl=10.0, now=102.0)
    store.unlock("never-locked", "a")


def test_live_locks_are_read_by_prefix_until_they_run_out(store: Store) -> None:
    assert store.try_lock("pause:1000", "monthly-limit", ttl=50.0, now=100.0)
    assert store.try_lock("pause:1000_2", "monthly-limit", ttl=10.0, now=100.0)
    assert store.try_lock("pause%", "x", ttl=10.0, now=100.0)
    assert store.try_lock("refresh:1000", "a", ttl=10.0, now=100.0)
    assert store.live_locks("pause:1000", now=105.0) == {"pause:1000": 150.0, "pause:1000_2": 110.0}
    assert store.live_locks("pause:1000", now=110.0) == {"pause:1000": 150.0}
    assert store.live_locks("pause%", now=105.0) == {"pause%": 110.0}  # not a LIKE pattern
    assert store.live_locks("pause:1000", now=150.0) == {}
    store.unlock("refresh:1000", "a")
    assert store.live_locks("refresh", now=101.0) == {}
    with pytest.raises(ValidationError):
        store.live_locks("", now=100.0)


def test_lock_contended_by_many_threads_goes_to_exactly_one(store: Store) -> None:
    barrier = threading.Barrier(8)
    won: list[str] = []

    def contend(owner: str) -> None:
        barrier.wait()
        if store.try_lock("refresh:1000:v2.1", owner, ttl=30.0, now=100.0):
            won.append(owner)

    threads = [threading.Thread(target=contend, args=(f"t{n}",)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1


@pytest.mark.parametrize("ttl", [0.0, -1.0, float("inf")])
def test_lock_needs_a_positive_finite_ttl(store: Store, ttl: float) -> None:
    with pytest.raises(ValidationError, match="ttl"):
        store.try_lock("l", "a", ttl=ttl, now=100.0)


# -- outbox: enqueue


def test_enqueue_stores_queued_rows_with_fresh_retry_keys(store: Store) -> None:
    rows = store.enqueue([push("a"), push("b"), NewMessage("2000", "broadcast", PAYLOAD)], now=100.0)
    assert [r.id for r in rows] == sorted(r.id for r in rows)
    assert len({r.id for r in rows}) == 3
    assert texts(rows) == ["a", "b", "Hello, world1"]
    assert [(r.channel_id, r.kind) for r in rows] == [
        ("1000", "push"),
        ("1000", "push"),
        ("2000", "broadcast"),
    ]
    for row in rows:
        assert (row.state, row.attempts, row.not_before, row.created_at, row.updated_at) == (
            "queued",
            0,
            100.0,
            100.0,
            100.0,
        )
        assert (row.first_attempt_at, row.lease_owner, row.lease_expires_at, row.delivered_at) == (None,) * 4
        assert uuid.UUID(row.retry_key).version == 4
        assert str(uuid.UUID(row.retry_key)) == row.retry_key
    assert len({r.retry_key for r in rows}) == 3


def test_enqueued_rows_read_back_equal(store: Store) -> None:
    payload = {"to": "U" + "1" * 32, "messages": [{"type": "text", "text": "絵文字 😀 \u2028 ok"}], "n": 1.5}
    (row,) = store.enqueue([NewMessage("1000", "push", payload, not_before=150.0)], now=100.0)
    assert store.get_message(row.id) == row
    assert row.payload == payload
    assert row.not_before == 150.0


def test_enqueue_keeps_a_given_retry_key_in_canonical_form(store: Store) -> None:
    key = uuid.uuid4()
    (row,) = store.enqueue([push(retry_key=str(key).upper())], now=100.0)
    assert row.retry_key == str(key)
    assert store.get_message(row.id) == row


def test_enqueue_of_nothing_stores_nothing(store: Store) -> None:
    assert store.enqueue([], now=100.0) == []
    assert sum(store.counts().values()) == 0


@pytest.mark.parametrize(
    ("bad", "prop"),
    [
        (NewMessage("1000", "push", {"to": {1, 2}}), "items[2].payload"),
        (NewMessage("1000", "push", {"n": float("nan")}), "items[2].payload"),
        (NewMessage("1000", "push", ["not", "an", "object"]), "items[2].payload"),  # type: ignore[arg-type]
        (NewMessage("1000", "reply", PAYLOAD), "items[2].kind"),  # type: ignore[arg-type]
        (NewMessage("", "push", PAYLOAD), "items[2].channel_id"),
        (NewMessage("1000", "push", PAYLOAD, retry_key="not-a-uuid"), "items[2].retry_key"),
        (NewMessage("1000", "push", PAYLOAD, not_before=float("inf")), "items[2].not_before"),
    ],
)
def test_a_bad_item_stores_none_of_the_batch(store: Store, bad: NewMessage, prop: str) -> None:
    with pytest.raises(ValidationError) as caught:
        store.enqueue([push("a"), push("b"), bad, push("c")], now=100.0)
    assert caught.value.property == prop
    assert sum(store.counts().values()) == 0
    assert store.list_messages() == []


def test_a_retry_key_given_twice_in_a_batch_stores_nothing(store: Store) -> None:
    key = str(uuid.uuid4())
    with pytest.raises(ValidationError) as caught:
        store.enqueue([push("a", retry_key=key), push("b"), push("c", retry_key=key.upper())], now=100.0)
    assert caught.value.property == "items[2].retry_key"
    assert sum(store.counts().values()) == 0


def test_a_retry_key_already_in_the_outbox_stores_nothing_of_the_batch(store: Store) -> None:
    key = str(uuid.uuid4())
    store.enqueue([push("first", retry_key=key)], now=100.0)
    with pytest.raises(ValidationError, match="already in the outbox") as caught:
        store.enqueue([push("a"), push("again", retry_key=key)], now=101.0)
    assert caught.value.property == "items[1].retry_key"
    assert texts(store.list_messages()) == ["first"]


def test_ids_are_never_reused_after_a_purge(store: Store) -> None:
    rows = store.enqueue([push("a"), push("b")], now=100.0)
    for row in store.claim("w", 10, 30.0, now=100.0):
        assert store.mark_failed(row.id, "w", 101.0, {"message": "no"})
    assert store.purge(["failed"], older_than=0.0, now=200.0) == 2
    (again,) = store.enqueue([push("c")], now=300.0)
    assert again.id > max(r.id for r in rows)


# -- outbox: claim


def test_claim_leases_due_rows_longest_due_first(store: Store) -> None:
    store.enqueue([push("late", not_before=130.0), push("b"), push("early", not_before=50.0)], now=100.0)
    store.enqueue([push("c"), push("future", not_before=500.0)], now=120.0)

    claimed = store.claim("w1", limit=10, lease_seconds=30.0, now=140.0)

    assert texts(claimed) == ["early", "b", "c", "late"]
    for row in claimed:
        assert (row.state, row.lease_owner, row.lease_expires_at) == ("sending", "w1", 170.0)
        assert (row.attempts, row.first_attempt_at, row.updated_at) == (1, 140.0, 140.0)
        assert store.get_message(row.id) == row
    assert store.counts() == {"queued": 1, "sending": 4, "delivered": 0, "failed": 0}


def test_claim_respects_the_limit_and_never_hands_out_a_leased_row_twice(store: Store) -> None:
    store.enqueue([push(str(n)) for n in range(5)], now=100.0)
    first = store.claim("w1", limit=2, lease_seconds=30.0, now=100.0)
    second = store.claim("w2", limit=10, lease_seconds=30.0, now=101.0)
    assert texts(first) == ["0", "1"]
    assert texts(second) == ["2", "3", "4"]
    assert store.claim("w3", limit=10, lease_seconds=30.0, now=102.0) == []


def test_claim_waits_for_not_before(store: Store) -> None:
    store.enqueue([push("later", not_before=200.0)], now=100.0)
    assert store.claim("w", 10, 30.0, now=199.9) == []
    assert texts(store.claim("w", 10, 30.0, now=200.0)) == ["later"]


def test_claim_can_be_limited_to_one_channel(store: Store) -> None:
    store.enqueue([push("a", "1000"), push("b", "2000"), push("c", "1000")], now=100.0)
    assert texts(store.claim("w", 10, 30.0, now=100.0, channel_id="1000")) == ["a", "c"]
    assert store.claim("w", 10, 30.0, now=100.0, channel_id="3000") == []
    assert texts(store.claim("w", 10, 30.0, now=100.0)) == ["b"]


def test_a_dead_workers_rows_are_taken_over_when_the_lease_runs_out(store: Store) -> None:
    (row,) = store.enqueue([push("x")], now=100.0)
    store.claim("dead", 10, lease_seconds=30.0, now=100.0)
    assert store.claim("w2", 10, 30.0, now=129.9) == []

    (taken,) = store.claim("w2", 10, lease_seconds=30.0, now=130.0)

    assert (taken.id, taken.lease_owner, taken.lease_expires_at) == (row.id, "w2", 160.0)
    assert (taken.attempts, taken.first_attempt_at, taken.retry_key) == (2, 100.0, row.retry_key)


def test_expired_leases_are_claimed_in_due_order_with_queued_rows(store: Store) -> None:
    store.enqueue([push("oldest")], now=100.0)
    store.claim("dead", 10, lease_seconds=30.0, now=100.0)
    store.enqueue([push("newer")], now=110.0)
    store.enqueue([push("newest")], now=120.0)
    assert texts(store.claim("w", 2, 30.0, now=200.0)) == ["oldest", "newer"]


def test_concurrent_claimers_in_threads_never_share_a_row(store: Store) -> None:
    rows = store.enqueue([push(str(n)) for n in range(400)], now=100.0)
    barrier = threading.Barrier(6)
    got: dict[str, list[int]] = {}

    def work(name: str) -> None:
        mine = got.setdefault(name, [])
        barrier.wait()
        while batch := store.claim(name, limit=7, lease_seconds=60.0, now=100.0):
            mine.extend(r.id for r in batch)

    threads = [threading.Thread(target=work, args=(f"w{n}",)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    claimed = [i for ids in got.values() for i in ids]
    assert sorted(claimed) == sorted(r.id for r in rows)


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.claim("", 10, 30.0, 1.0),
        lambda s: s.claim("w", 0, 30.0, 1.0),
        lambda s: s.claim("w", 10, 0.0, 1.0),
        lambda s: s.claim("w", 10, 30.0, float("nan")),
    ],
)
def test_bad_claim_input_is_refused_clearly(store: Store, call: Any) -> None:
    with pytest.raises(ValidationError):
        call(store)


# -- outbox: settling


@pytest.fixture
def leased(store: Store) -> OutboxMessage:
    store.enqueue([push("x")], now=100.0)
    (row,) = store.claim("w1", 10, lease_seconds=30.0, now=100.0)
    return row


def test_mark_delivered_keeps_what_line_answered(store: Store, leased: OutboxMessage) -> None:
    result = {"sentMessages": [{"id": "461230966842064897", "quoteToken": "IStG5h1Tz7b"}]}
    assert store.mark_delivered(leased.id, "w1", 110.0, "rid-1", result)
    row = store.get_message(leased.id)
    assert row is not None
    assert (row.state, row.delivered_at, row.updated_at, row.request_id, row.result) == (
        "delivered",
        110.0,
        110.0,
        "rid-1",
        result,
    )
    assert (row.lease_owner, row.lease_expires_at) == (None, None)
    assert store.claim("w2", 10, 30.0, now=1000.0) == []


def test_mark_retry_requeues_until_not_before_and_keeps_the_error(
    store: Store, leased: OutboxMessage
) -> None:
    error = {"status": 500, "message": "Internal Server Error"}
    assert store.mark_retry(leased.id, "w1", 110.0, not_before=150.0, error=error)
    row = store.get_message(leased.id)
    assert row is not None
    assert (row.state, row.not_before, row.last_error, row.attempts) == ("queued", 150.0, error, 1)
    assert row.lease_owner is None
    assert store.claim("w1", 10, 30.0, now=149.0) == []
    (again,) = store.claim("w2", 10, 30.0, now=150.0)
    assert (again.attempts, again.first_attempt_at, again.retry_key) == (2, 100.0, leased.retry_key)


def test_mark_failed_is_final_until_requeued(store: Store, leased: OutboxMessage) -> None:
    error = {"status": 400, "message": "The request body has 1 error(s)", "details": []}
    assert store.mark_failed(leased.id, "w1", 110.0, error)
    row = store.get_message(leased.id)
    assert row is not None
    assert (row.state, row.last_error, row.updated_at, row.lease_owner) == ("failed", error, 110.0, None)
    assert store.claim("w2", 10, 30.0, now=10_000.0) == []


def test_errors_that_json_cannot_hold_are_kept_as_text(store: Store, leased: OutboxMessage) -> None:
    assert store.mark_failed(leased.id, "w1", 110.0, {"exception": ValueError("boom")})
    row = store.get_message(leased.id)
    assert row is not None and row.last_error == {"exception": "boom"}


@pytest.mark.parametrize(
    "settle",
    [
        lambda s, i, w, now: s.mark_delivered(i, w, now, "rid", {}),
        lambda s, i, w, now: s.mark_retry(i, w, now, now + 10, {"e": 1}),
        lambda s, i, w, now: s.mark_failed(i, w, now, {"e": 1}),
    ],
    ids=["delivered", "retry", "failed"],
)
class TestSettleNeedsTheLease:
    def test_refused_for_another_worker(self, store: Store, leased: OutboxMessage, settle: Any) -> None:
        assert not settle(store, leased.id, "w2", 110.0)
        assert store.get_message(leased.id) == leased

    def test_refused_once_the_lease_ran_out_even_if_nobody_took_over(
        self, store: Store, leased: OutboxMessage, settle: Any
    ) -> None:
        assert not settle(store, leased.id, "w1", 130.0)
        assert store.get_message(leased.id) == leased

    def test_refused_after_another_worker_took_over(
        self, store: Store, leased: OutboxMessage, settle: Any
    ) -> None:
        (taken,) = store.claim("w2", 10, 30.0, now=131.0)
        assert not settle(store, leased.id, "w1", 132.0)
        assert store.get_message(leased.id) == taken
        assert settle(store, leased.id, "w2", 132.0)

    def test_refused_when_already_settled(self, store: Store, leased: OutboxMessage, settle: Any) -> None:
        assert store.mark_delivered(leased.id, "w1", 110.0, "rid-1", {"ok": True})
        settled = store.get_message(leased.id)
        assert not settle(store, leased.id, "w1", 111.0)
        assert store.get_message(leased.id) == settled

    def test_refused_for_an_unknown_message(self, store: Store, leased: OutboxMessage, settle: Any) -> None:
        assert not settle(store, leased.id + 1000, "w1", 110.0)


def test_renew_leases_extends_only_live_leases_of_that_worker(store: Store) -> None:
    store.enqueue([push("a"), push("b"), push("c")], now=100.0)
    a, b = store.claim("w1", 2, lease_seconds=30.0, now=100.0)
    (c,) = store.claim("w2", 1, lease_seconds=30.0, now=100.0)

    assert store.renew_leases([a.id, b.id, c.id, 999_999], "w1", lease_seconds=30.0, now=120.0) == 2

    assert [store.get_message(i).lease_expires_at for i in (a.id, b.id, c.id)] == [150.0, 150.0, 130.0]  # type: ignore[union-attr]
    assert store.renew_leases([c.id], "w2", 30.0, now=130.0) == 0
    assert store.renew_leases([], "w1", 30.0, now=130.0) == 0


def test_release_puts_rows_back_without_counting_the_attempt(store: Store) -> None:
    original = store.enqueue([push("a"), push("b")], now=100.0)
    claimed = store.claim("w1", 10, 30.0, now=110.0)

    assert store.release([r.id for r in claimed], "w1", now=115.0) == 2

    for before in original:
        row = store.get_message(before.id)
        assert row is not None
        assert (row.state, row.attempts, row.first_attempt_at, row.lease_owner) == ("queued", 0, None, None)
        assert row.not_before == before.not_before
    assert texts(store.claim("w2", 10, 30.0, now=116.0)) == ["a", "b"]


def test_release_after_a_real_attempt_keeps_when_that_attempt_was(store: Store) -> None:
    (row,) = store.enqueue([push("a")], now=100.0)
    store.claim("w1", 10, 30.0, now=100.0)
    store.mark_retry(row.id, "w1", 101.0, not_before=110.0, error={"status": 503})
    store.claim("w1", 10, 30.0, now=110.0)

    assert store.release([row.id], "w1", now=111.0) == 1

    again = store.get_message(row.id)
    assert again is not None and (again.state, again.attempts, again.first_attempt_at) == ("queued", 1, 100.0)


def test_release_needs_the_lease(store: Store, leased: OutboxMessage) -> None:
    assert store.release([leased.id], "w2", now=110.0) == 0
    assert store.release([leased.id], "w1", now=130.0) == 0
    assert store.get_message(leased.id) == leased


# -- outbox: inspection and maintenance


def _fail_all(store: Store, now: float) -> list[OutboxMessage]:
    claimed = store.claim("w", 1000, 30.0, now=now)
    for row in claimed:
        assert store.mark_failed(row.id, "w", now, {"status": 400})
    return claimed


def test_requeue_keeps_the_retry_key_and_the_first_attempt_by_default(store: Store) -> None:
    rows = store.enqueue([push("a"), push("b")], now=100.0)
    _fail_all(store, 110.0)

    assert store.requeue(now=200.0) == 2

    for before in rows:
        row = store.get_message(before.id)
        assert row is not None
        assert (row.state, row.not_before, row.retry_key) == ("queued", 200.0, before.retry_key)
        assert (row.attempts, row.first_attempt_at, row.last_error) == (1, 110.0, {"status": 400})
    (again, _) = store.claim("w", 10, 30.0, now=200.0)
    assert (again.attempts, again.first_attempt_at) == (2, 110.0)


def test_requeue_with_a_new_retry_key_starts_the_message_afresh(store: Store) -> None:
    given = str(uuid.uuid4())
    rows = store.enqueue([push("a", retry_key=given), push("b")], now=100.0)
    _fail_all(store, 110.0)

    assert store.requeue([r.id for r in rows], now=200.0, new_retry_key=True) == 2

    keys = set()
    for before in rows:
        row = store.get_message(before.id)
        assert row is not None
        assert row.retry_key != before.retry_key and uuid.UUID(row.retry_key).version == 4
        assert (row.state, row.attempts, row.first_attempt_at) == ("queued", 0, None)
        keys.add(row.retry_key)
    assert len(keys) == 2
    # The key the caller chose is free again.
    store.enqueue([push("c", retry_key=given)], now=300.0)


def test_requeue_touches_only_failed_rows_among_those_named(store: Store) -> None:
    a, b, c = store.enqueue([push("a"), push("b"), push("c")], now=100.0)
    claimed = store.claim("w", 2, 30.0, now=100.0)
    assert store.mark_failed(a.id, "w", 101.0, None)
    assert store.mark_delivered(b.id, "w", 101.0, "rid", None)
    assert len(claimed) == 2

    assert store.requeue([a.id, b.id, c.id, 12345], now=200.0) == 1

    assert store.counts() == {"queued": 2, "sending": 0, "delivered": 1, "failed": 0}
    assert store.requeue(now=300.0) == 0
    assert store.requeue([], now=300.0) == 0


@pytest.mark.parametrize("far", [2**64, -(2**64), 10**30])
def test_an_id_past_64_bits_matches_no_row(store: Store, far: int) -> None:
    (row,) = store.enqueue([push("a")], now=100.0)
    (claimed,) = store.claim("w", 1, 30.0, now=100.0)
    assert store.mark_failed(claimed.id, "w", 101.0, None)

    assert store.requeue([far], now=200.0) == 0
    assert store.requeue([far, row.id], now=200.0) == 1
    assert store.get_message(far) is None
    assert store.list_messages(after_id=far) == ([] if far > 0 else [store.get_message(row.id)])


def test_counts_has_every_state_and_can_be_per_channel(store: Store) -> None:
    assert store.counts() == {"queued": 0, "sending": 0, "delivered": 0, "failed": 0}
    store.enqueue([push("a", "1000"), push("b", "1000"), push("c", "2000")], now=100.0)
    (row,) = store.claim("w", 1, 30.0, now=100.0)
    store.mark_delivered(row.id, "w", 101.0, None, None)
    store.claim("w", 1, 30.0, now=102.0)

    assert store.counts() == {"queued": 1, "sending": 1, "delivered": 1, "failed": 0}
    assert store.counts("1000") == {"queued": 0, "sending": 1, "delivered": 1, "failed": 0}
    assert store.counts("2000") == {"queued": 1, "sending": 0, "delivered": 0, "failed": 0}


def test_list_messages_filters_and_pages_by_id(store: Store) -> None:
    rows = store.enqueue([push(str(n), "1000" if n % 2 else "2000") for n in range(7)], now=100.0)
    store.claim("w", 2, 30.0, now=100.0)

    page1 = store.list_messages(limit=3)
    page2 = store.list_messages(limit=3, after_id=page1[-1].id)
    page3 = store.list_messages(limit=3, after_id=page2[-1].id)
    assert [r.id for r in page1 + page2 + page3] == [r.id for r in rows]
    assert texts(store.list_messages(state="sending")) == ["0", "1"]
    assert texts(store.list_messages(state="queued", channel_id="1000")) == ["3", "5"]
    assert texts(store.list_messages(channel_id="2000", limit=2)) == ["0", "2"]
    assert store.get_message(rows[-1].id + 1) is None
    with pytest.raises(ValidationError):
        store.list_messages(state="lost")  # type: ignore[arg-type]


def test_purge_deletes_old_rows_of_the_states_named(store: Store) -> None:
    store.enqueue([push(str(n)) for n in range(4)], now=100.0)
    d1, d2, f1, _ = store.claim("w", 4, 1000.0, now=100.0)
    store.mark_delivered(d1.id, "w", 110.0, None, None)
    store.mark_delivered(d2.id, "w", 200.0, None, None)
    store.mark_failed(f1.id, "w", 110.0, None)
    store.enqueue([push("queued")], now=110.0)

    assert store.purge(["delivered"], older_than=50.0, now=200.0) == 1
    assert store.counts() == {"queued": 1, "sending": 1, "delivered": 1, "failed": 1}
    assert store.purge(["failed", "queued"], older_than=90.0, now=200.0) == 0
    assert store.purge(["failed", "queued"], older_than=89.0, now=200.0) == 2
    assert store.counts() == {"queued": 0, "sending": 1, "delivered": 1, "failed": 0}


@pytest.mark.parametrize(
    ("states", "older_than"), [(["sending"], 0.0), ([], 0.0), (["gone"], 0.0), (["failed"], -1.0)]
)
def test_purge_refuses_in_flight_rows_and_bad_input(store: Store, states: Any, older_than: float) -> None:
    store.enqueue([push("a")], now=100.0)
    store.claim("w", 1, 30.0, now=100.0)
    with pytest.raises(ValidationError):
        store.purge(states, older_than=older_than, now=1000.0)
    assert store.counts()["sending"] == 1


# -- lifecycle


def test_schema_version_is_positive(store: Store) -> None:
    assert store.schema_version >= 1


def test_a_closed_store_refuses_work_and_closes_twice(store: Store) -> None:
    store.close()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.counts()


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.enqueue([push("a\ud800b")], now=1.0),
        lambda s: s.save_token("1000", "v2.1", "token\ud800", None, 1.0, 2.0),
    ],
    ids=["surrogate-payload", "surrogate-token"],
)
def test_a_lone_surrogate_is_a_validation_error_and_stores_nothing(store: Store, call: Any) -> None:
    # A Python string may hold one; UTF-8, and so neither database, can.
    with pytest.raises(ValidationError, match="cannot be stored") as caught:
        call(store)
    assert "token" not in str(caught.value) and "\ud800" not in str(caught.value)
    assert sum(store.counts().values()) == 0 and store.list_tokens("1000") == []


def test_purge_and_token_lists_bind_lists_of_every_length(store: Store) -> None:
    # A list of values is bound as IN (?, ...) on one backend and as an array on the other.
    for i, state in enumerate(("active", "superseded", "invalid", "revoked")):
        token = store.save_token("1000", "v2.1", f"t{i}", f"k{i}", float(i), None)
        store.set_token_state(token.id, state, now=10.0)
    assert [t.state for t in store.list_tokens("1000", states=["revoked"])] == ["revoked"]
    assert [t.state for t in store.list_tokens("1000", states=["invalid", "active", "revoked"])] == [
        "active",
        "invalid",
        "revoked",
    ]
    assert store.purge(["delivered", "failed", "queued"], older_than=0.0, now=1.0) == 0


# -- digests: notifications to one chat merged into one queued push at enqueue time

DIGEST_TO = "U" + "0" * 32


def merged_texts(parts: Any) -> dict[str, Any] | None:
    """A stand-in renderer: the parts' texts joined, None past 3 parts (a push that is full)."""
    if len(parts) > 3:
        return None
    return {"to": DIGEST_TO, "messages": [{"type": "text", "text": "|".join(p.text for p in parts)}]}


def append(store: Store, text: str, now: float, **kw: Any) -> Any:
    from linepush.store.base import DigestPart

    args: dict[str, Any] = {"window": 30.0, "render": merged_texts} | kw
    return store.append_digest("1000", DIGEST_TO, DigestPart(now, text), now=now, **args)


def test_appends_within_the_window_merge_into_one_queued_row_due_when_it_closes(store: Store) -> None:
    first = append(store, "a", 100.0)
    assert (first.opened, first.parts) == (True, 1)
    assert (first.message.state, first.message.kind, first.message.not_before) == ("queued", "push", 130.0)
    second = append(store, "b", 110.0)
    third = append(store, "c", 129.9)
    assert second.message.id == third.message.id == first.message.id
    assert (second.opened, third.parts) == (False, 3)
    [row] = store.list_messages("queued")
    assert row.payload["messages"] == [{"type": "text", "text": "a|b|c"}]
    assert row.not_before == 130.0 and row.retry_key == first.message.retry_key
    assert store.claim("w", 10, 60.0, now=129.0) == []
    assert [m.id for m in store.claim("w", 10, 60.0, now=130.0)] == [row.id]


def test_a_closed_window_opens_a_new_digest(store: Store) -> None:
    first = append(store, "a", 100.0)
    later = append(store, "b", 130.0)
    assert later.opened and later.message.id != first.message.id
    assert texts(store.list_messages("queued")) == ["a", "b"]


def test_a_full_digest_is_due_at_once_and_the_next_part_opens_another(store: Store) -> None:
    rows = [append(store, text, 100.0 + i) for i, text in enumerate("abcd")]
    assert [r.opened for r in rows] == [True, False, False, True]
    full, fresh = store.list_messages("queued")
    assert texts([full, fresh]) == ["a|b|c", "d"]
    assert full.not_before == 103.0 and fresh.not_before == 133.0
    assert [m.id for m in store.claim("w", 10, 60.0, now=103.0)] == [full.id]


def test_a_claimed_digest_is_never_changed(store: Store) -> None:
    first = append(store, "a", 100.0)
    [claimed] = store.claim("w", 10, 60.0, now=130.0)
    # A clock behind the worker's still sees the window open: the claim is what counts.
    late = append(store, "b", 120.0)
    assert late.opened and late.message.id != first.message.id
    assert store.get_message(claimed.id).payload == claimed.payload  # type: ignore[union-attr]
    # Sent once and back in the queue for a retry: its retry key names what LINE may have, so it stays.
    assert store.mark_retry(claimed.id, "w", 131.0, 131.0, None)
    assert append(store, "c", 125.0).message.id == late.message.id


def test_digests_are_kept_apart_by_chat_channel_and_silence(store: Store) -> None:
    from linepush.store.base import DigestPart

    other = "U" + "1" * 32
    append(store, "a", 100.0)
    append(store, "b", 100.0, notification_disabled=True)
    for channel, to, text in (("1000", other, "c"), ("2000", DIGEST_TO, "d")):
        store.append_digest(channel, to, DigestPart(100.0, text), window=30.0, now=100.0, render=merged_texts)
    assert len(store.list_messages("queued")) == 4
    assert append(store, "e", 101.0).parts == 2


def test_a_part_that_renders_alone_to_nothing_stores_nothing(store: Store) -> None:
    append(store, "a", 100.0)
    with pytest.raises(ValidationError):
        append(store, "b", 101.0, render=lambda parts: None)
    [row] = store.list_messages("queued")
    assert texts([row]) == ["a"]

    def refuses_merging(parts: Any) -> dict[str, Any] | None:
        if len(parts) > 1:
            raise ValidationError("LINE would refuse it")
        return merged_texts(parts)

    with pytest.raises(ValidationError):
        append(store, "c", 101.0, render=refuses_merging)
    assert texts(store.list_messages("queued")) == ["a"]


@pytest.mark.parametrize("window", [0.0, -1.0, float("nan"), float("inf"), 86_401.0])
def test_a_digest_window_must_be_more_than_zero_and_at_most_a_day(store: Store, window: float) -> None:
    with pytest.raises(ValidationError):
        append(store, "a", 100.0, window=window)
    assert store.list_messages() == []


def test_a_purged_digest_takes_its_parts_with_it(store: Store) -> None:
    row = append(store, "a", 100.0).message
    [claimed] = store.claim("w", 10, 60.0, now=130.0)
    assert store.mark_delivered(claimed.id, "w", 131.0, "req", None)
    assert store.purge(["delivered"], 0.0, 200.0) == 1
    assert store.get_message(row.id) is None
    assert append(store, "b", 200.0).opened


def test_threads_appending_to_one_chat_lose_no_part(store: Store) -> None:
    from linepush.store.base import DigestPart

    def every_text(parts: Any) -> dict[str, Any]:
        return {"to": DIGEST_TO, "messages": [{"type": "text", "text": "|".join(p.text for p in parts)}]}

    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def appender(n: int) -> None:
        try:
            start.wait()
            for i in range(15):
                part = DigestPart(100.0, f"{n}.{i}")
                store.append_digest("1000", DIGEST_TO, part, window=30.0, now=100.0, render=every_text)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=appender, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    [row] = store.list_messages("queued")
    got = row.payload["messages"][0]["text"].split("|")
    assert sorted(got) == sorted(f"{n}.{i}" for n in range(6) for i in range(15))
    for n in range(6):  # each appender's parts in the order it appended them
        mine = [t for t in got if t.startswith(f"{n}.")]
        assert mine == [f"{n}.{i}" for i in range(15)]


# -- the counts by channel and state ----------------------------------------------------------------------


def counted_rows(store: Store) -> dict[tuple[str, str], int]:
    """The outbox's rows by channel and state, counted from the rows themselves."""
    assert isinstance(store, SQLStore)
    rows = store.select("SELECT channel_id, state, count(*) FROM outbox GROUP BY channel_id, state")
    return {(channel, state): int(n) for channel, state, n in rows}


def assert_counts_exact(store: Store) -> None:
    truth = counted_rows(store)
    assert store.counts_by_channel() == truth
    for channel in ("1000", "2000", None):
        expected = {state: 0 for state in ("queued", "sending", "delivered", "failed")}
        for (row_channel, state), n in truth.items():
            if channel in (None, row_channel):
                expected[state] += n
        assert store.counts(channel) == expected


class CountsMachine(RuleBasedStateMachine):
    """Every write the outbox knows, in any order, on one store: its counts stay those of its rows."""

    store: Store

    def __init__(self) -> None:
        super().__init__()
        self.now = 1_000.0 + 10_000.0 * CountsMachine.round
        CountsMachine.round += 1

    round = 0

    def leased(self) -> list[OutboxMessage]:
        return self.store.list_messages(state="sending", limit=1000)

    @rule(n=st.integers(1, 4), channel=st.sampled_from(["1000", "2000"]), later=st.booleans())
    def enqueue(self, n: int, channel: str, later: bool) -> None:
        due = self.now + (30.0 if later else 0.0)
        self.store.enqueue([push(f"m{i}", channel, not_before=due) for i in range(n)], now=self.now)

    @rule(
        worker=st.sampled_from(["w1", "w2"]),
        limit=st.integers(1, 5),
        channel=st.sampled_from([None, "1000", "2000"]),
    )
    def claim(self, worker: str, limit: int, channel: str | None) -> None:
        # Rows whose lease ran out are taken over too: the lease expiry path.
        self.store.claim(worker, limit, 20.0, self.now, channel)

    @rule(outcome=st.sampled_from(["delivered", "retry", "failed"]), pick=st.integers(0, 3))
    def settle(self, outcome: Any, pick: int) -> None:
        leased = self.leased()[pick::4]
        by_owner: dict[str, list[Settlement]] = {}
        for message in leased:
            due = self.now + 5.0 if outcome == "retry" else None
            error = None if outcome == "delivered" else {"type": "Test"}
            settlement = Settlement(message.id, outcome, not_before=due, error=error)
            by_owner.setdefault(message.lease_owner or "", []).append(settlement)
        for owner, items in by_owner.items():
            self.store.settle(owner, self.now, items)

    @rule()
    def release(self) -> None:
        for message in self.leased()[:2]:
            self.store.release([message.id], message.lease_owner or "", self.now)

    @rule()
    def renew(self) -> None:
        for message in self.leased()[:2]:
            self.store.renew_leases([message.id], message.lease_owner or "", 20.0, self.now)

    @rule(everything=st.booleans(), fresh_key=st.booleans())
    def requeue(self, everything: bool, fresh_key: bool) -> None:
        failed = self.store.list_messages(state="failed", limit=2)
        ids = None if everything else [m.id for m in failed]
        self.store.requeue(ids, now=self.now, new_retry_key=fresh_key)

    @rule(states=st.sets(st.sampled_from(["queued", "delivered", "failed"]), min_size=1))
    def purge(self, states: set[Any]) -> None:
        self.store.purge(states, older_than=0.0, now=self.now + 0.5)

    @rule(seconds=st.sampled_from([1.0, 25.0]))
    def wait(self, seconds: float) -> None:
        self.now += seconds

    @invariant()
    def counts_are_exact(self) -> None:
        assert_counts_exact(self.store)


def test_counts_stay_exact_through_every_write(store: Store) -> None:
    CountsMachine.store = store
    run_state_machine_as_test(
        CountsMachine, settings=settings(max_examples=15, stateful_step_count=25, deadline=None)
    )


def test_counts_forget_a_purged_channel(store: Store) -> None:
    store.enqueue([push("a", "2000")], now=1.0)
    (leased,) = store.claim("w", 1, 10.0, 2.0)
    store.mark_failed(leased.id, "w", 3.0, {"type": "Test"})
    assert store.counts_by_channel() == {("2000", "failed"): 1}
    assert store.purge(["failed"], older_than=0.0, now=4.0) == 1
    assert store.counts_by_channel() == {}
    assert store.counts("2000") == {"queued": 0, "sending": 0, "delivered": 0, "failed": 0}
