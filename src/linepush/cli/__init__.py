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

    app()
