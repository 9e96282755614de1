"""`linepush send`: one push (or a multicast to several users) now, with retries.

The options are declared here; sending now is :mod:`linepush.cli.sending`'s (:func:`prepare`,
:func:`send_now`, :func:`show_result`), which the fast path of :mod:`linepush.cli._fast` runs without typer.
``--queue``, ``--at``, ``--to-file`` and
``--broadcast`` go through the outbox instead (:func:`linepush.cli.queue.send_with_outbox`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from linepush.cli import app
from linepush.cli._command import command
from linepush.cli.cost import YesOption
from linepush.cli.inputs import digest_window, read_messages
from linepush.cli.invocation import Invocation
from linepush.cli.options import DigestOption, ToOption
from linepush.cli.sending import SendRequest, prepare, send_immediately, send_now, show_result

__all__ = ["SendRequest", "prepare", "send_now", "show_result"]


@command(app, "send", json_flag=False)
def send_command(
    inv: Invocation,
    text: Annotated[
        list[str] | None,
        typer.Argument(
            help="The text (several words are joined by spaces), or - to read it from stdin.",
            show_default=False,
            metavar="TEXT",
        ),
    ] = None,
    to: ToOption = None,
    json_file: Annotated[
        str | None,
        typer.Option(
            "--json",
            help="A JSON file (or - for stdin) of LINE message objects: a list, one object, or "
            '{"messages": […]}. '
            "Use -o json for JSON output.",
            show_default=False,
            metavar="FILE",
        ),
    ] = None,
    notification_disabled: Annotated[
        bool, typer.Option("--notification-disabled", help="Deliver silently (no push notification).")
    ] = False,
    retry_key: Annotated[
        str | None,
        typer.Option(
            "--retry-key",
            help="A UUID identifying this message: run again with the same key and LINE will not deliver it "
            "twice (for 24 h).",
            metavar="UUID",
        ),
    ] = None,
    deadline: Annotated[
        float,
        typer.Option(
            "--deadline",
            min=0,
            metavar="SECONDS",
            help="Give up after this many seconds, the wait for an answer included (0: one attempt).",
        ),
    ] = 60.0,
    queue: Annotated[
        bool,
        typer.Option(
            "--queue",
            help="Put it in the outbox for `linepush worker` instead of sending it now.",
            rich_help_panel="Outbox",
        ),
    ] = False,
    at: Annotated[
        str | None,
        typer.Option(
            "--at",
            metavar="TIME",
            help="Send it at this time, through the outbox: 2026-12-01T09:00+09:00, or +15m.",
            rich_help_panel="Outbox",
        ),
    ] = None,
    to_file: Annotated[
        Path | None,
        typer.Option(
            "--to-file",
            metavar="FILE",
            help="Recipient ids, one per line (- for stdin): one multicast per 500 users, sent through the "
            "outbox with a progress bar.",
            rich_help_panel="Outbox",
        ),
    ] = None,
    broadcast: Annotated[
        bool,
        typer.Option(
            "--broadcast",
            help="Send to every friend of the channel (each one counts against the monthly quota), through "
            "the outbox.",
            rich_help_panel="Outbox",
        ),
    ] = False,
    digest: DigestOption = None,
    yes: YesOption = False,
) -> None:
    """Send a message now: to a user, group or room (push), several users (multicast), or all friends.
    With --digest it is merged with the others to the same recipient within the window, and queued."""
    window = digest_window(digest)
    if queue or at is not None or to_file is not None or broadcast or window is not None:
        from linepush.cli.queue import send_with_outbox

        messages = read_messages(text, json_file)
        recipients = inv.recipients(to, default=to_file is None and not broadcast)
        if to_file is not None:
            from linepush.cli.queue import cost_checked

            recipients, to_file = cost_checked(inv, recipients, to_file, yes=yes), None
        code, data = send_with_outbox(
            inv.store(),
            inv.channel(),
            messages,
            to=recipients,
            to_file=to_file,
            broadcast=broadcast,
            at=at,
            queue_only=queue,
            retry_key=retry_key,
            notification_disabled=notification_disabled,
            deadline=deadline,
            api_base=inv.settings.api_base,
            echo=inv.note,
            digest=window,
        )
        if inv.json:
            inv.emit(data)
        raise typer.Exit(code)
    send_immediately(
        inv,
        text=text,
        json_file=json_file,
        to=to,
        notification_disabled=notification_disabled,
        retry_key=retry_key,
        deadline=deadline,
    )
