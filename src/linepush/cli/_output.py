"""Where a command's lines go: rich on a terminal, plain text without importing rich when piped.

Commands write rich markup (``[dim]…[/]``, ``[red bold]error:[/]``). On a terminal rich renders it in colour;
into a pipe, a file or a cron job's mail rich prints the text without the tags, and importing rich to do that
costs a tenth of a one-shot command's start-up. :class:`Lines` does the plain case itself, with rich's own
markup rules, and hands everything else (tables, progress bars, a terminal) to a rich console made then.
"""

from __future__ import annotations

import os
import re
import sys
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["Lines", "escape", "plain"]

# rich.markup's own patterns: a tag is [ then a letter, #, / or @, up to the next ]; backslashes before it
# escape it when odd in number.
_TAG = re.compile(r"((\\*)\[([a-z#/@][^[]*?)])")
_ESCAPABLE = re.compile(r"(\\*)(\[[a-z#/@][^[]*?])")
#: Variables with which rich colours output that is not a terminal.
_FORCING = ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")


def escape(text: str) -> str:
    """``text`` with anything that reads as a markup tag escaped (as :func:`rich.markup.escape`)."""

    def add_backslash(match: re.Match[str]) -> str:
        backslashes, tag = match.groups()
        return f"{backslashes}{backslashes}\\{tag}"

    text = _ESCAPABLE.sub(add_backslash, text)
    if text.endswith("\\") and not text.endswith("\\\\"):
        return text + "\\"
    return text


def plain(markup: str) -> str:
    """The text rich shows for ``markup`` without styles: tags dropped, escaped ones shown as written."""
    out: list[str] = []
    position = 0
    for match in _TAG.finditer(markup):
        full, backslashes, _tag = match.groups()
        out.append(markup[position : match.start()])
        position = match.end()
        if backslashes:
            escaped, backslashes = divmod(len(backslashes), 2)
            out.append("\\" * escaped)
            if backslashes:  # an odd count: the tag is text
                out.append(full[len(match.group(2)) :])
    out.append(markup[position:])
    return "".join(out)


class Lines:
    """stdout (or stderr) for a command's lines. ``width`` is rich's, for what rich renders."""

    def __init__(self, *, stderr: bool = False, width: int | None = None) -> None:
        self._stderr = stderr
        self._width = width
        self._console: Console | None = None

    @property
    def file(self) -> IO[str]:
        # Looked up at each use, as rich does: tests and callers swap sys.stdout.
        return sys.stderr if self._stderr else sys.stdout

    def print(self, *objects: Any, **options: Any) -> None:
        """Print as :meth:`rich.console.Console.print` would (soft-wrapped, no highlighting)."""
        if not options and len(objects) == 1 and isinstance(objects[0], str) and not self._styled():
            self.file.write(plain(objects[0]).expandtabs(8) + "\n")
            return
        self.console.print(*objects, **options)

    @property
    def console(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=self._stderr, soft_wrap=True, highlight=False, width=self._width)
        return self._console

    def _styled(self) -> bool:
        """Whether rich would style the output: a terminal, or colour forced by the environment."""
        if self._console is not None:
            return True  # rich has been needed already: keep to one writer
        is_tty = getattr(self.file, "isatty", None)
        if is_tty is not None and is_tty():
            return True
        return any(os.environ.get(name) for name in _FORCING)
