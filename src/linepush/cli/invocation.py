"""What every command shares: its settings, output (tables or JSON), and errors as exit codes.

A command is declared with :func:`command` (in :mod:`linepush.cli._command`, with the options every command
takes); it receives an :class:`Invocation` first. This module does not import typer, so that a command line
parsed without it (:mod:`linepush.cli._fast`) runs a command exactly as typer would.
"""

from __future__ import annotations

import json
import os
import re
import sys
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, NoReturn

from linepush.cli._output import Lines, escape
from linepush.config import Channel, Settings, exposed_key_file, resolve_settings
from linepush.errors import (
    AuthenticationError,
    ConfigurationError,
    LineApiError,
    LinePushError,
    MonthlyLimitError,
    TokenLimitError,
    TokenUnavailableError,
    ValidationError,
)

if TYPE_CHECKING:
    from linepush.client import LineClient
    from linepush.store import Store

__all__ = ["Exit", "Invocation", "fail", "render_error", "run_command"]


class Exit(IntEnum):
    """Exit codes scripts can test."""

    OK = 0
    #: LINE refused the request (a 4xx, or another error retrying cannot fix).
    REFUSED = 1
    #: Usage or configuration error: bad flags, missing settings, input refused locally.
    USAGE = 2
    #: A transient failure that outlasted the retries (no answer, 429, 5xx): running again later may work.
    TRANSIENT = 3


#: What is meant as an id (U, C or R and hex digits) is explained by the id check; anything else is a name.
_ID_LIKE: Final = re.compile(r"[UCRucr][0-9a-fA-F]*")


class CommandError(Exception):
    """A command-level failure with its own exit code and text (no traceback)."""

    def __init__(self, message: str, code: Exit = Exit.USAGE, hint: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.hint = hint


def fail(message: str, code: Exit = Exit.USAGE, hint: str | None = None) -> NoReturn:
    raise CommandError(message, code, hint)


class Invocation:
    """One run of one command: its settings, output and the resources to close afterwards."""

    def __init__(
        self,
        flags: Mapping[str, Any],
        *,
        profile: str | None,
        config_file: Path | None,
        json: bool,
        debug: bool,
    ) -> None:
        self._flags = dict(flags)
        self._profile = profile
        self._config_file = config_file
        self.json = json
        self.debug = debug
        self.out = Lines(width=_width(sys.stdout))
        self.err = Lines(stderr=True, width=_width(sys.stderr))
        self._settings: Settings | None = None
        self._closers: list[Callable[[], None]] = []

    # -- configuration --------------------------------------------------------------------------------------

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = resolve_settings(
                self._flags, profile=self._profile, config_file=self._config_file
            )
        return self._settings

    def channel(self) -> Channel:
        """The channel to act for, refused (exit 2) when others can read its private key file, as OpenSSH
        refuses an unprotected key: anyone who can read it can get tokens for the channel."""
        channel = self.settings.channel
        exposed = exposed_key_file(channel.assertion_key_file)
        if exposed:
            fail(exposed)
        return channel

    def client(self, **options: Any) -> LineClient:
        from linepush.client import LineClient

        settings = self.settings
        client = LineClient(self.channel(), api_base=settings.api_base, store=settings.store, **options)
        self._closers.append(client.close)
        return client

    def store(self, *, existing: bool = False) -> Store:
        """The configured store. With ``existing`` (a command that only reads what is in it, or changes
        rows it holds) a SQLite file that is not there is read as an empty store and not made, nor its
        directories: a note says there is none at that path."""
        from linepush.store import open_store

        if existing:
            from linepush.store import sqlite_store_file

            path = sqlite_store_file(self.settings.store)
            if path is not None and not os.path.exists(path):
                return self._no_store(path)
        store = open_store(self.settings.store)
        self._closers.append(store.close)
        return store

    def _no_store(self, path: str) -> Store:
        """An empty store in a directory of its own, removed when the command ends, for ``path``."""
        import shutil
        import tempfile

        from linepush.store import SQLiteStore

        source = self.settings.sources.get("store", "default")
        self.note(
            f"there is no store at {escape(path)} (store from {escape(source)}): nothing was ever queued "
            "there; check the path if something was"
        )
        place = tempfile.mkdtemp(prefix="linepush-empty-")
        self._closers.append(lambda: shutil.rmtree(place, ignore_errors=True))
        store = SQLiteStore(os.path.join(place, "empty.db"))
        self._closers.append(store.close)
        return store

    def recipients(self, to: Sequence[str] | None, *, default: bool = True) -> list[str]:
        """The ids of ``--to`` values (comma-separated too; else the configured default when ``default``),
        each once: names (``[recipients]`` in the file, `linepush recipients name`) become their ids."""
        given = [r.strip() for part in (to or []) for r in part.split(",") if r.strip()]
        if not given and default:
            given = list(self.settings.require_to())
        # Once each: a multicast to [A, A] delivers to A twice (and counts twice against the quota), and an
        # id and a name for it are easily given together.
        return list(dict.fromkeys(self.resolve(given)))

    def resolve(self, given: Sequence[str]) -> list[str]:
        """Ids as they are, names as their ids."""
        from linepush.store.base import is_recipient_id

        if all(is_recipient_id(value) for value in given):
            return list(given)  # no store to open for names
        from linepush.config import resolve_recipient
        from linepush.service.store import gateway_store

        names = dict(self.settings.recipients)
        channel_id = self.settings.channel.channel_id
        if channel_id is not None and any(value not in names for value in given):
            names = {**gateway_store(self.store()).recipient_names(channel_id), **names}
        resolved = [resolve_recipient(value, names) for value in given]
        from linepush.messages import validate_to

        for value, meant in zip(given, resolved, strict=True):
            if not is_recipient_id(meant) and not _ID_LIKE.fullmatch(value):
                try:
                    validate_to(value)
                except ValidationError as exc:
                    fail(
                        f"--to: no recipient named {value!r}, and as an id: {exc.reason}",
                        hint="`linepush recipients list` shows the names; "
                        "`linepush recipients name ID NAME` adds one",
                    )
        return resolved

    def on_close(self, closer: Callable[[], None]) -> None:
        """Call ``closer`` when the command ends (last registered, first called)."""
        self._closers.append(closer)

    def close(self) -> None:
        while self._closers:
            closer = self._closers.pop()
            try:
                closer()
            except Exception:  # closing must not hide the command's own outcome
                if self.debug:
                    traceback.print_exc()

    # -- output ---------------------------------------------------------------------------------------------

    def emit(self, data: Any, render: Callable[[], None] | None = None) -> None:
        """Print ``data`` as JSON with ``--json``, else call ``render`` (or print it plainly)."""
        if self.json:
            self.out.file.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
            self.out.file.flush()
        elif render is not None:
            render()
        else:
            self.out.print(data)

    def note(self, text: str) -> None:
        """A remark for the person at the terminal (stderr, so it never mixes with data)."""
        self.err.print(text)

    def table(self, title: str | None, columns: Iterable[str], rows: Iterable[Iterable[Any]]) -> None:
        from rich.table import Table

        table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False, box=None)
        table.header_style = "bold"
        for name in columns:
            table.add_column(name, overflow="fold")
        for row in rows:
            table.add_row(*("" if cell is None else _esc(_visible(str(cell))) for cell in row))
        self.out.print(table)


def _width(stream: Any) -> int | None:
    """Rich's own choice on a terminal (or with $COLUMNS); else wide, so piped tables never fold a cell."""
    is_tty = getattr(stream, "isatty", None)
    if (is_tty is not None and is_tty()) or os.environ.get("COLUMNS"):
        return None
    return 1000


def when(ts: float | None) -> str | None:
    """A UNIX time as an ISO 8601 UTC string (seconds precision)."""
    if ts is None:
        return None
    try:
        return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, ValueError, OSError):  # a time past the calendar, which the library may store
        return f"{ts:.0f} (UNIX time)"


# --- errors ----------------------------------------------------------------------------------------------


def exit_code(error: BaseException) -> Exit:
    if isinstance(error, CommandError):
        return error.code
    if isinstance(error, ConfigurationError | ValidationError):
        return Exit.USAGE
    if isinstance(error, TokenUnavailableError) and not error.retryable:
        return Exit.USAGE  # LINE refused to issue a token: the setup (key, kid, clock) needs fixing
    if isinstance(error, LinePushError):
        return Exit.TRANSIENT if error.retryable else Exit.REFUSED
    return Exit.REFUSED


def render_error(error: BaseException) -> dict[str, Any]:
    """What went wrong, as data: the same fields for the terminal and for ``--json``."""
    info: dict[str, Any] = {
        "error": "UsageError" if isinstance(error, CommandError) else type(error).__name__,
        "message": str(error),
        "exit_code": int(exit_code(error)),
    }
    if isinstance(error, LineApiError):
        info["message"] = error.message
        info["status"] = error.status
        if error.error:
            info["oauth_error"] = error.error
        if error.error_description:
            info["error_description"] = error.error_description
        info["details"] = [{"property": d.property, "message": d.message} for d in error.details]
        info["request_id"] = error.request_id
        info["retryable"] = error.retryable
    elif isinstance(error, ValidationError):
        info["message"] = error.reason
        info["property"] = error.property
        info["sent"] = False
    elif isinstance(error, LinePushError):
        info["retryable"] = error.retryable
    if isinstance(error, LinePushError) and error.attempts > 1:
        info["attempts"] = error.attempts
    hint = _hint(error)
    if hint:
        info["hint"] = hint
    return info


def _hint(error: BaseException) -> str | None:
    if isinstance(error, CommandError):
        return error.hint
    if isinstance(error, LinePushError) and error.hint:
        return error.hint
    if isinstance(error, TokenUnavailableError) and error.error is not None:
        return _hint(error.error)
    if isinstance(error, TokenLimitError):
        return (
            "the channel already holds 30 valid v2.1 tokens: `linepush token kids` lists them, "
            "`linepush token revoke --id N` frees one, and v3 tokens (--kind v3) have no cap"
        )
    if isinstance(error, MonthlyLimitError):
        return (
            "the channel has used this month's message allowance: sends fail until next month, while queued "
            "messages (`send --queue`) wait for it"
        )
    if isinstance(error, LineApiError) and error.message == "Failed to send messages":
        return (
            "LINE could not send to that id: user ids differ per provider (use one this channel has seen), "
            "and the bot must be in the group or room"
        )
    if isinstance(error, AuthenticationError):
        return "the channel access token was refused: check the channel's settings (`linepush config show`)"
    if isinstance(error, ValidationError):
        return "nothing was sent"
    if isinstance(error, ConfigurationError):
        return "settings come from flags, the environment or linepush.toml; `linepush config show` shows them"
    if isinstance(error, LinePushError) and error.retryable:
        return "a transient failure: running the command again later may succeed"
    return None


def print_error(
    inv: Invocation | None, error: BaseException, *, console: Lines | None = None, indent: str = ""
) -> None:
    """Print ``error`` for a person (or as JSON with ``--json``): LINE's message, details and request id."""
    info = render_error(error)
    if console is None:
        console = inv.err if inv is not None else Lines(stderr=True)
    if inv is not None and inv.json:
        console.file.write(json.dumps(info, indent=2, ensure_ascii=False) + "\n")
        return
    if isinstance(error, LineApiError):
        head = (
            f"LINE refused the request ({error.status})"
            if not error.retryable
            else f"LINE answered {error.status}"
        )
        # LINE's words (or a proxy's in front of it) are shown as read, never acting on the terminal.
        text = f"[red bold]error:[/] {head}: {_esc(_visible(error.message))}"
        if error.error_description and error.error_description != error.message:
            text += f" ({_esc(_visible(error.error_description))})"
    else:
        text = f"[red bold]error:[/] {_esc(str(info['message']))}"
        if isinstance(error, ValidationError) and error.property:
            text = f"[red bold]error:[/] {_esc(error.property)}: {_esc(error.reason)}"
    console.print(indent + text)
    for detail in info.get("details", []):
        where = f"{detail['property']}: " if detail.get("property") else ""
        console.print(f"{indent}  - {_esc(_visible(where))}{_esc(_visible(detail.get('message') or ''))}")
    if info.get("request_id"):
        console.print(f"{indent}  request id: {info['request_id']}")
    if info.get("attempts"):
        console.print(f"{indent}  after {info['attempts']} attempts")
    if info.get("hint"):
        console.print(f"{indent}  [dim]{_esc(info['hint'])}[/]")


def _esc(text: str) -> str:
    return escape(text)


#: Control characters (C0, DEL, C1): in a cell they would act on the terminal (an escape sequence from
#: LINE's or a proxy's answer, a name) instead of being read.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _visible(text: str) -> str:
    """``text`` with its control characters written out (``\\x1b``), as a table cell shows it."""
    return _CONTROL.sub(lambda found: f"\\x{ord(found.group()):02x}", text)


# --- running a command ---------------------------------------------------------------------------------

#: The configuration options that become settings (the others choose the profile and the file).
CONFIG_FLAG_NAMES = ("channel_id", "assertion_key_file", "assertion_kid", "store", "api_base")


def run_command(
    fn: Callable[..., None],
    shared: Mapping[str, Any],
    kwargs: Mapping[str, Any],
    *,
    passthrough: tuple[type[BaseException], ...] = (),
) -> int:
    """Run ``fn(inv, **kwargs)`` with the shared options ``shared`` (output, debug, configuration) and return
    its exit code: errors are printed for a person (or as JSON) and become :class:`Exit` codes. Exceptions of
    ``passthrough`` (the command-line parser's own exits) are raised as they are."""
    output = str(shared.get("output", "table")).lower()
    as_json = output == "json" or bool(shared.get("json_output"))
    debug = bool(shared.get("debug"))
    if debug:
        import logging

        # Only linepush's own logs, which mask tokens: urllib3's debug lines carry whole URLs, and
        # some token endpoints take the token or the assertion in the query string.
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
        logging.getLogger("linepush").setLevel(logging.DEBUG)
    inv = Invocation(
        {k: shared.get(k) for k in CONFIG_FLAG_NAMES},
        profile=shared.get("profile"),
        config_file=shared.get("config_file"),
        json=as_json,
        debug=debug,
    )
    try:
        fn(inv, **kwargs)
    except passthrough:
        raise
    except KeyboardInterrupt:
        inv.err.print("interrupted")
        return 130
    except Exception as error:
        if debug:
            traceback.print_exc()
        if not isinstance(error, LinePushError | CommandError):
            message = f"unexpected {type(error).__name__}: {error}" + (
                "" if debug else " (run with --debug for the traceback)"
            )
            if inv.json:
                info = {"error": type(error).__name__, "message": message, "exit_code": int(Exit.REFUSED)}
                inv.err.file.write(json.dumps(info, indent=2, ensure_ascii=False) + "\n")
            else:
                inv.err.print(f"[red bold]error:[/] {_esc(message)}")
            return int(Exit.REFUSED)
        print_error(inv, error)
        return int(exit_code(error))
    finally:
        inv.close()
    return int(Exit.OK)
