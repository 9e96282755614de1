"""The typer application every command adds itself to, and how its help labels options."""

from __future__ import annotations

from typing import Any

import typer
import typer.core

from linepush._version import __version__

#: typer's Python type names, as click-based commands name what an option takes.
_PLAIN_LABELS = {"str": "TEXT", "int": "INTEGER", "float": "NUMBER", "path": "PATH", "file": "FILE"}


def _value_label(param: Any, ctx: Any) -> str | None:
    """What help shows after an option: its metavar (FILE, URL…), else the plain name of what it takes
    (TEXT, INTEGER) or its choices, and nothing for a flag or an argument (its name is shown already).

    typer labels every option and argument with its Python type instead (``--json <bool>``, ``TOKEN <str>``),
    which tells a user of the command line nothing."""
    if isinstance(param, typer.core.TyperArgument):
        return None
    if param.metavar is not None:
        return str(param.metavar)
    if param.is_flag:
        return None
    label = str(param.display_type(ctx)).strip("<>")
    kind = label.split()[0] if label.endswith(" range") else label
    shown = _PLAIN_LABELS.get(kind.lower(), f"<{label}>")
    return shown + ("..." if param.nargs != 1 else "")


typer.core.TyperOption.display_type_rich = _value_label  # type: ignore[method-assign,assignment]
typer.core.TyperArgument.display_type_rich = _value_label  # type: ignore[method-assign,assignment]

app = typer.Typer(
    name="linepush",
    help="Send LINE messages without thinking about channel access tokens, and without losing a message.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"linepush {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    config_file: str | None = typer.Option(
        None,
        "--config",
        metavar="FILE",
        help="The configuration file, for whichever command follows (also an option of each command).",
        show_default=False,
    ),
    channel: str | None = typer.Option(
        None,
        "--channel",
        metavar="NAME",
        help="The \\[channels.NAME] profile of the configuration, for whichever command follows.",
        show_default=False,
    ),
) -> None:
    """linepush: LINE Messaging API tokens, sends, a durable outbox and a local emulator."""
    # Before the command (`linepush --config FILE send …`), they mean what the command's own options do. As
    # the environment variables they stand for, they rank below the command's own options and above the
    # environment, as a flag does.
    import os

    if config_file is not None:
        os.environ["LINEPUSH_CONFIG"] = config_file
    if channel is not None:
        os.environ["LINEPUSH_CHANNEL"] = channel
