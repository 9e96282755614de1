"""The Messaging API endpoints of api.line.me (FACTS §3): send, validate, quota, narrowcast progress."""

from __future__ import annotations

import secrets
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from linepush.emulator.http import LineError, LineJSON, media_type, parse_json, read_body, request_id
from linepush.emulator.state import Channel, Delivery, EmulatorState
from linepush.emulator.validation import QUOTABLE_TYPES, UUID, BodyInvalid, property_invalid, validate_body

UNAUTHORIZED = {
    "message": "Authentication failed due to the following reason: invalid token. "
    "Confirm that the access token in the authorization header is valid."
}
RATE_LIMITED = {"message": "The API rate limit has been exceeded. Try again later."}
SEND_ENDPOINTS = ("push", "multicast", "broadcast", "narrowcast")
# Only these accept X-Line-Retry-Key (FACTS §3.7); reply is sent by the same handler but refuses it.
VALIDATE_KINDS = ("reply", "push", "multicast", "narrowcast", "broadcast")
NARROWCAST_PROGRESS_DAYS = 14


def _state(request: Request) -> EmulatorState:
    state: EmulatorState = request.app.state.emulator
    return state


def authenticate(request: Request) -> Channel:
    """The channel of the bearer token, or 401. Any valid token kind of the channel works."""
    state = _state(request)
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    token = state.token(value.strip()) if scheme.lower() == "bearer" else None
    if token is None or token.status(state.now()) != "valid":
        # FACTS §8.3: missing, expired and revoked tokens get the same observed 401 body.
        raise LineError(401, UNAUTHORIZED)
    return state.channels[token.channel_id]


def _limit(request: Request, channel: Channel) -> None:
    key = f"{request.method} {request.url.path}"
    if not _state(request).take_rate(channel.channel_id, key):
        raise LineError(429, RATE_LIMITED)


def _refuse_retry_key(request: Request) -> None:
    if "x-line-retry-key" in request.headers:
        # FACTS §3.7: 400 on endpoints other than the four sends; the body is not documented.
        raise LineError(400, {"message": "The X-Line-Retry-Key header is not supported by this endpoint"})


def _check_json_type(request: Request) -> None:
    if media_type(request) != "application/json":
        shown = request.headers.get("content-type", "null")
        raise LineError(415, {"message": f"The content type, {shown}, is not supported"})


def _message_id() -> str:
    return str(secrets.randbelow(9 * 10**17) + 10**17)


def _iso(moment: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(moment)) + f".{int(moment % 1 * 1000):03d}Z"


def _recipients(
    state: EmulatorState, channel: Channel, endpoint: str, body: dict[str, Any]
) -> tuple[list[str], list[str], bool]:
    """Who was addressed, who is reached, and whether the send counts against the quota; or LINE's 400."""
    if endpoint == "reply":
        recipient_id = state.use_reply_token(channel, body["replyToken"])
        if recipient_id is None:
            raise LineError(400, {"message": "Invalid reply token"})
        return [recipient_id], [recipient_id], False  # replies are free (FACTS §3.8)
    if endpoint == "push":
        recipient = state.recipient_state(channel, body["to"])
        if recipient == "unknown":
            raise LineError(400, {"message": "Failed to send messages"})
        # A blocked user still gets a 200 and nothing is delivered (FACTS §3.2).
        return [body["to"]], [] if recipient == "blocked" else [body["to"]], True
    if endpoint == "multicast":
        delivered = []
        for i, rid in enumerate(body["to"]):
            recipient = state.recipient_state(channel, rid)
            if recipient == "unknown":
                raise LineError(400, property_invalid(f"to[{i}]"))
            if recipient == "friend":
                delivered.append(rid)
        return list(body["to"]), delivered, True
    return [], channel.friends(), True


async def send(request: Request) -> Response:
    endpoint = request.url.path.rsplit("/", 1)[-1]
    seen: dict[str, Any] = {}
    try:
        return await _send(request, endpoint, seen)
    except LineError as exc:
        # Refused sends show in the inbox too, with what LINE would have answered.
        _state(request).record_refusal(
            endpoint=endpoint,
            channel_id=seen.get("channel_id"),
            body=seen.get("body"),
            status=exc.status,
            error=exc.body,
            request_id=request_id(request),
            retry_key=request.headers.get("x-line-retry-key"),
        )
        raise


async def _send(request: Request, endpoint: str, seen: dict[str, Any]) -> Response:
    state = _state(request)
    raw = await read_body(request, state.config.max_body_bytes)
    channel = authenticate(request)
    seen["channel_id"] = channel.channel_id
    _limit(request, channel)
    _check_json_type(request)
    body = parse_json(raw)
    seen["body"] = body
    if endpoint == "reply":
        _refuse_retry_key(request)
    retry_key = request.headers.get("x-line-retry-key")
    if retry_key is not None:
        if not UUID.fullmatch(retry_key):
            # FACTS §3.7: the answer to a key that is not a UUID is not documented.
            raise LineError(400, {"message": "The X-Line-Retry-Key header must be a UUID"})
        state.note_retry_use(channel, retry_key, body)
        accepted = state.accepted_retry(channel, retry_key)
        if accepted is not None:
            conflict: dict[str, Any] = {"message": "The retry key is already accepted"}
            # A push is answered with the accepted request's own sentMessages (FACTS §3.7); a key that a
            # multicast, broadcast or narrowcast took has none to repeat, and an empty list is never sent.
            if endpoint == "push" and accepted.body.get("sentMessages"):
                conflict["sentMessages"] = accepted.body["sentMessages"]
            raise LineError(409, conflict, {"x-line-accepted-request-id": accepted.request_id})
    try:
        validate_body(endpoint, body, state.config)
    except BodyInvalid as exc:
        raise LineError(400, exc.body) from exc

    to, delivered, counted = _recipients(state, channel, endpoint, body)
    # One message per recipient, whatever the number of message objects (FACTS §3.8).
    if counted and not state.consume_quota(channel, len(delivered)):
        raise LineError(429, {"message": "You have reached your monthly limit."})

    answer: dict[str, Any] = {}
    if endpoint in ("push", "reply"):
        answer["sentMessages"] = [
            {"id": _message_id(), "quoteToken": secrets.token_urlsafe(48)}
            if message.get("type") in QUOTABLE_TYPES
            else {"id": _message_id()}
            for message in body["messages"]
        ]
    rid_now = request_id(request)
    state.record_delivery(
        Delivery(
            endpoint=endpoint,
            channel_id=channel.channel_id,
            to=to,
            delivered_to=delivered,
            messages=body["messages"],
            retry_key=retry_key,
            request_id=rid_now,
            time=state.now(),
            notification_disabled=body.get("notificationDisabled") is True,
        )
    )
    if retry_key is not None:
        state.remember_retry(channel, retry_key, rid_now, answer)
    return LineJSON(answer, status_code=202 if endpoint == "narrowcast" else 200)


async def validate(request: Request) -> Response:
    kind = request.path_params["kind"]
    state = _state(request)
    raw = await read_body(request, state.config.max_body_bytes)
    channel = authenticate(request)
    if kind not in VALIDATE_KINDS:
        raise LineError(501, {"message": f"POST {request.url.path} is not served by the linepush emulator"})
    _limit(request, channel)
    _refuse_retry_key(request)
    _check_json_type(request)
    body = parse_json(raw)
    try:
        validate_body(f"validate/{kind}", body, state.config)
    except BodyInvalid as exc:
        raise LineError(400, exc.body) from exc
    return LineJSON({})


async def quota(request: Request) -> Response:
    channel = authenticate(request)
    _limit(request, channel)
    _refuse_retry_key(request)
    if channel.monthly_quota is None:
        return LineJSON({"type": "none"})
    return LineJSON({"type": "limited", "value": channel.monthly_quota})


async def consumption(request: Request) -> Response:
    channel = authenticate(request)
    _limit(request, channel)
    _refuse_retry_key(request)
    return LineJSON({"totalUsage": _state(request).usage(channel)})


async def narrowcast_progress(request: Request) -> Response:
    state = _state(request)
    channel = authenticate(request)
    _limit(request, channel)
    _refuse_retry_key(request)
    wanted = request.query_params.get("requestId")
    if not wanted:
        raise LineError(
            400,
            {
                "message": "The request body has 1 error(s)",
                "details": [{"message": "May not be empty", "property": "requestId"}],
            },
        )
    delivery = state.narrowcast(wanted)
    too_old = delivery is not None and state.now() - delivery.time > NARROWCAST_PROGRESS_DAYS * 86400
    if delivery is None or delivery.channel_id != channel.channel_id or too_old:
        raise LineError(404, {"message": "Not found"})
    count = len(delivery.delivered_to)
    return LineJSON(
        {
            "phase": "succeeded",
            "successCount": count,
            "failureCount": 0,
            "targetCount": count,
            "acceptedTime": _iso(delivery.time),
            "completedTime": _iso(delivery.time),
        }
    )


ROUTES = [
    *(Route(f"/v2/bot/message/{name}", send, methods=["POST"]) for name in (*SEND_ENDPOINTS, "reply")),
    Route("/v2/bot/message/validate/{kind}", validate, methods=["POST"]),
    Route("/v2/bot/message/quota", quota, methods=["GET"]),
    Route("/v2/bot/message/quota/consumption", consumption, methods=["GET"]),
    Route("/v2/bot/message/progress/narrowcast", narrowcast_progress, methods=["GET"]),
]
