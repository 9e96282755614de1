"""The monthly message limit pauses a channel's sends; its rows stay queued until the reset or a resume."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any

import pytest
from tests.outbox.kit import START, FakeTime, Line, make_worker, until, user

from linepush.client import AsyncLineClient
from linepush.outbox import MonthlyReset, Outbox, push_item
from linepush.store import Store
from linepush.worker import Worker, WorkerStats

JST = dt.timezone(dt.timedelta(hours=9))
#: START is 2027-01-15 08:00 UTC; LINE's month (Japan time) next begins on 1 February, 00:00 +09:00.
FEBRUARY = dt.datetime(2027, 2, 1, tzinfo=JST).timestamp()


@pytest.fixture
def line(emulator: Any) -> Line:
    channel_id, _ = emulator.admin.create_channel(monthly_quota=2)
    return Line(emulator, channel_id, emulator.admin.long_lived_token(channel_id))


def _fill(outbox: Outbox, n: int) -> list[int]:
    rows = outbox.enqueue([push_item(outbox.channel_id, user(i), f"m{i}") for i in range(n)])
    return [r.id for r in rows]


async def _paused_worker(
    outbox: Outbox, store: Store, client: AsyncLineClient, fake_time: FakeTime, line: Line, poll: float
) -> tuple[Worker, asyncio.Task[WorkerStats], asyncio.Event]:
    """A worker running on 3 rows of a channel whose quota takes 2: paused, with nothing in hand."""
    _fill(outbox, 3)
    stop = asyncio.Event()
    worker = make_worker(store, client, fake_time, line.channel_id, concurrency=1, poll_interval=poll)
    task = asyncio.create_task(worker.run(stop))
    await until(lambda: worker.stats.delivered == 2 and outbox.paused_until() == FEBRUARY)
    await until(lambda: store.counts()["sending"] == 0)
    return worker, task, stop


def _emulator_to_next_month(line: Line) -> None:
    """Move the emulator's clock past the start of its next month (Japan time), whatever today is."""
    now = dt.datetime.fromtimestamp(line.emulator.now(), JST)
    first = dt.datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=JST)
    line.emulator.admin.advance(first.timestamp() - now.timestamp() + 60)


def test_the_reset_is_the_first_of_next_month_in_japan_time() -> None:
    reset = MonthlyReset()
    assert reset.next_after(START) == FEBRUARY
    december = dt.datetime(2026, 12, 31, 15, 0, tzinfo=dt.UTC).timestamp()  # 1 January 00:00 in Tokyo
    assert reset.next_after(december - 1) == december
    assert reset.next_after(december) == dt.datetime(2027, 2, 1, tzinfo=JST).timestamp()
    utc = MonthlyReset(utc_offset_hours=0)
    assert utc.next_after(START) == dt.datetime(2027, 2, 1, tzinfo=dt.UTC).timestamp()


async def test_rows_stay_queued_and_the_channel_pauses_until_the_reset(
    outbox: Outbox,
    store: Store,
    client: AsyncLineClient,
    fake_time: FakeTime,
    line: Line,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ids = _fill(outbox, 4)
    caplog.set_level(logging.INFO, "linepush.worker")
    stats = await make_worker(store, client, fake_time, line.channel_id, concurrency=1).run_until_idle()
    assert (stats.delivered, stats.failed, stats.retried) == (2, 0, 0)
    assert stats.paused_until == FEBRUARY
    rows = [outbox.get(i) for i in ids]
    assert [r.state for r in rows if r] == ["delivered"] * 2 + ["queued"] * 2
    assert all(r.attempts == 0 and r.first_attempt_at is None for r in rows[2:] if r)  # no attempt burnt
    said = [r.getMessage() for r in caplog.records if "monthly" in r.getMessage()]
    assert len(said) == 1 and "2027-02-01 00:00" in said[0]  # fixed date ok: injected clock
    assert outbox.paused_until() == FEBRUARY

    # Paused: another run (another worker, say) sends nothing at all, however often it looks.
    pushes = line.emulator.admin.count("/v2/bot/message/push")
    for _ in range(3):
        again = await make_worker(store, client, fake_time, line.channel_id).run_until_idle()
        assert (again.claimed, again.paused_until) == (0, FEBRUARY)
    assert line.emulator.admin.count("/v2/bot/message/push") == pushes

    # The new month: the emulator's and the worker's clocks both move on, and the rest goes out once each.
    _emulator_to_next_month(line)
    fake_time.now = FEBRUARY
    after = await make_worker(store, client, fake_time, line.channel_id).run_until_idle()
    assert (after.delivered, after.paused_until) == (2, None)  # the new month's quota is 2 as well
    assert after.delivered + stats.delivered == len({d["retry_key"] for d in line.deliveries()}) == 4
    assert len(line.deliveries()) == 4


async def test_a_running_worker_waits_and_resumes_on_resume(
    outbox: Outbox, store: Store, client: AsyncLineClient, fake_time: FakeTime, line: Line
) -> None:
    worker, task, stop = await _paused_worker(outbox, store, client, fake_time, line, poll=5.0)
    pushes = line.emulator.admin.count("/v2/bot/message/push")
    for _ in range(20):  # an hour and a half of polls: nothing is sent, nothing burnt
        await fake_time.advance(300.0)
    assert line.emulator.admin.count("/v2/bot/message/push") == pushes
    assert store.counts()["queued"] == 1 and store.counts()["failed"] == 0
    # Someone bought more messages (the emulator: a new month) and lifted the pause from elsewhere.
    _emulator_to_next_month(line)
    assert Outbox(store, line.channel_id).resume() is True
    await fake_time.advance(5.0)
    await until(lambda: worker.stats.delivered == 3)
    stop.set()
    await until(task.done)
    assert task.result().paused_until is None
    assert len(line.deliveries()) == 3


async def test_a_pause_reaches_its_end_by_itself(
    outbox: Outbox, store: Store, client: AsyncLineClient, fake_time: FakeTime, line: Line
) -> None:
    worker, task, stop = await _paused_worker(outbox, store, client, fake_time, line, poll=60.0)
    _emulator_to_next_month(line)
    await fake_time.advance(FEBRUARY - fake_time.now - 1)
    assert worker.stats.delivered == 2
    await fake_time.advance(61.0)
    await until(lambda: worker.stats.delivered == 3)
    assert outbox.paused_until() is None
    stop.set()
    await until(task.done)


def test_resume_without_a_pause_says_so(outbox: Outbox) -> None:
    assert outbox.paused_until() is None
    assert outbox.resume() is False


def test_a_send_costs_one_message_per_user_and_per_member_of_a_group_or_room() -> None:
    from linepush.outbox import SendCost, send_cost

    group, room, lost = "C" + "1" * 32, "R" + "2" * 32, "C" + "3" * 32
    members = {group: 7, room: 3, lost: None}
    assert send_cost([user(1), user(2), group, room, lost], members) == SendCost(1 + 1 + 7 + 3 + 1, (lost,))
    assert send_cost([], {}) == SendCost(0)
