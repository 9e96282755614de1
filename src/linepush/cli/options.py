"""Options that several commands take, as typer declares them."""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["DigestOption", "ToOption"]

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


DigestOption = Annotated[
    str | None,
    typer.Option(
        "--digest",
        metavar="WINDOW",
        help="Merge what comes for one recipient within this window (30s, 2m, 1h) into one push, a digest "
        "sent when the window closes: it spares the monthly quota.",
        show_default=False,
    ),
]
