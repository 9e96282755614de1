"""`linepush gateway token create|list|revoke` and `linepush recipients list`: the gateway's tokens, and the
ids its webhook has seen."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Annotated, Any

import typer

from linepush.cli import app
from linepush.cli._command import command
from linepush.cli.inputs import digest_window
from linepush.cli.invocation import Invocation, fail, when
from linepush.cli.options import DigestOption
from linepush.errors import ConfigurationError, ValidationError
from linepush.service.gateway_tokens import create_gateway_token, token_target_type
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


def token_json(token: GatewayToken, digest: float | None = None) -> dict[str, Any]:
    return {
        "id": token.id,
        "channel_id": token.channel_id,
        "to": token.recipient_id,
        "routes": token.route_table,
        "target_type": token_target_type(token),
        "name": token.name,
        "created_at": when(token.created_at),
        "revoked_at": when(token.revoked_at),
        "state": "revoked" if token.revoked else "active",
        "digest": digest,
    }


def configured_route_tables(inv: Invocation) -> tuple[str, ...]:
    """The names of ``[alerts.route_tables]`` in the configuration, checked as `linepush serve` checks
    them (a ConfigurationError says what is wrong)."""
    from linepush.cli.alerts import alerts_config

    return tuple(alerts_config(inv, None, None, None).route_tables)


def shown_window(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:g}s"


@command(token_app, "create")
def token_create(
    inv: Invocation,
    to: Annotated[
        str | None,
        typer.Option(
            "--to", metavar="ID", help="The user (U…), group (C…) or room (R…) id to send to, or its name."
        ),
    ] = None,
    routes: Annotated[
        str | None,
        typer.Option(
            "--routes",
            metavar="TABLE",
            help="Instead of --to: route the token's alerts by \\[alerts.route_tables.TABLE].",
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(
            "--name", metavar="NAME", help="A name for the token; /api/status shows it as the target."
        ),
    ] = None,
    digest: DigestOption = None,
) -> None:
    """Make a gateway token bound to one recipient (--to), or for alerts to a route table of the
    configuration (--routes). It is printed once and stored only as a hash."""
    window = digest_window(digest)
    from linepush.service.store import MAX_GATEWAY_TOKEN_NAME

    if name is not None and not 1 <= len(name) <= MAX_GATEWAY_TOKEN_NAME:
        fail(
            f"--name: a token's name is 1 to {MAX_GATEWAY_TOKEN_NAME} characters; this one has {len(name):,}",
            hint="no token was made; give a shorter name" if name else "no token was made",
        )
    if name is not None and not name.isprintable():
        # `gateway token list` prints it and /api/status answers it: an escape would reach a terminal.
        fail(
            "--name: a token's name holds a control character (a line break, a tab or an escape)",
            hint="no token was made; give a name of plain text",
        )
    if (to is None) == (routes is None):
        fail(
            "give --to ID (a token for one recipient) or --routes TABLE (alerts routed by a route table), "
            "not both or neither"
        )
    if to is not None:
        [to] = inv.resolve([to])
        try:
            recipient_type(to)
        except ValidationError as exc:
            fail(
                f"--to {to!r}: {exc.reason}",
                hint="`linepush recipients list` shows the ids the webhook has seen",
            )
    if routes is not None:
        known = configured_route_tables(inv)
        if routes not in known:
            where = inv.settings.config_file or "linepush.toml"
            fail(
                f"--routes {routes!r}: {where} defines no [alerts.route_tables.{routes}] "
                f"(route tables: {', '.join(known) or 'none'})",
                hint="add the table (routes = […] and default = …) first: `linepush serve` refuses to start "
                "with a token bound to a table it does not have",
            )
    channel_id = inv.settings.channel.require_id()
    secret, record = create_gateway_token(inv.store(), channel_id, to, name, time.time(), route_table=routes)
    if window is not None:
        gateway_store(inv.store()).set_gateway_token_digest(record.id, window)
    inv.emit(
        {"token": secret.reveal(), **token_json(record, window)},
        lambda: inv.out.print(secret.reveal(), markup=False),
    )
    if not inv.json:
        bound = record.recipient_id or f"route table {record.route_table}"
        merged = f"; its notifications within {window:g}s merge into one push" if window is not None else ""
        inv.note(
            f"gateway token {record.id} for {bound} created{merged}. It is shown only this once: "
            "scripts send it as LINE Notify's Bearer token"
        )


@command(token_app, "digest")
def token_digest(
    inv: Invocation,
    token_id: Annotated[
        int, typer.Argument(metavar="ID", help="The token's id (`linepush gateway token list`).")
    ],
    window: Annotated[
        str,
        typer.Argument(
            metavar="WINDOW", help="30s, 2m, 1h: merge notifications within it into one push; off: stop."
        ),
    ],
) -> None:
    """Merge a gateway token's notifications that come within a window into one push (a digest), or stop
    (off). Digests already open are sent when their window closes."""
    seconds = None if window.strip().lower() == "off" else digest_window(window, "WINDOW")
    store = gateway_store(inv.store())
    try:
        store.set_gateway_token_digest(token_id, seconds)
    except LookupError:
        fail(f"there is no gateway token with id {token_id}", hint="`linepush gateway token list` shows them")
    said = "off" if seconds is None else f"{seconds:g}s"
    inv.emit(
        {"id": token_id, "digest": seconds},
        lambda: inv.note(f"gateway token {token_id}: digest {said}"),
    )


@command(token_app, "list")
def token_list(
    inv: Invocation,
    active: Annotated[bool, typer.Option("--active", help="Leave out revoked tokens.")] = False,
) -> None:
    """List gateway tokens of the configured channel (or of all, with none configured). Only their hashes
    are stored, so the tokens themselves cannot be shown."""
    channel_id = inv.settings.channel.channel_id
    store = gateway_store(inv.store(existing=True))
    tokens = store.list_gateway_tokens(channel_id, include_revoked=not active)
    digests = store.gateway_token_digests(channel_id)

    def render() -> None:
        if not tokens:
            inv.note("no gateway tokens: `linepush gateway token create --to ID` makes one")
            return
        inv.table(
            None,
            ["ID", "CHANNEL", "TO", "ROUTES", "TYPE", "NAME", "DIGEST", "CREATED", "REVOKED"],
            [
                [
                    t.id,
                    t.channel_id,
                    t.recipient_id or "-",
                    t.route_table or "-",
                    token_target_type(t),
                    t.name or "-",
                    shown_window(digests.get(t.id)),
                    when(t.created_at),
                    when(t.revoked_at) or "-",
                ]
                for t in tokens
            ],
        )

    inv.emit([token_json(t, digests.get(t.id)) for t in tokens], render)
    bound = sorted({t.route_table for t in tokens if t.route_table is not None and not t.revoked})
    if bound:
        try:
            known = configured_route_tables(inv)
        except ConfigurationError as exc:
            inv.note(f"warning: the route tables could not be checked: {exc}")
            return
        for table in bound:
            if table not in known:
                ids = ", ".join(str(t.id) for t in tokens if t.route_table == table and not t.revoked)
                inv.note(
                    f"warning: gateway token {ids} is bound to route table {table!r}, which the "
                    "configuration does not define: `linepush serve` will not start until it does (or the "
                    "token is revoked)"
                )


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
        fail(f"there is no gateway token with id {token_id}", hint="`linepush gateway token list` shows them")
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
def recipients_list(
    inv: Invocation,
    no_lookup: Annotated[
        bool,
        typer.Option(
            "--no-lookup", help="Do not ask LINE for display and group names (offline; no API calls)."
        ),
    ] = False,
    lookup_timeout: Annotated[
        float,
        typer.Option(
            "--lookup-timeout",
            metavar="SECONDS",
            min=0.1,
            max=120.0,
            help="How long all the name lookups may take together (default 10).",
        ),
    ] = 10.0,
) -> None:
    """List the ids the webhook has seen (of the configured channel, or of all), most recent first, and
    the names given to ids; beside each, the name LINE knows (a user's display name, a group's name; rooms
    have none). Send to one with `linepush send --to ID` or bind a gateway token to it."""
    from linepush.cli.recipient_lookup import look_up_names, not_looked_up

    settings = inv.settings
    channel_id = settings.channel.channel_id
    store = gateway_store(inv.store(existing=True))
    recipients = store.list_recipients(channel_id)
    names = recipient_names_by_id(
        settings.recipients, store.recipient_names(channel_id) if channel_id else {}
    )
    ids = [*(r.recipient_id for r in recipients), *names]
    if no_lookup:
        line_names = not_looked_up(ids, "not looked up (--no-lookup)")
    elif channel_id is None:
        line_names = not_looked_up(ids, "no channel configured")
    else:
        line_names = look_up_names(
            settings.channel, ids, api_base=settings.api_base, store=settings.store, timeout=lookup_timeout
        )

    def line_name(rid: str) -> list[str]:
        return [] if no_lookup else [line_names[rid].shown()]

    def render() -> None:
        extra = [] if no_lookup else ["LINE NAME"]
        unknown = sum(1 for rid in dict.fromkeys(ids) if line_names[rid].name is None and rid[:1] != "R")
        if unknown and not no_lookup:
            inv.note(f"LINE's name of {unknown} recipients is unknown: the LINE NAME column says why")
        if names:
            inv.table(
                None,
                ["NAME", "ID", *extra],
                [[", ".join(n), rid, *line_name(rid)] for rid, n in names.items()],
            )
        if not recipients:
            inv.note(
                "no ids seen yet: set the channel's webhook URL to `linepush serve`'s /webhook (with "
                "LINE_CHANNEL_SECRET set), then add the account as a friend or invite it to a group"
            )
            return
        inv.table(
            None,
            ["ID", "TYPE", *extra, "LAST EVENT", "LAST SEEN", "FIRST SEEN", "CHANNEL"],
            [
                [
                    r.recipient_id,
                    r.type,
                    *line_name(r.recipient_id),
                    r.last_event_type,
                    when(r.last_seen_at),
                    when(r.first_seen_at),
                    r.channel_id,
                ]
                for r in recipients
            ],
        )

    def looked_up(rid: str) -> dict[str, Any]:
        found = line_names[rid]
        return {"line_name": found.name, "line_name_unknown": found.unknown}

    listed = [
        {**recipient_json(r), "names": names.get(r.recipient_id, []), **looked_up(r.recipient_id)}
        for r in recipients
    ]
    seen = {r.recipient_id for r in recipients}
    listed += [{"id": rid, "names": n, **looked_up(rid)} for rid, n in names.items() if rid not in seen]
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
