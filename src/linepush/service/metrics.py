"""Prometheus metrics of a gateway or worker process, with prometheus_client: the outbox as the store holds it
(read at each scrape), what the delivery worker did, how LINE answered its sends, and the HTTP requests the
gateway answered.

No label ever holds a token, a secret, a recipient or message text: channels are ids, failures are LINE's
status and linepush's error class, endpoints are route templates.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from linepush.api.messaging import MonthlyUsage
from linepush.errors import AuthenticationError, LinePushError, MonthlyLimitError, RateLimitError
from linepush.store import MESSAGE_STATES, Store, StoreError
from linepush.store.records import Settlement
from linepush.tokens import TokenEvent, add_token_listener
from linepush.worker import WorkerStats

__all__ = ["ENDPOINTS", "Metrics", "endpoint_of"]

#: The gateway's routes as metrics name them; any other path counts as "other" (no unbounded labels).
ENDPOINTS: Final = (
    "/api/notify",
    "/api/status",
    "/api/revoke",
    "/webhook",
    "/healthz",
    "/readyz",
    "/metrics",
    "/alertmanager",
    "/grafana",
)
_TEMPLATES: Final = (("/images/", "/images/{name}"), ("/hooks/", "/hooks/{name}"))
#: How often a worker with metrics asks LINE for the month's quota and use, seconds (two requests each time).
QUOTA_WATCH_INTERVAL: Final = 600.0
#: Send latency buckets, seconds: a push to LINE takes tens to hundreds of milliseconds.
_SEND_BUCKETS: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def endpoint_of(path: str) -> str:
    if path in ENDPOINTS:
        return path
    for prefix, template in _TEMPLATES:
        if path.startswith(prefix):
            return template
    return "other"


class Metrics:
    """The metrics of one process, in a registry of their own (``registry``), which ``/metrics`` or the
    worker's metrics port exposes. ``clock`` gives UNIX seconds (the age of the oldest due row)."""

    def __init__(
        self,
        store: Store,
        *,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = registry or CollectorRegistry()
        self.deliveries = Counter(
            "linepush_deliveries", "Outbox messages LINE accepted.", ["channel"], registry=self.registry
        )
        self.failures = Counter(
            "linepush_delivery_failures",
            "Outbox messages that failed for good, by LINE's status (none: no answer) and error class.",
            ["channel", "status", "error"],
            registry=self.registry,
        )
        self.retries = Counter(
            "linepush_delivery_retries",
            "Sends that will be tried again, by LINE's status (none: no answer) and error class.",
            ["channel", "status", "error"],
            registry=self.registry,
        )
        self.send_seconds = Histogram(
            "linepush_send_duration_seconds",
            "How long one send of the delivery worker took, answered or not.",
            ["channel"],
            buckets=_SEND_BUCKETS,
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "linepush_line_rate_limited",
            "LINE's 429 answers: limit=rate (requests per second) or monthly (the month's message quota).",
            ["channel", "limit"],
            registry=self.registry,
        )
        self.unauthorized = Counter(
            "linepush_line_unauthorized",
            "LINE's 401 answers (the channel access token was refused).",
            ["channel"],
            registry=self.registry,
        )
        self.requests = Counter(
            "linepush_http_requests",
            "Requests the gateway answered, by endpoint (route template) and status.",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "linepush_http_request_duration_seconds",
            "How long the gateway took to answer, by endpoint (route template).",
            ["endpoint"],
            registry=self.registry,
        )
        self.token_issues = Counter(
            "linepush_token_issues",
            "Channel access tokens LINE issued to this process, by token kind (v2.1, v3, v2).",
            ["channel", "kind"],
            registry=self.registry,
        )
        self.token_refreshes = Counter(
            "linepush_token_refreshes",
            "Tokens replaced by a newer one before they ran out (issued here or found in the store).",
            ["channel", "kind"],
            registry=self.registry,
        )
        self.token_refusals = Counter(
            "linepush_token_refusals",
            "Tokens LINE refused (401): each was dropped, and the call retried with another one.",
            ["channel", "kind"],
            registry=self.registry,
        )
        self.quota_limit = Gauge(
            "linepush_quota_limit_messages",
            "The channel's monthly message limit, as LINE's quota endpoint last said (absent: no limit).",
            ["channel"],
            registry=self.registry,
        )
        self.quota_used = Gauge(
            "linepush_quota_used_messages",
            "Messages of this month counted against the limit, as LINE's consumption endpoint last said.",
            ["channel"],
            registry=self.registry,
        )
        self._stop_listening = add_token_listener(self.observe_token)
        self.registry.register(_OutboxCollector(store, clock))

    def close(self) -> None:
        """Stop counting token events (they are counted until this object goes away otherwise)."""
        self._stop_listening()

    # -- tokens and quota ----------------------------------------------------------------------------------

    def observe_token(self, event: TokenEvent) -> None:
        counter = {
            "issued": self.token_issues,
            "refreshed": self.token_refreshes,
            "refused": self.token_refusals,
        }[event.what]
        counter.labels(event.channel_id or "none", event.kind).inc()

    def observe_usage(self, channel_id: str, usage: MonthlyUsage) -> None:
        """What LINE said of the month's limit and use (``linepush quota``'s figures)."""
        if usage.limit is not None:
            self.quota_limit.labels(channel_id).set(usage.limit)
        else:
            with contextlib.suppress(KeyError):  # it had none before either
                self.quota_limit.remove(channel_id)
        self.quota_used.labels(channel_id).set(usage.used)

    async def read_quota(self, client: Any, channel_id: str) -> None:
        """Set the quota gauges from what LINE says now, through ``client`` (an AsyncLineClient). A failed
        look keeps the last figures (the sends say what is wrong)."""
        try:
            self.observe_usage(channel_id, await client.monthly_usage())
        except LinePushError:
            pass

    async def watch_quota(self, client: Any, channel_id: str, every: float = QUOTA_WATCH_INTERVAL) -> None:
        """:meth:`read_quota` every ``every`` seconds, until cancelled."""
        import asyncio

        while True:
            await asyncio.sleep(every)
            await self.read_quota(client, channel_id)

    # -- the gateway ---------------------------------------------------------------------------------------

    def observe_request(self, path: str, status: int, seconds: float) -> None:
        endpoint = endpoint_of(path)
        self.requests.labels(endpoint, str(status)).inc()
        self.request_seconds.labels(endpoint).observe(seconds)

    # -- the delivery worker -------------------------------------------------------------------------------

    def on_settled(self, channel_id: str | None) -> Callable[[Sequence[Settlement], WorkerStats], None]:
        """The worker's ``on_settled`` hook: counts each stored outcome."""
        channel = channel_id or "all"

        def settled(batch: Sequence[Settlement], stats: WorkerStats) -> None:
            for outcome in batch:
                if outcome.outcome == "delivered":
                    self.deliveries.labels(channel).inc()
                    continue
                error = outcome.error or {}
                labels = (channel, str(error.get("status", "none")), str(error.get("type", "unknown")))
                if outcome.outcome == "failed":
                    self.failures.labels(*labels).inc()
                elif error.get("type") != "Interrupted":  # a send cut short at shutdown is no failure
                    self.retries.labels(*labels).inc()

        return settled

    def timed(self, sender: Any, channel_id: str | None) -> _TimedSender:
        """``sender`` (the worker's client) with each send timed and LINE's 429s and 401s counted."""
        return _TimedSender(sender, self, channel_id or "all")


class _TimedSender:
    def __init__(self, sender: Any, metrics: Metrics, channel: str) -> None:
        self._sender = sender
        self._metrics = metrics
        self._channel = channel

    async def run(self, op: Any) -> Any:
        metrics = self._metrics
        started = time.perf_counter()
        try:
            return await self._sender.run(op)
        except MonthlyLimitError:
            metrics.rate_limited.labels(self._channel, "monthly").inc()
            raise
        except RateLimitError:
            metrics.rate_limited.labels(self._channel, "rate").inc()
            raise
        except AuthenticationError:
            metrics.unauthorized.labels(self._channel).inc()
            raise
        finally:
            metrics.send_seconds.labels(self._channel).observe(time.perf_counter() - started)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sender, name)


class _OutboxCollector(Collector):
    """The outbox as the store holds it at scrape time: rows by channel and state, the oldest due row's age.
    Two indexed queries; a store that does not answer shows as ``linepush_store_up 0``."""

    def __init__(self, store: Store, clock: Callable[[], float]) -> None:
        self._store = store
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("linepush_store_up", "1 when the store answered this scrape, else 0.")
        rows = GaugeMetricFamily(
            "linepush_outbox_messages", "Outbox rows by channel and state.", labels=["channel", "state"]
        )
        age = GaugeMetricFamily(
            "linepush_outbox_oldest_due_age_seconds",
            "How long the longest-waiting due row has been due (0: none is due).",
        )
        now = self._clock()
        try:
            counts = self._store.counts_by_channel()
            due = self._store.oldest_due(now)
        except StoreError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        for channel in sorted({channel for channel, _ in counts}):
            for state in MESSAGE_STATES:
                rows.add_metric([channel, state], counts.get((channel, state), 0))
        age.add_metric([], 0.0 if due is None else max(0.0, now - due))
        yield from (up, rows, age)
