"""The decorator that declares a command, and the options every command takes (``--config``, ``--channel``,
``-o/--json``, ``--debug``…): they are added to its signature here, so each command module lists only its own
options. Running it is :func:`linepush.cli.invocation.run_command`'s work.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from linepush.cli.invocation import run_command

__all__ = ["command"]

F = TypeVar("F", bound=Callable[..., Any])

# --- the options every command gets ------------------------------------------------------------------------

_CONFIG_OPTIONS: list[inspect.Parameter] = [
    inspect.Parameter(
        "config_file",
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[
            Path | None,
            typer.Option(
                "--config",
                metavar="FILE",
                help="Configuration file (default: ./linepush.toml, then the user config dir).",
                rich_help_panel="Configuration",
            ),
        ],
    ),
    inspect.Parameter(
        "profile",
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[
            str | None,
            typer.Option(
                "--channel",
                "-c",
                metavar="NAME",
                help="Channel profile: a \\[channels.NAME] table of the configuration file.",
                rich_help_panel="Configuration",
            ),
        ],
    ),
    inspect.Parameter(
        "channel_id",
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[
            str | None,
            typer.Option(
                "--channel-id",
                metavar="ID",
                help="Channel id (over LINE_CHANNEL_ID).",
                rich_help_panel="Configuration",
            ),
        ],
    ),
    inspect.Parameter(
        "assertion_key_file",
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[
            str | None,
            typer.Option(
                "--key-file",
                metavar="FILE",
                help="Private assertion key file (over LINE_ASSERTION_KEY_FILE).",
                rich_help_panel="Configuration",
            ),
        ],
    ),
    inspect.Parameter(
        "assertion_kid",
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[
            str | None,
            typer.Option(
                "--kid",
                metavar="KID",
                help="Key id of the assertion key (over LINE_ASSERTION_KID).",
                rich_help_panel="Configuration",
            ),
        ],
    ),
    inspect.Parameter(
        "store",
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[
            str | None,
            typer.Option(
                "--store",
                metavar="URL",
                help="Store URL or file (over LINEPUSH_STORE).",
                rich_help_panel="Configuration",
            ),
        ],
    ),
    inspect.Parameter(
        "api_base",
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[
            str | None,
            typer.Option(
                "--api-base",
                metavar="URL",
                help="LINE API base URL, e.g. an emulator's (over LINEPUSH_API_BASE).",
                rich_help_panel="Configuration",
            ),
        ],
    ),
]
_OUTPUT_OPTION = inspect.Parameter(
    "output",
    inspect.Parameter.KEYWORD_ONLY,
    default="table",
    annotation=Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            help="Output format: table or json.",
            rich_help_panel="Output",
            show_default=True,
        ),
    ],
)
_JSON_OPTION = inspect.Parameter(
    "json_output",
    inspect.Parameter.KEYWORD_ONLY,
    default=False,
    annotation=Annotated[
        bool, typer.Option("--json", help="Print JSON (same as -o json).", rich_help_panel="Output")
    ],
)
_DEBUG_OPTION = inspect.Parameter(
    "debug",
    inspect.Parameter.KEYWORD_ONLY,
    default=False,
    annotation=Annotated[
        bool, typer.Option("--debug", help="Show tracebacks and library logs.", rich_help_panel="Output")
    ],
)


# --- the decorator --------------------------------------------------------------------------------------


def command(
    group: typer.Typer,
    name: str | None = None,
    *,
    config: bool = True,
    data: bool = True,
    json_flag: bool = True,
    **command_options: Any,
) -> Callable[[F], F]:
    """Register ``fn(inv: Invocation, **own_options)`` on ``group`` with the shared options added.

    ``config`` adds the configuration options, ``data`` the output options (``-o`` and, unless
    ``json_flag`` is false because the command uses ``--json`` for something else, ``--json``).
    """

    def decorate(fn: F) -> F:
        signature = inspect.signature(fn, eval_str=True)
        own = list(signature.parameters.values())[1:]  # the first is the Invocation
        extra: list[inspect.Parameter] = []
        if config:
            extra += _CONFIG_OPTIONS
        if data:
            extra.append(_OUTPUT_OPTION)
            if json_flag:
                extra.append(_JSON_OPTION)
        extra.append(_DEBUG_OPTION)
        taken = {p.name for p in extra}

        @functools.wraps(fn)
        def run(**kwargs: Any) -> None:
            shared = {p.name: kwargs.pop(p.name) for p in extra}
            if str(shared.get("output", "table")).lower() not in ("table", "json"):
                raise typer.BadParameter("use table or json", param_hint="-o/--output")
            code = run_command(fn, shared, kwargs, passthrough=(typer.Exit, typer.Abort, typer.BadParameter))
            if code:
                raise typer.Exit(code)

        clash = taken & {p.name for p in own}
        if clash:
            raise TypeError(f"{fn.__name__} declares shared option names {sorted(clash)}")
        params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own] + extra
        run.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in params}
        del run.__wrapped__  # typer must see the new signature, not fn's
        group.command(name, **command_options)(run)
        return fn

    return decorate
