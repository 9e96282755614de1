"""`linepush queue add|status|list|retry|purge`: the outbox by hand; plus what `send --queue`, `send --at`
and `send --to-file` do (store the send, then deliver it with a progress bar)."""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from linepush.cli import app
from linepush.cli._command import command
from linepush.cli.cost import YesOption
from linepush.cli.inputs import digest_window, parse_at, read_messages, read_recipients, scheduled_time
from linepush.cli.invocation import Exit, Invocation, fail
from linepush.cli.options import DigestOption, ToOption
from linepush.config import Channel
from linepush.errors import ValidationError
from linepush.messages import validate_to
from linepush.outbox import Outbox, paused_channels, resume_channel
from linepush.store import MESSAGE_STATES, MessageState, OutboxMessage, Store, StoreError
from linepush.store.base import DigestAppend
from linepush.worker import Worker, WorkerConfig, WorkerStats

__all__ = [
    "DrainResult",
    "bulk_recipients",
    "digest_from_cli",
    "drain_with_progress",
    "enqueue_from_cli",
    "send_with_outbox",
]

queue_app = typer.Typer(
    name="queue",
    help="The outbox: add messages, see where they are, retry or purge them.",
    no_args_is_help=True,
)
app.add_typer(queue_app, name="queue")

# -- pieces shared with `linepush send` ---------------------------------------------------------------------


def enqueue_from_cli(
    outbox: Outbox,
    messages: Sequence[dict[str, Any]],
    *,
    to: Sequence[str] = (),
    to_file: Path | str | None = None,
    broadcast: bool = False,
    at: str | None = None,
    retry_key: str | None = None,
    notification_disabled: bool = False,
) -> list[OutboxMessage]:
    """Validate and store one CLI send in one transaction; nothing is stored if any part is refused."""
    recipients = bulk_recipients(to, to_file)
    # Said in the command line's words before the outbox would say it in the library's.
    if broadcast and recipients:
        raise ValidationError("--broadcast sends to every friend: give no --to or --to-file with it")
    if not broadcast and not recipients:
        raise ValidationError("say who gets it: --to ID, --to-file FILE or --broadcast")
    not_before = None if at is None else scheduled_time(at, outbox.clock())
    return outbox.send(
        recipients,
        messages,
        broadcast=broadcast,
        not_before=not_before,
        retry_key=retry_key,
        notification_disabled=notification_disabled,
    )


def digest_from_cli(
    outbox: Outbox,
    messages: Sequence[dict[str, Any]],
    *,
    to: Sequence[str],
    window: float,
    at: str | None = None,
    retry_key: str | None = None,
    broadcast: bool = False,
    to_file: Path | str | None = None,
    notification_disabled: bool = False,
) -> list[DigestAppend]:
    """Merge one CLI send into the open digest of each recipient (a digest per chat, sent when its window
    closes). What a digest cannot be (a broadcast, a file of ids, a time, a retry key of one's own) is
    refused before anything is stored."""
    from linepush.digest import append_to_digest

    for given, option in ((broadcast, "--broadcast"), (to_file, "--to-file"), (at, "--at")):
        if given:
            raise ValidationError(
                f"--digest merges sends to one chat, sent when its window closes: not with {option}"
            )
    if retry_key is not None:
        raise ValidationError(
            "--digest: a digest's retry key is its own (it carries many sends); drop --retry-key"
        )
    recipients = bulk_recipients(to, None)
    if not recipients:
        raise ValidationError("say who gets it: --to ID")
    zone = dt.datetime.now().astimezone().tzinfo or dt.UTC
    now = outbox.clock()
    return [
        append_to_digest(
            outbox.store,
            outbox.channel_id,
            recipient,
            messages,
            window=window,
            now=now,
            zone=zone,
            notification_disabled=notification_disabled,
        )
        for recipient in recipients
    ]


def digest_note(merged: Sequence[DigestAppend]) -> str:
    """What a digested send says: which digest each went into, and when it goes."""
    shown = ", ".join(
        f"{m.message.id} ({m.parts} notification{'s' if m.parts != 1 else ''})" for m in merged[:10]
    )
    due = max(m.message.not_before for m in merged)
    return f"merged into digest message(s) {shown}, sent from {_when(due)}; `linepush worker` delivers them"


def digest_json(merged: Sequence[DigestAppend]) -> dict[str, Any]:
    return {
        "digests": [
            {
                "id": m.message.id,
                "notifications": m.parts,
                "opened": m.opened,
                "not_before": m.message.not_before,
            }
            for m in merged
        ]
    }


def bulk_recipients(to: Sequence[str], to_file: Path | str | None) -> list[str]:
    """The ids of ``--to`` and of ``--to-file`` (checked; repeats dropped), in that order."""
    recipients = list(dict.fromkeys(validate_to(r) for r in to))
    if to_file is not None:
        given = set(recipients)
        recipients.extend(r for r in read_recipients(to_file) if r not in given)
    return recipients


def cost_checked(inv: Invocation, to: Sequence[str], to_file: Path | None, *, yes: bool) -> list[str]:
    """For a send to a file of ids: every recipient, once its cost was said (and accepted past what is
    left this month: see :func:`linepush.cli.quota.check_cost`)."""
    from linepush.cli.cost import check_cost

    recipients = bulk_recipients(to, to_file)
    check_cost(inv, recipients, yes=yes, reads_stdin=str(to_file) == "-")
    return recipients


@dataclass(frozen=True)
class DrainResult:
    """Where the rows of one send ended after draining: counts by state, and the exit code that says so."""

    counts: dict[MessageState, int]
    stats: WorkerStats

    @property
    def exit_code(self) -> Exit:
        if self.counts.get("failed"):
            return Exit.REFUSED
        if self.counts.get("queued") or self.counts.get("sending"):
            return Exit.TRANSIENT
        return Exit.OK


def drain_with_progress(
    store: Store,
    client: Any,
    ids: Sequence[int],
    *,
    channel_id: str,
    progress: bool | None = None,
    config: WorkerConfig | None = None,
    deadline: float = 300.0,
    clock: Callable[[], float] = time.time,
) -> DrainResult:
    """:meth:`Worker.run_until_settled` for the rows ``ids``, with a rich progress bar when ``progress``
    (default: stderr is a terminal), and where each row ended."""
    show = sys.stderr.isatty() if progress is None else progress
    worker = Worker(store, client, channel_id=channel_id, config=config, clock=clock)

    async def drain() -> WorkerStats:
        if not show:
            return await worker.run_until_settled(ids, deadline=deadline)
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=_stderr_console(),
            transient=False,
        ) as bar:
            task_id = bar.add_task("sending", total=len(set(ids)))
            return await worker.run_until_settled(
                ids, deadline=deadline, on_progress=lambda n: bar.update(task_id, completed=n)
            )

    stats = asyncio.run(_with_client(client, drain()))
    counts: dict[MessageState, int] = {state: 0 for state in MESSAGE_STATES}
    for message_id in ids:
        row = store.get_message(message_id)
        if row is not None:
            counts[row.state] += 1
    return DrainResult(counts, stats)


def send_with_outbox(
    store: Store,
    channel: Channel,
    messages: Sequence[dict[str, Any]],
    *,
    to: Sequence[str] = (),
    to_file: Path | str | None = None,
    broadcast: bool = False,
    at: str | None = None,
    queue_only: bool = False,
    retry_key: str | None = None,
    notification_disabled: bool = False,
    progress: bool | None = None,
    deadline: float = 300.0,
    client: Any = None,
    api_base: str | None = None,
    echo: Callable[[str], None] | None = None,
    digest: float | None = None,
) -> tuple[Exit, dict[str, Any]]:
    """What `linepush send` does with ``--queue``, ``--at`` or ``--to-file``: the exit code, and what to
    print with ``-o json``.

    The send is validated and stored first (one transaction, nothing stored if any part is refused). With
    ``queue_only`` or a time (``at``) it stays for a worker (`linepush worker`); otherwise it is delivered
    now, with a progress bar on a terminal, and the exit code says how that went (0, 1 refused, 3 later).
    With ``digest`` (seconds) it is merged into each recipient's digest instead, for a worker to send.
    """
    say = echo or (lambda text: typer.echo(text, err=True))
    box = Outbox(store, channel.require_id())
    if digest is not None:
        merged = digest_from_cli(
            box,
            messages,
            to=to,
            window=digest,
            at=at,
            retry_key=retry_key,
            broadcast=broadcast,
            to_file=to_file,
            notification_disabled=notification_disabled,
        )
        say(digest_note(merged))
        return Exit.OK, digest_json(merged)
    rows = enqueue_from_cli(
        box,
        messages,
        to=to,
        to_file=to_file,
        broadcast=broadcast,
        at=at,
        retry_key=retry_key,
        notification_disabled=notification_disabled,
    )
    ids = [r.id for r in rows]
    data: dict[str, Any] = {"queued": ids, "not_before": rows[0].not_before}
    # A scheduled send, even one due already, is the worker's to deliver, as any other queued message.
    if queue_only or at is not None:
        shown = ", ".join(str(i) for i in ids[:10]) + (" …" if len(ids) > 10 else "")
        when = f" for {_when(rows[0].not_before)}" if at is not None else ""
        say(f"queued {len(rows)} message(s){when} (ids {shown}); `linepush worker` delivers them")
        return Exit.OK, data
    if client is None:
        from linepush.client import AsyncLineClient
        from linepush.worker import WORKER_CALL_RETRY

        client = AsyncLineClient(channel, store=store, api_base=api_base, retry=WORKER_CALL_RETRY)
    try:
        result = drain_with_progress(
            store, client, ids, channel_id=box.channel_id, progress=progress, deadline=deadline
        )
    except KeyboardInterrupt:
        # The worker gave back what it held: what is not delivered stays queued, and running the command
        # again would queue (and send) it a second time.
        left = _undelivered(store, ids)
        say(
            f"interrupted: {left} of {len(ids)} request(s) stay queued and `linepush worker` delivers them "
            "(with their retry keys, so nothing goes twice); do not run this command again"
            if left
            else f"interrupted: all {len(ids)} request(s) were delivered"
        )
        raise
    counts = result.counts
    say(
        f"delivered {counts['delivered']} of {len(ids)} request(s)"
        + (
            f", {counts['failed']} refused by LINE (`linepush queue list --state failed`)"
            if counts["failed"]
            else ""
        )
        + (
            f", {counts['queued'] + counts['sending']} still queued (`linepush worker` will retry them)"
            if counts["queued"] or counts["sending"]
            else ""
        )
    )
    if result.stats.paused_until is not None:
        say(
            f"channel {box.channel_id} reached its monthly message limit: its messages stay queued until "
            f"{_when(result.stats.paused_until)} (`linepush queue resume` sends again sooner)"
        )
        data["paused_until"] = result.stats.paused_until
    data["counts"] = dict(counts)
    return result.exit_code, data


def _undelivered(store: Store, ids: Sequence[int]) -> int:
    try:
        rows = [store.get_message(i) for i in ids]
    except StoreError:
        return len(ids)
    return sum(1 for r in rows if r is None or r.state in ("queued", "sending"))


async def _with_client(client: Any, work: Any) -> Any:
    try:
        return await work
    finally:
        closer = getattr(client, "aclose", None)
        if closer is not None:
            await closer()


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def _row_json(row: OutboxMessage) -> dict[str, Any]:
    return {
        "id": row.id,
        "channel_id": row.channel_id,
        "kind": row.kind,
        "state": row.state,
        "retry_key": row.retry_key,
        "attempts": row.attempts,
        "not_before": row.not_before,
        "first_attempt_at": row.first_attempt_at,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "delivered_at": row.delivered_at,
        "request_id": row.request_id,
        "recipients": _recipients(row),
        "result": row.result,
        "last_error": row.last_error,
    }


def _recipients(row: OutboxMessage) -> int | str:
    to = row.payload.get("to")
    if isinstance(to, list):
        return len(to)
    if isinstance(to, str):
        return to
    return row.kind


def _when(moment: float | None) -> str:
    if moment is None:
        return "-"
    try:
        return dt.datetime.fromtimestamp(moment).astimezone().strftime("%Y-%m-%d %H:%M:%S%z")
    except (OverflowError, ValueError, OSError):  # a time past the calendar, which the library may store
        return f"{moment:.0f} (UNIX time)"


def _due(row: OutboxMessage) -> str:
    """When a queued row is due and, once it was tried, why it is still queued."""
    due = _when(row.not_before)
    if not row.last_error:
        return due
    return f"{due}; last try: {row.last_error.get('reason') or _error_text(row.last_error)}"


def _error_text(error: dict[str, Any] | None) -> str:
    if not error:
        return ""
    status = error.get("status")
    text = str(error.get("message", ""))
    details = error.get("details")
    if isinstance(details, list) and details:
        text += " (" + "; ".join(f"{d.get('property', '')}: {d.get('message', '')}" for d in details) + ")"
    return f"{status} {text}" if status else text


# -- commands -----------------------------------------------------------------------------------------------


def _scope(inv: Invocation, all_channels: bool) -> str | None:
    """The channel looked at: the configured one, or every channel (--all-channels, or none configured)."""
    return None if all_channels else inv.settings.channel.channel_id


AllChannels = Annotated[
    bool, typer.Option("--all-channels", help="Every channel in the store, not only the configured one.")
]


@command(queue_app, "add", json_flag=False)
def add_command(
    inv: Invocation,
    text: Annotated[
        list[str] | None,
        typer.Argument(help="The text (words are joined by spaces), or - to read stdin.", metavar="TEXT"),
    ] = None,
    to: ToOption = None,
    to_file: Annotated[
        Path | None,
        typer.Option("--to-file", metavar="FILE", help="Recipient ids, one per line (- for stdin)."),
    ] = None,
    broadcast: Annotated[bool, typer.Option("--broadcast", help="Send to every friend.")] = False,
    json_file: Annotated[
        str | None,
        typer.Option(
            "--json", metavar="FILE", help="A JSON file (or -) of LINE message objects. -o json prints JSON."
        ),
    ] = None,
    at: Annotated[
        str | None,
        typer.Option("--at", metavar="TIME", help="Send at this time: 2026-12-01T09:00+09:00, or +15m."),
    ] = None,
    retry_key: Annotated[
        str | None, typer.Option("--retry-key", metavar="UUID", help="This message's X-Line-Retry-Key.")
    ] = None,
    notification_disabled: Annotated[
        bool, typer.Option("--notification-disabled", help="Deliver silently (no push notification).")
    ] = False,
    digest: DigestOption = None,
    yes: YesOption = False,
) -> None:
    """Put a message in the outbox (checked first: nothing is stored if LINE would refuse it). With
    --to-file, says how many of this month's messages it uses, and asks (or stops, off a terminal) before
    using more than are left, unless --yes."""
    messages = read_messages(text, json_file)
    recipients = inv.recipients(to, default=to_file is None and not broadcast)
    if to_file is not None:
        recipients, to_file = cost_checked(inv, recipients, to_file, yes=yes), None
    box = Outbox(inv.store(), inv.settings.channel.require_id())
    window = digest_window(digest)
    if window is not None:
        merged = digest_from_cli(
            box,
            messages,
            to=recipients,
            window=window,
            at=at,
            retry_key=retry_key,
            broadcast=broadcast,
            to_file=to_file,
            notification_disabled=notification_disabled,
        )
        inv.emit(digest_json(merged), lambda: inv.out.print(digest_note(merged)))
        return
    rows = enqueue_from_cli(
        box,
        messages,
        to=recipients,
        to_file=to_file,
        broadcast=broadcast,
        at=at,
        retry_key=retry_key,
        notification_disabled=notification_disabled,
    )

    def render() -> None:
        due = rows[0].not_before
        when = "" if due <= box.clock() else f", due {_when(due)}"
        inv.out.print(f"queued {len(rows)} message(s){when}: ids {', '.join(str(r.id) for r in rows)}")

    inv.emit({"queued": [_row_json(r) for r in rows]}, render)


@command(queue_app, "status")
def status_command(inv: Invocation, all_channels: AllChannels = False) -> None:
    """How many messages are queued, sending, delivered and failed, and which channel's sends are paused
    (its monthly message limit reached) until when."""
    store = inv.store(existing=True)
    scope = _scope(inv, all_channels)
    counts = store.counts(scope)
    paused = {
        channel: until
        for channel, until in paused_channels(store, time.time()).items()
        if scope is None or channel == scope
    }
    data: dict[str, Any] = {state: n for state, n in counts.items()}
    if paused:
        data["paused"] = paused

    def render() -> None:
        inv.table(None, ["state", "messages"], counts.items())
        for channel, until in sorted(paused.items()):
            inv.out.print(
                f"paused until {_when(until)}: channel {channel} reached its monthly message limit; its "
                "messages stay queued (`linepush queue resume` sends again sooner)"
            )

    inv.emit(data, render)


@command(queue_app, "resume")
def resume_command(inv: Invocation) -> None:
    """Lift the pause of the channel's sends (its monthly message limit reached) before the new month: when
    more messages were bought, or the plan changed. Workers send again within their poll interval."""
    channel = inv.settings.channel.require_id()
    was = resume_channel(inv.store(), channel, time.time())
    inv.emit(
        {"channel_id": channel, "resumed": was},
        lambda: inv.out.print(
            f"channel {channel}: sends resumed" if was else f"channel {channel} is not paused: nothing to do"
        ),
    )


@command(queue_app, "list")
def list_command(
    inv: Invocation,
    state: Annotated[
        str | None, typer.Option("--state", help="queued, sending, delivered or failed.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=100_000, help="At most this many rows.")] = 50,
    after: Annotated[int | None, typer.Option("--after", metavar="ID", help="Rows after this id.")] = None,
    all_channels: AllChannels = False,
) -> None:
    """The messages in the outbox, oldest first, with LINE's error on failed ones."""
    if state is not None and state not in MESSAGE_STATES:
        fail(f"--state must be one of {', '.join(MESSAGE_STATES)}")
    rows = inv.store(existing=True).list_messages(state, _scope(inv, all_channels), limit, after)

    def render() -> None:
        if not rows:
            inv.out.print("no messages")
            return
        inv.table(
            None,
            ["id", "state", "kind", "to", "tries", "due / request id / error"],
            [
                [
                    r.id,
                    r.state,
                    r.kind,
                    _recipients(r),
                    r.attempts,
                    _due(r)
                    if r.state == "queued"
                    else r.request_id
                    if r.state == "delivered"
                    else _error_text(r.last_error),
                ]
                for r in rows
            ],
        )

    inv.emit([_row_json(r) for r in rows], render)


@command(queue_app, "retry")
def retry_command(
    inv: Invocation,
    ids: Annotated[
        list[int] | None, typer.Argument(help="Failed message ids (default: every failed one).", metavar="ID")
    ] = None,
    new_key: Annotated[
        bool,
        typer.Option(
            "--new-key",
            help="Give them new retry keys: LINE sees new messages, so one that did arrive arrives again.",
        ),
    ] = False,
    all_channels: AllChannels = False,
) -> None:
    """Put failed messages back in the queue."""
    store = inv.store(existing=True)
    channel_id = _scope(inv, all_channels)
    if channel_id is not None:
        count = Outbox(store, channel_id).requeue(ids or None, new_retry_key=new_key)
    else:
        count = store.requeue(ids or None, now=time.time(), new_retry_key=new_key)
    data: dict[str, Any] = {"requeued": count}
    if ids and count < len(set(ids)):
        # Say which ids were not taken: none such (in this channel), or not failed.
        rows = {i: store.get_message(i) for i in dict.fromkeys(ids)}
        unknown = [i for i, r in rows.items() if r is None or (channel_id and r.channel_id != channel_id)]
        not_failed = {
            i: r.state for i, r in rows.items() if r is not None and i not in unknown and r.state != "failed"
        }
        data.update(unknown=unknown, not_failed=not_failed)

    def render() -> None:
        inv.out.print(f"requeued {count} message(s)")
        if data.get("unknown"):
            shown = ", ".join(map(str, data["unknown"]))
            inv.note(f"no message with id {shown} (`linepush queue list` shows them)")
        for message_id, state in data.get("not_failed", {}).items():
            inv.note(f"message {message_id} is {state}, not failed: left as it is")

    inv.emit(data, render)
    if data.get("unknown"):
        raise typer.Exit(int(Exit.USAGE))


@command(queue_app, "purge")
def purge_command(
    inv: Invocation,
    states: Annotated[
        list[str] | None, typer.Option("--state", help="delivered, failed or queued (default: delivered).")
    ] = None,
    older_than: Annotated[
        str, typer.Option("--older-than", help="Only rows last changed longer ago: 30d, 12h, 0s.")
    ] = "7d",
) -> None:
    """Delete settled messages from the outbox (of every channel in the store)."""
    chosen = states or ["delivered"]
    for state in chosen:
        if state not in ("queued", "delivered", "failed"):
            fail("--state must be queued, delivered or failed (rows being sent cannot be purged)")
    try:
        age = parse_at("+" + older_than.lstrip("+"), now=0.0)
    except ValidationError:
        fail(f"cannot read --older-than {older_than!r}; use e.g. 30d, 12h, 15m or 0s")
    count = inv.store(existing=True).purge(chosen, age, time.time())  # type: ignore[arg-type]
    inv.emit({"purged": count}, lambda: inv.out.print(f"purged {count} message(s)"))
