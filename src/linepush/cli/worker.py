"""`linepush worker`: deliver the outbox until stopped (SIGTERM or Ctrl-C stop it cleanly), or once."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Annotated

import typer

from linepush.cli import app
from linepush.cli.queue import (
    EXIT_CONFIG,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_TRANSIENT,
    StoreOption,
    fail,
    open_outbox_store,
)
from linepush.client import AsyncLineClient
from linepush.config import Channel
from linepush.errors import ConfigurationError, LinePushError
from linepush.outbox import RetryWindow
from linepush.store import Store
from linepush.worker import WORKER_CALL_RETRY, Worker, WorkerConfig, WorkerStats, stop_on_signals

__all__ = ["exit_code_after_once", "run_worker"]


def exit_code_after_once(stats: WorkerStats, queued: int) -> int:
    """0 when everything due was delivered, 1 when LINE refused some, 3 when some wait out a backoff or the
    run was stopped (a signal) with messages still queued."""
    if stats.failed:
        return EXIT_REFUSED
    if queued and (stats.retried or stats.stopped):
        return EXIT_TRANSIENT
    return EXIT_OK


def run_worker(
    store: Store,
    channel: Channel,
    *,
    once: bool,
    config: WorkerConfig,
    api_base: str | None = None,
) -> WorkerStats:
    """Run a worker for ``channel`` on ``store``: until idle with ``once``, else until SIGTERM/SIGINT."""
    channel_id = channel.require_id()

    async def main() -> WorkerStats:
        async with AsyncLineClient(
            channel, store=store, api_base=api_base, retry=WORKER_CALL_RETRY
        ) as client:
            worker = Worker(store, client, channel_id=channel_id, config=config)
            stop = asyncio.Event()
            stop_on_signals(stop)
            if once:
                return await worker.run_until_idle(stop)
            return await worker.run(stop)

    return asyncio.run(main())


@app.command("worker")
def worker_command(
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
    channel_id: Annotated[
        str | None, typer.Option("--channel-id", envvar="LINE_CHANNEL_ID", help="The channel to deliver for.")
    ] = None,
    store: StoreOption = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log each batch.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Deliver the outbox: claim due messages, send them with retries, record what LINE answered."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(message)s"
    )
    try:
        channel = Channel.from_env()
        if channel_id:
            channel = Channel(
                channel_id,
                channel.channel_secret,
                channel.assertion_key_file,
                channel.assertion_kid,
                channel.access_token,
                name=channel.name,
            )
        channel.require_id()
        config = WorkerConfig(
            concurrency=concurrency,
            batch_size=batch_size,
            lease_seconds=lease_seconds,
            poll_interval=poll_interval,
            retry_window=RetryWindow(retry_window, window_margin),
        )
    except ConfigurationError as exc:
        fail(str(exc))
    with open_outbox_store(store) as opened:
        try:
            stats = run_worker(opened, channel, once=once, config=config)
        except ConfigurationError as exc:
            fail(str(exc), EXIT_CONFIG)
        except LinePushError as exc:
            fail(str(exc), EXIT_TRANSIENT)
        queued = opened.counts(channel.channel_id)["queued"]
    summary = {
        "claimed": stats.claimed,
        "delivered": stats.delivered,
        "duplicates": stats.duplicates,
        "retried": stats.retried,
        "failed": stats.failed,
        "released": stats.released,
        "lost": stats.lost,
        "queued": queued,
    }
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        typer.echo(
            f"delivered {stats.delivered} ({stats.duplicates} already at LINE), failed {stats.failed}, "
            f"to retry {stats.retried}, given back {stats.released}; {queued} queued",
            err=True,
        )
    raise typer.Exit(exit_code_after_once(stats, queued) if once else EXIT_OK)
