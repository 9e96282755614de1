"""Readiness: whether this process can do its job now — its store answers and takes writes, its migrations are
the database's, and its delivery worker (when it runs one) is not stuck. Each check says what failed.

Liveness (``/healthz``) is only that the process answers; a store outage makes a process unready, not dead,
so a supervisor waits for it rather than restarting it in a loop.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from linepush.service.store import gateway_store
from linepush.store import Store, StoreError

__all__ = ["STUCK_AFTER", "Readiness", "WorkerWatch"]

#: Seconds a check's answer stands for: anyone may call /readyz, and the store probe writes.
CHECK_EVERY: Final = 1.0
#: A worker that has not claimed for this long while rows have been due this long is stuck.
STUCK_AFTER: Final = 120.0
_NO_HASH: Final = "0" * 64


@dataclass
class WorkerWatch:
    """What readiness sees of the delivery worker in this process: when the store last answered its claim,
    and why it does not send when it knows (no token can be had, the monthly limit).

    ``last_claim`` is set by whoever runs the worker (it reads :attr:`linepush.worker.Worker.last_claim_at`);
    ``started_at`` counts as a claim, so a worker that just started is not stuck yet."""

    started_at: float
    channel_id: str | None = None
    stuck_after: float = STUCK_AFTER
    last_claim: Callable[[], float | None] = field(default=lambda: None)
    #: Why the worker is not sending, when it knows (:attr:`linepush.worker.Worker.blocked`).
    blocked: Callable[[], str | None] = field(default=lambda: None)

    def problem(self, store: Store, now: float) -> str | None:
        reason = self.blocked()
        if reason is not None:
            return reason
        due = store.oldest_due(now, self.channel_id)
        if due is None or now - due < self.stuck_after:
            return None
        claimed = max(self.last_claim() or -math.inf, self.started_at)
        if now - claimed < self.stuck_after:
            return None
        return f"stuck: no claim for {now - claimed:.0f} s while rows have been due for {now - due:.0f} s"


class Readiness:
    """The checks of ``/readyz``, run at most once per :data:`CHECK_EVERY` (the last answer stands)."""

    def __init__(self, store: Store, worker: WorkerWatch | None = None) -> None:
        self._store = store
        self._worker = worker
        self._at = -math.inf
        self._checks: dict[str, str] = {}

    def checks(self, now: float) -> dict[str, str]:
        """Each check's answer, "ok" or what failed. Blocking (store calls): run it off the event loop."""
        if not 0 <= now - self._at < CHECK_EVERY:
            self._checks = self._run(now)
            self._at = now
        return self._checks

    def _run(self, now: float) -> dict[str, str]:
        checks = {"store": "ok", "migrations": "ok"}
        try:
            self._probe(now)
        except StoreError as exc:
            # The error's class only: a driver's message may quote the connection string. The other checks
            # need the store, so they are not run.
            return {"store": f"failing ({type(exc).__name__})"}
        try:
            stored, known = self._store.stored_schema_version(), self._store.schema_version
            if stored != known:
                checks["migrations"] = (
                    f"the database is at schema version {stored}, this process at {known}: restart it with "
                    "the linepush that migrated the database"
                )
            if self._worker is not None:
                checks["worker"] = self._worker.problem(self._store, now) or "ok"
        except StoreError as exc:
            checks["store"] = f"failing ({type(exc).__name__})"
        return checks

    def _probe(self, now: float) -> None:
        """Read and write as a notification would (a full disk fails here too): a lock of the probe's own,
        taken and let go — two small transactions, no lasting row, each synced to disk."""
        gateway_store(self._store).find_gateway_token(_NO_HASH)
        owner = secrets.token_hex(8)
        name = f"healthz:{owner}"
        self._store.try_lock(name, owner, 5.0, now)
        self._store.unlock(name, owner)
