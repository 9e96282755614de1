"""`linepush quota`: the month's message limit, what was used of it and what is left (LINE's quota and
consumption endpoints), with a warning past the configured share (``quota_warning``, 80% by default)."""

from __future__ import annotations

from typing import Any

from rich.markup import escape

from linepush.api.messaging import MonthlyUsage
from linepush.cli import app
from linepush.cli.invocation import Invocation, command

__all__ = ["quota_command", "quota_warning", "usage_record"]


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


@command(app, "quota")
def quota_command(inv: Invocation) -> None:
    """This month's message limit, how much of it was used, and what is left (LINE's numbers: the use is
    approximate and counts messages sent from LINE Official Account Manager too). Warns past
    quota_warning (LINEPUSH_QUOTA_WARNING, a percentage; 80 by default)."""
    settings = inv.settings
    threshold = settings.quota_warning_share
    usage = inv.client().monthly_usage()
    data = {"channel_id": settings.channel.channel_id, **usage_record(usage, threshold)}
    warning = quota_warning(settings.channel.channel_id, usage, threshold)

    def render() -> None:
        share = "-" if usage.share is None else f"{usage.share:.0%}"
        inv.table(
            None,
            ["limit", "used", "remaining", "used share"],
            [[usage.limit if usage.limit is not None else "none", usage.used, usage.remaining, share]],
        )

    inv.emit(data, render)
    if warning is not None:
        inv.note(f"[yellow]warning:[/] {escape(warning)}")
