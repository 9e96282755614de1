"""Helpers for the outbox and worker tests: virtual time, and a channel at an in-process emulator."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from dataclasses import dataclass
from typing import Any

from tests.conftest import Emulator

from linepush.client import AsyncLineClient
from linepush.config import Channel
from linepush.retry import NO_RETRY
from linepush.store import Store
from linepush.transport import ASGITransport
from linepush.worker import Worker, WorkerConfig

START = 1_800_000_000.0


def user(i: int) -> str:
    return f"U{i:032x}"


class FakeTime:
    """Virtual time: ``clock()`` reads it, ``sleep()`` waits until a test moves it with :meth:`advance`.

    Nothing ever sleeps for real; a task asleep here wakes only when the test says time has passed.
    """

    def __init__(self, start: float = START) -> None:
        self.now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + seconds, next(self._order), future))
        await future

    @property
    def sleepers(self) -> int:
        return sum(1 for _, _, f in self._sleepers if not f.done())

    async def advance(self, seconds: float) -> None:
        """Move time forward, waking every sleeper whose time has come, in order."""
        target = self.now + seconds
        while self._sleepers and self._sleepers[0][0] <= target:
            due, _, future = heapq.heappop(self._sleepers)
            self.now = max(self.now, due)
            if not future.done():
                future.set_result(None)
            for _ in range(5):
                await asyncio.sleep(0)
        self.now = target
        for _ in range(5):
            await asyncio.sleep(0)


async def until(condition: Any, *, rounds: int = 10_000) -> None:
    """Let other tasks run until ``condition()`` holds (no real time passes)."""
    for _ in range(rounds):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never became true")


@dataclass
class Line:
    """A channel at the in-process emulator and what talks to it."""

    emulator: Emulator
    channel_id: str
    token: str

    def deliveries(self) -> list[dict[str, Any]]:
        return self.emulator.admin.deliveries(self.channel_id)

    def client(self, **options: Any) -> AsyncLineClient:
        options.setdefault("retry", NO_RETRY)
        options.setdefault("rate_limits", None)
        return AsyncLineClient(
            Channel(self.channel_id),
            token=self.token,
            transport=ASGITransport(self.emulator.app),
            **options,
        )


def make_worker(
    store: Store,
    client: Any,
    fake_time: FakeTime,
    channel_id: str | None,
    **config: Any,
) -> Worker:
    config.setdefault("concurrency", 4)
    config.setdefault("batch_size", 10)
    return Worker(
        store,
        client,
        channel_id=channel_id,
        config=WorkerConfig(**config),
        clock=fake_time.clock,
        sleep=fake_time.sleep,
        rand=lambda: 0.5,
        worker_id="worker-test",
        offload=False,
    )
