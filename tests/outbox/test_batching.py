"""Batches: the worker sends the batchable pushes due together to one chat as one push of up to 5 message
objects, in queue order, against the in-process emulator in virtual time; a resend is the same request."""

from __future__ import annotations

from typing import Any

from tests.outbox.kit import FakeTime, Line, make_worker, user

from linepush.client import AsyncLineClient
from linepush.outbox import Outbox
from linepush.store import NewMessage, Store
from linepush.worker import Worker


def _worker(store: Store, client: Any, fake_time: FakeTime, line: Line, **config: Any) -> Worker:
    config.setdefault("batch_size", 100)
    return make_worker(store, client, fake_time, line.channel_id, **config)


def _texts(delivery: dict[str, Any]) -> list[str]:
    return [m["text"] for m in delivery["messages"]]


def _same_request_per_key(line: Line) -> list[dict[str, Any]]:
    """Every retry key the emulator saw came with one body only (a resend was the very same request)."""
    keys = line.emulator.admin.retry_keys(line.channel_id)
    assert keys and all(k["bodies"] == 1 for k in keys), [k for k in keys if k["bodies"] != 1]
    return keys


async def test_pushes_to_one_chat_go_out_as_pushes_of_up_to_five_in_queue_order(
    store: Store, client: AsyncLineClient, fake_time: FakeTime, line: Line
) -> None:
    box = Outbox(store, line.channel_id, clock=fake_time.clock, batch=True)
    rows = [box.push(user(1), f"a{i}") for i in range(7)]
    rows += [box.push(user(2), f"b{i}") for i in range(3)]
    rows.append(box.push(user(1), ["a7", "a8", "a9", "a10"]))  # four objects: a batch of its own
    stats = await _worker(store, client, fake_time, line).run_until_idle()
    assert (stats.delivered, stats.failed, stats.retried) == (11, 0, 0)
    to_a = line.emulator.admin.deliveries(line.channel_id, to=user(1))
    assert [_texts(d) for d in to_a] == [
        ["a0", "a1", "a2", "a3", "a4"],
        ["a5", "a6"],
        ["a7", "a8", "a9", "a10"],
    ]
    assert [_texts(d) for d in line.emulator.admin.deliveries(line.channel_id, to=user(2))] == [
        ["b0", "b1", "b2"]
    ]
    # Each row keeps its own part of what LINE answered, and the batch it went in.
    done = [box.get(r.id) for r in rows]
    assert all(d is not None and d.state == "delivered" for d in done)
    first = done[0]
    assert first is not None and first.result is not None
    assert len(first.result["sentMessages"]) == 1 and first.result["batch"]["rows"] == 5
    assert first.request_id == to_a[0]["request_id"]
    assert to_a[0]["retry_key"] == first.batch_key != first.retry_key
    _same_request_per_key(line)


async def test_without_the_option_each_push_goes_alone(
    store: Store, client: AsyncLineClient, fake_time: FakeTime, line: Line
) -> None:
    box = Outbox(store, line.channel_id, clock=fake_time.clock)
    rows = [box.push(user(1), f"a{i}") for i in range(7)]
    await _worker(store, client, fake_time, line).run_until_idle()
    deliveries = line.deliveries()
    assert [_texts(d) for d in deliveries] == [[f"a{i}"] for i in range(7)]
    assert [d["retry_key"] for d in deliveries] == [r.retry_key for r in rows]


async def test_a_400_splits_the_batch_and_each_row_goes_alone(
    store: Store, client: AsyncLineClient, fake_time: FakeTime, line: Line
) -> None:
    box = Outbox(store, line.channel_id, clock=fake_time.clock, batch=True)
    good = box.push(user(1), "good")
    # A message LINE refuses (stored as it came, past the outbox's own checks).
    (bad,) = box.enqueue(
        [
            NewMessage(
                line.channel_id,
                "push",
                {"to": user(1), "messages": [{"type": "text", "text": ""}]},
                batchable=True,
            )
        ]
    )
    fine = box.push(user(1), "fine")
    worker = _worker(store, client, fake_time, line)
    stats = await worker.run_until_idle()
    # The batch was refused whole (nothing delivered), then each row went alone under its own key.
    assert line.emulator.admin.count("/v2/bot/message/push", status=400) == 2
    assert [_texts(d) for d in line.deliveries()] == [["good"], ["fine"]]
    assert [d["retry_key"] for d in line.deliveries()] == [good.retry_key, fine.retry_key]
    assert (stats.delivered, stats.failed) == (2, 1)
    refused = box.get(bad.id)
    assert refused is not None and refused.state == "failed" and refused.last_error is not None
    assert refused.last_error["status"] == 400
    _same_request_per_key(line)


async def test_a_dropped_answer_resends_the_same_batch_under_the_same_key(
    store: Store, client: AsyncLineClient, fake_time: FakeTime, line: Line
) -> None:
    box = Outbox(store, line.channel_id, clock=fake_time.clock, batch=True)
    rows = [box.push(user(1), f"a{i}") for i in range(3)]
    line.emulator.admin.fault(path="/v2/bot/message/push", mode="drop_after_accept", count=1)
    worker = _worker(store, client, fake_time, line)
    assert (await worker.run_until_idle()).retried == 3
    box.push(user(1), "later")  # due now, while the batch waits out its backoff: it does not join it
    fake_time.now += 60
    stats = await worker.run_until_idle()
    assert stats.duplicates == 3 and stats.delivered == 4
    assert [_texts(d) for d in line.deliveries()] == [["a0", "a1", "a2"], ["later"]]
    keys = {k["retry_key"]: k for k in _same_request_per_key(line)}
    batch_key = box.get(rows[0].id).batch_key  # type: ignore[union-attr]
    assert batch_key is not None and keys[batch_key]["requests"] == 2
    assert all(box.get(r.id).state == "delivered" for r in rows)  # type: ignore[union-attr]


async def test_a_server_error_retries_the_batch_together(
    store: Store, client: AsyncLineClient, fake_time: FakeTime, line: Line
) -> None:
    box = Outbox(store, line.channel_id, clock=fake_time.clock, batch=True)
    rows = [box.push(user(1), f"a{i}") for i in range(4)]
    line.emulator.admin.fault(path="/v2/bot/message/push", mode="status", status=500, count=1)
    worker = _worker(store, client, fake_time, line)
    assert (await worker.run_until_idle()).retried == 4
    waiting = [box.get(r.id) for r in rows]
    assert len({(w.state, w.not_before, w.batch_key) for w in waiting if w}) == 1
    fake_time.now += 60
    assert (await worker.run_until_idle()).delivered == 4
    assert [_texts(d) for d in line.deliveries()] == [["a0", "a1", "a2", "a3"]]
    _same_request_per_key(line)
