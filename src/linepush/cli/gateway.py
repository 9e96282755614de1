"""`linepush gateway token create|list|revoke` and `linepush recipients list`: the gateway's tokens, and the
ids its webhook has seen."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from linepush.cli import app
from linepush.config import Channel
from linepush.errors import ConfigurationError, LinePushError, ValidationError
from linepush.service.gateway_tokens import create_gateway_token, target_type
from linepush.store import Store, open_store
from linepush.store.base import GatewayToken, WebhookRecipient, recipient_type

__all__ = ["gateway_app", "recipients_app"]

gateway_app = typer.Typer(
    help="The LINE Notify–compatible gateway (see `linepush serve`).", no_args_is_help=True
)
token_app = typer.Typer(
    help="Gateway tokens: what LINE Notify scripts send as their Bearer token.", no_args_is_help=True
)
recipients_app = typer.Typer(
    help="User, group and room ids seen by the gateway's webhook: the ids to send to.", no_args_is_help=True
)
gateway_app.add_typer(token_app, name="token")
app.add_typer(gateway_app, name="gateway")
app.add_typer(recipients_app, name="recipients")

StoreOption = Annotated[
    str | None, typer.Option("--store", help="Store URL or file (over LINEPUSH_STORE).", show_default=False)
]
ChannelOption = Annotated[
    str | None, typer.Option("--channel-id", help="Channel id (over LINE_CHANNEL_ID).", show_default=False)
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


@contextmanager
def opened_store(url: str | None) -> Iterator[Store]:
    try:
        store = open_store(url)
    except LinePushError as exc:
        raise fail(str(exc)) from None
    with store:
        try:
            yield store
        except LinePushError as exc:
            raise fail(str(exc)) from None


def channel_id_of(flag: str | None) -> str:
    try:
        return Channel(flag).require_id() if flag else Channel.from_env().require_id()
    except ConfigurationError as exc:
        raise fail(f"{exc} (or pass --channel-id)") from None


def when(moment: float | None) -> str:
    if moment is None:
        return "-"
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def token_json(token: GatewayToken) -> dict[str, Any]:
    return {
        "id": token.id,
        "channel_id": token.channel_id,
        "to": token.recipient_id,
        "target_type": target_type(token.recipient_id),
        "name": token.name,
        "created_at": token.created_at,
        "revoked_at": token.revoked_at,
        "state": "revoked" if token.revoked else "active",
    }


def table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        typer.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


@token_app.command("create")
def token_create(
    to: Annotated[str, typer.Option("--to", help="The user (U…), group (C…) or room (R…) id to send to.")],
    name: Annotated[
        str | None, typer.Option("--name", help="A name for the token (shown as the target by /api/status).")
    ] = None,
    store: StoreOption = None,
    channel_id: ChannelOption = None,
    json_output: JsonOption = False,
) -> None:
    """Make a gateway token bound to one recipient. It is printed once and stored only as a hash."""
    channel = channel_id_of(channel_id)
    try:
        recipient_type(to)
    except ValidationError as exc:
        raise fail(f"--to {to!r}: {exc.reason}") from None
    with opened_store(store) as opened:
        secret, record = create_gateway_token(opened, channel, to, name, time.time())
    if json_output:
        typer.echo(json.dumps({"token": secret.reveal(), **token_json(record)}))
        return
    typer.echo(secret.reveal())
    typer.echo(
        f"gateway token {record.id} for {record.recipient_id} created; it is shown only this once: use it as "
        "LINE Notify's Bearer token",
        err=True,
    )


@token_app.command("list")
def token_list(
    store: StoreOption = None,
    channel_id: Annotated[
        str | None, typer.Option("--channel-id", help="Only the tokens of this channel.", show_default=False)
    ] = None,
    active: Annotated[bool, typer.Option("--active", help="Leave out revoked tokens.")] = False,
    json_output: JsonOption = False,
) -> None:
    """List gateway tokens (never the tokens themselves: only their hashes are stored)."""
    with opened_store(store) as opened:
        tokens = opened.list_gateway_tokens(channel_id, include_revoked=not active)
    if json_output:
        typer.echo(json.dumps([token_json(t) for t in tokens], indent=2))
        return
    if not tokens:
        typer.echo("no gateway tokens", err=True)
        return
    table(
        [
            [
                str(t.id),
                t.channel_id,
                t.recipient_id,
                t.name or "-",
                when(t.created_at),
                "revoked " + when(t.revoked_at) if t.revoked else "active",
            ]
            for t in tokens
        ],
        ["ID", "CHANNEL", "TO", "NAME", "CREATED", "STATE"],
    )


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[int, typer.Argument(help="The token's id (see `linepush gateway token list`).")],
    store: StoreOption = None,
) -> None:
    """Revoke a gateway token: from now on it gets 401 and nothing is queued for it."""
    with opened_store(store) as opened:
        try:
            changed = opened.revoke_gateway_token(token_id, time.time())
        except LookupError:
            raise fail(f"there is no gateway token with id {token_id}", 1) from None
    typer.echo(f"gateway token {token_id} {'revoked' if changed else 'was already revoked'}", err=True)


def recipient_json(recipient: WebhookRecipient) -> dict[str, Any]:
    return {
        "id": recipient.recipient_id,
        "type": recipient.type,
        "channel_id": recipient.channel_id,
        "first_seen_at": recipient.first_seen_at,
        "last_seen_at": recipient.last_seen_at,
        "last_event": recipient.last_event_type,
        "sightings": recipient.sightings,
    }


@recipients_app.command("list")
def recipients_list(
    store: StoreOption = None,
    channel_id: Annotated[
        str | None,
        typer.Option("--channel-id", help="Only the ids seen by this channel.", show_default=False),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """List the ids the webhook has seen, most recent first: use one with `gateway token create --to`."""
    with opened_store(store) as opened:
        recipients = opened.list_recipients(channel_id)
    if json_output:
        typer.echo(json.dumps([recipient_json(r) for r in recipients], indent=2))
        return
    if not recipients:
        typer.echo(
            "no ids seen yet: point the channel's webhook URL at `linepush serve`'s /webhook, then add the "
            "account as a friend or invite it to a group",
            err=True,
        )
        return
    table(
        [
            [
                r.recipient_id,
                r.type,
                r.last_event_type,
                when(r.last_seen_at),
                when(r.first_seen_at),
                r.channel_id,
            ]
            for r in recipients
        ],
        ["ID", "TYPE", "LAST EVENT", "LAST SEEN", "FIRST SEEN", "CHANNEL"],
    )
