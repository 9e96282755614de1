"""Sending now, as `linepush send` does: :func:`prepare` turns the command line (read by
:mod:`linepush.cli.inputs`) into a checked :class:`SendRequest` (nothing sent yet); :func:`send_now` delivers
it and :func:`show_result` prints what LINE answered. No typer here: the fast path of `linepush send`
(:mod:`linepush.cli._fast`) runs :func:`send_immediately` without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from linepush.api.messaging import MulticastResult, PushResult
from linepush.cli.inputs import read_messages
from linepush.cli.invocation import Invocation
from linepush.client import LineClient, MulticastError
from linepush.errors import LinePushError, OutcomeUnknownError, TokenUnavailableError, ValidationError
from linepush.messages import validate_to, validate_user_ids
from linepush.retry import RetryPolicy
from linepush.retry_key import check_retry_key, new_retry_key
from linepush.store.base import is_recipient_id

__all__ = ["SendRequest", "prepare", "send_immediately", "send_now", "show_result"]


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
        chats = [r for r in recipients if r[:1] in ("C", "R") and is_recipient_id(r)]
        if chats:
            # One request cannot reach them together: LINE's multicast takes user ids only.
            raise ValidationError(
                f"{_listed(chats)} {'is a group or room' if len(chats) == 1 else 'are groups or rooms'}, "
                "which one multicast cannot reach with users (it takes user IDs only): add --queue to "
                "send each group and room a push of its own (`linepush worker` delivers them), or send to "
                "each with its own `linepush send --to ID`",
                property="--to",
            )
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


def _listed(ids: Sequence[str]) -> str:
    return ", ".join(ids[:3]) + (f" and {len(ids) - 3} more" if len(ids) > 3 else "")


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


def send_immediately(
    inv: Invocation,
    *,
    text: Sequence[str] | None,
    json_file: str | None,
    to: Sequence[str] | None,
    notification_disabled: bool,
    retry_key: str | None,
    deadline: float,
) -> None:
    """Send ``text`` (or the messages of ``json_file``) to ``to`` now, retrying until ``deadline`` seconds."""
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
