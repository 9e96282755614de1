"""`linepush send` without typer, for the command lines scripts and cron jobs run all day.

Building typer's command and coercing its options (typer 0.29 does it with pydantic) costs more than the rest
of a send put together. :func:`parse_send` reads the plain forms of `linepush send` (words, ``--to ID``,
``--opt=value``, the shared configuration options, known flags) and gives up (None) on anything else:
``--help``, an unknown or repeated option, ``--queue`` and the other outbox options, a value that looks
like an option, a number in an unusual spelling. Those go to typer, which stays the definition of the command
line; tests/cli/test_fast_send.py checks that both read every command line the same way.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from linepush.cli.invocation import run_command

__all__ = ["SHARED", "parse_send", "run_send"]

#: Options that take a value: the flag as typed, and the parameter it fills.
_VALUES: Final = {
    "--to": "to",
    "-t": "to",
    "--json": "json_file",
    "--retry-key": "retry_key",
    "--deadline": "deadline",
    "--config": "config_file",
    "--channel": "profile",
    "-c": "profile",
    "--channel-id": "channel_id",
    "--key-file": "assertion_key_file",
    "--kid": "assertion_kid",
    "--store": "store",
    "--api-base": "api_base",
    "--output": "output",
    "-o": "output",
}
_FLAGS: Final = {"--notification-disabled": "notification_disabled", "--debug": "debug"}
#: The parameters the shared options fill (see linepush.cli._command); the others are send's own.
SHARED: Final = (
    "config_file",
    "profile",
    "channel_id",
    "assertion_key_file",
    "assertion_kid",
    "store",
    "api_base",
    "output",
    "debug",
)
_DEFAULTS: Final[dict[str, Any]] = {
    "text": None,
    "to": None,
    "json_file": None,
    "notification_disabled": False,
    "retry_key": None,
    "deadline": 60.0,
    "config_file": None,
    "profile": None,
    "channel_id": None,
    "assertion_key_file": None,
    "assertion_kid": None,
    "store": None,
    "api_base": None,
    "output": "table",
    "debug": False,
}
_PLAIN_NUMBER: Final = re.compile(r"[0-9]{1,9}(\.[0-9]{1,9})?")


def parse_send(argv: Sequence[str]) -> dict[str, Any] | None:
    """The parameters of `linepush send ARGV` as typer would give them, or None to leave it to typer."""
    values: dict[str, Any] = {}
    words: list[str] = []
    position = 0
    while position < len(argv):
        word = argv[position]
        position += 1
        if word == "-" or not word.startswith("-"):
            words.append(word)
            continue
        name, equals, value = word.partition("=") if word.startswith("--") else (word, "", "")
        if name in _FLAGS and not equals:
            if _FLAGS[name] in values:
                return None
            values[_FLAGS[name]] = True
            continue
        key = _VALUES.get(name)
        if key is None:
            return None
        if not equals:
            if position >= len(argv):
                return None
            value = argv[position]
            position += 1
            if value.startswith("-") and value != "-":
                return None
        if key == "to":
            values.setdefault("to", []).append(value)
            continue
        if key in values:
            return None
        values[key] = value
    if "deadline" in values:
        if not _PLAIN_NUMBER.fullmatch(values["deadline"]):
            return None
        values["deadline"] = float(values["deadline"])
    if "output" in values and values["output"].lower() not in ("table", "json"):
        return None  # typer says what is wrong with it
    if "config_file" in values:
        values["config_file"] = Path(values["config_file"])
    if words:
        values["text"] = words
    return {**_DEFAULTS, **values}


def run_send(argv: Sequence[str]) -> int | None:
    """Run `linepush send ARGV` and return its exit code, or None when typer must read this command line."""
    parsed = parse_send(argv)
    if parsed is None:
        return None
    from linepush.cli.sending import send_immediately

    shared = {name: parsed.pop(name) for name in SHARED}
    return run_command(send_immediately, shared, parsed)
