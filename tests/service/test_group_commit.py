"""Group commit: requests that arrive together share one transaction, and each still gets its own outcome."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

import pytest

from linepush.errors import ValidationError
from linepush.service.group_commit import GroupCommit
from linepush.store import NewMessage, OutboxMessage, Store, StoreError
from tests.service.conftest import USER


def item(text: str, retry_key: str | None = None) -> NewMessage:
    return NewMessage(
        "1", "push", {"to": USER, "messages": [{"type": "text", "text": text}]}, retry_key=retry_key
    )


class Gated:
    """A store whose first enqueue waits for the test, so that more requests pile up behind it."""

    def __init__(self, store: Store, fail_with: Exception | None = None) -> None:
        self.store = store
        self.batches: list[list[str]] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        self.fail_with = fail_with

    def enqueue(self, items: Sequence[NewMessage], now: float) -> list[OutboxMessage]:
        self.batches.append([i.payload["messages"][0]["text"] for i in items])
        if len(self.batches) == 1:
            self.entered.set()
            assert self.release.wait(10)
        if self.fail_with is not None and len(self.batches) > 1:
            raise self.fail_with
        return self.store.enqueue(items, now)


async def pile_up(gated: Gated, commits: GroupCommit, later: list[NewMessage]) -> list[Any]:
    """One request enters the store; ``later`` arrive while it is there; then the store goes on."""
    first = asyncio.create_task(commits.enqueue(item("first")))
    await asyncio.to_thread(gated.entered.wait, 10)
    rest = [asyncio.create_task(commits.enqueue(i)) for i in later]
    await asyncio.sleep(0)  # they are all waiting now
    gated.release.set()
    return await asyncio.gather(first, *rest, return_exceptions=True)


async def test_requests_arriving_during_a_commit_share_the_next_one(store: Store) -> None:
    gated = Gated(store)
    commits = GroupCommit(gated, clock=lambda: 100.0)  # type: ignore[arg-type]
    rows = await pile_up(gated, commits, [item(f"m{i}") for i in range(5)])
    assert gated.batches == [["first"], ["m0", "m1", "m2", "m3", "m4"]]
    assert [r.payload["messages"][0]["text"] for r in rows] == ["first", "m0", "m1", "m2", "m3", "m4"]
    assert [r.id for r in rows] == [m.id for m in store.list_messages()]


async def test_a_lone_request_is_committed_at_once(store: Store) -> None:
    commits = GroupCommit(store, clock=lambda: 100.0)
    row = await commits.enqueue(item("alone"))
    assert store.get_message(row.id) == row


async def test_batches_are_capped(store: Store) -> None:
    gated = Gated(store)
    commits = GroupCommit(gated, clock=lambda: 100.0, max_batch=2)  # type: ignore[arg-type]
    await pile_up(gated, commits, [item(f"m{i}") for i in range(5)])
    assert gated.batches == [["first"], ["m0", "m1"], ["m2", "m3"], ["m4"]]


async def test_one_refused_item_does_not_refuse_its_batch(store: Store) -> None:
    key = "123e4567-e89b-42d3-a456-426614174000"
    store.enqueue([item("earlier", retry_key=key)], 1.0)
    gated = Gated(store)
    commits = GroupCommit(gated, clock=lambda: 100.0)  # type: ignore[arg-type]
    results = await pile_up(gated, commits, [item("a"), item("dup", retry_key=key), item("b")])
    assert isinstance(results[2], ValidationError)
    assert [r.payload["messages"][0]["text"] for r in results if not isinstance(r, Exception)] == [
        "first",
        "a",
        "b",
    ]
    assert len(store.list_messages()) == 4


async def test_a_store_failure_reaches_every_request_of_the_batch(store: Store) -> None:
    gated = Gated(store, fail_with=StoreError("disk full"))
    commits = GroupCommit(gated, clock=lambda: 100.0)  # type: ignore[arg-type]
    results = await pile_up(gated, commits, [item("a"), item("b")])
    assert not isinstance(results[0], Exception)
    assert [type(r) for r in results[1:]] == [StoreError, StoreError]
    assert len(store.list_messages()) == 1
    # The next request starts afresh.
    gated.fail_with = None
    assert (await commits.enqueue(item("after"))).payload["messages"][0]["text"] == "after"


async def test_a_request_that_went_away_does_not_disturb_the_others(store: Store) -> None:
    gated = Gated(store)
    commits = GroupCommit(gated, clock=lambda: 100.0)  # type: ignore[arg-type]
    first = asyncio.create_task(commits.enqueue(item("first")))
    await asyncio.to_thread(gated.entered.wait, 10)
    gone = asyncio.create_task(commits.enqueue(item("gone")))
    stays = asyncio.create_task(commits.enqueue(item("stays")))
    await asyncio.sleep(0)
    gone.cancel()
    gated.release.set()
    await first
    assert (await stays).payload["messages"][0]["text"] == "stays"
    with pytest.raises(asyncio.CancelledError):
        await gone
