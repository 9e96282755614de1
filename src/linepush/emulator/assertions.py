"""Checks of the JWT client assertion (FACTS §2): RS256 only, signed by a registered key, right claims.

Written from scratch on ``cryptography`` rather than a JWT library so that every rejection is a deliberate,
LINE-shaped answer and no library default (accepted algorithms, clock, leeway) leaks into the emulator.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from linepush.emulator.config import EmulatorConfig
from linepush.emulator.state import Channel, EmulatorState

AUDIENCE = "https://api.line.me/"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class AssertionRejected(Exception):
    """The assertion was refused; ``status`` and ``body`` are the HTTP answer."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body)
        self.status = status
        self.body = body


def _invalid_client(description: str) -> AssertionRejected:
    return AssertionRejected(400, {"error": "invalid_client", "error_description": description})


@dataclass(frozen=True)
class VerifiedAssertion:
    channel: Channel
    kid: str
    claims: dict[str, Any]


def _b64_json(part: str, what: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError) as exc:
        # Not documented: LINE shows no body for a JWT that cannot be decoded (nested too deeply included).
        raise _invalid_client(f"Invalid JWT {what}") from exc
    if not isinstance(value, dict):
        raise _invalid_client(f"Invalid JWT {what}")
    return value


def _number(value: Any, config: EmulatorConfig) -> float | None:
    if isinstance(value, bool):
        return None
    if config.numeric_string_claims and isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value) if len(value) <= 30 else None
    if not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    # json.loads accepts NaN and Infinity; neither is a time.
    return number if math.isfinite(number) else None


def verify_assertion(state: EmulatorState, assertion: str, *, need_token_exp: bool) -> VerifiedAssertion:
    """Verify ``assertion`` against the emulator's registered keys and clock, or raise AssertionRejected.

    Documented answers (FACTS §1.5, §1.8, §2.3): unknown kid → 404, iss mismatch → "iss and clientId of key
    do not match", expired → "Invalid exp". The other rejections are not documented; they use the same
    invalid_client shape with a description naming the faulty part.
    """
    config = state.config
    parts = assertion.split(".")
    if len(parts) != 3 or not all(parts):
        raise _invalid_client("Invalid JWT format")
    header = _b64_json(parts[0], "header")
    if header.get("alg") != "RS256":
        raise _invalid_client("Invalid alg")
    kid = header.get("kid")
    found = state.find_key(kid) if isinstance(kid, str) else None
    if found is None or not isinstance(kid, str):
        raise AssertionRejected(404, {"message": "Cannot find channel key that satisfies the conditions"})
    channel, key = found
    try:
        signature = base64.urlsafe_b64decode(parts[2] + "=" * (-len(parts[2]) % 4))
        key.verify(signature, f"{parts[0]}.{parts[1]}".encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError) as exc:
        raise _invalid_client("Invalid signature") from exc
    claims = _b64_json(parts[1], "payload")
    if claims.get("iss") != channel.channel_id or claims.get("sub") != channel.channel_id:
        raise _invalid_client("iss and clientId of key do not match")
    if claims.get("aud") != AUDIENCE:
        raise _invalid_client("Invalid aud")
    exp = _number(claims.get("exp"), config)
    now = state.now()
    if exp is None or exp <= now or exp > now + config.max_assertion_lifetime + config.assertion_leeway:
        raise _invalid_client("Invalid exp")
    if need_token_exp:
        token_exp = _number(claims.get("token_exp"), config)
        if token_exp is None or token_exp != int(token_exp) or not 0 < token_exp <= config.max_token_exp:
            raise _invalid_client("Invalid token_exp")
        claims["token_exp"] = int(token_exp)
    return VerifiedAssertion(channel=channel, kid=kid, claims=claims)
