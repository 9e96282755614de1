"""`linepush quota`: the month's message limit, what was used of it and what is left (LINE's quota and
consumption endpoints), with a warning past the configured share (``quota_warning``, 80% by default)."""

from __future__ import annotations

from rich.markup import escape

from linepush.cli import app
from linepush.cli._command import command
from linepush.cli.cost import quota_warning, usage_record
from linepush.cli.invocation import Invocation

__all__ = ["quota_command"]


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
