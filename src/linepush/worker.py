"""The delivery worker: claims due outbox rows with a lease, sends them concurrently through an
:class:`~linepush.client.AsyncLineClient`, renews the leases while they are in flight and writes back
the outcome of many rows per transaction.

No message is lost: a row leaves ``sending`` only once its outcome is stored, and a dead worker's rows come
back when their lease runs out. None is delivered twice: every resend carries the row's retry key, and a row
whose first attempt is older than LINE's retry-key window is failed instead of resent.

Pushes to one chat go out in the order they were queued: a push waits until the previous one to the same
``to`` (claimed earlier by this worker) has its answer, while pushes to other chats go on concurrently. A push
that must be retried later may arrive after the ones queued behind it, and two workers draining one channel
keep no order between them.

A batch (see :meth:`Store.claim <linepush.store.Store.claim>`) goes out as one push of its rows' messages
under its own retry key, and its rows settle together. A 400 for a batch (nothing delivered) splits it: each
row is sent again alone under its own key, so the good ones go out and the bad one fails by itself.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import functools
import logging
import os
import random
import signal
import socket
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from linepush.api.messaging import SendResult
from linepush.errors import (
    AuthenticationError,
    ConfigurationError,
    LineApiError,
    LinePushError,
    MonthlyLimitError,
    TokenUnavailableError,
)
from linepush.outbox import (
    DEFAULT_BACKOFF,
    DEFAULT_MONTHLY_RESET,
    DEFAULT_RETRY_WINDOW,
    Backoff,
    MonthlyReset,
    RetryWindow,
    Settlement,
    batch_operation,
    batch_results,
    classify,
    error_record,
    pause_channel,
    paused_until,
    result_record,
    retry_reason,
    send_operation,
    settle_many,
    window_expired_error,
)
from linepush.retry import RetryPolicy
from linepush.store.base import OutboxMessage, Store, StoreError

__all__ = ["WORKER_CALL_RETRY", "Sender", "Worker", "WorkerConfig", "WorkerStats", "stop_on_signals"]

log = logging.getLogger("linepush.worker")

T = TypeVar("T")


#: Retries inside one call, for a client that serves a worker: a few quick ones for a blip, then the row goes
#: back to the queue with its own backoff, so a send never holds a slot (or its lease) for long.
WORKER_CALL_RETRY = RetryPolicy(max_attempts=3, initial_backoff=0.2, max_backoff=2.0, deadline=10.0)


class Sender(Protocol):
    """What a worker needs of a client: :meth:`AsyncLineClient.run <linepush.client.AsyncLineClient.run>`."""

    async def run(self, op: Any) -> Any: ...


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """How a worker paces itself. Times are seconds."""

    #: Sends in flight at once (the client's rate limiter still paces them).
    concurrency: int = 32
    #: Rows per claim; a claim is made whenever fewer than this many rows wait for a sender.
    batch_size: int = 100
    #: How long a claim protects a row from other workers; renewed every ``lease / 3`` while held.
    lease_seconds: float = 60.0
    #: How often an idle worker looks for due rows.
    poll_interval: float = 1.0
    #: Most rows written back per transaction.
    settle_batch: int = 500
    #: On stop: how long sends already in flight may take to finish before they are abandoned.
    shutdown_grace: float = 10.0
    #: Until idle (``--once``): how long the store may go on failing (a full disk, say) before the run gives
    #: up and raises the store's error. A worker that runs until stopped never gives up; it keeps trying.
    store_patience: float = 60.0
    retry_window: RetryWindow = field(default=DEFAULT_RETRY_WINDOW)
    backoff: Backoff = field(default=DEFAULT_BACKOFF)
    #: When a channel that reached its monthly message limit may send again.
    monthly_reset: MonthlyReset = field(default=DEFAULT_MONTHLY_RESET)
    #: A worker that runs until stopped, refused a token by LINE (a wrong key id, a key not registered yet):
    #: at least this long between tries, since only a person mends that. LINE documents no figure; a
    #: minute keeps the token endpoint quiet and the repair quick to show.
    token_refusal_retry: float = 60.0
    #: A worker that runs until stopped leaves a batch with room left for its next claim while its last row
    #: is younger than this (in a burst, it fills up meanwhile); a run until idle never waits.
    batch_gather: float = 0.05

    def __post_init__(self) -> None:
        if self.concurrency < 1 or self.batch_size < 1 or self.settle_batch < 1:
            raise ConfigurationError("concurrency, batch size and settle batch must be at least 1")
        if self.lease_seconds <= 0 or self.poll_interval <= 0 or self.shutdown_grace < 0:
            raise ConfigurationError("lease and poll interval must be positive, shutdown grace not negative")
        if self.store_patience < 0 or self.batch_gather < 0:
            raise ConfigurationError("store patience and batch gather must not be negative")
        if self.token_refusal_retry <= 0:
            raise ConfigurationError("the retry interval after a refused token must be positive")


@dataclass
class WorkerStats:
    """What a worker did; ``lost`` counts rows whose lease ran out before their outcome was stored (another
    worker took them over; the retry key keeps that from delivering twice)."""

    claimed: int = 0
    delivered: int = 0
    duplicates: int = 0
    retried: int = 0
    failed: int = 0
    released: int = 0
    lost: int = 0
    #: The run ended because it was told to stop (not because the queue ran dry).
    stopped: bool = False
    #: Set when the run ended with the channel's sends paused (its monthly limit reached): until when.
    paused_until: float | None = None

    @property
    def settled(self) -> int:
        return self.delivered + self.retried + self.failed


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Worker:
    """Delivers the outbox of one channel (or of every channel when ``channel_id`` is None).

    Use :meth:`run_until_idle` to deliver what is due and return, or :meth:`run` to keep going until ``stop``
    is set. Either way, on return nothing this worker claimed is left in ``sending`` (unless the store
    failed; then the lease brings the rows back).

    ``clock`` gives UNIX seconds and ``sleep`` waits (both injectable: tests drive time themselves). Store
    calls run in a thread of their own unless ``offload`` is off (then they run on the event loop, which
    makes a test's interleaving deterministic). ``on_settled`` is called with each stored batch.
    """

    def __init__(
        self,
        store: Store,
        client: Sender,
        *,
        channel_id: str | None = None,
        config: WorkerConfig | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        rand: Callable[[], float] = random.random,
        worker_id: str | None = None,
        on_settled: Callable[[Sequence[Settlement], WorkerStats], None] | None = None,
        offload: bool = True,
    ) -> None:
        self.store = store
        self.client = client
        self.channel_id = channel_id
        self.config = config or WorkerConfig()
        self.clock = clock
        self._sleep = sleep
        self._rand = rand
        self.worker_id = worker_id or default_worker_id()
        self.stats = WorkerStats()
        #: When (``clock``) the store last answered a claim, rows or none; readiness checks watch it.
        self.last_claim_at: float | None = None
        self._on_settled = on_settled
        self._offload = offload
        # SQLite wants one writer; one thread also keeps the event loop free while the store syncs to disk.
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._held: set[int] = set()
        # What the senders take: a row alone, or the rows of a batch (one push), in claim order.
        self._ready: asyncio.Queue[Unit] | None = None
        self._outcomes: list[Settlement] = []
        self._busy = 0
        self._changed: asyncio.Event | None = None
        self._pending: asyncio.Event | None = None
        # Per chat (a push's "to"): done when the last push to it that a sender took has its outcome.
        self._chat_turns: dict[str, asyncio.Future[None]] = {}
        # Since when the store has been failing (None while it works), and the error that ended a run.
        self._store_failing_since: float | None = None
        self._store_failure: StoreError | None = None
        self._last_store_error: StoreError | None = None
        # Outcomes of sent rows wait to be written again: no new claim until they are.
        self._unwritten = False
        # Why no token could be had, until a send gets one again.
        self._token_problem: str | None = None
        self._quota_pause: float | None = None

    def __repr__(self) -> str:
        return f"Worker({self.worker_id!r}, channel_id={self.channel_id!r})"

    @property
    def blocked(self) -> str | None:
        """Why this worker is not sending now (no token can be had, the monthly limit), or None."""
        if self._token_problem is not None:
            return f"no channel access token: {self._token_problem}"
        if self._quota_pause is not None:
            return "paused: the channel's monthly message limit is reached"
        return None

    # -- entry points ----------------------------------------------------------------------------------------

    async def run_until_idle(
        self, stop: asyncio.Event | None = None, *, wait_for_leases: bool = True
    ) -> WorkerStats:
        """Deliver every row that is due, then return (or earlier, cleanly, when ``stop`` is set).

        Rows due later (scheduled, or waiting out a backoff) are left for later. With ``wait_for_leases``,
        rows another worker holds are waited for, and taken over if that worker died.
        """
        return await self._run(stop, until_idle=True, wait_for_leases=wait_for_leases)

    async def run(self, stop: asyncio.Event) -> WorkerStats:
        """Deliver until ``stop`` is set; then finish (or give back) what is in hand and return."""
        return await self._run(stop, until_idle=False, wait_for_leases=False)

    async def run_until_settled(
        self,
        ids: Collection[int],
        *,
        deadline: float,
        on_progress: Callable[[int], None] | None = None,
        poll_interval: float = 0.5,
    ) -> WorkerStats:
        """Deliver until every row in ``ids`` is settled for good (delivered or failed), or until ``deadline``
        seconds have passed. Other due rows of the channel go out too: the worker drains the queue, not a
        subset. ``on_progress`` is told how many of ``ids`` are settled whenever that may have changed."""
        wanted = set(ids)
        done: set[int] = set()
        stop = asyncio.Event()
        chained = self._on_settled

        def report() -> None:
            if on_progress is not None:
                on_progress(len(done))
            if done >= wanted:
                stop.set()

        def settled(batch: Sequence[Settlement], stats: WorkerStats) -> None:
            done.update(i.message_id for i in batch if i.message_id in wanted and i.outcome != "retry")
            report()
            if chained is not None:
                chained(batch, stats)

        async def watch() -> None:
            # Rows that settled before this run began (or by another worker) count as done too.
            started = self.clock()
            while not stop.is_set():
                done.update(await asyncio.to_thread(_settled_ids, self.store, wanted))
                report()
                if self.clock() - started > deadline:
                    stop.set()
                    return
                await _first(self._sleep(poll_interval), stop.wait())

        self._on_settled = settled
        try:
            watcher = asyncio.create_task(watch())
            try:
                # A paused channel (its monthly limit reached) ends the run: the rows would wait for weeks.
                stats = await self._run(stop, until_idle=False, wait_for_leases=False, stop_on_pause=True)
            finally:
                stop.set()
                await watcher
        finally:
            self._on_settled = chained
        return stats

    # -- the loop --------------------------------------------------------------------------------------------

    async def _store(self, func: Callable[..., T], *args: Any) -> T:
        if not self._offload:
            return func(*args)
        assert self._executor is not None
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, func, *args)

    async def _run(
        self,
        stop: asyncio.Event | None,
        *,
        until_idle: bool,
        wait_for_leases: bool,
        stop_on_pause: bool | None = None,
    ) -> WorkerStats:
        if self._executor is not None:
            raise RuntimeError("this worker is already running")
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="linepush-worker-store")
        self.stats = WorkerStats()  # per run
        self._ready = asyncio.Queue()
        self._changed = asyncio.Event()
        self._pending = asyncio.Event()
        stop = stop if stop is not None else asyncio.Event()
        self._stop = stop
        self._until_idle = until_idle
        self._fatal: ConfigurationError | TokenUnavailableError | None = None
        self._store_failure = None
        self._store_failing_since = None
        self._unsent: list[int] = []
        # While no token can be had (LINE's token endpoint failing): rows are given back unsent until then.
        self._token_pause: float | None = None
        self._token_failures = 0
        self._token_problem = None
        # While the channel's monthly limit is reached: until when its sends are paused (read from the store
        # at the start, since another worker may have found the limit), and whether that ends the run.
        self._quota_pause = None
        self._quota_checked = False
        self._stop_on_pause = until_idle if stop_on_pause is None else stop_on_pause
        senders = [asyncio.create_task(self._send_loop()) for _ in range(self.config.concurrency)]
        renewer = asyncio.create_task(self._renew_loop())
        writing_done = asyncio.Event()
        writer = asyncio.create_task(self._write_loop(writing_done))
        fatal: BaseException | None = None
        try:
            await self._claim_loop(stop, until_idle, wait_for_leases)
        except BaseException as exc:
            fatal = exc
            raise
        finally:
            try:
                await self._shut_down(senders, renewer, writer, writing_done, abandon=fatal is not None)
            finally:
                self._executor.shutdown(wait=True)
                self._executor = None
        if self._fatal is not None:
            raise self._fatal
        if self._store_failure is not None:
            raise self._store_failure
        self.stats.stopped = stop.is_set()
        self.stats.paused_until = self._quota_pause
        return self.stats

    async def _claim_loop(self, stop: asyncio.Event, until_idle: bool, wait_for_leases: bool) -> None:
        assert self._ready is not None and self._changed is not None
        config = self.config
        while not stop.is_set():
            if until_idle and self._store_gave_out():
                return
            if self._token_pause is not None:
                await self._wait_for_token(stop)
                continue
            if not self._quota_checked:
                self._quota_checked = True
                await self._look_for_pause()
            if self._quota_pause is not None:
                if self._stop_on_pause:
                    return  # the shutdown gives back what was claimed and not sent
                await self._wait_for_quota(stop)
                continue
            waiting = self._ready.qsize()
            if waiting < config.batch_size and not self._unwritten:
                try:
                    rows = await self._store(
                        functools.partial(
                            self.store.claim, gather=0.0 if until_idle else config.batch_gather
                        ),
                        self.worker_id,
                        config.batch_size,
                        config.lease_seconds,
                        self.clock(),
                        self.channel_id,
                    )
                except StoreError as exc:
                    # Locked by another process for too long, or the disk is full: nothing was claimed.
                    self._store_failed(exc)
                    log.warning(
                        "could not claim outbox rows (next try in %g s): %s", config.poll_interval, exc
                    )
                    await self._pause(stop, config.poll_interval)
                    continue
                self._store_failing_since = None
                self.last_claim_at = self.clock()
                if rows:
                    self.stats.claimed += len(rows)
                    for unit in _units(rows):
                        self._held.update(row.id for row in unit)
                        self._ready.put_nowait(unit)
                    continue
                if until_idle and waiting == 0 and self._busy == 0 and not self._held:
                    if not wait_for_leases:
                        return
                    counts = await self._store(self.store.counts, self.channel_id)
                    if counts["sending"] == 0:
                        return
                    # Another worker holds rows: wait for them to settle or for its lease to run out.
                    await self._pause(stop, config.poll_interval)
                    continue
                if waiting == 0 and self._busy == 0 and not self._held:
                    await self._pause(stop, config.poll_interval)
                    continue
            # Work in hand: wait until a sender frees up or an outcome is written, then look again.
            self._changed.clear()
            await _first(self._changed.wait(), stop.wait())

    def _store_failed(self, exc: StoreError) -> None:
        if self._store_failing_since is None:
            self._store_failing_since = self.clock()
        self._last_store_error = exc

    def _store_gave_out(self) -> bool:
        """True (and the error kept for the caller) once the store has failed for longer than the patience."""
        since = self._store_failing_since
        if since is None or self.clock() - since < self.config.store_patience:
            return False
        self._store_failure = self._last_store_error
        log.error("giving up: the store has failed for %.0f s: %s", self.clock() - since, self._store_failure)
        return True

    async def _pause(self, stop: asyncio.Event, seconds: float) -> None:
        await _first(self._sleep(seconds), stop.wait())

    async def _send_loop(self) -> None:
        assert self._ready is not None
        while True:
            unit = await self._ready.get()
            ids = [row.id for row in unit]
            row = unit[0]
            if self._held_back():
                self._unsent.extend(ids)  # stopping, no token or paused: not started, so given back
                continue
            self._busy += 1
            chat, previous, turn = self._take_turn(row)
            try:
                if previous is not None and not previous.done():
                    try:
                        await asyncio.wait([previous])
                    except asyncio.CancelledError:
                        self._unsent.extend(ids)  # abandoned before it was sent: given back
                        raise
                    if self._held_back():
                        self._unsent.extend(ids)
                        continue
                for outcome in await self._deliver(unit):
                    self._record(outcome)
            except MonthlyLimitError as exc:
                # LINE sent nothing: the row goes back as it was (its attempt undone) to wait for the reset.
                self._unsent.extend(ids)
                await self._limit_reached(row, exc)
            except ConfigurationError as exc:
                # The channel's setup is wrong (no credentials, say): every row would meet the same fate, so
                # the worker stops and gives this one back unsent, and the error is raised to the caller.
                self._unsent.extend(ids)
                self._stop_with(exc)
            except TokenUnavailableError as exc:
                # Nothing was sent: the row goes back as it was, never failed for it.
                self._unsent.extend(ids)
                self._no_token(exc)
            finally:
                if turn is not None:
                    turn.set_result(None)
                    if self._chat_turns.get(chat) is turn:
                        del self._chat_turns[chat]
                self._busy -= 1
                if self._busy == 0 and self._changed is not None:
                    self._changed.set()

    def _held_back(self) -> bool:
        return self._stop.is_set() or self._token_pause is not None or self._quota_pause is not None

    # -- the monthly limit: the channel pauses, its rows wait queued -----------------------------------------

    def _pause_key(self, row: OutboxMessage | None = None) -> str | None:
        # A worker without a channel id sends through one client, hence one channel: that of its rows.
        return self.channel_id if self.channel_id is not None else (row.channel_id if row else None)

    async def _look_for_pause(self) -> None:
        """Whether the channel is paused already (another worker, or an earlier run, found the limit)."""
        channel = self._pause_key()
        if channel is None:
            return
        try:
            self._quota_pause = await self._store(paused_until, self.store, channel, self.clock())
        except StoreError as exc:
            log.warning("could not read whether channel %s is paused: %s", channel, exc)
            return
        if self._quota_pause is not None:
            log.warning(
                "channel %s: sends are paused until %s (its monthly message limit was reached); "
                "the messages stay queued, and `linepush queue resume` sends again sooner",
                channel,
                self.config.monthly_reset.describe(self._quota_pause),
            )

    async def _limit_reached(self, row: OutboxMessage, error: MonthlyLimitError) -> None:
        if self._quota_pause is not None:
            return  # the sends that were in flight with the first one
        now = self.clock()
        until = self.config.monthly_reset.next_after(now)
        self._quota_pause = until  # first, so the senders in flight now hold back (they await below)
        try:
            until = await self._store(pause_channel, self.store, row.channel_id, until, now)
        except StoreError as exc:  # this worker still pauses; another one will find the limit for itself
            log.warning("could not record the pause of channel %s in the store: %s", row.channel_id, exc)
        self._quota_pause = until
        log.warning(
            "channel %s reached its monthly message limit (LINE: %s): sends are paused until %s, when "
            "LINE's month starts again; the messages stay queued, and `linepush queue resume` sends again "
            "sooner",
            row.channel_id,
            error.message,
            self.config.monthly_reset.describe(until),
        )
        if self._changed is not None:
            self._changed.set()

    async def _wait_for_quota(self, stop: asyncio.Event) -> None:
        """Give back what was claimed, then wait until the pause runs out or is lifted (`queue resume`,
        from any process): the store is looked at every poll interval, the rows are not touched."""
        await self._hand_back_claimed(stop)
        channel = self._pause_key()
        while not stop.is_set() and self._quota_pause is not None:
            left = self._quota_pause - self.clock()
            await self._pause(stop, max(0.0, min(self.config.poll_interval, left)))
            if channel is None:
                held = self._quota_pause if self._quota_pause > self.clock() else None
            else:
                try:
                    held = await self._store(paused_until, self.store, channel, self.clock())
                except StoreError as exc:
                    log.warning("could not read whether channel %s is still paused: %s", channel, exc)
                    continue
            if held is None:
                log.warning("channel %s: the pause is over, sends resume", channel)
            self._quota_pause = held

    def _stop_with(self, error: ConfigurationError | TokenUnavailableError) -> None:
        if self._fatal is None:
            self._fatal = error
        self._stop.set()

    def _no_token(self, error: TokenUnavailableError) -> None:
        """No token could be had. A run until idle stops (the rows wait for the next run). A long run gives
        the rows back and pauses, then tries again: soon for a transient failure, after
        :attr:`WorkerConfig.token_refusal_retry` for a refusal (a wrong kid, a key not registered, a clock far
        off LINE's), which only a person mends."""
        if self._until_idle:
            self._stop_with(error)
            return
        if self._token_pause is not None:
            return  # the senders that were already sending when it started failing
        self._token_failures += 1
        self._token_problem = str(error)
        delay = self.config.backoff.delay(self._token_failures, self._rand)
        if not error.retryable:
            # A long run (a gateway's worker) keeps going: the process still takes notifications, and the
            # key may be registered meanwhile. Readiness says why nothing is sent.
            delay = max(delay, self.config.token_refusal_retry)
            log.error("%s; the messages stay queued, next try in %s", error, _seconds(delay))
        else:
            log.warning("%s; the messages stay queued, next try in %s", error, _seconds(delay))
        self._token_pause = self.clock() + delay
        if self._changed is not None:
            self._changed.set()

    async def _wait_for_token(self, stop: asyncio.Event) -> None:
        """Give back what was claimed, wait out the pause, then claim again."""
        await self._hand_back_claimed(stop)
        pause = self._token_pause
        if pause is not None:
            await self._pause(stop, max(0.0, pause - self.clock()))
        self._token_pause = None

    async def _hand_back_claimed(self, stop: asyncio.Event) -> None:
        """Let the sends in flight finish, then give back every row claimed and not sent."""
        assert self._ready is not None and self._changed is not None
        while self._busy and not stop.is_set():
            self._changed.clear()
            await _first(self._changed.wait(), stop.wait())
        while not self._ready.empty():
            self._unsent.extend(row.id for row in self._ready.get_nowait())
        await self._give_back()

    async def _give_back(self) -> None:
        """Rows claimed but never sent go back as if never claimed (the attempt and the window's start are
        undone)."""
        unsent, self._unsent = self._unsent, []
        if not unsent:
            return
        try:
            released = await self._store(self.store.release, unsent, self.worker_id, self.clock())
        except LinePushError as exc:
            log.warning("could not release %d unsent rows (their lease will): %s", len(unsent), exc)
        else:
            self.stats.released += released
            self._held.difference_update(unsent)

    def _take_turn(
        self, row: OutboxMessage
    ) -> tuple[str, asyncio.Future[None] | None, asyncio.Future[None] | None]:
        """For a push: its chat, the turn of the push before it to that chat (if any) and its own turn."""
        chat = row.payload.get("to") if row.kind == "push" else None
        if not isinstance(chat, str):
            return "", None, None
        turn = asyncio.get_running_loop().create_future()
        previous = self._chat_turns.get(chat)
        self._chat_turns[chat] = turn
        return chat, previous, turn

    async def _deliver(self, unit: Unit) -> list[Settlement]:
        """Send a row alone, or a batch's rows as one push; the outcome of each row (a batch's rows share
        theirs, but for their parts of what LINE answered)."""
        row = unit[0]
        now = self.clock()
        window = self.config.retry_window
        if window.expired(row, now):
            error = window_expired_error(row, window, now)
            return [Settlement(r.id, "failed", error=error_record(error, now=now)) for r in unit]
        try:
            op = batch_operation(unit) if len(unit) > 1 else send_operation(row)
            result: SendResult = await self.client.run(op)
        except asyncio.CancelledError:
            # Abandoned at shutdown with the request maybe at LINE: back to queued, keeping the attempt and
            # its first_attempt_at, so the retry window still counts from the first try.
            later = self.clock()
            note = {"type": "Interrupted", "message": "the worker stopped while this send was in flight"}
            for r in unit:
                self._record(Settlement(r.id, "retry", error=note, not_before=later))
            raise
        except (ConfigurationError, TokenUnavailableError, MonthlyLimitError):
            raise
        except AuthenticationError as exc:
            # A 401 even after the client's one retry with another token: the token is at fault, never the
            # message. LINE sent nothing, so the rows go back queued (as when no token can be had at all).
            raise TokenUnavailableError(
                f"LINE refused the channel access token, so nothing was sent: {exc}",
                error=exc,
                hint=_REFUSED_TOKEN_HINT,
                retryable=False,
            ) from exc
        except LinePushError as exc:
            self._token_failures = 0
            self._token_problem = None
            if len(unit) > 1 and isinstance(exc, LineApiError) and exc.status == 400:
                return self._split(unit, exc)
            return self._for_all(unit, self._after_error(row, exc))
        except Exception as exc:  # a bug or an unexpected failure: keep the row, do not lose the worker
            log.exception("unexpected error sending outbox message %s", row.id)
            return self._for_all(unit, self._after_error(row, exc))
        self._token_failures = 0
        self._token_problem = None
        request_id, body = result_record(result)
        if len(unit) == 1:
            return [Settlement(row.id, "delivered", request_id=request_id, result=body)]
        return [
            Settlement(r.id, "delivered", request_id=request_id, result=part)
            for r, part in zip(unit, batch_results(unit, body), strict=True)
        ]

    def _split(self, unit: Unit, error: LineApiError) -> list[Settlement]:
        """LINE refused a batch (400: nothing of it was delivered, FACTS §3.7 and §4). Which row it refused
        is not said, so the batch is dissolved and each row tried again now, alone, under its own key: the
        good ones go out and the bad one fails by itself."""
        now = self.clock()
        record = error_record(error, now=now)
        record["reason"] = f"{retry_reason(error)}; the batch of {len(unit)} is sent again row by row"
        log.warning(
            "outbox messages %s: LINE refused them as one push (%s); each goes alone now",
            ", ".join(str(r.id) for r in unit),
            retry_reason(error),
        )
        return [Settlement(r.id, "retry", error=record, not_before=now, split=True) for r in unit]

    @staticmethod
    def _for_all(unit: Unit, outcome: Settlement) -> list[Settlement]:
        return [dataclasses.replace(outcome, message_id=r.id) for r in unit]

    def _after_error(self, row: OutboxMessage, error: BaseException) -> Settlement:
        now = self.clock()
        record = error_record(error, now=now)
        reason = retry_reason(error)
        if classify(error) == "failed":
            log.warning("outbox message %s failed: %s", row.id, reason)
            return Settlement(row.id, "failed", error=record)
        delay = self.config.backoff.delay(row.attempts, self._rand)
        due = now + delay
        first = row.first_attempt_at if row.first_attempt_at is not None else now
        window = self.config.retry_window
        if due >= window.deadline(first):
            expired = window_expired_error(row, window, due)
            record["retry_window"] = str(expired)
            log.warning("outbox message %s failed: %s, and %s", row.id, reason, expired)
            return Settlement(row.id, "failed", error=record | {"type": "RetryWindowExpiredError"})
        log.info(
            "outbox message %s: %s, next try in %s (attempt %d)",
            row.id,
            reason,
            _seconds(delay),
            row.attempts,
        )
        record["reason"] = reason  # `queue list` shows it on the queued row
        return Settlement(row.id, "retry", error=record, not_before=due)

    def _record(self, outcome: Settlement) -> None:
        self._outcomes.append(outcome)
        if self._pending is not None:
            self._pending.set()

    async def _write_loop(self, done: asyncio.Event) -> None:
        """The one writer: stores outcomes in batches. Outcomes that arrive during a write go in the next
        batch, so batches grow with the load and a write costs one transaction (one disk sync) per batch."""
        assert self._pending is not None
        while True:
            if not self._outcomes:
                if done.is_set():
                    return
                self._pending.clear()
                await _first(self._pending.wait(), done.wait())
                continue
            batch = self._outcomes[: self.config.settle_batch]
            del self._outcomes[: len(batch)]
            try:
                ok = await self._store(settle_many, self.store, self.worker_id, self.clock(), batch)
            except StoreError as exc:
                # Not written (a full disk, say), and these rows were sent: keep their outcomes and write them
                # again shortly, claiming nothing new meanwhile, so that whatever room the store gets back
                # goes to recording what was sent. Only a shutdown that outlasts its grace leaves them to
                # their leases (they come back, and their retry keys make the resend safe).
                self._store_failed(exc)
                since = self._store_failing_since or self.clock()
                if not (done.is_set() and self.clock() - since >= self.config.shutdown_grace):
                    self._outcomes[:0] = batch
                    self._unwritten = True
                    log.warning(
                        "could not store the outcome of %d outbox rows (next try in %g s): %s",
                        len(batch),
                        self.config.poll_interval,
                        exc,
                    )
                    if self._changed is not None:
                        self._changed.set()  # the claim loop may be waiting to give up
                    await self._sleep(self.config.poll_interval)
                    continue
                log.warning("could not store the outcome of %d outbox rows: %s", len(batch), exc)
                ok = [False] * len(batch)
            except LinePushError as exc:
                log.warning("could not store the outcome of %d outbox rows: %s", len(batch), exc)
                ok = [False] * len(batch)
            else:
                self._store_failing_since = None
            self._unwritten = False
            self._settled(batch, ok)

    def _settled(self, batch: Sequence[Settlement], ok: Sequence[bool]) -> None:
        stats = self.stats
        for item, written in zip(batch, ok, strict=True):
            self._held.discard(item.message_id)
            if not written:
                stats.lost += 1
                log.warning("lost the lease of outbox message %s before storing its outcome", item.message_id)
            elif item.outcome == "delivered":
                stats.delivered += 1
                if item.result and item.result.get("duplicate"):
                    stats.duplicates += 1
            elif item.outcome == "retry":
                stats.retried += 1
            else:
                stats.failed += 1
        if log.isEnabledFor(logging.INFO):
            kinds = ", ".join(f"{n} {k}" for k, n in sorted(Counter(i.outcome for i in batch).items()))
            log.info("stored the outcome of %d rows (%s)", len(batch), kinds)
        if self._changed is not None:
            self._changed.set()
        if self._on_settled is not None:
            self._on_settled(batch, stats)

    async def _renew_loop(self) -> None:
        interval = self.config.lease_seconds / 3
        while True:
            await self._sleep(interval)
            held = sorted(self._held)
            if held:
                try:
                    await self._store(
                        self.store.renew_leases, held, self.worker_id, self.config.lease_seconds, self.clock()
                    )
                except LinePushError as exc:  # the next renewal may work; the lease is longer than 2 tries
                    log.warning("could not renew leases: %s", exc)

    async def _shut_down(
        self,
        senders: list[asyncio.Task[None]],
        renewer: asyncio.Task[None],
        writer: asyncio.Task[None],
        writing_done: asyncio.Event,
        *,
        abandon: bool,
    ) -> None:
        assert self._ready is not None and self._changed is not None
        # Rows claimed but not started are taken out of reach of the senders, to be given back below.
        while not self._ready.empty():
            self._unsent.extend(row.id for row in self._ready.get_nowait())
        # Sends in flight: let them finish (their leases still renewed), up to the grace period.
        if not abandon and self._busy:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.shutdown_grace):
                    while self._busy:
                        self._changed.clear()
                        await self._changed.wait()
        for task in senders:
            task.cancel()
        await asyncio.gather(*senders, return_exceptions=True)
        await self._give_back()
        writing_done.set()
        await asyncio.gather(writer, return_exceptions=True)
        renewer.cancel()
        await asyncio.gather(renewer, return_exceptions=True)
        if self._held:
            # Outcomes that could not be written (the store failed): the lease will return these rows.
            log.warning("%d outbox rows stay leased until their lease runs out", len(self._held))


#: What one send takes: a row alone, or the rows of a batch in their order.
Unit = tuple[OutboxMessage, ...]


def _units(rows: Sequence[OutboxMessage]) -> list[Unit]:
    """Claimed rows as sends: a claim hands out a batch's rows together, in their order."""
    units: list[Unit] = []
    for row in rows:
        if row.batch_key is not None and units and units[-1][0].batch_key == row.batch_key:
            units[-1] = (*units[-1], row)
        else:
            units.append((row,))
    return units


_REFUSED_TOKEN_HINT = (
    "a token set with LINE_CHANNEL_ACCESS_TOKEN was revoked or reissued in the LINE Developers Console: set "
    "the current one; or the channel's tokens were revoked, or its channel id is wrong. The messages stay "
    "queued"
)


def _settled_ids(store: Store, ids: Iterable[int]) -> set[int]:
    """Those of ``ids`` delivered or failed (or gone: purged)."""
    final: set[int] = set()
    for message_id in ids:
        row = store.get_message(message_id)
        if row is None or row.state in ("delivered", "failed"):
            final.add(message_id)
    return final


def _seconds(delay: float) -> str:
    return f"{delay:.0f} s" if delay >= 10 else f"{delay:.1f} s"


async def _first(*aws: Awaitable[Any]) -> None:
    """Wait until the first of ``aws`` completes; cancel the rest."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def stop_on_signals(stop: asyncio.Event, signals: Sequence[int] = (signal.SIGTERM, signal.SIGINT)) -> None:
    """Set ``stop`` on SIGTERM or SIGINT (from the running event loop), so a worker stops cleanly."""
    loop = asyncio.get_running_loop()
    for sig in signals:
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not on Windows / not main thread
            loop.add_signal_handler(sig, stop.set)
