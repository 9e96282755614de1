"""What a command line says, read and checked: the messages (TEXT words, stdin or a JSON file), the recipients
(``--to``, a file of ids) and send times (``--at``). Shared by `linepush send` and `linepush queue add`."""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from linepush.cli.invocation import fail, when
from linepush.errors import ConfigurationError, ValidationError
from linepush.messages import MAX_TEXT_UTF16, normalize_messages, utf16_len, validate_to

__all__ = [
    "PAST_TOLERANCE",
    "digest_window",
    "parse_at",
    "read_messages",
    "read_recipients",
    "scheduled_time",
]

_JSON_SHAPES = 'a list of LINE message objects, one message object, or {"messages": [...]}'


def digest_window(value: str | None, option: str = "--digest") -> float | None:
    """A digest window given on the command line, in seconds (None when not given)."""
    if value is None:
        return None
    from linepush.digest import parse_window

    try:
        return parse_window(value, option)
    except ValidationError as exc:
        fail(str(exc))


def read_messages(texts: Sequence[str] | None, json_file: str | None) -> list[dict[str, Any]]:
    """The messages of a command line: TEXT words (joined by spaces, like echo), ``-`` for stdin, or a JSON
    file (``-`` for stdin) of LINE message objects. Raises ValidationError for what LINE would refuse."""
    texts = list(texts or [])
    if json_file is not None:
        if texts:
            fail("give either TEXT or --json FILE, not both")
        return _messages_from_json(json_file)
    if not texts:
        fail('nothing to send: give the text (linepush send "disk full"), - to read stdin, or --json FILE')
    if texts == ["-"]:
        text = read_stdin()
        # One trailing newline is how `echo` and most programs end their output; it is not part of the text.
        text = text[:-1] if text.endswith("\n") else text
        if not text.strip():
            fail("nothing to send: stdin was empty")
    elif "-" in texts:
        fail("- (read stdin) cannot be mixed with TEXT arguments")
    else:
        text = " ".join(texts)
        if not _is_unicode(text):  # bytes the terminal's encoding could not read (kept as surrogates)
            fail("TEXT is not UTF-8 text", hint="nothing was sent; check the terminal's encoding (locale)")
    length = utf16_len(text)
    if length > MAX_TEXT_UTF16:
        fail(
            f"messages[0].text: the text is {length:,} characters long (as LINE counts them, in UTF-16 "
            f"units); one message holds at most {MAX_TEXT_UTF16:,}",
            hint="nothing was sent; shorten it, or send it in parts: a --json FILE holds up to 5 text "
            'messages, [{"type": "text", "text": "…"}, …], sent together',
        )
    return normalize_messages(text)


def read_stdin(what: str = "stdin") -> str:
    """All of standard input as UTF-8 text; bytes that are not UTF-8 are a usage error (exit 2), not text
    with holes in it."""
    stream = getattr(sys.stdin, "buffer", None)
    if stream is None:  # a text stream put in place of stdin (a test runner, an embedding program)
        text = sys.stdin.read()
        if not _is_unicode(text):
            fail(f"{what} is not UTF-8 text", hint="nothing was sent; convert it first (iconv -t UTF-8)")
        return text.removeprefix("\ufeff")
    try:
        # utf-8-sig: a byte-order mark in front (as Windows tools write UTF-8) is no part of the text.
        return bytes(stream.read()).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        fail(
            f"{what} is not UTF-8 text (byte {exc.start + 1} cannot be read)",
            hint="nothing was sent; convert it first (iconv -t UTF-8)",
        )


def _is_unicode(text: str) -> bool:
    """Whether ``text`` holds no lone surrogate (what Python keeps of bytes it could not decode)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _messages_from_json(name: str) -> list[dict[str, Any]]:
    label = "stdin" if name == "-" else name
    if name == "-":
        raw = read_stdin()
    else:
        try:
            raw = Path(name).read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            fail(f"--json: {label} does not exist")
        except IsADirectoryError:
            fail(f"--json: {label} is a directory")
        except UnicodeDecodeError:
            fail(f"--json: {label} is not UTF-8 text")
        except OSError as exc:
            fail(f"--json: cannot read {label}: {exc.strerror}")
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        fail(f"--json: {label} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})")
    except RecursionError:
        fail(f"--json: {label} is nested too deeply")
    if isinstance(data, dict) and "type" not in data:
        extra = sorted(set(data) - {"messages"})
        if "messages" not in data or extra:
            fail(
                f"--json: {label} holds an object without 'messages' or 'type'"
                + (f" (unexpected {', '.join(map(repr, extra))}; recipients go in --to)" if extra else "")
                + f"; expected {_JSON_SHAPES}"
            )
        data = data["messages"]
    if not isinstance(data, list | dict):
        fail(f"--json: {label} holds a JSON {type(data).__name__}; expected {_JSON_SHAPES}")
    try:
        return normalize_messages(data)
    except ValidationError as exc:
        raise ValidationError(f"{exc.reason} (in {label})", property=exc.property) from None


def read_recipients(path: Path | str) -> list[str]:
    """Recipient ids from a file, one per line; blank lines and ``#`` comments are skipped, repeats dropped.

    Every id is checked (``U``/``C``/``R`` + 32 hex digits); a bad one is named by its line number.
    """
    source = Path(path)
    try:
        if str(path) == "-":
            text = read_stdin("the recipients on stdin")
        else:
            text = source.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ConfigurationError(f"cannot read recipients from {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigurationError(f"{path} is not a UTF-8 text file of recipient ids") from None
    seen: dict[str, None] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            seen[validate_to(line)] = None
        except ValidationError as exc:
            raise ValidationError(f"{path}, line {number}: {exc.reason}") from None
    if not seen:
        raise ValidationError(f"{path} holds no recipient ids")
    return list(seen)


def parse_at(value: str, *, now: float | None = None) -> float:
    """A send time as UNIX seconds: ISO 8601 (``2026-12-01T09:00+09:00``; without an offset it is local time)
    or a delay from now (``+90s``, ``+15m``, ``+2h``, ``+1d``)."""
    text = value.strip()
    if text.startswith("+"):
        units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
        number, unit = text[1:-1], text[-1:].lower()
        if unit not in units or not number.replace(".", "", 1).isdigit():
            raise ValidationError(f"cannot read the delay {value!r}; use e.g. +90s, +15m, +2h or +1d")
        return (time.time() if now is None else now) + float(number) * units[unit]
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(
            f"cannot read the time {value!r}; use ISO 8601 such as 2026-12-01T09:00+09:00, or +15m"
        ) from None
    try:
        if moment.tzinfo is None:
            moment = moment.astimezone()  # local time, as the user would read it
        return moment.timestamp()
    except (OverflowError, ValueError):  # 9999-12-31T23:59 west of UTC is in the year 10000
        raise ValidationError(f"the time {value!r} is out of range: {_SHOWN_YEARS}") from None


_SHOWN_YEARS = "give a time between the years 1 and 9999, as this machine's clock reads them"


def _shown(moment: float, value: str) -> float:
    """``moment``, once it is known to be a time this machine can show (in its time zone and in UTC): a row
    due at one it cannot would be queued and then break every listing of the queue."""
    try:
        dt.datetime.fromtimestamp(moment).astimezone()
        dt.datetime.fromtimestamp(moment, dt.UTC)
    except (OverflowError, ValueError, OSError):
        raise ValidationError(f"--at {value!r} is out of range: {_SHOWN_YEARS}") from None
    return moment


#: How far in the past ``--at`` may be (a command typed a little late): beyond, it is surely a mistake.
PAST_TOLERANCE = 300.0


def scheduled_time(value: str, now: float) -> float:
    """``--at``'s time, refused when it is more than :data:`PAST_TOLERANCE` in the past: a message meant for
    then must not go out now without a word."""
    moment = _shown(parse_at(value, now=now), value)
    if moment < now - PAST_TOLERANCE:
        ago = now - moment
        span = f"{ago / 86_400:.0f} days" if ago >= 2 * 86_400 else f"{ago / 60:.0f} minutes"
        fail(
            f"--at {value!r} reads as {when(moment)}, {span} in the past",
            hint="give a time to come (e.g. +15m, or a date with its offset such as "
            f"{when(now + 86_400)}), or leave out --at to send now",
        )
    return moment
