"""`linepush worker`: deliver the outbox until stopped (SIGTERM or Ctrl-C stop it cleanly), or once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from linepush.api.messaging import DEFAULT_QUOTA_WARNING
from linepush.cli import app
from linepush.cli._command import command
from linepush.cli.invocation import Exit, Invocation, fail
from linepush.cli.logs import LOG_FORMATS, configure_logging
from linepush.client import AsyncLineClient
from linepush.config import Channel
from linepush.errors import LinePushError, TokenUnavailableError
from linepush.outbox import MonthlyReset, RetryWindow
from linepush.store import SharedRateLimiter, Store
from linepush.worker import WORKER_CALL_RETRY, Worker, WorkerConfig, WorkerStats, stop_on_signals

if TYPE_CHECKING:
    from linepush.service.metrics import Metrics

__all__ = ["exit_code_after_once", "run_worker"]

log = logging.getLogger("linepush.worker")


def exit_code_after_once(stats: WorkerStats, queued: int) -> Exit:
    """0 when everything due was delivered, 1 when LINE refused some, 3 when some wait out a backoff, the
    channel is paused (its monthly limit reached) or the run was stopped (a signal) with messages still
    queued."""
    if stats.failed:
        return Exit.REFUSED
    if queued and (stats.retried or stats.stopped or stats.paused_until is not None):
        return Exit.TRANSIENT
    return Exit.OK


async def _mention_quota(
    client: AsyncLineClient, channel_id: str, threshold: float, announce: Callable[[str], None]
) -> None:
    from linepush.cli.cost import quota_warning

    try:
        usage = await client.monthly_usage()
    except LinePushError as exc:  # the sends will say what is wrong; this was only a look
        announce(f"the month's message quota could not be read: {exc}")
        return
    warning = quota_warning(channel_id, usage, threshold)
    if warning is not None:
        announce(f"warning: {warning}")


def run_worker(
    store: Store,
    channel: Channel,
    *,
    once: bool,
    config: WorkerConfig,
    api_base: str | None = None,
    announce: Callable[[str], None] | None = None,
    quota_threshold: float = DEFAULT_QUOTA_WARNING,
    metrics: Metrics | None = None,
    shared_rate_limit: bool = False,
) -> WorkerStats:
    """Run a worker for ``channel`` on ``store``: until idle with ``once``, else until SIGTERM/SIGINT.

    ``announce`` is given the start line: the channel, the store (never its password) and LINE's address,
    and a warning when the channel has used ``quota_threshold`` of its monthly message limit; ``metrics``
    count what the worker does. With ``shared_rate_limit`` LINE's rate limits are paced in the store, shared
    by every worker (and ``serve --worker``) on it, wherever they run."""
    channel_id = channel.require_id()
    limiter = SharedRateLimiter(store, channel_id) if shared_rate_limit else None

    async def main() -> WorkerStats:
        async with AsyncLineClient(
            channel, store=store, api_base=api_base, retry=WORKER_CALL_RETRY, rate_limiter=limiter
        ) as client:
            sender, settled = (
                (metrics.timed(client, channel_id), metrics.on_settled(channel_id))
                if metrics is not None
                else (client, None)
            )
            worker = Worker(store, sender, channel_id=channel_id, config=config, on_settled=settled)
            if announce is not None:
                announce(
                    f"worker {worker.worker_id}: delivering channel {channel_id} from {store!r} "
                    f"through {client.api_base}" + (" (once)" if once else "")
                )
                # Said at start-up, with the rest; a quiet `--once` from cron does not ask LINE each time.
                await _mention_quota(client, channel_id, quota_threshold, announce)
            stop = asyncio.Event()
            stop_on_signals(stop)
            watching = None
            if metrics is not None:
                # Read before the first send, so that the gauges start from LINE's figures of now.
                await metrics.read_quota(client, channel_id)
                watching = asyncio.create_task(metrics.watch_quota(client, channel_id))
            try:
                if once:
                    return await worker.run_until_idle(stop)
                return await worker.run(stop)
            finally:
                if watching is not None:
                    watching.cancel()

    return asyncio.run(main())


def serve_metrics(store: Store, host: str, port: int, say: Callable[[str], None]) -> Metrics:
    """Metrics of this worker, served on ``host:port`` from a thread of prometheus_client's own."""
    from prometheus_client import start_http_server

    from linepush.service.metrics import Metrics

    metrics = Metrics(store)
    try:
        server, _ = start_http_server(port, addr=host, registry=metrics.registry)
    except OSError as exc:
        import errno
        import socket

        where = f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}"
        if exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT) or isinstance(exc, socket.gaierror):
            fail(
                f"{where}; give --metrics-host an address of this machine (127.0.0.1, 0.0.0.0 for every "
                "interface, or one `ip address` lists)"
            )
        fail(f"{where}; choose another --metrics-port")
    say(f"metrics on http://{host}:{server.server_port}/metrics")
    return metrics


@command(app, "worker")
def worker_command(
    inv: Invocation,
    once: Annotated[
        bool, typer.Option("--once", help="Deliver what is due now, then exit (for cron).")
    ] = False,
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, max=1000, help="Sends in flight at once.")
    ] = 32,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, max=5000, help="Rows per claim.")] = 100,
    lease_seconds: Annotated[
        float,
        typer.Option(
            "--lease-seconds", min=0.1, help="How long a claim holds a row before others may take it."
        ),
    ] = 60.0,
    poll_interval: Annotated[
        float, typer.Option("--poll-interval", min=0.01, help="Seconds between looks at an empty queue.")
    ] = 1.0,
    retry_window: Annotated[
        float,
        typer.Option(
            "--retry-window",
            min=60.0,
            help="Seconds LINE remembers a retry key (24 h); older first attempts are failed, not resent.",
        ),
    ] = 86_400.0,
    window_margin: Annotated[
        float,
        typer.Option(
            "--window-margin", min=0.0, help="Stop resending this many seconds before the window ends."
        ),
    ] = 3_600.0,
    store_patience: Annotated[
        float,
        typer.Option(
            "--store-patience",
            min=0.0,
            help="With --once: give up (exit 3) when the store has failed this many seconds (a full disk).",
        ),
    ] = 60.0,
    quota_reset_utc_offset: Annotated[
        float,
        typer.Option(
            "--quota-reset-utc-offset",
            min=-14.0,
            max=14.0,
            metavar="HOURS",
            envvar="LINEPUSH_QUOTA_RESET_UTC_OFFSET",
            help="A channel at its monthly message limit pauses until the 1st of next month, 00:00 at this "
            "UTC offset (LINE's month, taken as Japan time).",
        ),
    ] = 9.0,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose", "-v", help="Say what it works on, and log each retry (with why) and stored batch."
        ),
    ] = False,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            min=0,
            max=65535,
            metavar="PORT",
            help="Serve Prometheus metrics at http://HOST:PORT/metrics (default: none).",
            show_default=False,
        ),
    ] = None,
    metrics_host: Annotated[
        str, typer.Option("--metrics-host", metavar="HOST", help="Address of the metrics port.")
    ] = "127.0.0.1",
    log_format: Annotated[
        str,
        typer.Option(
            "--log-format", help="text, or json: every line one JSON object (the start line and retries too)."
        ),
    ] = "text",
    shared_rate_limit: Annotated[
        bool,
        typer.Option(
            "--shared-rate-limit",
            help="Pace LINE's rate limits in the store, shared by every worker on it (several hosts).",
        ),
    ] = False,
) -> None:
    """Deliver the outbox: claim due messages, send them with retries, record what LINE answered.

    Runs until SIGTERM or Ctrl-C (sends in flight finish, the rest goes back to the queue), or with --once
    until nothing is due. Exit codes with --once: 0 all due delivered, 1 LINE refused some, 3 some wait to
    be retried, the channel is paused (its monthly message limit reached: the messages stay queued until
    next month or `linepush queue resume`) or the store kept failing (a full disk: what was sent is recorded
    once there is room).
    """
    if log_format not in LOG_FORMATS:
        fail(f"--log-format must be one of {', '.join(LOG_FORMATS)}")
    # A worker that runs on says what it works on; a --once run (from cron, say) stays quiet unless asked.
    talks = verbose or inv.debug or not once
    # With JSON logs, what the worker says goes to the log too: every line of the process is one object.
    say: Callable[[str], None] = lambda line: inv.note(escape(line))  # noqa: E731
    if log_format == "json":
        configure_logging("debug" if inv.debug else "info" if talks else "warning", "json")
        say = log.warning if once and not talks else log.info
    elif verbose and not inv.debug:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
        logging.getLogger("linepush.worker").setLevel(logging.INFO)
    announce = say if talks else None
    config = WorkerConfig(
        concurrency=concurrency,
        batch_size=batch_size,
        lease_seconds=lease_seconds,
        poll_interval=poll_interval,
        retry_window=RetryWindow(retry_window, window_margin),
        store_patience=store_patience,
        monthly_reset=MonthlyReset(quota_reset_utc_offset),
    )
    settings = inv.settings
    channel = inv.channel()
    channel.require_id()
    store = inv.store()
    metrics = serve_metrics(store, metrics_host, metrics_port, say) if metrics_port is not None else None
    try:
        stats = run_worker(
            store,
            channel,
            once=once,
            config=config,
            api_base=settings.api_base,
            announce=announce,
            quota_threshold=settings.quota_warning_share,
            metrics=metrics,
            shared_rate_limit=shared_rate_limit,
        )
    except TokenUnavailableError:
        queued = store.counts(channel.channel_id)["queued"]
        say(f"the worker stopped without a token: nothing was sent, {queued} messages stay queued")
        raise
    queued = store.counts(channel.channel_id)["queued"]
    summary = {
        "claimed": stats.claimed,
        "delivered": stats.delivered,
        "duplicates": stats.duplicates,
        "retried": stats.retried,
        "failed": stats.failed,
        "released": stats.released,
        "lost": stats.lost,
        "queued": queued,
        "paused_until": stats.paused_until,
    }
    inv.emit(
        summary,
        lambda: say(
            f"delivered {stats.delivered} ({stats.duplicates} already at LINE), failed {stats.failed}, "
            f"to retry {stats.retried}, given back {stats.released}; {queued} queued"
        ),
    )
    if stats.paused_until is not None:
        inv.note(
            f"channel {channel.channel_id} reached its monthly message limit: sends are paused until "
            f"{config.monthly_reset.describe(stats.paused_until)} and its {queued} queued messages wait "
            "(`linepush queue resume` sends again sooner)"
        )
    raise typer.Exit(exit_code_after_once(stats, queued) if once else Exit.OK)
