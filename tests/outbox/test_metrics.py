"""The worker's metrics after real sends to the emulator, read back with prometheus_client's own parser."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from tests.outbox.kit import FakeTime, Line, user

from linepush.client import AsyncLineClient
from linepush.outbox import Outbox, push_item
from linepush.service.metrics import Metrics
from linepush.store import Store
from linepush.worker import Worker, WorkerConfig

PUSH = "/v2/bot/message/push"


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(metrics.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_deliveries_retries_failures_and_429s_are_counted(
    store: Store, client: AsyncLineClient, fake_time: FakeTime, line: Line, outbox: Outbox
) -> None:
    metrics = Metrics(store, clock=fake_time.clock)
    channel = line.channel_id
    outbox.enqueue([push_item(channel, user(i), f"m{i}") for i in range(3)])
    line.emulator.admin.fault(path=PUSH, mode="status", status=429, count=1)
    line.emulator.admin.fault(path=PUSH, mode="status", status=400, count=1)
    worker = Worker(
        store,
        metrics.timed(client, channel),
        channel_id=channel,
        config=WorkerConfig(concurrency=1, batch_size=10),
        clock=fake_time.clock,
        sleep=fake_time.sleep,
        rand=lambda: 0.0,
        on_settled=metrics.on_settled(channel),
        offload=False,
    )
    await worker.run_until_idle()
    found = samples(metrics)
    ch = (("channel", channel),)
    assert found[("linepush_deliveries_total", ch)] == 1
    retried = (*ch, ("error", "RateLimitError"), ("status", "429"))
    failed = (*ch, ("error", "BadRequestError"), ("status", "400"))
    assert found[("linepush_delivery_retries_total", retried)] == 1
    assert found[("linepush_delivery_failures_total", failed)] == 1
    assert found[("linepush_line_rate_limited_total", (*ch, ("limit", "rate")))] == 1
    assert found[("linepush_send_duration_seconds_count", ch)] == 3
    assert found[("linepush_outbox_messages", (*ch, ("state", "delivered")))] == 1
    assert found[("linepush_outbox_messages", (*ch, ("state", "queued")))] == 1
    assert found[("linepush_outbox_messages", (*ch, ("state", "failed")))] == 1
    assert found[("linepush_store_up", ())] == 1
    # the retried row is not due yet (its backoff); once due, the queue's age counts from then
    assert found[("linepush_outbox_oldest_due_age_seconds", ())] == 0
    (retry,) = [r for r in store.list_messages(limit=10) if r.state == "queued"]
    await fake_time.advance(retry.not_before - fake_time.now + 30)
    assert samples(metrics)[("linepush_outbox_oldest_due_age_seconds", ())] == 30
    text = generate_latest(metrics.registry).decode()
    assert line.token not in text and "m0" not in text and user(0) not in text
