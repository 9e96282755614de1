"""What a send costs of the month's message quota, and how the command line says it: shared by `send`,
`queue add`, `worker`, `config show` and `quota`."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer

from linepush.api.messaging import MonthlyUsage
from linepush.cli.invocation import Invocation, fail
from linepush.errors import LinePushError

__all__ = ["YesOption", "check_cost", "quota_warning", "usage_record"]

YesOption = Annotated[
    bool,
    typer.Option(
        "--yes", "-y", help="Send even when it needs more messages than this month has left (no question)."
    ),
]


def usage_record(usage: MonthlyUsage, threshold: float) -> dict[str, Any]:
    """What `quota --json` prints (and `config show --json` under "quota")."""
    return {
        "type": "none" if usage.limit is None else "limited",
        "limit": usage.limit,
        "used": usage.used,
        "remaining": usage.remaining,
        "share": usage.share,
        "warning_threshold": threshold,
        "past_threshold": usage.past(threshold),
    }


def quota_warning(channel_id: str | None, usage: MonthlyUsage, threshold: float) -> str | None:
    """The warning for a channel past the threshold, or None."""
    if not usage.past(threshold):
        return None
    reached = usage.remaining == 0
    return (
        f"channel {channel_id} has used {usage.share:.0%} of this month's message limit "
        f"({usage.used} of {usage.limit}; warning at {threshold:.0%}): "
        + (
            "sends are refused, and queued messages wait for the next month"
            if reached
            else f"{usage.remaining} left; past the limit, queued messages wait for the next month"
        )
    )


def _interactive() -> bool:
    return sys.stdin.isatty() and sys.stderr.isatty()


def check_cost(inv: Invocation, recipients: Sequence[str], *, yes: bool, reads_stdin: bool = False) -> None:
    """Before a bulk send: say what it costs against what is left this month; past that, ask on a terminal,
    and stop (exit 2) elsewhere, unless ``yes``. When LINE cannot tell, the send goes on, and says so."""
    from linepush.outbox import send_cost
    from linepush.retry import RetryPolicy

    client = inv.client(retry=RetryPolicy(max_attempts=2, deadline=10.0))
    try:
        usage = client.monthly_usage()
    except LinePushError as exc:
        inv.note(f"the month's message quota could not be read ({exc}): sending without a cost check")
        return
    members: dict[str, int | None] = {}
    for chat in recipients:
        if chat[:1] in ("C", "R"):
            try:
                members[chat] = client.member_count(chat)
            except LinePushError:
                members[chat] = None
    cost = send_cost(recipients, members)
    left = "no limit" if usage.remaining is None else f"{usage.remaining} left this month"
    inv.note(f"this send uses {cost.units} messages ({left})")
    if cost.unknown:
        inv.note(
            f"the member count of {len(cost.unknown)} group or room could not be had (the bot may not be in "
            "it): each is counted as 1"
        )
    if usage.remaining is None or cost.units <= usage.remaining or yes:
        return
    question = (
        f"this send needs {cost.units} messages but only {usage.remaining} left this month; what is past the "
        "limit waits in the queue for next month"
    )
    if _interactive() and not reads_stdin:
        if typer.confirm(f"{question}. Send anyway?", default=False, err=True):
            return
        fail("nothing was queued")
    fail(f"{question}: nothing was queued; pass --yes to queue it anyway")
