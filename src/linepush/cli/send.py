"""`linepush send`: one push (or a multicast to several users) now, with retries.

The work is split so other ways of sending can reuse it: :func:`prepare` turns the command line (read by
:mod:`linepush.cli.inputs`) into a checked :class:`SendRequest` (nothing sent yet); :func:`send_now` delivers
it and :func:`show_result` prints what LINE answered. ``--queue``, ``--at``, ``--to-file`` and
``--broadcast`` go through the outbox instead (:func:`linepush.cli.queue.send_with_outbox`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from linepush.api.messaging import MulticastResult, PushResult
from linepush.cli import app
from linepush.cli.cost import YesOption
from linepush.cli.inputs import DigestOption, ToOption, digest_window, read_messages
from linepush.cli.invocation import Invocation, command
from linepush.client import LineClient, MulticastError
from linepush.errors import LinePushError, OutcomeUnknownError, TokenUnavailableError, ValidationError
from linepush.messages import validate_to, validate_user_ids
from linepush.retry import RetryPolicy
from linepush.retry_key import check_retry_key, new_retry_key

__all__ = ["SendRequest", "prepare", "send_now", "show_result"]


@dataclass(frozen=True)
class SendRequest:
    """A checked send: who, what and how. ``kind`` is "push" for one recipient, else "multicast"."""

    to: tuple[str, ...]
    messages: tuple[dict[str, Any], ...]
    notification_disabled: bool = False
    retry_key: str | None = None

    @property
    def kind(self) -> Literal["push", "multicast"]:
        return "push" if len(self.to) == 1 else "multicast"

    def payload(self) -> dict[str, Any]:
        """LINE's request body for :attr:`kind`."""
        body: dict[str, Any] = {
            "to": self.to[0] if self.kind == "push" else list(self.to),
            "messages": list(self.messages),
        }
        if self.notification_disabled:
            body["notificationDisabled"] = True
        return body


def prepare(
    inv: Invocation,
    texts: Sequence[str] | None,
    json_file: str | None,
    to: Sequence[str] | None,
    *,
    notification_disabled: bool = False,
    retry_key: str | None = None,
) -> SendRequest:
    """Check everything locally: recipients (``--to``, else the configured default), messages, retry key."""
    messages = read_messages(texts, json_file)
    recipients = tuple(inv.recipients(to))
    if len(recipients) == 1:
        validate_to(recipients[0])
    else:
        validate_user_ids(recipients)
    if retry_key is not None:
        try:
            check_retry_key(retry_key)
        except ValidationError as exc:
            raise ValidationError(exc.reason, property="--retry-key") from None
    else:
        # Chosen here, not by the client, so a failed send can tell the user the key to run it again with.
        retry_key = new_retry_key()
    return SendRequest(recipients, tuple(messages), notification_disabled, retry_key)


def send_now(client: LineClient, request: SendRequest) -> PushResult | MulticastResult:
    if request.kind == "push":
        return client.push(
            request.to[0],
            list(request.messages),
            retry_key=request.retry_key,
            notification_disabled=request.notification_disabled,
        )
    return client.multicast(
        request.to,
        list(request.messages),
        retry_key=request.retry_key,
        notification_disabled=request.notification_disabled,
    )


def result_data(request: SendRequest, result: PushResult | MulticastResult) -> dict[str, Any]:
    data: dict[str, Any] = {"kind": request.kind, "to": list(request.to), "messages": len(request.messages)}
    if isinstance(result, PushResult):
        data.update(
            request_id=result.request_id,
            retry_key=result.retry_key,
            duplicate=result.duplicate,
            accepted_request_id=result.accepted_request_id,
            sent_messages=[{"id": m.id} for m in result.sent_messages],
        )
    else:
        data["requests"] = [
            {
                "recipients": len(chunk.recipients),
                "retry_key": chunk.retry_key,
                "request_id": chunk.result.request_id if chunk.result else None,
                "duplicate": chunk.result.duplicate if chunk.result else False,
                "error": str(chunk.error) if chunk.error else None,
            }
            for chunk in result.chunks
        ]
    return data


def show_result(inv: Invocation, request: SendRequest, result: PushResult | MulticastResult) -> None:
    data = result_data(request, result)

    def render() -> None:
        if isinstance(result, PushResult):
            what = "already sent earlier (same retry key)" if result.duplicate else "sent"
            inv.out.print(
                f"{what}: {len(request.messages)} message(s) to {request.to[0]} "
                f"(request id {result.accepted_request_id or result.request_id})"
            )
            if result.sent_messages:
                inv.out.print("message ids: " + ", ".join(m.id for m in result.sent_messages))
            inv.note(f"[dim]retry key {result.retry_key}[/]")
        else:
            inv.out.print(f"sent: {len(request.messages)} message(s) to {result.recipients} users")
            inv.table(
                None,
                ["recipients", "request id", "retry key"],
                [
                    [len(c.recipients), c.result.request_id if c.result else "", c.retry_key]
                    for c in result.chunks
                ],
            )

    inv.emit(data, render)


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
    request = prepare(
        inv, text, json_file, to, notification_disabled=notification_disabled, retry_key=retry_key
    )
    client = inv.client(retry=RetryPolicy(deadline=deadline))
    try:
        result = send_now(client, request)
    except MulticastError as exc:
        show_result(inv, request, exc.result)
        raise
    except KeyboardInterrupt:
        inv.note(
            "interrupted: the message may have reached LINE already; to send it again without risking a "
            f"duplicate, run the same command with --retry-key {request.retry_key}"
        )
        raise
    except LinePushError as exc:
        # Without a token nothing was sent: there is no attempt a retry key would protect.
        if (exc.retryable or isinstance(exc, OutcomeUnknownError)) and not isinstance(
            exc, TokenUnavailableError
        ):
            inv.note(
                f"[dim]to try again without risking a duplicate, run the same command with "
                f"--retry-key {request.retry_key}[/]"
            )
        raise
    show_result(inv, request, result)
