"""Exactly once under faults: LINE accepting then dropping the answer, 500s and 429s, at random."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import Emulator
from tests.outbox.kit import FakeTime, Line, make_worker, user

from linepush.client import AsyncLineClient
from linepush.config import Channel
from linepush.outbox import Backoff, Outbox, push_item
from linepush.retry import NO_RETRY
from linepush.store import Store, open_store
from linepush.transport import AiohttpTransport
from linepush.worker import Worker, WorkerConfig

PUSH = "/v2/bot/message/push"


def _faults(admin: Any, seed: int) -> None:
    admin.fault(path=PUSH, mode="drop_after_accept", rate=0.2, count=None, seed=seed)
    admin.fault(path=PUSH, mode="random", status=500, rate=0.05, seed=seed + 1)
    admin.fault(path=PUSH, mode="random", status=429, rate=0.05, seed=seed + 2)


def _check_exactly_once(deliveries: list[dict[str, Any]], rows: list[Any], n: int) -> None:
    per_key = Counter(d["retry_key"] for d in deliveries)
    assert len(per_key) == n
    assert max(per_key.values()) == 1
    assert set(per_key) == {r.retry_key for r in rows}
    texts = Counter(d["messages"][0]["text"] for d in deliveries)
    assert len(texts) == n and max(texts.values()) == 1


async def test_every_message_is_delivered_exactly_once_under_faults(
    store: Store, client: AsyncLineClient, fake_time: FakeTime, line: Line, outbox: Outbox
) -> None:
    n = 600
    outbox.enqueue([push_item(line.channel_id, user(i), f"m{i}") for i in range(n)])
    _faults(line.emulator.admin, seed=7)
    worker = make_worker(store, client, fake_time, line.channel_id, concurrency=16, batch_size=50)
    totals: Counter[str] = Counter()
    for _ in range(200):
        stats = await worker.run_until_idle()
        totals.update(retried=stats.retried, duplicates=stats.duplicates, failed=stats.failed)
        if store.counts()["delivered"] == n:
            break
        await fake_time.advance(600)  # past the longest backoff
    counts = store.counts()
    assert counts == {"queued": 0, "sending": 0, "delivered": n, "failed": 0}
    assert totals["failed"] == 0
    # The faults did happen: answers were lost and sends refused, and the lost ones came back as 409s.
    assert totals["retried"] > n * 0.2 and totals["duplicates"] > n * 0.1
    rows = store.list_messages(limit=n)
    _check_exactly_once(line.deliveries(), rows, n)
    assert line.emulator.admin.count(PUSH, status=409) >= totals["duplicates"]


@pytest.mark.e2e
async def test_exactly_once_under_faults_over_a_real_socket(live_emulator: Emulator, tmp_path: Path) -> None:
    """The same over aiohttp and a loopback socket, the store in its own thread, the real clock."""
    admin = live_emulator.admin
    channel_id, _ = admin.create_channel()
    token = admin.long_lived_token(channel_id)
    n = 1500
    with open_store(str(tmp_path / "faults.db")) as store:
        Outbox(store, channel_id).enqueue([push_item(channel_id, user(i), f"m{i}") for i in range(n)])
        assert live_emulator.url is not None
        _faults(admin, seed=11)
        try:
            client = AsyncLineClient(
                Channel(channel_id),
                token=token,
                transport=AiohttpTransport(live_emulator.url),
                retry=NO_RETRY,
                rate_limits=None,
            )
            # No backoff: a failed row is due again at once, so the test never waits on the clock.
            config = WorkerConfig(concurrency=32, backoff=Backoff(initial=0, maximum=0, minimum=0))
            async with client:
                stats = await Worker(store, client, channel_id=channel_id, config=config).run_until_idle()
        finally:
            admin.clear_faults()
        assert store.counts() == {"queued": 0, "sending": 0, "delivered": n, "failed": 0}
        assert stats.retried > n * 0.2 and stats.duplicates > n * 0.1
        _check_exactly_once(admin.deliveries(channel_id), store.list_messages(limit=n), n)
