"""`linepush emulator`: serve the local LINE platform, optionally with one channel and key set up."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from linepush.cli import app

if TYPE_CHECKING:
    from starlette.applications import Starlette

LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


def prepare(
    channel_id: str | None,
    channel_secret: str | None,
    public_key: Path | None,
    *,
    rate_limits: bool = True,
) -> tuple[Starlette, list[str]]:
    """A fresh emulator with the requested channel (and key) in place, and the lines to tell the user.

    A secret the user passed is never printed; a made-up one is, as there is no other way to learn it.
    """
    # Imported here, not at the top: every other command would pay for starlette's import otherwise.
    from linepush.emulator import AdminError, EmulatorConfig, create_app

    emulator = create_app(None if rate_limits else EmulatorConfig(rate_limits=None))
    lines: list[str] = []
    if channel_id is None and channel_secret is None and public_key is None:
        return emulator, lines
    jwk: Any = None
    if public_key is not None:
        try:
            jwk = json.loads(public_key.read_text(encoding="utf-8"))
        except OSError as exc:
            raise typer.BadParameter(
                f"cannot read {public_key}: {exc.strerror}", param_hint="--public-key"
            ) from exc
        except ValueError as exc:
            raise typer.BadParameter(f"{public_key} is not a JSON file", param_hint="--public-key") from exc
    state = emulator.state.emulator
    try:
        channel = state.create_channel(name="cli", channel_id=channel_id, channel_secret=channel_secret)
        lines.append(f"channel id: {channel.channel_id}")
        if channel_secret is None:
            lines.append(f"channel secret: {channel.channel_secret}")
        if jwk is not None:
            lines.append(f"kid: {state.register_key(channel.channel_id, jwk)}")
    except AdminError as exc:
        raise typer.BadParameter(str(exc)) from exc
    return emulator, lines


@app.command("emulator")
def emulator_command(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port to listen on.")] = 8765,
    channel_id: Annotated[
        str | None, typer.Option("--channel-id", help="Create this channel (10 digits).")
    ] = None,
    channel_secret: Annotated[
        str | None,
        typer.Option(
            "--channel-secret", help="Secret of that channel (32 hex digits); made up when omitted."
        ),
    ] = None,
    public_key: Annotated[
        Path | None,
        typer.Option(
            "--public-key", help="Public JWK file to register as the channel's key; prints its kid."
        ),
    ] = None,
    log_level: Annotated[
        str, typer.Option("--log-level", help=f"One of {', '.join(LOG_LEVELS)}.")
    ] = "warning",
    access_log: Annotated[
        bool, typer.Option("--access-log/--no-access-log", help="Log every request.")
    ] = False,
    rate_limits: Annotated[
        bool,
        typer.Option(
            "--rate-limits/--no-rate-limits",
            help="Answer 429 above LINE's documented per-endpoint rates (off for load tests).",
        ),
    ] = True,
) -> None:
    """Serve the local LINE platform (api.line.me endpoints and the /_emulator admin API)."""
    if log_level.lower() not in LOG_LEVELS:
        raise typer.BadParameter(f"must be one of {', '.join(LOG_LEVELS)}", param_hint="--log-level")
    from linepush.cli.serve import listen
    from linepush.emulator.server import serve

    emulator, lines = prepare(channel_id, channel_secret, public_key, rate_limits=rate_limits)
    sock = listen(host, port)
    for line in lines:
        typer.echo(line)
    shown = f"[{host}]" if ":" in host else host
    bound = sock.getsockname()[1]
    typer.echo(f"LINE emulator on http://{shown}:{bound} (inbox and admin API: /_emulator/); Ctrl+C stops it")
    serve(emulator, host, port, log_level=log_level.lower(), access_log=access_log, sock=sock)
