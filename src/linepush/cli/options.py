"""Options that several commands take, as typer declares them."""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["ToOption"]

ToOption = Annotated[
    list[str] | None,
    typer.Option(
        "--to",
        "-t",
        help="Recipient: a user (U…), group (C…) or room (R…) id. Repeat it (or separate ids by commas) to "
        "multicast to users. Default: `to` of the configuration.",
        show_default=False,
        metavar="ID",
    ),
]
