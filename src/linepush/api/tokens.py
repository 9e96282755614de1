"""Channel-access-token endpoints (v2 short-lived, v2.1, v3 stateless) as request builders and answer parsers.

No I/O: each function returns an :class:`~linepush.api._base.Operation` that a client sends. FACTS.md §1.
"""

from __future__ import annotations

import enum
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Final

from linepush._secret import Secret
from linepush.api._base import ApiResponse, Operation, api_error, expect_json_object, form_request
from linepush.errors import ConfigurationError, LineApiError, ValidationError

__all__ = [
    "IssuedToken",
    "TokenInfo",
    "TokenKind",
    "issue_short_lived",
    "issue_stateless",
    "issue_v21",
    "list_v21_key_ids",
    "revoke_short_lived",
    "revoke_v21",
    "token_error_hint",
    "verify_short_lived",
    "verify_v21",
]

GRANT_TYPE: Final = "client_credentials"
CLIENT_ASSERTION_TYPE: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

SHORT_LIVED_ISSUE_PATH: Final = "/v2/oauth/accessToken"
SHORT_LIVED_VERIFY_PATH: Final = "/v2/oauth/verify"
SHORT_LIVED_REVOKE_PATH: Final = "/v2/oauth/revoke"
V21_ISSUE_PATH: Final = "/oauth2/v2.1/token"
V21_VERIFY_PATH: Final = "/oauth2/v2.1/verify"
V21_REVOKE_PATH: Final = "/oauth2/v2.1/revoke"
V21_KEY_IDS_PATH: Final = "/oauth2/v2.1/tokens/kid"
STATELESS_ISSUE_PATH: Final = "/oauth2/v3/token"

# A compact JWS: three base64url segments. Anything else is refused before LINE sees it.
_COMPACT_JWS: Final = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
# Tokens, secrets and ids are printable ASCII; a stray newline read from a file is the usual mistake.
_PLAIN: Final = re.compile(r"[\x21-\x7e]+")


class TokenKind(enum.StrEnum):
    """The kind of a channel access token (DESIGN.md, "Tokens: the rules")."""

    V21 = "v2.1"
    """Issued with a JWT assertion; lifetime chosen by the caller, up to 30 days; at most 30 per channel."""
    V3 = "v3"
    """Stateless: 15 minutes, no cap, cannot be revoked."""
    V2 = "v2"
    """Short-lived: issued with channel id and secret, 30 days."""
    STATIC = "static"
    """Long-lived, pasted from the LINE Developers Console."""


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A newly issued channel access token. ``expires_at`` is UNIX time (request time + ``expires_in``)."""

    access_token: Secret
    token_type: str
    expires_in: int
    expires_at: float
    key_id: str | None
    kind: TokenKind


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """What a verify endpoint says about a token: its channel, seconds left and scope (not always given)."""

    client_id: str
    expires_in: int
    scope: str | None


# --- v2 short-lived (and long-lived) tokens ---


def issue_short_lived(channel_id: str, channel_secret: str | Secret, now: float) -> Operation[IssuedToken]:
    """``POST /v2/oauth/accessToken``: a 30-day token from channel id and secret.

    At LINE's 31st valid token this succeeds and LINE revokes the oldest one.
    """
    fields = {
        "grant_type": GRANT_TYPE,
        "client_id": _channel_id(channel_id),
        "client_secret": _channel_secret(channel_secret),
    }
    request = form_request("POST", SHORT_LIVED_ISSUE_PATH, fields)
    return Operation(request, _issued_parser(TokenKind.V2, _now(now), "the short-lived token request"))


def verify_short_lived(access_token: str | Secret) -> Operation[TokenInfo]:
    """``POST /v2/oauth/verify``: channel and remaining lifetime of a short-lived or long-lived token."""
    fields = {"access_token": _access_token(access_token)}
    request = form_request("POST", SHORT_LIVED_VERIFY_PATH, fields, idempotent=True)
    return Operation(request, _parse_token_info)


def revoke_short_lived(access_token: str | Secret) -> Operation[None]:
    """``POST /v2/oauth/revoke``: revoke a short-lived or long-lived token.

    LINE answers 200 with an empty body, also for a token it does not know.
    """
    fields = {"access_token": _access_token(access_token)}
    request = form_request("POST", SHORT_LIVED_REVOKE_PATH, fields, idempotent=True)
    return Operation(request, _parse_empty)


# --- v2.1 tokens (JWT assertion) ---


def issue_v21(assertion: str | Secret, now: float) -> Operation[IssuedToken]:
    """``POST /oauth2/v2.1/token``: a token whose lifetime is the assertion's ``token_exp``.

    A 400 "The maximum number of access tokens has already been issued" raises
    :class:`~linepush.errors.TokenLimitError`.
    """
    fields = {
        "grant_type": GRANT_TYPE,
        "client_assertion_type": CLIENT_ASSERTION_TYPE,
        "client_assertion": _assertion(assertion),
    }
    request = form_request("POST", V21_ISSUE_PATH, fields)
    return Operation(request, _issued_parser(TokenKind.V21, _now(now), "the v2.1 token request"))


def verify_v21(access_token: str | Secret) -> Operation[TokenInfo]:
    """``GET /oauth2/v2.1/verify?access_token=…``: channel and remaining lifetime of a v2.1 token.

    The token travels in the query string (LINE's design): transports must not log request URLs.
    """
    request = form_request("GET", V21_VERIFY_PATH, {"access_token": _access_token(access_token)})
    return Operation(request, _parse_token_info)


def revoke_v21(channel_id: str, channel_secret: str | Secret, access_token: str | Secret) -> Operation[None]:
    """``POST /oauth2/v2.1/revoke``: revoke a v2.1 token; needs the channel secret.

    LINE answers 200 with an empty body, also for a token it does not know.
    """
    fields = {
        "client_id": _channel_id(channel_id),
        "client_secret": _channel_secret(channel_secret),
        "access_token": _access_token(access_token),
    }
    request = form_request("POST", V21_REVOKE_PATH, fields, idempotent=True)
    return Operation(request, _parse_empty)


def list_v21_key_ids(assertion: str | Secret) -> Operation[list[str]]:
    """``GET /oauth2/v2.1/tokens/kid``: the ``key_id`` of every valid v2.1 token of the channel."""
    fields = {"client_assertion_type": CLIENT_ASSERTION_TYPE, "client_assertion": _assertion(assertion)}
    request = form_request("GET", V21_KEY_IDS_PATH, fields)
    return Operation(request, _parse_key_ids)


# --- v3 stateless tokens ---


def issue_stateless(
    now: float,
    *,
    assertion: str | Secret | None = None,
    channel_id: str | None = None,
    channel_secret: str | Secret | None = None,
) -> Operation[IssuedToken]:
    """``POST /oauth2/v3/token``: a 15-minute token, from a JWT assertion or from channel id and secret.

    Give exactly one of the two forms.
    """
    if assertion is not None:
        if channel_id is not None or channel_secret is not None:
            raise ValidationError(
                "give either a client assertion or a channel id and secret for a stateless token, not both"
            )
        fields = {
            "grant_type": GRANT_TYPE,
            "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": _assertion(assertion),
        }
    elif channel_id is None and channel_secret is None:
        raise ConfigurationError(
            "a stateless token needs either a client assertion (assertion key and kid) "
            "or the channel id and channel secret"
        )
    elif channel_id is None:
        raise ConfigurationError("a stateless token from a channel secret also needs the channel id")
    elif channel_secret is None:
        raise ConfigurationError("a stateless token from a channel id also needs the channel secret")
    else:
        fields = {
            "grant_type": GRANT_TYPE,
            "client_id": _channel_id(channel_id),
            "client_secret": _channel_secret(channel_secret),
        }
    request = form_request("POST", STATELESS_ISSUE_PATH, fields)
    return Operation(request, _issued_parser(TokenKind.V3, _now(now), "the stateless token request"))


# --- parsers ---


def _issued_parser(kind: TokenKind, now: float, what: str) -> Callable[[ApiResponse], IssuedToken]:
    # expires_at counts from when the request was built, not from LINE's answer: erring early is safe.
    def parse(response: ApiResponse) -> IssuedToken:
        data = _answer(response, now)
        token = data.get("access_token")
        if not isinstance(token, str) or not token:
            raise _malformed(response, f"{what} without an access_token")
        expires_in = _non_negative_int(data.get("expires_in"))
        if expires_in is None or expires_in == 0:
            raise _malformed(response, f"{what} without a positive integer expires_in")
        token_type = data.get("token_type", "Bearer")
        if not isinstance(token_type, str) or not token_type:
            raise _malformed(response, f"{what} with a token_type that is not a string")
        key_id = data.get("key_id")
        if key_id is not None and not isinstance(key_id, str):
            raise _malformed(response, f"{what} with a key_id that is not a string")
        if kind is TokenKind.V21 and not key_id:
            # Without key_id the token can never be matched against the list of valid key ids (and so
            # never be found superseded or revoked in time): refuse it rather than lose track of it.
            raise _malformed(response, f"{what} without a key_id")
        return IssuedToken(
            access_token=Secret(token),
            token_type=token_type,
            expires_in=expires_in,
            expires_at=now + expires_in,
            key_id=key_id,
            kind=kind,
        )

    return parse


def _parse_token_info(response: ApiResponse) -> TokenInfo:
    data = _answer(response)
    client_id = data.get("client_id")
    # The docs show a string; a number is accepted too, since it names the same channel.
    if isinstance(client_id, int) and not isinstance(client_id, bool):
        client_id = str(client_id)
    if not isinstance(client_id, str) or not client_id:
        raise _malformed(response, "the token verification without a client_id")
    expires_in = _non_negative_int(data.get("expires_in"))
    if expires_in is None:
        raise _malformed(response, "the token verification without a non-negative integer expires_in")
    scope = data.get("scope")
    if scope is not None and not isinstance(scope, str):
        raise _malformed(response, "the token verification with a scope that is not a string")
    return TokenInfo(client_id=client_id, expires_in=expires_in, scope=scope)


def _parse_empty(response: ApiResponse) -> None:
    # LINE documents 200 with an empty body; whatever body comes along is not needed.
    if not 200 <= response.status < 300:
        raise _refused(response)


def _parse_key_ids(response: ApiResponse) -> list[str]:
    data = _answer(response)
    kids = data.get("kids")
    if not isinstance(kids, list):
        raise _malformed(response, "the key id list without a 'kids' array")
    if not all(isinstance(kid, str) for kid in kids):
        raise _malformed(response, "a 'kids' array holding something other than strings")
    return list(kids)


def _answer(response: ApiResponse, sent_at: float | None = None) -> dict[str, Any]:
    if response.status != 200:
        raise _refused(response, sent_at)
    return expect_json_object(response)


def _refused(response: ApiResponse, sent_at: float | None = None) -> LineApiError:
    error = api_error(response)
    error.hint = token_error_hint(error, sent_at=sent_at, line_time=_line_time(response))
    return error


def _line_time(response: ApiResponse) -> float | None:
    """LINE's clock, from the answer's ``Date`` header (None when absent or unreadable)."""
    value = response.headers.get("date")
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


_CREDENTIALS_HINT = (
    "check LINE_CHANNEL_ID and LINE_CHANNEL_SECRET against the channel's Basic settings in the LINE "
    "Developers Console"
)
_TOKEN_HINTS: Final[dict[str, str]] = {
    "Cannot find channel key that satisfies the conditions": (
        "LINE knows no assertion key with this kid for the channel (a wrong kid, or the key was removed in "
        "the console): check LINE_ASSERTION_KID (--kid) against the kid the console shows under Basic "
        "settings > Assertion signing key, and LINE_CHANNEL_ID against the channel the key was registered in"
    ),
    "iss and clientId of key do not match": (
        "the assertion key is registered for another channel: check LINE_CHANNEL_ID against the channel "
        "whose console shows this kid"
    ),
    "Invalid signature": (
        "the private key does not match the public key LINE has for this kid: the key is not registered "
        "(another key is, under this kid). Register its public half (`linepush keys public`), or point "
        "LINE_ASSERTION_KEY_FILE at the key you registered"
    ),
    "invalid client_id": _CREDENTIALS_HINT,
    "invalid client_secret": _CREDENTIALS_HINT,
    "Invalid 'client_credentials'.": _CREDENTIALS_HINT,
}


def token_error_hint(
    error: LineApiError, *, sent_at: float | None = None, line_time: float | None = None
) -> str | None:
    """The likely cause of a token endpoint's refusal, and what to do, for the errors FACTS §1-§2 list.

    ``sent_at`` is this host's time when the request was made and ``line_time`` LINE's (its Date header):
    for an assertion refused as expired they tell whether this host's clock is off.
    """
    if error.status >= 500:
        return "LINE's token endpoint failed; no message was sent. Try again later"
    text = error.error_description or error.message
    if text == "Invalid exp":
        return _clock_hint(sent_at, line_time)
    return _TOKEN_HINTS.get(text)


def _clock_hint(sent_at: float | None, line_time: float | None) -> str:
    if sent_at is None or line_time is None:
        return (
            "LINE found the client assertion expired: this host's clock is probably off. Compare it with "
            "the Date header LINE sends (`curl -sI https://api.line.me/`) and set it right (NTP)"
        )
    skew = line_time - sent_at
    if abs(skew) < 60:
        # The clocks agree: the assertion itself asked for too long (exp at most 30 minutes ahead).
        return (
            "LINE found the client assertion's exp out of range, although this host's clock agrees with "
            "LINE's (Date header): the assertion must expire within 30 minutes of its creation"
        )
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(line_time))
    mine = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(sent_at))
    return (
        f"this host's clock is off: LINE's Date header says {stamp} while this host said {mine} "
        f"({_span(abs(skew))} {'behind' if skew > 0 else 'ahead'}). Set the clock right (NTP, "
        "`timedatectl`), then try again"
    )


def _span(seconds: float) -> str:
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 120:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


def _malformed(response: ApiResponse, what: str) -> LineApiError:
    # The body is deliberately not attached: a malformed success may still hold a live token.
    return LineApiError(
        response.status,
        f"LINE answered {what}",
        request_id=response.request_id,
    )


def _non_negative_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and value >= 0:
        return value
    return None


# --- argument checks (texts never hold the values) ---


def _now(now: float) -> float:
    if isinstance(now, bool) or not isinstance(now, int | float) or not math.isfinite(now) or now < 0:
        raise ValidationError("must be a finite, non-negative UNIX time in seconds", property="now")
    return float(now)


def _channel_id(value: str) -> str:
    if not isinstance(value, str) or not _PLAIN.fullmatch(value):
        raise ConfigurationError(
            "the channel id must be a non-empty string without spaces (the channel's id from the console)"
        )
    return value


def _channel_secret(value: str | Secret) -> str:
    raw = value.reveal() if isinstance(value, Secret) else value
    if not isinstance(raw, str) or not _PLAIN.fullmatch(raw):
        raise ConfigurationError(
            "the channel secret must be a non-empty string without spaces or line breaks"
        )
    return raw


def _access_token(value: str | Secret) -> str:
    raw = value.reveal() if isinstance(value, Secret) else value
    if not isinstance(raw, str) or not _PLAIN.fullmatch(raw):
        raise ValidationError(
            "must be a non-empty string without spaces or line breaks", property="access_token"
        )
    return raw


def _assertion(value: str | Secret) -> str:
    raw = value.reveal() if isinstance(value, Secret) else value
    if not isinstance(raw, str) or not _COMPACT_JWS.fullmatch(raw):
        raise ValidationError(
            "must be a signed JWT in compact form (three base64url parts joined by dots)",
            property="client_assertion",
        )
    return raw
