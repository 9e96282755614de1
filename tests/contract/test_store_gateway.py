"""The gateway's tables, on every storage backend: gateway tokens (kept as hashes) and webhook recipients."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from linepush.errors import ConfigurationError, ValidationError
from linepush.service.store import GatewayStore, NotifyUsage, RecipientSighting, gateway_store
from linepush.store import Store

USER = "U" + "4" * 32
GROUP = "C" + "a" * 32
ROOM = "R" + "0" * 32


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# -- gateway tokens


def test_created_gateway_token_comes_back_whole(gateway: GatewayStore) -> None:
    created = gateway.create_gateway_token("1000", digest("t1"), USER, "ops", 100.0)
    assert (created.channel_id, created.token_hash, created.recipient_id, created.name) == (
        "1000",
        digest("t1"),
        USER,
        "ops",
    )
    assert (created.created_at, created.revoked_at, created.revoked) == (100.0, None, False)
    assert gateway.find_gateway_token(digest("t1")) == created


def test_gateway_token_name_is_optional(gateway: GatewayStore) -> None:
    created = gateway.create_gateway_token("1000", digest("t1"), GROUP, None, 100.0)
    assert created.name is None
    assert gateway.find_gateway_token(digest("t1")) == created


def test_a_token_bound_to_a_route_table_comes_back_whole(gateway: GatewayStore) -> None:
    created = gateway.create_gateway_token("1000", digest("t1"), None, "db", 100.0, route_table="db-team")
    assert (created.recipient_id, created.route_table, created.name) == (None, "db-team", "db")
    assert gateway.find_gateway_token(digest("t1")) == created
    plain = gateway.create_gateway_token("1000", digest("t2"), USER, None, 101.0)
    assert plain.route_table is None
    assert [(t.recipient_id, t.route_table) for t in gateway.list_gateway_tokens("1000")] == [
        (None, "db-team"),
        (USER, None),
    ]


@pytest.mark.parametrize(
    ("recipient_id", "route_table", "prop"),
    [
        (USER, "db-team", "recipient_id"),  # both
        (None, None, "recipient_id"),  # neither
        (None, "db team", "route_table"),
        (None, "", "route_table"),
        (None, "x" * 65, "route_table"),
        (None, "-db", "route_table"),
    ],
)
def test_a_token_is_bound_to_one_recipient_or_one_route_table(
    gateway: GatewayStore, recipient_id: str | None, route_table: str | None, prop: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        gateway.create_gateway_token("1000", digest("t1"), recipient_id, None, 100.0, route_table=route_table)
    assert caught.value.property == prop
    assert gateway.list_gateway_tokens() == []


def test_find_gateway_token_of_an_unknown_or_malformed_hash_is_none(gateway: GatewayStore) -> None:
    gateway.create_gateway_token("1000", digest("t1"), USER, None, 100.0)
    assert gateway.find_gateway_token(digest("t2")) is None
    assert gateway.find_gateway_token("t1") is None
    assert gateway.find_gateway_token(digest("t1").upper()) is None
    assert gateway.find_gateway_token("") is None


def test_a_token_hash_is_stored_once(gateway: GatewayStore) -> None:
    gateway.create_gateway_token("1000", digest("t1"), USER, "a", 100.0)
    with pytest.raises(ValidationError) as caught:
        gateway.create_gateway_token("2000", digest("t1"), GROUP, "b", 200.0)
    assert caught.value.property == "token_hash"
    assert [t.name for t in gateway.list_gateway_tokens()] == ["a"]


@pytest.mark.parametrize(
    ("args", "prop"),
    [
        (("1000", "not-a-hash", USER, None), "token_hash"),
        (("1000", digest("x").upper(), USER, None), "token_hash"),
        (("1000", digest("x"), "U123", None), "recipient_id"),
        (("1000", digest("x"), "X" + "0" * 32, None), "recipient_id"),
        (("1000", digest("x"), "U" + "A" * 32, None), "recipient_id"),
        (("1000", digest("x"), USER, ""), "name"),
        (("1000", digest("x"), USER, "n" * 101), "name"),
        (("1000", digest("x"), USER, 5), "name"),
        (("1000", digest("x"), USER, "ops\x1b[2J"), "name"),
        (("1000", digest("x"), USER, "a\nb"), "name"),
    ],
)
def test_bad_gateway_token_input_is_refused_and_nothing_is_stored(
    gateway: GatewayStore, args: tuple[Any, ...], prop: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        gateway.create_gateway_token(*args, 100.0)
    assert caught.value.property == prop
    assert gateway.list_gateway_tokens() == []


def test_gateway_token_of_empty_channel_is_refused(gateway: GatewayStore) -> None:
    with pytest.raises(ValidationError):
        gateway.create_gateway_token("", digest("x"), USER, None, 100.0)


def test_list_gateway_tokens_oldest_first_by_channel_and_state(gateway: GatewayStore) -> None:
    late = gateway.create_gateway_token("1000", digest("late"), USER, "late", 300.0)
    early = gateway.create_gateway_token("1000", digest("early"), USER, "early", 100.0)
    other = gateway.create_gateway_token("2000", digest("other"), ROOM, "other", 200.0)
    assert gateway.list_gateway_tokens() == [early, other, late]
    assert gateway.list_gateway_tokens("1000") == [early, late]
    assert gateway.list_gateway_tokens("3000") == []
    gateway.revoke_gateway_token(early.id, 400.0)
    assert [t.name for t in gateway.list_gateway_tokens("1000", include_revoked=False)] == ["late"]
    assert [t.name for t in gateway.list_gateway_tokens("1000")] == ["early", "late"]


def test_revoke_gateway_token_once_and_keeps_the_first_time(gateway: GatewayStore) -> None:
    created = gateway.create_gateway_token("1000", digest("t1"), USER, None, 100.0)
    assert gateway.revoke_gateway_token(created.id, 150.0) is True
    assert gateway.revoke_gateway_token(created.id, 160.0) is False
    found = gateway.find_gateway_token(digest("t1"))
    assert found is not None
    assert (found.revoked, found.revoked_at) == (True, 150.0)


def test_revoke_touches_only_that_token(gateway: GatewayStore) -> None:
    one = gateway.create_gateway_token("1000", digest("t1"), USER, None, 100.0)
    two = gateway.create_gateway_token("1000", digest("t2"), USER, None, 100.0)
    gateway.revoke_gateway_token(one.id, 150.0)
    assert gateway.find_gateway_token(digest("t2")) == two


def test_revoke_of_an_unknown_gateway_token_is_an_error(gateway: GatewayStore) -> None:
    with pytest.raises(LookupError):
        gateway.revoke_gateway_token(12345, 100.0)


def test_a_gateway_token_id_past_64_bits_is_unknown(gateway: GatewayStore) -> None:
    far = 2**64
    with pytest.raises(LookupError):
        gateway.revoke_gateway_token(far, 100.0)
    with pytest.raises(LookupError):
        gateway.set_gateway_token_digest(far, 30.0)
    assert gateway.gateway_token_digest(far) is None


# -- webhook recipients


def test_recorded_recipients_have_their_type_and_times(gateway: GatewayStore) -> None:
    gateway.record_recipients(
        "1000",
        [
            RecipientSighting(USER, "follow"),
            RecipientSighting(GROUP, "join"),
            RecipientSighting(ROOM, "message"),
        ],
        100.0,
    )
    found = {r.recipient_id: r for r in gateway.list_recipients("1000")}
    assert set(found) == {USER, GROUP, ROOM}
    assert [found[i].type for i in (USER, GROUP, ROOM)] == ["user", "group", "room"]
    assert found[USER].last_event_type == "follow"
    assert found[GROUP].last_event_type == "join"
    for recipient in found.values():
        assert (recipient.channel_id, recipient.first_seen_at, recipient.last_seen_at) == (
            "1000",
            100.0,
            100.0,
        )
        assert recipient.sightings == 1


def test_a_recipient_seen_again_keeps_first_seen_and_moves_last_seen(gateway: GatewayStore) -> None:
    gateway.record_recipients("1000", [RecipientSighting(USER, "follow")], 100.0)
    gateway.record_recipients("1000", [RecipientSighting(USER, "message")], 200.0)
    gateway.record_recipients("1000", [RecipientSighting(USER, "unfollow")], 150.0)  # a late redelivery
    (recipient,) = gateway.list_recipients("1000")
    assert (recipient.first_seen_at, recipient.last_seen_at) == (100.0, 200.0)
    assert recipient.last_event_type == "unfollow"
    assert recipient.sightings == 3


def test_an_id_repeated_in_one_batch_counts_each_time_and_the_last_event_wins(gateway: GatewayStore) -> None:
    gateway.record_recipients(
        "1000", [RecipientSighting(USER, "message"), RecipientSighting(USER, "unfollow")], 100.0
    )
    (recipient,) = gateway.list_recipients()
    assert (recipient.sightings, recipient.last_event_type) == (2, "unfollow")


def test_recipients_are_kept_per_channel(gateway: GatewayStore) -> None:
    gateway.record_recipients("1000", [RecipientSighting(USER, "follow")], 100.0)
    gateway.record_recipients("2000", [RecipientSighting(USER, "message")], 200.0)
    assert [(r.channel_id, r.last_event_type) for r in gateway.list_recipients("1000")] == [
        ("1000", "follow")
    ]
    assert [(r.channel_id, r.sightings) for r in gateway.list_recipients("2000")] == [("2000", 1)]
    assert gateway.list_recipients("3000") == []


def test_recipients_list_most_recently_seen_first(gateway: GatewayStore) -> None:
    gateway.record_recipients("1000", [RecipientSighting(USER, "follow")], 100.0)
    gateway.record_recipients("1000", [RecipientSighting(GROUP, "join")], 300.0)
    gateway.record_recipients("2000", [RecipientSighting(ROOM, "join")], 200.0)
    gateway.record_recipients("1000", [RecipientSighting(ROOM, "join")], 200.0)
    assert [(r.channel_id, r.recipient_id) for r in gateway.list_recipients()] == [
        ("1000", GROUP),
        ("1000", ROOM),
        ("2000", ROOM),
        ("1000", USER),
    ]


def test_recording_nothing_records_nothing(gateway: GatewayStore) -> None:
    gateway.record_recipients("1000", [], 100.0)
    assert gateway.list_recipients() == []


@pytest.mark.parametrize(
    ("bad", "prop"),
    [
        (RecipientSighting("U123", "follow"), "sightings[1].recipient_id"),
        (RecipientSighting("u" + "0" * 32, "follow"), "sightings[1].recipient_id"),
        (RecipientSighting(USER, ""), "sightings[1].event_type"),
        (RecipientSighting(USER, "x" * 65), "sightings[1].event_type"),
        ((USER, "follow"), "sightings[1]"),
    ],
)
def test_a_bad_sighting_records_nothing_of_the_batch(gateway: GatewayStore, bad: Any, prop: str) -> None:
    with pytest.raises(ValidationError) as caught:
        gateway.record_recipients("1000", [RecipientSighting(GROUP, "join"), bad], 100.0)
    assert caught.value.property == prop
    assert gateway.list_recipients() == []


# -- where the gateway's tables are found


def test_gateway_store_of_a_gateway_store_is_itself(gateway: GatewayStore) -> None:
    assert gateway_store(gateway) is gateway


def test_a_store_without_sql_has_no_place_for_the_gateway_tables() -> None:
    class Elsewhere(Store):
        pass

    Elsewhere.__abstractmethods__ = frozenset()
    with pytest.raises(ConfigurationError, match="Elsewhere"):
        gateway_store(Elsewhere())


# -- digest windows of gateway tokens


def test_a_token_digest_window_is_set_changed_and_turned_off(gateway: GatewayStore) -> None:
    first = gateway.create_gateway_token("1000", digest("t1"), USER, None, 100.0)
    other = gateway.create_gateway_token("2000", digest("t2"), USER, None, 100.0)
    assert gateway.gateway_token_digest(first.id) is None
    gateway.set_gateway_token_digest(first.id, 30)
    gateway.set_gateway_token_digest(other.id, 5.5)
    assert gateway.gateway_token_digest(first.id) == 30.0
    assert gateway.gateway_token_digests("1000") == {first.id: 30.0}
    assert gateway.gateway_token_digests() == {first.id: 30.0, other.id: 5.5}
    # A token is read with its window: a request needs one look-up.
    found = gateway.find_gateway_token(digest("t1"))
    assert found is not None and found.digest == 30.0
    assert [t.digest for t in gateway.list_gateway_tokens()] == [30.0, 5.5]
    gateway.set_gateway_token_digest(first.id, 120.0)
    assert gateway.gateway_token_digest(first.id) == 120.0
    gateway.set_gateway_token_digest(first.id, None)
    assert gateway.gateway_token_digest(first.id) is None
    found = gateway.find_gateway_token(digest("t1"))
    assert found is not None and found.digest is None
    assert gateway.gateway_token_digests() == {other.id: 5.5}


@pytest.mark.parametrize("window", [0, -1.0, float("nan"), float("inf"), 86_401.0, True, "30s"])
def test_a_bad_token_digest_window_is_refused(gateway: GatewayStore, window: Any) -> None:
    token = gateway.create_gateway_token("1000", digest("t1"), USER, None, 100.0)
    with pytest.raises(ValidationError, match="window"):
        gateway.set_gateway_token_digest(token.id, window)
    assert gateway.gateway_token_digest(token.id) is None


def test_the_digest_window_of_an_unknown_token_is_a_lookup_error(gateway: GatewayStore) -> None:
    with pytest.raises(LookupError):
        gateway.set_gateway_token_digest(12345, 30.0)


# -- the Notify API's limits, shared through the store -------------------------------------------------------


def test_notify_counts_go_up_to_the_limit_per_token_and_window(gateway: GatewayStore) -> None:
    taken = [gateway.take_notify(1, 3600.0, "calls", 3) for _ in range(4)]
    assert [t.calls if t else None for t in taken] == [1, 2, 3, None]
    assert gateway.notify_usage(1, 3600.0) == NotifyUsage(3, 0)
    assert gateway.take_notify(2, 3600.0, "calls", 3) == NotifyUsage(1, 0)  # another token, its own count
    # Uploads have their own count in the same window; giving one back frees it.
    assert gateway.take_notify(1, 3600.0, "images", 1) == NotifyUsage(3, 1)
    assert gateway.take_notify(1, 3600.0, "images", 1) is None
    gateway.give_back_notify(1, 3600.0, "images")
    assert gateway.notify_usage(1, 3600.0) == NotifyUsage(3, 0)
    gateway.give_back_notify(1, 3600.0, "images")  # never below nothing
    assert gateway.notify_usage(1, 3600.0) == NotifyUsage(3, 0)
    # The next window starts from nothing; the last one is forgotten.
    assert gateway.notify_usage(1, 7200.0) == NotifyUsage(0, 0)
    assert gateway.take_notify(1, 7200.0, "calls", 3) == NotifyUsage(1, 0)
    assert gateway.notify_usage(1, 3600.0) == NotifyUsage(0, 0)
    assert gateway.take_notify(1, 7200.0, "images", 0) is None  # uploads may be switched off


def test_notify_counts_never_pass_the_limit_under_contention(gateway: GatewayStore) -> None:
    import threading

    granted: list[NotifyUsage] = []
    lock = threading.Lock()

    def caller() -> None:
        for _ in range(10):
            used = gateway.take_notify(5, 0.0, "calls", 25)
            if used is not None:
                with lock:
                    granted.append(used)

    threads = [threading.Thread(target=caller) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(u.calls for u in granted) == list(range(1, 26))
    assert gateway.notify_usage(5, 0.0) == NotifyUsage(25, 0)
