"""The alert receivers' records on every storage backend: recipient names, the cleanup of old leases."""

from __future__ import annotations

import pytest

from linepush.errors import ValidationError
from linepush.service.store import GatewayStore
from linepush.store import Store

USER = "U" + "4" * 32
GROUP = "C" + "a" * 32


def test_names_point_at_ids_per_channel(gateway: GatewayStore) -> None:
    gateway.name_recipient("1000", "ops-room", GROUP, 1.0)
    gateway.name_recipient("1000", "me", USER, 2.0)
    gateway.name_recipient("2000", "ops-room", USER, 3.0)
    assert gateway.recipient_names("1000") == {"me": USER, "ops-room": GROUP}
    assert list(gateway.recipient_names("1000")) == ["me", "ops-room"]
    assert gateway.recipient_names("2000") == {"ops-room": USER}
    assert gateway.recipient_names("3000") == {}


def test_a_name_given_again_names_the_new_id(gateway: GatewayStore) -> None:
    gateway.name_recipient("1000", "ops-room", GROUP, 1.0)
    gateway.name_recipient("1000", "ops-room", USER, 2.0)
    assert gateway.recipient_names("1000") == {"ops-room": USER}


def test_unname(gateway: GatewayStore) -> None:
    gateway.name_recipient("1000", "ops-room", GROUP, 1.0)
    assert gateway.unname_recipient("1000", "ops-room") is True
    assert gateway.unname_recipient("1000", "ops-room") is False
    assert gateway.recipient_names("1000") == {}


@pytest.mark.parametrize("name", ["", "-x", "a b", "x" * 65, "ops/room", GROUP, "名前"])
def test_bad_names_are_refused_and_nothing_is_stored(gateway: GatewayStore, name: str) -> None:
    with pytest.raises(ValidationError):
        gateway.name_recipient("1000", name, GROUP, 1.0)
    assert gateway.recipient_names("1000") == {}


def test_a_bad_id_is_refused(gateway: GatewayStore) -> None:
    with pytest.raises(ValidationError):
        gateway.name_recipient("1000", "ops", "C123", 1.0)
    assert gateway.recipient_names("1000") == {}


def test_expired_leases_of_a_prefix_are_deleted_and_no_others(store: Store) -> None:
    assert store.try_lock("alerts:1", "a", 10.0, 100.0)
    assert store.try_lock("alerts:2", "a", 1000.0, 100.0)
    assert store.try_lock("alerts_x", "a", 10.0, 100.0)  # _ is not a wildcard
    assert store.try_lock("refresh:1", "a", 10.0, 100.0)
    assert store.delete_expired_locks("alerts:", 110.0) == 1
    assert store.delete_expired_locks("alerts:", 110.0) == 0
    # The deleted one is free; the others are still held.
    assert store.try_lock("alerts:1", "b", 10.0, 105.0)
    assert not store.try_lock("alerts:2", "b", 10.0, 105.0)
    assert not store.try_lock("alerts_x", "b", 10.0, 105.0)
    assert not store.try_lock("refresh:1", "b", 10.0, 105.0)
