"""What both store backends share: checking items before they are stored, and turning rows into records.

Keeping it in one place means SQLite and PostgreSQL refuse exactly the same input and hand back exactly the
same records.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from linepush._secret import Secret
from linepush.errors import ValidationError
from linepush.store.base import (
    MESSAGE_KINDS,
    GatewayToken,
    NewMessage,
    OutboxMessage,
    TokenRecord,
    WebhookRecipient,
    check_retry_key,
    check_time,
)
from linepush.store.base import (
    new_retry_key as fresh_retry_key,
)

# Compact, and refusing NaN and infinities, which LINE's JSON parser would refuse too.
_JSON: Final = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
# Errors and results are records for people: a value JSON cannot hold is kept as its text, not refused.
_JSON_LENIENT: Final = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=str
)


def _prepare(index: int, item: NewMessage, now: float) -> tuple[str, str, str, str, float, int]:
    """One item as the columns channel_id, kind, payload, retry_key, not_before, retry_key_given."""
    where = f"items[{index}]"
    if not isinstance(item, NewMessage):
        raise ValidationError("must be a NewMessage", property=where)
    if not isinstance(item.channel_id, str) or not item.channel_id:
        raise ValidationError("must be a non-empty string", property=f"{where}.channel_id")
    if item.kind not in MESSAGE_KINDS:
        raise ValidationError(f"must be one of {', '.join(MESSAGE_KINDS)}", property=f"{where}.kind")
    if not isinstance(item.payload, Mapping):
        raise ValidationError("must be a JSON object (a dict)", property=f"{where}.payload")
    try:
        payload = _JSON.encode(item.payload)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"cannot be stored as JSON: {exc}", property=f"{where}.payload") from None
    if item.not_before is None:
        not_before = now
    else:
        try:
            not_before = check_time(item.not_before, "not_before")
        except ValidationError as exc:
            raise ValidationError(exc.reason, property=f"{where}.not_before") from None
    if item.retry_key is None:
        return item.channel_id, item.kind, payload, fresh_retry_key(), not_before, 0
    return (
        item.channel_id,
        item.kind,
        payload,
        check_retry_key(item.retry_key, f"{where}.retry_key"),
        not_before,
        1,
    )


def _json_or_none(value: Mapping[str, Any] | None, name: str) -> str | None:
    if value is None:
        return None
    try:
        return _JSON_LENIENT.encode(value)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"{name} cannot be stored as JSON: {exc}") from None


def _float(value: float | None) -> float | None:
    # SQLite hands back REAL values that are whole numbers as int; the rows promise floats.
    return None if value is None else float(value)


def _token(row: tuple[Any, ...]) -> TokenRecord:
    return TokenRecord(
        id=row[0],
        channel_id=row[1],
        kind=row[2],
        access_token=Secret(row[3]),
        key_id=row[4],
        issued_at=float(row[5]),
        expires_at=_float(row[6]),
        state=row[7],
        superseded_at=_float(row[8]),
    )


def _message(row: tuple[Any, ...], *, decode: bool = True) -> OutboxMessage:
    """``decode``: the JSON columns arrive as text (SQLite) rather than parsed (psycopg)."""
    load = json.loads if decode else _as_is
    return OutboxMessage(
        id=row[0],
        channel_id=row[1],
        kind=row[2],
        payload=load(row[3]),
        retry_key=row[4],
        state=row[5],
        attempts=row[6],
        not_before=float(row[7]),
        first_attempt_at=_float(row[8]),
        lease_owner=row[9],
        lease_expires_at=_float(row[10]),
        created_at=float(row[11]),
        updated_at=float(row[12]),
        delivered_at=_float(row[13]),
        request_id=row[14],
        result=None if row[15] is None else load(row[15]),
        last_error=None if row[16] is None else load(row[16]),
    )


def _as_is(value: Any) -> Any:
    return value


def _gateway_token(row: tuple[Any, ...]) -> GatewayToken:
    return GatewayToken(
        id=row[0],
        channel_id=row[1],
        token_hash=row[2],
        recipient_id=row[3],
        name=row[4],
        created_at=float(row[5]),
        revoked_at=_float(row[6]),
    )


def _recipient(row: tuple[Any, ...]) -> WebhookRecipient:
    return WebhookRecipient(
        channel_id=row[0],
        recipient_id=row[1],
        type=row[2],
        first_seen_at=float(row[3]),
        last_seen_at=float(row[4]),
        last_event_type=row[5],
        sightings=row[6],
    )
