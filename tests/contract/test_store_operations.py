"""What operations read from a store: rows per channel and state, the oldest due row, the schema version."""

from __future__ import annotations

from linepush.store import NewMessage, Store

PAYLOAD = {"to": "U" + "0" * 32, "messages": [{"type": "text", "text": "hi"}]}


def test_counts_by_channel_and_state(store: Store) -> None:
    rows = [NewMessage("1000", "push", PAYLOAD)] * 2 + [NewMessage("2000", "push", PAYLOAD)]
    store.enqueue(rows, now=100.0)
    store.claim("w", 1, 30.0, 100.0, "2000")
    assert store.counts_by_channel() == {("1000", "queued"): 2, ("2000", "sending"): 1}


def test_oldest_due_is_the_longest_waiting_queued_row_due_now(store: Store) -> None:
    assert store.oldest_due(100.0) is None
    store.enqueue(
        [
            NewMessage("1000", "push", PAYLOAD, not_before=90.0),
            NewMessage("1000", "push", PAYLOAD, not_before=80.0),
            NewMessage("2000", "push", PAYLOAD, not_before=70.0),
            NewMessage("1000", "push", PAYLOAD, not_before=500.0),  # not due yet
        ],
        now=60.0,
    )
    assert store.oldest_due(100.0) == 70.0
    assert store.oldest_due(100.0, "1000") == 80.0
    assert store.oldest_due(75.0, "1000") is None
    store.claim("w", 1, 30.0, 100.0, "2000")  # sending rows wait for their worker, not in the queue
    assert store.oldest_due(100.0, "2000") is None


def test_stored_schema_version_is_read_from_the_database(store: Store) -> None:
    assert store.stored_schema_version() == store.schema_version > 0
