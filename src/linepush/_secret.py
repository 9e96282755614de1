"""A string that never shows itself by accident: in reprs, logs, f-strings and exception texts."""

from __future__ import annotations

from typing import Final

_SHOWN: Final = 4


class Secret:
    """Wraps a token, channel secret or key material.

    ``str()`` and ``repr()`` give a short prefix and "…"; :meth:`reveal` gives the value and is the only way
    to get it, so every place that needs the real value says so.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str | Secret) -> None:
        self._value = value.reveal() if isinstance(value, Secret) else value

    def reveal(self) -> str:
        return self._value

    @property
    def masked(self) -> str:
        return mask(self._value)

    def __repr__(self) -> str:
        return f"Secret({self.masked!r})"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return self.masked

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> tuple[type[Secret], tuple[str]]:
        return (Secret, (self._value,))


def mask(value: str) -> str:
    """A short prefix of a secret followed by "…" (nothing at all of short values)."""
    if len(value) <= 12:
        return "…"
    return value[:_SHOWN] + "…"


def masked_url(url: str) -> str:
    """A URL fit to show: a password in it (``user:password@`` or ``?password=``) becomes "…"."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url  # a file path
    # The user part ends at the last "@": a password not percent-encoded may hold "@", "/" or "?" (and an
    # "@" further on hides more than the password, never less).
    userinfo, at, place = rest.rpartition("@")
    user = userinfo.split(":", 1)[0] + ":…@" if at and ":" in userinfo else userinfo + at
    where, query_sep, query = place.partition("?")
    where = user + where
    if query_sep:
        query = "&".join(
            part.split("=", 1)[0] + "=…" if part.split("=", 1)[0].lower() == "password" else part
            for part in query.split("&")
        )
    return f"{scheme}://{where}{query_sep}{query}"
