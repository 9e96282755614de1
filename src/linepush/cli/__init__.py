"""The ``linepush`` command line: argument parsing and printing only; the work is done by the library."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from linepush._version import __version__

if TYPE_CHECKING:
    from linepush.cli._app import app

__all__ = ["COMMANDS", "app", "main"]


def __getattr__(name: str) -> Any:
    # The typer application is built on first use, so that `linepush --version` starts without it.
    if name == "app":
        from linepush.cli._app import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: Each command (or command group) and the modules that add it to `app`, in the order help lists them. A
#: command's modules are imported only when it runs: cron jobs and shell loops start linepush every time.
COMMANDS: dict[str, tuple[str, ...]] = {
    "config": ("config",),
    "demo": ("demo",),
    "emulator": ("emulator",),
    "gateway": ("gateway",),
    "keys": ("keys",),
    "queue": ("queue",),
    "send": ("send",),
    "serve": ("serve",),
    "token": ("token",),
    "worker": ("worker",),
    "alerts": ("alerts",),
    "recipients": ("gateway", "recipients"),
    "quota": ("quota",),
}


def _command_name(argv: Sequence[str]) -> str | None:
    """The command a command line names (its first word that is not an option), if any."""
    for word in argv:
        if word == "--":
            return None
        if not word.startswith("-"):
            return word
    return None


def _register(argv: Sequence[str] = ()) -> None:
    """Import the modules of the command `argv` runs; all of them when it names none (help, a typo)."""
    name = _command_name(argv)
    wanted = COMMANDS.get(name, ()) if name is not None else ()
    if not wanted:
        wanted = tuple(dict.fromkeys(module for modules in COMMANDS.values() for module in modules))
    for module in wanted:
        importlib.import_module(f"linepush.cli.{module}")


def main() -> None:
    argv = sys.argv[1:]
    if argv == ["--version"]:
        print(f"linepush {__version__}")
        return
    if argv[:1] == ["send"]:
        # The common forms of a send run without typer (see linepush.cli._fast); the rest fall through.
        from linepush.cli._fast import run_send

        code = run_send(argv[1:])
        if code is not None:
            sys.exit(code)
    _register(argv)
    from linepush.cli._app import app

    if _asks_for_json(argv):
        _run_with_json_errors(app)
    app()


def _asks_for_json(argv: Sequence[str]) -> bool:
    """Whether a command line asks for JSON output: ``-o json``, or ``--json`` where it is that flag (on
    ``send`` and ``queue add`` it names the file of messages; a line naming either is taken as not asking)."""
    words = list(argv[: argv.index("--")] if "--" in argv else argv)
    for at, word in enumerate(words):
        if word in ("-o", "--output") and words[at + 1 : at + 2] in (["json"], ["JSON"]):
            return True
        if word.lower() in ("-ojson", "--output=json"):
            return True
    if "--json" not in words:
        return False
    return "send" not in words and not any(words[i : i + 2] == ["queue", "add"] for i in range(len(words)))


def _run_with_json_errors(app: Any) -> None:
    """Run ``app`` as typer would, except that an option or argument the command line refused is told as
    the JSON error every other failure is (typer's own entry point would print its box)."""
    import json

    import typer

    # typer 0.29 parses with a click of its own, whose errors are TyperExceptions; older ones use click's.
    refused: tuple[type[Exception], ...] = tuple(
        kind for kind in (getattr(typer, "TyperException", None), _click_exception()) if kind is not None
    )
    try:
        code = app(standalone_mode=False)
    except refused as exc:
        shown = exc.format_message()  # type: ignore[attr-defined]
        exit_with = int(getattr(exc, "exit_code", 2))
        error = {"error": "UsageError", "message": shown, "exit_code": exit_with}
        sys.stderr.write(json.dumps(error, indent=2, ensure_ascii=False) + "\n")
        sys.exit(exit_with)
    except typer.Abort:
        sys.stderr.write("Aborted!\n")
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


def _click_exception() -> type[Exception] | None:
    try:
        import click
    except ImportError:
        return None
    return click.ClickException
