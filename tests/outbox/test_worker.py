"""The delivery worker against the in-process emulator, in virtual time."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from tests.outbox.kit import START, FakeTime, Line, make_worker, until, user

from linepush.client import AsyncLineClient
from linepush.config import Channel
from linepush.errors import ServerError
from linepush.outbox import Outbox, RetryWindow, push_item
from linepush.retry import NO_RETRY
from linepush.store import Store
from linepush.transport import ASGITransport
from linepush.worker import Worker, WorkerConfig


def _worker(store: Store, client: Any, fake_time: FakeTime, line: Line, **config: Any) -> Worker:
    return make_worker(store, client, fake_time, line.channel_id, **config)


def _fill(outbox: Outbox, n: int, **options: Any) -> list[int]:
    rows = outbox.enqueue([push_item(outbox.channel_id, user(i), f"m{i}", **options) for i in range(n)])
    return [r.id for r in rows]


def _one_delivery_per_key(line: Line) -> Counter[str]:
    keys = Counter(d["retry_key"] for d in line.deliveries())
    assert all(n == 1 for n in keys.values()), keys.most_common(3)
    return keys


async def test_delivers_every_due_row_once(
    outbox: Outbox, store: Store, client: AsyncLineClient, fake_time: FakeTime, line: Line
) -> None:
    ids = _fill(outbox, 25)
    stats = await _worker(store, client, fake_time, line).run_until_idle()
    assert (stats.claimed, stats.delivered, stats.failed, stats.retried) == (25, 25, 0, 0)
    rows = [outbox.get(i) for i in ids]
    assert all(r is not None and r.state == "delivered" for r in rows)
    keys = _one_delivery_per_key(line)
    assert set(keys) == {r.retry_key for r in rows if r}
    first = rows[0]
    assert first is not None and first.request_id and first.delivered_at == START
    assert len(first.result["sentMessages"]) == 1  # type: ignore[index]
    assert store.counts()["sending"] == 0


async def test_a_409_already_accepted_counts_as_delivered(
    outbox: Outbox, store: Store, client: AsyncLineClient, fake_time: FakeTime, line: Line
) -> None:
    row = outbox.push(user(1), "once")
    first = await client.push(user(1), "once", retry_key=row.retry_key)  # it reached LINE before, somehow
    stats = await _worker(store, client, fake_time, line).run_until_idle()
    assert stats.delivered == 1 and stats.duplicates == 1
    done = outbox.get(row.id)
    assert done is not None and done.state == "delivered"
    assert done.request_id == first.request_id
    assert done.result is not None and done.result["duplicate"] is True
    assert done.result["sentMessages"] == [
        {"id": m.id, "quoteToken": m.quote_token} for m in first.sent_messages
    ]
    assert len(line.deliveries()) == 1


@pytest.mark.parametrize("status", [500, 503, 429])
async def test_transient_errors_are_retried_later_with_backoff(
    outbox: Outbox, store: Store, client: AsyncLineClient, fake_time: FakeTime, line: Line, status: int
) -> None:
    row = outbox.push(user(1), "x")
    line.emulator.admin.fault(path="/v2/bot/message/push", mode="status", status=status, count=1)
    worker = _worker(store, client, fake_time, line)
    stats = await worker.run_until_idle()
    assert stats.retried == 1 and stats.delivered == 0
    waiting = outbox.get(row.id)
    assert waiting is not None and waiting.state == "queued" and waiting.attempts == 1
    # rand is 0.5: half way between the floor (0.5 s) and the first cap (2 s).
    assert waiting.not_before == START + 1.25
    assert waiting.last_error is not None and waiting.last_error["status"] == status
    assert waiting.first_attempt_at == START
    fake_time.now += 1.25
    stats = await worker.run_until_idle()
    done = outbox.get(row.id)
    assert done is not None and done.state == "delivered" and done.attempts == 2
    assert len(line.deliveries()) == 1


async def test_other_4xx_is_final_with_lines_error_kept(
    outbox: Outbox, store: Store, client: AsyncLineClient, fake_time: FakeTime, line: Line
) -> None:
    line.emulator.admin.recipient(line.channel_id, user(7), "unknown")
    row = outbox.push(user(7), "x")
    ok = outbox.push(user(8), "y")
    stats = await _worker(store, client, fake_time, line).run_until_idle()
    assert stats.failed == 1 and stats.delivered == 1
    failed = outbox.get(row.id)
    assert failed is not None and failed.state == "failed"
    assert failed.last_error is not None
    assert failed.last_error["status"] == 400
    assert failed.last_error["message"] == "Failed to send messages"
    assert failed.last_error["request_id"]
    assert outbox.get(ok.id).state == "delivered"  # type: ignore[union-attr]


async def test_accepted_then_dropped_is_resent_and_recognised(
    outbox: Outbox, store: Store, client: AsyncLineClient, fake_time: FakeTime, line: Line
) -> None:
    row = outbox.push(user(1), "x")
    line.emulator.admin.fault(path="/v2/bot/message/push", mode="drop_after_accept", count=1)
    worker = _worker(store, client, fake_time, line)
    assert (await worker.run_until_idle()).retried == 1
    assert outbox.get(row.id).last_error["type"] == "OutcomeUnknownError"  # type: ignore[union-attr,index]
    fake_time.now += 60
    stats = await worker.run_until_idle()
    assert stats.duplicates == 1
    assert outbox.get(row.id).state == "delivered"  # type: ignore[union-attr]
    assert len(line.deliveries()) == 1


async def test_not_resent_after_the_retry_key_window(
    outbox: Outbox, store: Store, client: AsyncLineClient, fake_time: FakeTime, line: Line
) -> None:
    row = outbox.push(user(1), "x")
    line.emulator.admin.fault(path="/v2/bot/message/push", mode="drop_after_accept", count=1)
    worker = _worker(store, client, fake_time, line)
    await worker.run_until_idle()
    assert len(line.deliveries()) == 1
    # A day passes (the worker was down); LINE has forgotten the key, so a resend would deliver twice.
    fake_time.now += 86_400
    line.emulator.admin.advance(86_400)
    requests = line.emulator.admin.count("/v2/bot/message/push")
    stats = await worker.run_until_idle()
    assert stats.failed == 1
    failed = outbox.get(row.id)
    assert failed is not None and failed.state == "failed"
    assert failed.last_error is not None and failed.last_error["type"] == "RetryWindowExpiredError"
    assert "could deliver it twice" in failed.last_error["message"]
    assert line.emulator.admin.count("/v2/bot/message/push") == requests
    assert len(line.deliveries()) == 1


async def test_the_margin_stops_resends_before_line_forgets(
    outbox: Outbox, store: Store, client: AsyncLineClient, fake_time: FakeTime, line: Line
) -> None:
    row = outbox.push(user(1), "x")
    line.emulator.admin.fault(path="/v2/bot/message/push", mode="status", status=500, count=1)
    worker = _worker(store, client, fake_time, line, retry_window=RetryWindow(86_400, 3_600))
    await worker.run_until_idle()
    fake_time.now += 86_400 - 3_600
    assert (await worker.run_until_idle()).failed == 1
    assert outbox.get(row.id).last_error["type"] == "RetryWindowExpiredError"  # type: ignore[union-attr,index]
    assert line.deliveries() == []


async def test_a_retry_that_would_fall_past_the_window_fails_now(
    outbox: Outbox, store: Store, client: AsyncLineClient, fake_time: FakeTime, line: Line
) -> None:
    row = outbox.push(user(1), "x")
    line.emulator.admin.fault(path="/v2/bot/message/push", mode="status", status=500, count=2)
    worker = _worker(store, client, fake_time, line, retry_window=RetryWindow(100, 10))
    await worker.run_until_idle()
    fake_time.now += 89  # the next backoff (0.5 .. 4 s) would end past first attempt + 90 s
    stats = await worker.run_until_idle()
    assert stats.failed == 1
    failed = outbox.get(row.id)
    assert failed is not None and failed.state == "failed"
    assert failed.last_error is not None
    assert failed.last_error["type"] == "RetryWindowExpiredError" and failed.last_error["status"] == 500
    assert "retry_window" in failed.last_error


async def test_scheduled_rows_wait_and_start_their_window_at_first_claim(
    outbox: Outbox, store: Store, client: AsyncLineClient, fake_time: FakeTime, line: Line
) -> None:
    soon = outbox.push(user(1), "in an hour", not_before=START + 3_600)
    far = outbox.push(user(2), "in three days", not_before=START + 3 * 86_400)
    worker = _worker(store, client, fake_time, line)
    assert (await worker.run_until_idle()).claimed == 0
    assert line.deliveries() == []
    fake_time.now = START + 3_600
    assert (await worker.run_until_idle()).delivered == 1
    fake_time.now = START + 3 * 86_400
    stats = await worker.run_until_idle()
    assert stats.delivered == 1 and stats.failed == 0
    done = outbox.get(far.id)
    assert done is not None and done.state == "delivered" and done.first_attempt_at == START + 3 * 86_400
    assert outbox.get(soon.id).state == "delivered"  # type: ignore[union-attr]


async def test_takes_over_a_dead_workers_rows_when_their_lease_runs_out(
    outbox: Outbox, store: Store, client: AsyncLineClient, fake_time: FakeTime, line: Line
) -> None:
    ids = _fill(outbox, 5)
    store.claim("dead-worker", 3, 30.0, fake_time.now, line.channel_id)  # claimed, then it died
    worker = _worker(store, client, fake_time, line, poll_interval=5.0)
    # Without waiting for leases: the two free rows go, the leased ones stay.
    assert (await worker.run_until_idle(wait_for_leases=False)).delivered == 2
    assert outbox.counts()["sending"] == 3
    task = asyncio.create_task(worker.run_until_idle())
    await until(lambda: fake_time.sleepers >= 2)  # the lease renewer, and the wait for the others' leases
    assert not task.done()
    await fake_time.advance(30)
    await until(task.done)
    stats = task.result()
    assert stats.delivered == 3
    assert all(outbox.get(i).state == "delivered" for i in ids)  # type: ignore[union-attr]
    assert all(outbox.get(i).attempts == 2 for i in ids[:3])  # type: ignore[union-attr]
    _one_delivery_per_key(line)


class Gate:
    """A client whose sends wait until the test opens the gate; counts sends in flight."""

    def __init__(self, inner: AsyncLineClient) -> None:
        self.inner = inner
        self.open = asyncio.Event()
        self.in_flight = 0
        self.most = 0
        self.started = 0

    async def run(self, op: Any) -> Any:
        self.in_flight += 1
        self.started += 1
        self.most = max(self.most, self.in_flight)
        try:
            await self.open.wait()
            return await self.inner.run(op)
        finally:
            self.in_flight -= 1


async def test_sends_concurrently_up_to_the_limit(
    outbox: Outbox, store: Store, client: AsyncLineClient, fake_time: FakeTime, line: Line
) -> None:
    _fill(outbox, 30)
    gate = Gate(client)
    task = asyncio.create_task(_worker(store, gate, fake_time, line, concurrency=6).run_until_idle())
    await until(lambda: gate.in_flight == 6)
    for _ in range(50):
        await asyncio.sleep(0)
    assert gate.in_flight == 6
    gate.open.set()
    await until(task.done)
    assert task.result().delivered == 30 and gate.most == 6


class Gates:
    """A client whose sends each wait for their own gate, opened by the test in any order."""

    def __init__(self, inner: AsyncLineClient) -> None:
        self.inner = inner
        self.gates: dict[str, asyncio.Event] = {}
        self.started: list[str] = []

    async def run(self, op: Any) -> Any:
        key = op.request.retry_key
        self.started.append(key)
        await self.gates.setdefault(key, asyncio.Event()).wait()
        return await self.inner.run(op)

    def open(self, key: str) -> None:
        self.gates.setdefault(key, asyncio.Event()).set()


async def test_pushes_to_one_chat_go_one_after_another_in_queue_order(
    outbox: Outbox, store: Store, client: AsyncLineClient, fake_time: FakeTime, line: Line
) -> None:
    rows = outbox.enqueue(
        [
            push_item(line.channel_id, user(to), text)
            for to, text in [(1, "a1"), (2, "b1"), (1, "a2"), (1, "a3")]
        ]
    )
    a1, b1, a2, a3 = (r.retry_key for r in rows)
    gates = Gates(client)
    task = asyncio.create_task(_worker(store, gates, fake_time, line, concurrency=8).run_until_idle())
    await until(lambda: len(gates.started) == 2)
    for _ in range(50):
        await asyncio.sleep(0)
    assert gates.started == [a1, b1]  # the other chat goes on; a2 and a3 wait for a1
    gates.open(b1)
    gates.open(a3)  # a3's gate opening early changes nothing: it is not its turn
    gates.open(a1)
    await until(lambda: len(gates.started) == 3)
    for _ in range(50):
        await asyncio.sleep(0)
    assert gates.started == [a1, b1, a2]
    gates.open(a2)
    await until(task.done)
    assert gates.started == [a1, b1, a2, a3]
    assert [d["messages"][0]["text"] for d in line.deliveries() if d["to"] == [user(1)]] == ["a1", "a2", "a3"]


async def test_pushes_waiting_for_their_turn_are_given_back_on_stop(
    outbox: Outbox, store: Store, client: AsyncLineClient, fake_time: FakeTime, line: Line
) -> None:
    rows = outbox.enqueue([push_item(line.channel_id, user(1), f"m{i}") for i in range(3)])
    gates = Gates(client)
    stop = asyncio.Event()
    task = asyncio.create_task(_worker(store, gates, fake_time, line, concurrency=4).run(stop))
    await until(lambda: len(gates.started) == 1)
    for _ in range(50):
        await asyncio.sleep(0)
    stop.set()
    gates.open(rows[0].retry_key)
    await until(task.done)
    stats = task.result()
    assert (stats.delivered, stats.released) == (1, 2)
    assert [outbox.get(r.id).state for r in rows] == ["delivered", "queued", "queued"]  # type: ignore[union-attr]
    assert gates.started == [rows[0].retry_key]


async def test_leases_are_renewed_while_sends_are_in_flight(
    outbox: Outbox, store: Store, client: AsyncLineClient, fake_time: FakeTime, line: Line
) -> None:
    (row_id,) = _fill(outbox, 1)
    gate = Gate(client)
    task = asyncio.create_task(_worker(store, gate, fake_time, line, lease_seconds=30).run_until_idle())
    await until(lambda: gate.in_flight == 1)
    for _ in range(10):  # 100 s: over three leases long
        await fake_time.advance(10)
        assert store.claim("other", 10, 30, fake_time.now, line.channel_id) == []
    held = store.get_message(row_id)
    assert held is not None and held.lease_owner == "worker-test"
    assert held.lease_expires_at is not None and held.lease_expires_at > fake_time.now
    gate.open.set()
    await until(task.done)
    assert task.result().delivered == 1 and task.result().lost == 0


async def test_stop_finishes_sends_in_flight_and_gives_back_the_rest(
    outbox: Outbox, store: Store, client: AsyncLineClient, fake_time: FakeTime, line: Line
) -> None:
    ids = _fill(outbox, 10)
    gate = Gate(client)
    stop = asyncio.Event()
    worker = _worker(store, gate, fake_time, line, concurrency=2, batch_size=10)
    task = asyncio.create_task(worker.run(stop))
    await until(lambda: gate.in_flight == 2)
    stop.set()
    for _ in range(20):
        await asyncio.sleep(0)
    assert not task.done()  # waiting for the two in flight
    gate.open.set()
    await until(task.done)
    stats = task.result()
    assert stats.delivered == 2 and stats.released == 8
    rows = [outbox.get(i) for i in ids]
    assert Counter(r.state for r in rows if r) == {"delivered": 2, "queued": 8}
    # Released rows are as if never claimed: no attempt, and their retry window has not started.
    assert all(r.attempts == 0 and r.first_attempt_at is None for r in rows if r and r.state == "queued")
    assert store.counts()["sending"] == 0


async def test_stop_after_the_grace_period_keeps_the_interrupted_attempt(
    outbox: Outbox, store: Store, client: AsyncLineClient, fake_time: FakeTime, line: Line
) -> None:
    (row_id,) = _fill(outbox, 1)
    gate = Gate(client)  # never opened: the send hangs
    stop = asyncio.Event()
    worker = _worker(store, gate, fake_time, line, shutdown_grace=0.0)
    task = asyncio.create_task(worker.run(stop))
    await until(lambda: gate.in_flight == 1)
    stop.set()
    await until(task.done)
    task.result()
    row = store.get_message(row_id)
    assert row is not None and row.state == "queued"
    # The request may have reached LINE: the attempt and the window's start are kept.
    assert row.attempts == 1 and row.first_attempt_at == START
    assert row.last_error == {
        "type": "Interrupted",
        "message": "the worker stopped while this send was in flight",
    }


async def test_run_keeps_polling_until_stopped(
    outbox: Outbox, store: Store, client: AsyncLineClient, fake_time: FakeTime, line: Line
) -> None:
    stop = asyncio.Event()
    worker = _worker(store, client, fake_time, line, poll_interval=2.0)
    task = asyncio.create_task(worker.run(stop))
    await until(lambda: fake_time.sleepers >= 2)
    outbox.push(user(1), "arrives later")
    await fake_time.advance(2.0)
    await until(lambda: worker.stats.delivered == 1)
    stop.set()
    await until(task.done)
    assert task.result().delivered == 1


async def test_a_lost_lease_is_counted_and_not_overwritten(
    outbox: Outbox, store: Store, client: AsyncLineClient, fake_time: FakeTime, line: Line
) -> None:
    (row_id,) = _fill(outbox, 1)

    class Slow:
        async def run(self, op: Any) -> Any:
            # While this send is out, the lease runs out and another worker takes the row and finishes it.
            fake_time.now += 100
            taken = store.claim("other", 1, 30, fake_time.now, line.channel_id)
            assert [m.id for m in taken] == [row_id]
            store.mark_failed(row_id, "other", fake_time.now, {"message": "theirs"})
            raise ServerError(500, "Internal server error")

    stats = await _worker(store, Slow(), fake_time, line, lease_seconds=30).run_until_idle(
        wait_for_leases=False
    )
    assert stats.lost == 1 and stats.retried == 0
    assert store.get_message(row_id).last_error == {"message": "theirs"}  # type: ignore[union-attr]


async def test_an_unexpected_error_keeps_the_row_and_the_worker(
    outbox: Outbox, store: Store, fake_time: FakeTime, line: Line
) -> None:
    (row_id,) = _fill(outbox, 1)

    class Broken:
        async def run(self, op: Any) -> Any:
            raise RuntimeError("a bug")

    stats = await _worker(store, Broken(), fake_time, line).run_until_idle()
    assert stats.failed == 1
    assert store.get_message(row_id).last_error["message"] == "a bug"  # type: ignore[union-attr,index]


async def test_only_its_own_channel(
    store: Store, client: AsyncLineClient, fake_time: FakeTime, line: Line
) -> None:
    mine = Outbox(store, line.channel_id, clock=fake_time.clock)
    theirs = Outbox(store, "999", clock=fake_time.clock)
    mine.push(user(1), "mine")
    other = theirs.push(user(2), "theirs")
    stats = await _worker(store, client, fake_time, line).run_until_idle()
    assert stats.delivered == 1
    assert store.get_message(other.id).state == "queued"  # type: ignore[union-attr]


def test_config_is_checked() -> None:
    from linepush.errors import ConfigurationError

    with pytest.raises(ConfigurationError):
        WorkerConfig(concurrency=0)
    with pytest.raises(ConfigurationError):
        WorkerConfig(lease_seconds=0)


async def test_a_failed_claim_is_tried_again_later(
    outbox: Outbox, store: Store, client: AsyncLineClient, fake_time: FakeTime, line: Line
) -> None:
    from linepush.store import StoreError

    outbox.push(user(1), "x")
    real_claim = store.claim
    calls = []

    def flaky_claim(*args: Any, **kwargs: Any) -> Any:
        calls.append(fake_time.now)
        if len(calls) == 1:
            raise StoreError("the SQLite store failed: database is locked")
        return real_claim(*args, **kwargs)

    store.claim = flaky_claim  # type: ignore[method-assign]
    task = asyncio.create_task(_worker(store, client, fake_time, line, poll_interval=3.0).run_until_idle())
    await until(lambda: fake_time.sleepers >= 2)
    await fake_time.advance(3.0)
    await until(task.done)
    assert task.result().delivered == 1 and calls[1] == START + 3.0


async def test_a_configuration_error_stops_the_worker_and_fails_no_message(
    outbox: Outbox, store: Store, fake_time: FakeTime, line: Line
) -> None:
    from linepush.errors import ConfigurationError

    ids = _fill(outbox, 5)

    class Unconfigured:
        async def run(self, op: Any) -> Any:
            raise ConfigurationError("no channel secret: set LINE_CHANNEL_SECRET or pass channel_secret")

    with pytest.raises(ConfigurationError, match="LINE_CHANNEL_SECRET"):
        await _worker(store, Unconfigured(), fake_time, line, concurrency=2).run_until_idle()
    rows = [store.get_message(i) for i in ids]
    assert all(r is not None and r.state == "queued" and r.attempts == 0 for r in rows)
    assert all(r is not None and r.first_attempt_at is None for r in rows)


async def test_the_window_on_the_emulators_clock(store: Store, client: AsyncLineClient, line: Line) -> None:
    """One clock for both sides: the worker reads the emulator's, and a day passes for both at once."""
    clock = line.emulator.now
    box = Outbox(store, line.channel_id, clock=clock)
    row = box.push(user(1), "x")
    line.emulator.admin.fault(path="/v2/bot/message/push", mode="drop_after_accept", count=1)
    worker = Worker(
        store,
        client,
        channel_id=line.channel_id,
        config=WorkerConfig(concurrency=1),
        clock=clock,
        rand=lambda: 0.0,
        offload=False,
    )
    assert (await worker.run_until_idle()).retried == 1
    line.emulator.admin.advance(82_799)  # just inside the window minus its margin: resent, LINE says 409
    assert (await worker.run_until_idle()).duplicates == 1
    other = box.push(user(2), "y")
    line.emulator.admin.fault(path="/v2/bot/message/push", mode="drop_after_accept", count=1)
    await worker.run_until_idle()
    line.emulator.admin.advance(86_400)  # LINE forgot the key: a resend would deliver it again
    assert (await worker.run_until_idle()).failed == 1
    assert box.get(row.id).state == "delivered"  # type: ignore[union-attr]
    assert box.get(other.id).state == "failed"  # type: ignore[union-attr]
    _one_delivery_per_key(line)
    assert len(line.deliveries()) == 2


async def test_multicast_broadcast_and_narrowcast_rows(
    outbox: Outbox, store: Store, client: AsyncLineClient, fake_time: FakeTime, line: Line
) -> None:
    rows = outbox.multicast([user(i) for i in range(1200)], "to many")
    rows.append(outbox.broadcast("to all"))
    rows.append(outbox.narrowcast("to some"))
    stats = await _worker(store, client, fake_time, line).run_until_idle()
    assert stats.delivered == 5 and stats.failed == 0
    by_endpoint = Counter(d["endpoint"] for d in line.deliveries())
    assert by_endpoint == {"multicast": 3, "broadcast": 1, "narrowcast": 1}
    narrow = outbox.get(rows[-1].id)
    assert narrow is not None and narrow.request_id  # kept to ask LINE for the narrowcast's progress
    _one_delivery_per_key(line)


async def test_run_until_idle_can_be_stopped_early(
    outbox: Outbox, store: Store, client: AsyncLineClient, fake_time: FakeTime, line: Line
) -> None:
    _fill(outbox, 10)
    gate = Gate(client)
    stop = asyncio.Event()
    worker = _worker(store, gate, fake_time, line, concurrency=1, batch_size=10)
    task = asyncio.create_task(worker.run_until_idle(stop))
    await until(lambda: gate.in_flight == 1)
    stop.set()
    gate.open.set()
    await until(task.done)
    assert task.result().delivered == 1 and task.result().released == 9
    assert store.counts()["sending"] == 0


async def test_a_failed_lease_renewal_is_tried_again(
    outbox: Outbox, store: Store, client: AsyncLineClient, fake_time: FakeTime, line: Line
) -> None:
    from linepush.store import StoreError

    (row_id,) = _fill(outbox, 1)
    real_renew = store.renew_leases
    calls: list[float] = []

    def flaky_renew(*args: Any, **kwargs: Any) -> Any:
        calls.append(fake_time.now)
        if len(calls) == 1:
            raise StoreError("the SQLite store failed: database is locked")
        return real_renew(*args, **kwargs)

    store.renew_leases = flaky_renew  # type: ignore[method-assign]
    gate = Gate(client)
    task = asyncio.create_task(_worker(store, gate, fake_time, line, lease_seconds=30).run_until_idle())
    await until(lambda: gate.in_flight == 1)
    await fake_time.advance(10)  # first renewal fails
    await fake_time.advance(10)  # the second one holds the lease
    assert len(calls) == 2
    held = store.get_message(row_id)
    assert held is not None and held.lease_expires_at == fake_time.now + 30
    gate.open.set()
    await until(task.done)
    assert task.result().delivered == 1


def _managed_client(line: Line, store: Store) -> AsyncLineClient:
    """A client that gets stateless tokens itself (from the channel's secret) through a TokenManager."""
    secret = line.emulator.state.channels[line.channel_id].channel_secret
    return AsyncLineClient(
        Channel(line.channel_id, secret),
        store=store,
        transport=ASGITransport(line.emulator.app),
        retry=NO_RETRY,
        rate_limits=None,
    )


async def test_a_refused_token_stops_the_worker_and_fails_no_message(
    outbox: Outbox, store: Store, fake_time: FakeTime, line: Line
) -> None:
    from linepush.errors import TokenUnavailableError

    ids = _fill(outbox, 20)
    line.emulator.admin.fault(path="/oauth2/v3/token", mode="status", status=400, count=1000)
    client = _managed_client(line, store)
    try:
        with pytest.raises(TokenUnavailableError) as caught:
            await _worker(store, client, fake_time, line, concurrency=4).run_until_idle()
    finally:
        await client.aclose()
    assert not caught.value.retryable
    rows = [store.get_message(i) for i in ids]
    assert all(r is not None and r.state == "queued" and r.attempts == 0 for r in rows)
    assert line.deliveries() == []


class FlakyTokens:
    """A token provider whose token endpoint fails ``failures`` times (500), then gives ``token``."""

    def __init__(self, token: str, failures: int) -> None:
        self.token = token
        self.failures = failures
        self.calls = 0

    async def aget_token(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise ServerError(500, "Internal server error")
        return self.token

    def invalidate(self, token: str) -> None:
        return None


async def test_a_token_endpoint_that_fails_pauses_a_running_worker_and_loses_nothing(
    outbox: Outbox, store: Store, fake_time: FakeTime, line: Line, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    ids = _fill(outbox, 20)
    tokens = FlakyTokens(line.token, failures=2)
    client = AsyncLineClient(
        Channel(line.channel_id),
        token=tokens,
        transport=ASGITransport(line.emulator.app),
        retry=NO_RETRY,
        rate_limits=None,
    )
    stop = asyncio.Event()
    worker = _worker(store, client, fake_time, line, concurrency=4)
    try:
        with caplog.at_level(logging.WARNING, "linepush.worker"):
            task = asyncio.create_task(worker.run(stop))
            await until(lambda: worker.stats.released > 0 and fake_time.sleepers > 0)
            assert store.counts(line.channel_id)["queued"] == 20  # every row given back as it was
            assert all((r := store.get_message(i)) is not None and r.attempts == 0 for i in ids)
            for _ in range(10):
                await fake_time.advance(5.0)
            await until(lambda: worker.stats.delivered == 20)
            stop.set()
            await until(task.done)
    finally:
        await client.aclose()
    assert task.result().failed == 0 and task.result().retried == 0
    _one_delivery_per_key(line)
    assert tokens.calls == 2 + 20
    assert caplog.text.count("could not get a channel access token") == 2
    assert "the messages stay queued, next try in" in caplog.text


async def test_run_until_settled_stops_once_the_rows_it_waits_for_are_settled(
    outbox: Outbox, store: Store, client: AsyncLineClient, fake_time: FakeTime, line: Line
) -> None:
    ids = _fill(outbox, 3)
    later = outbox.push(user(9), "tomorrow", not_before=START + 86_400)
    seen: list[int] = []
    stats = await _worker(store, client, fake_time, line).run_until_settled(
        ids, deadline=60.0, on_progress=seen.append
    )
    assert stats.delivered == 3 and seen[-1] == 3
    assert all(r is not None and r.state == "delivered" for r in map(outbox.get, ids))
    waiting = outbox.get(later.id)
    assert waiting is not None and waiting.state == "queued"


async def test_run_until_settled_gives_up_at_its_deadline(
    outbox: Outbox, store: Store, client: AsyncLineClient, fake_time: FakeTime, line: Line
) -> None:
    line.emulator.admin.fault(path="/v2/bot/message/push", mode="status", status=500, count=None)
    (row_id,) = _fill(outbox, 1)
    run = asyncio.create_task(
        _worker(store, client, fake_time, line).run_until_settled([row_id], deadline=60.0)
    )
    await until(lambda: fake_time.sleepers > 0)
    assert not run.done()
    await fake_time.advance(61.0)
    stats = await asyncio.wait_for(run, 5)
    assert stats.delivered == 0 and stats.retried >= 1
    row = outbox.get(row_id)
    assert row is not None and row.state == "queued"


async def test_a_refused_token_pauses_a_running_worker_which_tries_again_later(
    outbox: Outbox, store: Store, fake_time: FakeTime, line: Line, caplog: pytest.LogCaptureFixture
) -> None:
    """A long run (a gateway's worker) does not stop for a refusal: the key may be registered meanwhile,
    and the process keeps taking notifications. It says why it does not send, and tries again later."""
    import logging

    ids = _fill(outbox, 10)
    line.emulator.admin.fault(path="/oauth2/v3/token", mode="status", status=400, count=2)
    client = _managed_client(line, store)
    stop = asyncio.Event()
    worker = _worker(store, client, fake_time, line, concurrency=2)
    try:
        with caplog.at_level(logging.WARNING, "linepush.worker"):
            task = asyncio.create_task(worker.run(stop))
            await until(lambda: worker.stats.released > 0 and fake_time.sleepers > 0)
            assert worker.blocked is not None and "channel access token" in worker.blocked
            assert not task.done()
            assert store.counts(line.channel_id)["queued"] == 10
            assert line.deliveries() == []
            for _ in range(2_000):  # two refusals a minute apart, then the sends: well within 2,000 s
                if worker.stats.delivered == 10:
                    break
                await fake_time.advance(1.0)
                await asyncio.sleep(0.001)  # the store's thread runs too
            assert worker.stats.delivered == 10
            assert worker.blocked is None
            stop.set()
            await until(task.done)
    finally:
        await client.aclose()
    assert task.result().failed == 0
    assert all((r := store.get_message(i)) is not None and r.state == "delivered" for i in ids)
    _one_delivery_per_key(line)
    assert "the messages stay queued, next try in" in caplog.text
