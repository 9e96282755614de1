"""`linepush gateway token create|list|revoke` and `linepush recipients list`: the gateway's tokens, and the
ids its webhook has seen."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Annotated, Any

import typer

from linepush.cli import app
from linepush.cli._command import command
from linepush.cli.invocation import Exit, Invocation, fail, when
from linepush.errors import ValidationError
from linepush.service.gateway_tokens import create_gateway_token, target_type
from linepush.service.store import GatewayToken, WebhookRecipient, gateway_store
from linepush.store.base import recipient_type

__all__ = ["gateway_app", "recipients_app", "token_app"]

gateway_app = typer.Typer(
    name="gateway", help="The LINE Notify–compatible gateway (`linepush serve`).", no_args_is_help=True
)
token_app = typer.Typer(
    name="token",
    help="Gateway tokens: what LINE Notify scripts send as their Bearer token.",
    no_args_is_help=True,
)
recipients_app = typer.Typer(
    name="recipients",
    help="User, group and room ids seen by the gateway's webhook: the ids to send to.",
    no_args_is_help=True,
)
gateway_app.add_typer(token_app)
app.add_typer(gateway_app)
app.add_typer(recipients_app)


def token_json(token: GatewayToken) -> dict[str, Any]:
    return {
        "id": token.id,
        "channel_id": token.channel_id,
        "to": token.recipient_id,
        "target_type": target_type(token.recipient_id),
        "name": token.name,
        "created_at": when(token.created_at),
        "revoked_at": when(token.revoked_at),
        "state": "revoked" if token.revoked else "active",
    }


@command(token_app, "create")
def token_create(
    inv: Invocation,
    to: Annotated[
        str,
        typer.Option(
            "--to", metavar="ID", help="The user (U…), group (C…) or room (R…) id to send to, or its name."
        ),
    ],
    name: Annotated[
        str | None,
        typer.Option(
            "--name", metavar="NAME", help="A name for the token; /api/status shows it as the target."
        ),
    ] = None,
) -> None:
    """Make a gateway token bound to one recipient. It is printed once and stored only as a hash."""
    [to] = inv.resolve([to])
    try:
        recipient_type(to)
    except ValidationError as exc:
        fail(
            f"--to {to!r}: {exc.reason}", hint="`linepush recipients list` shows the ids the webhook has seen"
        )
    channel_id = inv.settings.channel.require_id()
    secret, record = create_gateway_token(inv.store(), channel_id, to, name, time.time())
    inv.emit(
        {"token": secret.reveal(), **token_json(record)}, lambda: inv.out.print(secret.reveal(), markup=False)
    )
    if not inv.json:
        inv.note(
            f"gateway token {record.id} for {record.recipient_id} created. It is shown only this once: "
            "scripts send it as LINE Notify's Bearer token"
        )


@command(token_app, "list")
def token_list(
    inv: Invocation,
    active: Annotated[bool, typer.Option("--active", help="Leave out revoked tokens.")] = False,
) -> None:
    """List gateway tokens of the configured channel (or of all, with none configured). Only their hashes
    are stored, so the tokens themselves cannot be shown."""
    channel_id = inv.settings.channel.channel_id
    tokens = gateway_store(inv.store()).list_gateway_tokens(channel_id, include_revoked=not active)

    def render() -> None:
        if not tokens:
            inv.note("no gateway tokens: `linepush gateway token create --to ID` makes one")
            return
        inv.table(
            None,
            ["ID", "CHANNEL", "TO", "TYPE", "NAME", "CREATED", "REVOKED"],
            [
                [
                    t.id,
                    t.channel_id,
                    t.recipient_id,
                    target_type(t.recipient_id),
                    t.name or "-",
                    when(t.created_at),
                    when(t.revoked_at) or "-",
                ]
                for t in tokens
            ],
        )

    inv.emit([token_json(t) for t in tokens], render)


@command(token_app, "revoke")
def token_revoke(
    inv: Invocation,
    token_id: Annotated[
        int, typer.Argument(metavar="ID", help="The token's id (`linepush gateway token list`).")
    ],
) -> None:
    """Revoke a gateway token: from now on it gets 401 and nothing is queued for it."""
    try:
        changed = gateway_store(inv.store()).revoke_gateway_token(token_id, time.time())
    except LookupError:
        fail(f"there is no gateway token with id {token_id}", Exit.REFUSED)
    state = "revoked" if changed else "already revoked"
    inv.emit(
        {"id": token_id, "revoked": True, "changed": changed},
        lambda: inv.note(f"gateway token {token_id} {state}"),
    )


def recipient_json(recipient: WebhookRecipient) -> dict[str, Any]:
    return {
        "id": recipient.recipient_id,
        "type": recipient.type,
        "channel_id": recipient.channel_id,
        "first_seen_at": when(recipient.first_seen_at),
        "last_seen_at": when(recipient.last_seen_at),
        "last_event": recipient.last_event_type,
        "sightings": recipient.sightings,
    }


@command(recipients_app, "list")
def recipients_list(inv: Invocation) -> None:
    """List the ids the webhook has seen (of the configured channel, or of all), most recent first; send to
    one with `linepush send --to ID` or bind a gateway token to it."""
    channel_id = inv.settings.channel.channel_id
    store = gateway_store(inv.store())
    recipients = store.list_recipients(channel_id)
    names = recipient_names_by_id(
        inv.settings.recipients, store.recipient_names(channel_id) if channel_id else {}
    )

    def render() -> None:
        if names:
            inv.table(None, ["NAME", "ID"], [[", ".join(n), rid] for rid, n in names.items()])
        if not recipients:
            inv.note(
                "no ids seen yet: set the channel's webhook URL to `linepush serve`'s /webhook (with "
                "LINE_CHANNEL_SECRET set), then add the account as a friend or invite it to a group"
            )
            return
        inv.table(
            None,
            ["ID", "TYPE", "LAST EVENT", "LAST SEEN", "FIRST SEEN", "CHANNEL"],
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
        )

    listed = [{**recipient_json(r), "names": names.get(r.recipient_id, [])} for r in recipients]
    seen = {r.recipient_id for r in recipients}
    listed += [{"id": rid, "names": n} for rid, n in names.items() if rid not in seen]
    inv.emit(listed, render)


def recipient_names_by_id(*tables: Mapping[str, str]) -> dict[str, list[str]]:
    """id → its names, from name → id tables (the first table's name wins where two give one)."""
    merged: dict[str, str] = {}
    for table in reversed(tables):
        merged.update(table)
    by_id: dict[str, list[str]] = {}
    for name, rid in sorted(merged.items()):
        by_id.setdefault(rid, []).append(name)
    return by_id
