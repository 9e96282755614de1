"""`linepush recipients name|unname`: names for user, group and room ids, usable wherever an id is."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from linepush.cli._command import command
from linepush.cli.gateway import recipients_app
from linepush.cli.invocation import Invocation, fail
from linepush.errors import ValidationError
from linepush.service.store import gateway_store

__all__ = ["recipients_name", "recipients_unname"]


@command(recipients_app, "name")
def recipients_name(
    inv: Invocation,
    recipient_id: Annotated[
        str, typer.Argument(metavar="ID", help="The user (U…), group (C…) or room (R…) id.")
    ],
    name: Annotated[str, typer.Argument(metavar="NAME", help="The name, e.g. ops-room.")],
) -> None:
    """Name a recipient: `--to NAME`, gateway tokens and alert routes then take the name for the id."""
    channel_id = inv.settings.channel.require_id()
    try:
        gateway_store(inv.store()).name_recipient(channel_id, name, recipient_id, time.time())
    except ValidationError as exc:
        fail(f"{exc.property}: {exc.reason}")
    shadowed = inv.settings.recipients.get(name)
    inv.emit(
        {"name": name, "id": recipient_id, "channel_id": channel_id},
        lambda: inv.note(f"{name} is now {recipient_id}"),
    )
    if shadowed is not None and shadowed != recipient_id:
        inv.note(f"warning: [recipients] in {inv.settings.config_file} names {shadowed} {name}, and wins")


@command(recipients_app, "unname")
def recipients_unname(
    inv: Invocation, name: Annotated[str, typer.Argument(metavar="NAME", help="The name to forget.")]
) -> None:
    """Forget a name given with `linepush recipients name`."""
    channel_id = inv.settings.channel.require_id()
    if not gateway_store(inv.store()).unname_recipient(channel_id, name):
        fail(
            f"there is no recipient named {name!r} in the store",
            hint="`linepush recipients list` shows the names",
        )
    inv.emit({"name": name, "forgotten": True}, lambda: inv.note(f"{name} forgotten"))
