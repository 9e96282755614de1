"""Group commit: the messages of requests that arrive together are queued in one store transaction.

Every enqueue is durable before it is answered (SQLite flushes to disk at each commit, a few milliseconds),
so one transaction per request caps the gateway at a few hundred requests a second. Here, while one commit
is in flight, the requests that arrive meanwhile wait for the next, which takes them all: each is still
answered only once its own row is on disk, and a lone request waits for nothing but its own commit.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Final

from starlette.concurrency import run_in_threadpool

from linepush.errors import ValidationError
from linepush.store import NewMessage, OutboxMessage, Store

__all__ = ["MAX_BATCH", "GroupCommit"]

log = logging.getLogger("linepush.service.gateway")

#: Most messages per transaction: a bigger batch would keep its first requests waiting for little gain.
MAX_BATCH: Final = 256

_Waiter = tuple[NewMessage, "asyncio.Future[OutboxMessage]"]


class GroupCommit:
    """Enqueues messages into ``store``, batching those that arrive while a commit is in flight.

    Only one event loop's tasks may share a batch (futures belong to their loop); a call from another loop
    while a batch is pending is simply enqueued on its own.
    """

    def __init__(
        self, store: Store, clock: Callable[[], float] = time.time, max_batch: int = MAX_BATCH
    ) -> None:
        self.store = store
        self.clock = clock
        self.max_batch = max_batch
        self._pending: list[_Waiter] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._flusher: asyncio.Task[None] | None = None

    async def enqueue(self, item: NewMessage) -> OutboxMessage:
        """Queue one message; returns its row once the transaction that holds it has committed."""
        loop = asyncio.get_running_loop()
        if self._flusher is not None and self._loop is not loop:
            return (await run_in_threadpool(self.store.enqueue, [item], self.clock()))[0]
        future: asyncio.Future[OutboxMessage] = loop.create_future()
        self._pending.append((item, future))
        if self._flusher is None:
            self._loop = loop
            self._flusher = loop.create_task(self._flush(), name="linepush-gateway-group-commit")
        return await future

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
                await self._commit(batch)
        finally:
            self._flusher = None

    async def _commit(self, batch: list[_Waiter]) -> None:
        try:
            rows = await run_in_threadpool(self.store.enqueue, [item for item, _ in batch], self.clock())
        except ValidationError as exc:
            if len(batch) == 1:
                _fail(batch, exc)
                return
            # The store refuses a whole batch for one bad item; the others must not pay for it.
            for waiter in batch:
                await self._commit([waiter])
            return
        except Exception as exc:  # a store failure: every request of the batch gets it
            _fail(batch, exc)
            return
        for (_, future), row in zip(batch, rows, strict=True):
            if not future.done():  # a request whose client went away is no longer waiting
                future.set_result(row)


def _fail(batch: list[_Waiter], error: BaseException) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(error)
