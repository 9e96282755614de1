"""The checks every backend applies to what it is given, so that all of them refuse exactly the same input.

Recipient ids and names are checked here too: the configuration's names and the gateway's share one rule.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection
from typing import Final, Literal, get_args

from linepush.errors import ValidationError

# The retry-key rule is the library's (one rule for a direct send and the outbox); the store re-exports it.
from linepush.retry_key import check_retry_key as check_retry_key
from linepush.retry_key import new_retry_key as new_retry_key
from linepush.store.records import (
    MESSAGE_STATES,
    TOKEN_KINDS,
    TOKEN_STATES,
    MessageState,
    TokenKind,
    TokenState,
)

__all__ = [
    "MAX_RECIPIENT_NAME",
    "RECIPIENT_TYPES",
    "RecipientType",
    "check_limit",
    "check_message_states",
    "check_name",
    "check_positive",
    "check_rate",
    "check_recipient_name",
    "check_retry_key",
    "check_row_id",
    "check_time",
    "check_token_kind",
    "check_token_states",
    "is_recipient_id",
    "new_retry_key",
    "recipient_type",
]

RecipientType = Literal["user", "group", "room"]
RECIPIENT_TYPES: Final[tuple[RecipientType, ...]] = get_args(RecipientType)
_RECIPIENT_ID = re.compile(r"[UCR][0-9a-f]{32}")
_RECIPIENT_TYPE_BY_PREFIX: Final[dict[str, RecipientType]] = {"U": "user", "C": "group", "R": "room"}
#: Longest recipient name; names are what people type after --to, so they stay short and plain.
MAX_RECIPIENT_NAME: Final = 64
_RECIPIENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check_token_kind(kind: object) -> TokenKind:
    if kind not in TOKEN_KINDS:
        raise ValidationError(f"token kind must be one of {', '.join(TOKEN_KINDS)}, not {kind!r}")
    return kind


def check_token_states(states: Collection[object]) -> list[TokenState]:
    for state in states:
        if state not in TOKEN_STATES:
            raise ValidationError(f"token state must be one of {', '.join(TOKEN_STATES)}, not {state!r}")
    return list(states)  # type: ignore[arg-type]


def check_message_states(states: Collection[object]) -> list[MessageState]:
    if isinstance(states, str):
        states = [states]
    for state in states:
        if state not in MESSAGE_STATES:
            raise ValidationError(f"message state must be one of {', '.join(MESSAGE_STATES)}, not {state!r}")
    return list(states)  # type: ignore[arg-type]


def check_time(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValidationError(f"{name} must be a finite number of seconds, not {value!r}")
    return float(value)


def check_positive(value: object, name: str) -> float:
    seconds = check_time(value, name)
    if seconds <= 0:
        raise ValidationError(f"{name} must be more than 0, not {value!r}")
    return seconds


def check_rate(interval: object, tolerance: object) -> tuple[float, float]:
    step = check_positive(interval, "interval")
    slack = check_time(tolerance, "tolerance")
    if slack < 0:
        raise ValidationError(f"tolerance must be 0 or more seconds, not {tolerance!r}")
    return step, slack


def check_name(value: object, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValidationError(f"{name} must be a non-empty string, not {value!r}")
    return value


def check_limit(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError(f"limit must be a whole number of at least 1, not {value!r}")
    return value


def check_row_id(value: object) -> int:
    """An id to look a row up by. Ids are 64-bit on every backend: one outside that range (``queue retry
    99999999999999999999999``) matches no row, so it is clamped rather than left for the database to
    refuse."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"an id must be a whole number, not {value!r}")
    return max(min(value, 2**63 - 1), -(2**63))


def recipient_type(recipient_id: str) -> RecipientType:
    """``user``, ``group`` or ``room`` for a well-formed id; raises :class:`ValidationError` otherwise."""
    if not isinstance(recipient_id, str) or _RECIPIENT_ID.fullmatch(recipient_id) is None:
        raise ValidationError(
            "must be a user ID (U...), group ID (C...) or room ID (R...): the letter followed by 32 "
            "lowercase hex digits",
            property="recipient_id",
        )
    return _RECIPIENT_TYPE_BY_PREFIX[recipient_id[0]]


def is_recipient_id(value: object) -> bool:
    return isinstance(value, str) and _RECIPIENT_ID.fullmatch(value) is not None


def check_recipient_name(name: object) -> str:
    if not isinstance(name, str) or _RECIPIENT_NAME.fullmatch(name) is None or is_recipient_id(name):
        raise ValidationError(
            f"must be 1 to {MAX_RECIPIENT_NAME} letters, digits, '-', '_' or '.', starting with a letter or "
            "digit, and not an id",
            property="name",
        )
    return name
