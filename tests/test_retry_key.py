"""The retry-key rule (FACTS §3.7): one answer, whether a key is sent now or stored in the outbox first."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from linepush.api import messaging
from linepush.errors import ValidationError
from linepush.outbox import push_item
from linepush.retry_key import EXAMPLE_RETRY_KEY, check_retry_key, new_retry_key
from linepush.store import NewMessage, Store, open_store

CHANNEL = "1234567890"
USER = "U" + "4" * 32
KEY = "123e4567-e89b-12d3-a456-426614174000"

ACCEPTED = [
    pytest.param(KEY, KEY, id="LINE's form"),
    pytest.param(KEY.upper(), KEY, id="upper-case hex digits"),
    pytest.param("123E4567-e89b-12D3-a456-426614174000", KEY, id="mixed case"),
]
REFUSED = [
    pytest.param("{" + KEY + "}", id="braces"),
    pytest.param("urn:uuid:" + KEY, id="urn"),
    pytest.param(KEY.replace("-", ""), id="no hyphens"),
    pytest.param(KEY[:-1], id="a digit short"),
    pytest.param(KEY + "0", id="a digit long"),
    pytest.param(KEY + "\n", id="a trailing newline"),
    pytest.param(" " + KEY, id="a leading space"),
    pytest.param("123e4567e-89b-12d3-a456-426614174000", id="hyphens out of place"),
    pytest.param("g23e4567-e89b-12d3-a456-426614174000", id="not hex"),
    pytest.param("", id="empty"),
    pytest.param("not-a-uuid", id="words"),
]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{tmp_path / 'keys.db'}") as opened:
        yield opened


def _direct(key: str) -> str | None:
    return messaging.push(USER, "x", retry_key=key).request.retry_key


def _outbox(key: str) -> str | None:
    return push_item(CHANNEL, USER, "x", retry_key=key).retry_key


def _store(store: Store, key: str) -> str | None:
    (row,) = store.enqueue([NewMessage(CHANNEL, "push", {"to": USER, "messages": []}, retry_key=key)], 1.0)
    return row.retry_key


@pytest.mark.parametrize(("given", "kept"), ACCEPTED)
def test_a_key_in_lines_form_is_taken_in_lower_case_by_every_way_of_sending(
    store: Store, given: str, kept: str
) -> None:
    assert check_retry_key(given) == kept
    assert _direct(given) == _outbox(given) == _store(store, given) == kept


@pytest.mark.parametrize("given", REFUSED)
def test_other_spellings_are_refused_by_every_way_of_sending(store: Store, given: str) -> None:
    for send in (_direct, _outbox, lambda key: _store(store, key)):
        with pytest.raises(ValidationError, match="8-4-4-4-12 hex digits"):
            send(given)
    assert sum(store.counts().values()) == 0


@pytest.mark.parametrize("given", [None, 1234, b"123e4567-e89b-12d3-a456-426614174000", uuid.UUID(KEY)])
def test_a_key_must_be_a_string(given: object) -> None:
    with pytest.raises(ValidationError) as caught:
        check_retry_key(given, "items[0].retry_key")
    assert caught.value.property == "items[0].retry_key"


def test_the_key_a_row_keeps_is_the_key_its_send_carries(store: Store) -> None:
    (row,) = store.enqueue([push_item(CHANNEL, USER, "x", retry_key=KEY.upper())], 1.0)
    assert messaging.send_payload(row.kind, row.payload, row.retry_key).request.retry_key == KEY


def test_new_keys_are_in_lines_form() -> None:
    for _ in range(200):
        key = new_retry_key()
        assert check_retry_key(key) == key
        assert uuid.UUID(key).version == 4
    assert check_retry_key(EXAMPLE_RETRY_KEY) == EXAMPLE_RETRY_KEY
