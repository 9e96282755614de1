"""Gateway tokens: made here, shown once, and kept in the store only as their SHA-256.

A token has 32 random bytes in URL-safe base64 (43 characters, the length of a LINE Notify token, so scripts
that check its shape keep working).
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Final, Literal

from linepush._secret import Secret
from linepush.service.store import GatewayStore, GatewayToken, check_token_binding, gateway_store
from linepush.store import Store
from linepush.store.base import recipient_type

__all__ = [
    "MAX_TOKEN_LENGTH",
    "TOKEN_BYTES",
    "TargetType",
    "create_gateway_token",
    "hash_gateway_token",
    "target_type",
    "token_target_type",
]

TOKEN_BYTES: Final = 32
#: Longer values are not gateway tokens; hashing them would only cost time.
MAX_TOKEN_LENGTH: Final = 256

#: ROUTES: a token bound to a route table, not to one recipient (LINE Notify has no such target).
TargetType = Literal["USER", "GROUP", "ROOM", "ROUTES"]
_TARGET_TYPES: Final[dict[str, TargetType]] = {"user": "USER", "group": "GROUP", "room": "ROOM"}


def hash_gateway_token(token: str | Secret) -> str:
    """The SHA-256 of a token as 64 lowercase hex digits, as the store keeps it.

    A plain hash (no salt, no slow KDF) is enough: the token is 256 random bits, not a password, and the hash
    must be looked up directly on every request.
    """
    value = token.reveal() if isinstance(token, Secret) else token
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def create_gateway_token(
    store: Store | GatewayStore,
    channel_id: str,
    recipient_id: str | None,
    name: str | None,
    now: float,
    *,
    route_table: str | None = None,
) -> tuple[Secret, GatewayToken]:
    """Make a token for ``recipient_id`` of ``channel_id`` (or, with ``route_table`` and no recipient, for
    that route table), store its hash, and return the token (the only time it exists outside its holder's
    hands) with the stored record."""
    check_token_binding(recipient_id, route_table)  # refuse a bad binding before a token is made
    token = secrets.token_urlsafe(TOKEN_BYTES)
    tokens = gateway_store(store)
    record = tokens.create_gateway_token(
        channel_id, hash_gateway_token(token), recipient_id, name, now, route_table=route_table
    )
    return Secret(token), record


def target_type(recipient_id: str) -> TargetType:
    """LINE Notify's ``targetType`` for a recipient: USER, GROUP or ROOM."""
    return _TARGET_TYPES[recipient_type(recipient_id)]


def token_target_type(token: GatewayToken) -> TargetType:
    """What ``/api/status`` and the CLI call a token's target: its recipient's type, or ROUTES."""
    return "ROUTES" if token.recipient_id is None else target_type(token.recipient_id)
