"""Recipient ids (user, group, room) and custom aggregation units, checked as LINE would (FACTS.md §3.1)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from linepush.errors import ValidationError
from linepush.messages._limits import (
    _WORD_RE,
    MAX_AGGREGATION_UNIT_LENGTH,
    MAX_AGGREGATION_UNITS,
    MULTICAST_MAX_RECIPIENTS,
)

_RECIPIENT_RE = re.compile(r"[UCR][0-9a-f]{32}")
_USER_RE = re.compile(r"U[0-9a-f]{32}")


# --- Recipients and aggregation units -----------------------------------------------------------------


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 42 else text[:40] + "…"


def validate_to(to: str, *, property: str = "to") -> str:
    """Check one push recipient: a user (``U``), group (``C``) or room (``R``) id. Returns it unchanged."""
    if type(to) is str and _RECIPIENT_RE.fullmatch(to) is not None:
        return to
    raise ValidationError(
        "Must be a user ID (U...), group ID (C...) or room ID (R...): the letter followed by 32 "
        f"lowercase hex digits; got {_shown(to)}",
        property=property,
    )


def validate_user_ids(
    ids: Iterable[str], *, property: str = "to", limit: int | None = MULTICAST_MAX_RECIPIENTS
) -> list[str]:
    """Check multicast recipients: 1–``limit`` user ids (``U`` + 32 lowercase hex). Returns them as a list.

    ``limit=None`` checks a list of any length (one that will be split into requests of 500).
    """
    if isinstance(ids, str | bytes) or not isinstance(ids, Iterable):
        raise ValidationError("Must be a list of user IDs", property=property)
    result = list(ids)
    if not result or (limit is not None and len(result) > limit):
        raise ValidationError(f"Size must be between 1 and {limit}", property=property)
    for i, user_id in enumerate(result):
        if type(user_id) is not str or _USER_RE.fullmatch(user_id) is None:
            hint = ""
            if type(user_id) is str and _RECIPIENT_RE.fullmatch(user_id) is not None:
                hint = " (multicast accepts user IDs only, not group or room IDs)"
            raise ValidationError(
                f"Must be a user ID: U followed by 32 lowercase hex digits{hint}; got {_shown(user_id)}",
                property=f"{property}[{i}]",
            )
    return result


def validate_custom_aggregation_units(
    units: Sequence[str] | None, *, property: str = "customAggregationUnits"
) -> list[str] | None:
    """Check ``customAggregationUnits``: at most one name of 1–30 characters of ``[A-Za-z0-9_]``."""
    if units is None:
        return None
    if isinstance(units, str | bytes) or not isinstance(units, Iterable):
        raise ValidationError("Must be a list of unit names", property=property)
    result = list(units)
    if len(result) > MAX_AGGREGATION_UNITS:
        raise ValidationError(f"Size must be between 0 and {MAX_AGGREGATION_UNITS}", property=property)
    for i, unit in enumerate(result):
        if (
            type(unit) is not str
            or not 0 < len(unit) <= MAX_AGGREGATION_UNIT_LENGTH
            or _WORD_RE.fullmatch(unit) is None
        ):
            raise ValidationError(
                f"Must be 1 to {MAX_AGGREGATION_UNIT_LENGTH} characters of [A-Za-z0-9_]; got {_shown(unit)}",
                property=f"{property}[{i}]",
            )
    return result
