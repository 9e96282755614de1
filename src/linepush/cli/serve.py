"""`linepush serve`: the LINE Notify–compatible gateway and webhook receiver, and with --worker the delivery
of the outbox in the same process."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from linepush.cli import app
from linepush.cli._command import command
from linepush.cli.invocation import Invocation, fail
from linepush.cli.logs import LOG_FORMATS, LOG_LEVELS, configure_logging
from linepush.config import Channel
from linepush.errors import ConfigurationError

if TYPE_CHECKING:
    from linepush.service.alerts import AlertsConfig
    from linepush.service.health import WorkerWatch
    from linepush.service.metrics import Metrics
    from linepush.service.server import ConnectionLimits, WorkerLoop
    from linepush.store import Store

__all__ = ["serve_command"]


def make_worker(
    channel: Channel,
    store: Store,
    api_base: str | None,
    watch: WorkerWatch | None = None,
    metrics: Metrics | None = None,
    shared_rate_limit: bool = False,
) -> WorkerLoop:
    """The delivery worker's loop for ``channel``, sharing the gateway's store and event loop; ``watch``
    (readiness) sees its claims, ``metrics`` count its sends; ``shared_rate_limit`` paces LINE's rate limits
    in the store (shared with every other worker on it)."""
    if not (channel.has_assertion_key or channel.channel_secret or channel.access_token):
        # Checked now: otherwise the first delivery would find out, and every message would wait on it.
        raise ConfigurationError(
            "--worker needs a way to get channel access tokens: set LINE_ASSERTION_KEY_FILE and "
            "LINE_ASSERTION_KID, or LINE_CHANNEL_SECRET, or LINE_CHANNEL_ACCESS_TOKEN"
        )
    from linepush.client import AsyncLineClient
    from linepush.store import SharedRateLimiter
    from linepush.worker import Worker, WorkerStats

    async def deliver(stop: asyncio.Event) -> WorkerStats:
        limiter = SharedRateLimiter(store, channel.require_id()) if shared_rate_limit else None
        async with AsyncLineClient(channel, store=store, api_base=api_base, rate_limiter=limiter) as client:
            sender, settled = (
                (metrics.timed(client, channel.channel_id), metrics.on_settled(channel.channel_id))
                if metrics is not None
                else (client, None)
            )
            worker = Worker(store, sender, channel_id=channel.channel_id, on_settled=settled)
            if watch is not None:
                watch.last_claim = lambda: worker.last_claim_at
                watch.blocked = lambda: worker.blocked
            if metrics is None:
                return await worker.run(stop)
            await metrics.read_quota(client, channel.require_id())
            watching = asyncio.create_task(metrics.watch_quota(client, channel.require_id()))
            try:
                return await worker.run(stop)
            finally:
                watching.cancel()

    return deliver


@command(app, "serve", data=False)
def serve_command(
    inv: Invocation,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port to listen on.")] = 8080,
    worker: Annotated[
        bool, typer.Option("--worker", help="Also deliver the outbox in this process (no separate worker).")
    ] = False,
    shared_rate_limit: Annotated[
        bool,
        typer.Option(
            "--shared-rate-limit",
            help="With --worker: pace LINE's rate limits in the store, shared by every worker on it.",
        ),
    ] = False,
    public_url: Annotated[
        str | None,
        typer.Option(
            "--public-url",
            metavar="URL",
            help="The HTTPS URL where LINE reaches this gateway (e.g. through a reverse proxy); enables "
            "imageFile uploads, served under /images/.",
            show_default=False,
        ),
    ] = None,
    image_dir: Annotated[
        Path | None,
        typer.Option(
            "--image-dir", metavar="DIR", help="Where uploaded images are kept (default: next to the store)."
        ),
    ] = None,
    max_image_bytes: Annotated[
        int,
        typer.Option(
            "--max-image-bytes",
            min=1,
            max=10 * 1024 * 1024,
            help="Largest imageFile upload. The file is also the preview, which LINE limits to 1 MB.",
        ),
    ] = 1024 * 1024,
    image_retention_days: Annotated[
        float | None,
        typer.Option(
            "--image-retention-days",
            min=0.001,
            metavar="DAYS",
            help="Delete uploaded images this many days old (default: keep them; old messages show them).",
            show_default=False,
        ),
    ] = None,
    rate_limit: Annotated[
        int, typer.Option("--rate-limit", min=1, help="Notify calls per token per hour, as LINE Notify had.")
    ] = 1000,
    image_rate_limit: Annotated[
        int, typer.Option("--image-rate-limit", min=0, help="Image uploads per token per hour.")
    ] = 50,
    alerts_dedupe_window: Annotated[
        float | None,
        typer.Option(
            "--alerts-dedupe-window",
            min=0,
            metavar="SECONDS",
            help="An alert notification received again within this many seconds is not queued twice "
            "(0: off; default 600, or \\[alerts] dedupe_window).",
            show_default=False,
        ),
    ] = None,
    alerts_time_zone: Annotated[
        str | None,
        typer.Option(
            "--alerts-time-zone",
            metavar="ZONE",
            help="Time zone of the times in alerts and digests (default UTC, or \\[alerts] time_zone).",
            show_default=False,
        ),
    ] = None,
    grafana_timestamp_header: Annotated[
        str | None,
        typer.Option(
            "--grafana-timestamp-header",
            metavar="HEADER",
            help="Grafana's HMAC timestamp header; signatures older than 5 minutes are refused. The secret "
            "is read from LINEPUSH_GRAFANA_HMAC_SECRET.",
            show_default=False,
        ),
    ] = None,
    log_level: Annotated[str, typer.Option("--log-level", help=f"One of {', '.join(LOG_LEVELS)}.")] = "info",
    log_format: Annotated[
        str, typer.Option("--log-format", help="Log lines as text (for people) or json (one object a line).")
    ] = "text",
    access_log: Annotated[
        bool, typer.Option("--access-log/--no-access-log", help="One log line per request on stderr.")
    ] = True,
    webhook_max_age: Annotated[
        float,
        typer.Option(
            "--webhook-max-age",
            min=1,
            metavar="SECONDS",
            help="Ignore webhook events whose timestamp is further than this from the clock (replays).",
        ),
    ] = 86_400.0,
    header_timeout: Annotated[
        float,
        typer.Option(
            "--header-timeout",
            min=0.1,
            metavar="SECONDS",
            help="Close a connection whose request headers take longer.",
        ),
    ] = 10.0,
    body_timeout: Annotated[
        float,
        typer.Option(
            "--body-timeout",
            min=0.1,
            metavar="SECONDS",
            help="Close a connection whose request body takes longer (after its headers).",
        ),
    ] = 30.0,
    max_connections: Annotated[
        int,
        typer.Option(
            "--max-connections",
            min=1,
            metavar="N",
            help="Open connections at once (lowered to fit the descriptor limit); more get 503.",
        ),
    ] = 1000,
) -> None:
    """Serve the LINE Notify–compatible API (/api/notify, /api/status, /api/revoke) and /webhook.

    Scripts written for LINE Notify keep working with the host changed to this one and a gateway token
    (`linepush gateway token create --to ID`) in place of their Notify token.
    """
    if log_level.lower() not in LOG_LEVELS:
        fail(f"--log-level must be one of {', '.join(LOG_LEVELS)}")
    if log_format not in LOG_FORMATS:
        fail(f"--log-format must be one of {', '.join(LOG_FORMATS)}")
    # Imported here, not at the top: every other command would pay for starlette's and uvicorn's import.
    from linepush.service import GatewayConfig, RateLimits, create_gateway_app
    from linepush.service.server import ConnectionLimits

    settings = inv.settings
    # The key is only used to deliver; a gateway that only queues does not read it.
    channel = inv.channel() if worker else settings.channel
    channel.require_id()
    store = inv.store()
    if public_url is not None and image_dir is None:
        image_dir = default_image_dir(store)
    from linepush.cli.alerts import alerts_config

    alerts = alerts_config(inv, alerts_dedupe_window, alerts_time_zone, grafana_timestamp_header)
    config = GatewayConfig(
        rate_limits=RateLimits(calls=rate_limit, images=image_rate_limit),
        public_url=public_url,
        image_dir=str(image_dir) if public_url is not None and image_dir is not None else None,
        max_image_bytes=max_image_bytes,
        image_retention=None if image_retention_days is None else image_retention_days * 86_400,
        webhook_max_age=webhook_max_age,
        # One zone for every time the gateway writes: alerts' and digests' headers.
        time_zone=alerts.time_zone,
    )
    limits = ConnectionLimits(
        header_timeout=header_timeout, body_timeout=body_timeout, max_connections=max_connections
    )
    refuse_unknown_route_tables(inv, store, alerts)
    from linepush.service.health import WorkerWatch
    from linepush.service.metrics import Metrics

    watch = WorkerWatch(time.time(), channel.channel_id) if worker else None
    metrics = Metrics(store)
    gateway = create_gateway_app(store, channel, config, alerts=alerts, worker=watch, metrics=metrics)
    loop = (
        make_worker(channel, store, settings.api_base, watch, metrics, shared_rate_limit) if worker else None
    )
    configure_logging(log_level, log_format, access_log)
    sock = listen(host, port)
    inv.on_close(sock.close)
    bound = sock.getsockname()[1]
    if log_format == "text":
        for line in startup_lines(host, bound, channel, public_url, worker):
            inv.note(line)
    log_start(host, bound, channel, store, settings.api_base, worker)
    run_server(gateway, sock, worker=loop, log_level=log_level.lower(), limits=limits)


def refuse_unknown_route_tables(inv: Invocation, store: Store, alerts: AlertsConfig) -> None:
    """Refuse to start while a working gateway token is bound to a route table the configuration lacks: its
    alerts would have nowhere to go. The configuration is read once, here; a later change to it (or a token
    made for a table added to the file since) takes effect at the next start, and until then the receivers
    answer such a token's notifications with 503, which senders retry."""
    from linepush.service.store import gateway_store

    tokens = gateway_store(store).list_gateway_tokens(inv.settings.channel.channel_id, include_revoked=False)
    missing = alerts.unknown_route_tables(tokens)
    if missing:
        where = inv.settings.config_file or "the configuration (no linepush.toml was found)"
        said = "; ".join(
            f"gateway token {t.id}{f' ({t.name})' if t.name else ''} is bound to route table "
            f"{t.route_table!r}"
            for t in missing
        )
        tables = ", ".join(sorted({f"[alerts.route_tables.{t.route_table}]" for t in missing}))
        fail(
            f"{said}, which {where} does not define",
            hint=f"add {tables} to the configuration, or revoke the token (`linepush gateway token revoke`)",
        )


def listen(host: str, port: int) -> socket.socket:
    """The socket to serve on, bound now: a port another program holds is a setup error (exit 2), said
    before anything is announced."""
    from linepush.service.server import listening_socket

    try:
        return listening_socket(host, port)
    except OSError as exc:
        shown = f"[{host}]" if ":" in host else host
        if exc.errno == errno.EADDRINUSE:
            raise typer.BadParameter(
                f"{shown}:{port} is in use by another program; stop that program, or choose another port "
                "with --port",
                param_hint="--port",
            ) from None
        if exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT) or isinstance(exc, socket.gaierror):
            raise typer.BadParameter(
                f"cannot listen on {shown}: {exc.strerror or exc}; give an address of this machine "
                "(127.0.0.1, 0.0.0.0 for every interface, or one `ip address` lists)",
                param_hint="--host",
            ) from None
        if exc.errno == errno.EACCES:
            raise typer.BadParameter(
                f"cannot listen on {shown}:{port}: {exc.strerror}; ports below 1024 need privileges: "
                "choose a port of 1024 or more",
                param_hint="--port",
            ) from None
        raise typer.BadParameter(f"cannot listen on {shown}:{port}: {exc.strerror or exc}") from None


def run_server(
    app: Any, sock: socket.socket, *, worker: WorkerLoop | None, log_level: str, limits: ConnectionLimits
) -> None:
    from linepush.service.server import serve

    host, port = sock.getsockname()[:2]
    serve(app, host, port, worker=worker, log_level=log_level, limits=limits, sock=sock)


def default_image_dir(store: Store) -> Path:
    path: object = getattr(store, "path", None)
    if isinstance(path, str):
        return Path(path).parent / "gateway-images"
    fail("--public-url needs --image-dir with this store (it has no directory of its own)")


def log_start(
    host: str, port: int, channel: Channel, store: Store, api_base: str | None, worker: bool
) -> None:
    """The start line, in the process's log format: what runs, for which channel, on which store (never its
    password) and which LINE."""
    from linepush.transport import DEFAULT_API_BASE

    shown = f"[{host}]" if ":" in host else host
    runs = ["gateway", "worker"] if worker else ["gateway"]
    fields = {
        "event": "start",
        "channel": channel.channel_id,
        "store": repr(store),
        "api_base": api_base or DEFAULT_API_BASE,
        "listen": f"http://{shown}:{port}",
        "runs": "+".join(runs),
    }
    logging.getLogger("linepush.service").info(
        "linepush serve started: %s for channel %s on %s",
        " and ".join(runs),
        channel.channel_id,
        fields["listen"],
        extra={"fields": fields},
    )


def startup_lines(host: str, port: int, channel: Channel, public_url: str | None, worker: bool) -> list[str]:
    shown = f"[{host}]" if ":" in host else host
    lines = [f"LINE Notify–compatible gateway for channel {channel.channel_id} on http://{shown}:{port}"]
    lines.append("  POST /api/notify, GET /api/status, POST /api/revoke, POST /webhook")
    lines.append("  GET /healthz (the process runs), GET /readyz (store, migrations, worker), GET /metrics")
    lines.append("  POST /alertmanager, POST /grafana, POST /hooks/NAME (alerts to LINE)")
    if channel.channel_secret is None:
        lines.append("  webhook off: set LINE_CHANNEL_SECRET so that /webhook can check LINE's signatures")
    if public_url is None:
        lines.append("  imageFile uploads off: pass --public-url (HTTPS) to enable them")
    lines.append(
        "  delivering the outbox in this process"
        if worker
        else "  queueing only: `linepush worker` (or serve --worker) delivers the outbox"
    )
    return lines
