"""The channel-access-token endpoints of api.line.me (FACTS §1): v2 short-lived, v2.1, v3 stateless."""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from linepush.emulator.assertions import ASSERTION_TYPE, AssertionRejected, verify_assertion
from linepush.emulator.http import LineError, LineJSON, oauth_error, parse_form, read_body
from linepush.emulator.state import Channel, EmulatorState, Token

# FACTS §1.3 gives "access_token in invalid format" without defining the format; any printable token
# character set a bearer token may use (RFC 6750 b64token) is accepted, anything else is "invalid format".
_TOKEN_FORMAT = re.compile(r"[A-Za-z0-9\-._~+/]{1,4096}=*")
# The long-lived token never expires; LINE's example expires_in (≈ 99.4 years) is echoed as a far horizon.
_LONG_LIVED_HORIZON = 3_138_007_490


def _missing() -> LineError:
    return oauth_error("invalid_request", "some parameters missed or invalid")


_RATE_LIMITED = {"message": "The API rate limit has been exceeded. Try again later."}


def _state(request: Request) -> EmulatorState:
    state: EmulatorState = request.app.state.emulator
    return state


def _required(fields: dict[str, str], *names: str) -> list[str]:
    values = [fields.get(name, "") for name in names]
    if not all(values):
        raise _missing()
    return values


def _check_secret(channel: Channel, secret: str) -> bool:
    return hmac.compare_digest(channel.channel_secret.encode(), secret.encode("utf-8", "surrogatepass"))


def _expires_in(token: Token, now: float) -> int:
    if token.expires_at is None:
        return _LONG_LIVED_HORIZON
    return max(0, int(token.expires_at - now))


async def _form(request: Request) -> dict[str, str]:
    state = _state(request)
    return parse_form(request, await read_body(request, state.config.max_body_bytes))


async def issue_short_lived(request: Request) -> Response:
    state = _state(request)
    fields = await _form(request)
    grant, client_id, secret = _required(fields, "grant_type", "client_id", "client_secret")
    if grant != "client_credentials":
        raise _missing()
    channel = state.channels.get(client_id)
    if channel is None:
        raise oauth_error("invalid_client", "invalid client_id")
    if not state.take_rate(channel.channel_id, "POST /v2/oauth/accessToken"):
        # Not documented: the 429 body of token endpoints; the Messaging API's rate-limit body is used.
        raise LineError(429, _RATE_LIMITED)
    if not _check_secret(channel, secret):
        raise oauth_error("invalid_client", "invalid client_secret")
    token = state.issue_short_lived(channel)
    return LineJSON(
        {"access_token": token.value, "expires_in": state.config.short_lived_lifetime, "token_type": "Bearer"}
    )


async def verify_short_lived(request: Request) -> Response:
    state = _state(request)
    fields = await _form(request)
    value = fields.get("access_token", "")
    if not _TOKEN_FORMAT.fullmatch(value):
        raise oauth_error("invalid_request", "access_token in invalid format")
    token = state.token(value)
    now = state.now()
    # Any kind of token of the emulator verifies here (not documented which kinds LINE accepts).
    if token is None or token.revoked:
        raise oauth_error("invalid_request", "access_token invalid")
    if token.status(now) == "expired":
        # Not documented: an expired token is a listed cause without its own body.
        raise oauth_error("invalid_request", "access_token expired")
    return LineJSON({"client_id": token.channel_id, "expires_in": _expires_in(token, now), "scope": "P CM"})


async def revoke_short_lived(request: Request) -> Response:
    state = _state(request)
    fields = await _form(request)
    value = fields.get("access_token", "")
    if not _TOKEN_FORMAT.fullmatch(value):
        raise oauth_error("invalid_request")
    token = state.token(value)
    # An unknown token is not an error (FACTS §1.4). Stateless tokens cannot be revoked; they are left alone.
    if token is not None and token.kind != "v3":
        state.revoke(token)
    return Response(status_code=200)


def _jws_check(value: str) -> None:
    parts = value.split(".")
    if len(parts) != 3 or not all(parts):
        raise oauth_error("invalid_request", "The access token not JWS")
    try:
        header = json.loads(base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise oauth_error("invalid_request", "The access token malformed") from exc
    if not isinstance(header, dict):
        raise oauth_error("invalid_request", "The access token malformed")


def _assertion_or_error(state: EmulatorState, assertion: str, *, need_token_exp: bool) -> Channel:
    try:
        return verify_assertion(state, assertion, need_token_exp=need_token_exp).channel
    except AssertionRejected as exc:
        raise LineError(exc.status, exc.body) from exc


async def issue_v21(request: Request) -> Response:
    state = _state(request)
    fields = await _form(request)
    grant, kind, assertion = _required(fields, "grant_type", "client_assertion_type", "client_assertion")
    if grant != "client_credentials" or kind != ASSERTION_TYPE:
        raise _missing()
    try:
        verified = verify_assertion(state, assertion, need_token_exp=True)
    except AssertionRejected as exc:
        raise LineError(exc.status, exc.body) from exc
    lifetime = int(verified.claims["token_exp"])
    token = state.issue_v21(verified.channel, lifetime)
    if token is None:
        raise LineError(400, {"message": "The maximum number of access tokens has already been issued"})
    return LineJSON(
        {"access_token": token.value, "token_type": "Bearer", "expires_in": lifetime, "key_id": token.key_id}
    )


async def verify_v21(request: Request) -> Response:
    state = _state(request)
    value = request.query_params.get("access_token", "")
    if not value:
        raise _missing()
    _jws_check(value)
    token = state.token(value)
    now = state.now()
    if token is None or token.revoked or token.kind not in ("v2.1", "v3"):
        # Not documented: the body for a non-existent token (a listed cause).
        raise oauth_error("invalid_request", "The access token invalid")
    if token.status(now) == "expired":
        raise oauth_error("invalid_request", "The access token expired")
    return LineJSON({"client_id": token.channel_id, "expires_in": _expires_in(token, now)})


async def revoke_v21(request: Request) -> Response:
    state = _state(request)
    fields = await _form(request)
    client_id, secret, value = _required(fields, "client_id", "client_secret", "access_token")
    channel = state.channels.get(client_id)
    # Not documented: errors for bad client credentials here; the v2 issue endpoint's bodies are reused.
    if channel is None:
        raise oauth_error("invalid_client", "invalid client_id")
    if not _check_secret(channel, secret):
        raise oauth_error("invalid_client", "invalid client_secret")
    _jws_check(value)
    token = state.token(value)
    if token is None or token.channel_id != channel.channel_id:
        if state.config.revoke_unknown_v21_is_error:
            raise oauth_error("invalid_request", "The access token invalid")
        return Response(status_code=200)
    if token.kind == "v2.1":
        state.revoke(token)
    return Response(status_code=200)


async def list_kids(request: Request) -> Response:
    state = _state(request)
    kind = request.query_params.get("client_assertion_type", "")
    assertion = request.query_params.get("client_assertion", "")
    if not kind or not assertion or kind != ASSERTION_TYPE:
        raise _missing()
    channel = _assertion_or_error(state, assertion, need_token_exp=False)
    tokens = sorted(state.valid_tokens(channel.channel_id, "v2.1"), key=lambda t: t.issued_at)
    return LineJSON({"kids": [t.key_id for t in tokens]})


async def issue_stateless(request: Request) -> Response:
    state = _state(request)
    fields = await _form(request)
    if fields.get("grant_type") != "client_credentials":
        raise _missing()
    if "client_assertion" in fields or "client_assertion_type" in fields:
        _, kind, assertion = _required(fields, "grant_type", "client_assertion_type", "client_assertion")
        if kind != ASSERTION_TYPE:
            raise _missing()
        # Whether token_exp matters for v3 is not documented; it is ignored.
        channel = _assertion_or_error(state, assertion, need_token_exp=False)
    else:
        _, client_id, secret = _required(fields, "grant_type", "client_id", "client_secret")
        found = state.channels.get(client_id)
        # Documented for a bad secret; a bad channel id gets the same body (not documented).
        if found is None or not _check_secret(found, secret):
            raise oauth_error("invalid_request", "Invalid 'client_credentials'.")
        channel = found
    token = state.issue_stateless(channel)
    return LineJSON(
        {"token_type": "Bearer", "access_token": token.value, "expires_in": state.config.stateless_lifetime}
    )


ROUTES = [
    Route("/v2/oauth/accessToken", issue_short_lived, methods=["POST"]),
    Route("/v2/oauth/verify", verify_short_lived, methods=["POST"]),
    Route("/v2/oauth/revoke", revoke_short_lived, methods=["POST"]),
    Route("/oauth2/v2.1/token", issue_v21, methods=["POST"]),
    Route("/oauth2/v2.1/verify", verify_v21, methods=["GET"]),
    Route("/oauth2/v2.1/revoke", revoke_v21, methods=["POST"]),
    Route("/oauth2/v2.1/tokens/kid", list_kids, methods=["GET"]),
    Route("/oauth2/v3/token", issue_stateless, methods=["POST"]),
]
