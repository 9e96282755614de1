"""The ``linepush`` command line: argument parsing and printing only; the work is done by the library."""

from __future__ import annotations

import typer

from linepush._version import __version__

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
) -> None:
    """linepush: LINE Messaging API tokens, sends, a durable outbox and a local emulator."""


def _register() -> None:
    # Each command group lives in its own module and adds itself to `app`.
    from linepush.cli import config, demo, emulator, gateway, keys, queue, send, serve, token, worker  # noqa: F401

    for module in ("alerts", "recipients"):  # the alert receivers' commands
        __import__(f"linepush.cli.{module}")


def main() -> None:
    _register()
    app()
