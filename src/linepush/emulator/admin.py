"""The emulator's admin API under /_emulator/: channels, keys, recipients, simulated users' events and the
webhook they go to, deliveries, faults, clock, reset.

Each route is a thin JSON shell around a method of :class:`~linepush.emulator.state.EmulatorState`, so
in-process tests can call the same operations directly.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from linepush.emulator import webhooks
from linepush.emulator.http import LineJSON, read_body
from linepush.emulator.state import AdminError, EmulatorState

PREFIX = "/_emulator"
_ADMIN_BODY_LIMIT = 1024 * 1024


def _state(request: Request) -> EmulatorState:
    state: EmulatorState = request.app.state.emulator
    return state


async def _body(request: Request, *, allow_empty: bool = False) -> dict[str, Any]:
    raw = await read_body(request, _ADMIN_BODY_LIMIT)
    if not raw.strip() and allow_empty:
        return {}
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise AdminError("the body must be a JSON object") from exc
    if not isinstance(value, dict):
        raise AdminError("the body must be a JSON object")
    return value


async def create_channel(request: Request) -> Response:
    body = await _body(request, allow_empty=True)
    channel = _state(request).create_channel(
        name=body.get("name"),
        monthly_quota=body.get("monthly_quota"),
        channel_id=body.get("channel_id"),
        channel_secret=body.get("channel_secret"),
    )
    return LineJSON({"channel_id": channel.channel_id, "channel_secret": channel.channel_secret})


async def list_channels(request: Request) -> Response:
    state = _state(request)
    return LineJSON(
        {
            "channels": [
                {
                    "channel_id": c.channel_id,
                    "name": c.name,
                    "monthly_quota": c.monthly_quota,
                    "kids": sorted(c.keys),
                    "usage": state.usage(c),
                }
                for c in list(state.channels.values())
            ]
        }
    )


async def register_key(request: Request) -> Response:
    body = await _body(request)
    kid = _state(request).register_key(request.path_params["channel_id"], body)
    return LineJSON({"kid": kid})


async def long_lived_token(request: Request) -> Response:
    token = _state(request).issue_long_lived(request.path_params["channel_id"])
    return LineJSON({"access_token": token})


async def set_recipient(request: Request) -> Response:
    body = await _body(request)
    channel_id = request.path_params["channel_id"]
    _state(request).set_recipient(channel_id, body.get("id"), body.get("state"))  # type: ignore[arg-type]
    return LineJSON({"channel_id": channel_id, "id": body.get("id"), "state": body.get("state")})


async def reply_token(request: Request) -> Response:
    body = await _body(request)
    value = _state(request).issue_reply_token(request.path_params["channel_id"], body.get("to"))  # type: ignore[arg-type]
    return LineJSON({"replyToken": value})


async def events(request: Request) -> Response:
    """A simulated user does something; the bot gets the webhook LINE would send, and we say how it went."""
    state = _state(request)
    channel = state.channel(request.path_params["channel_id"])
    event, chat = webhooks.build_event(state, channel, await _body(request))
    seq = state.record_event(channel.channel_id, chat, event)
    attempts = await webhooks.deliver(state, channel, [event])
    outcome: dict[str, Any] = {
        "status": attempts[-1].status if attempts else None,
        "attempts": [a.as_json() for a in attempts],
    }
    if not attempts:
        outcome["reason"] = "the channel has no active webhook URL"
    state.record_webhook(seq, outcome)
    return LineJSON({"event": event, **outcome})


async def webhook(request: Request) -> Response:
    state = _state(request)
    channel = state.channel(request.path_params["channel_id"])
    if request.method == "PUT":
        body = await _body(request)
        url = body.get("url", channel.webhook.url)
        if url is not None and not webhooks.acceptable_url(state.config, url):
            raise AdminError("'url' must be an http(s) URL (of an allowed host) or null")
        for flag in ("active", "redelivery"):
            if flag in body and not isinstance(body[flag], bool):
                raise AdminError(f"'{flag}' must be true or false")
        channel.webhook.url = url
        channel.webhook.active = body.get("active", channel.webhook.active)
        channel.webhook.redelivery = body.get("redelivery", channel.webhook.redelivery)
    hook = channel.webhook
    return LineJSON({"url": hook.url, "active": hook.active, "redelivery": hook.redelivery})


async def secret(request: Request) -> Response:
    """The channel secret, for whoever asks for it by name (the inbox's "show secret")."""
    channel = _state(request).channel(request.path_params["channel_id"])
    return LineJSON({"channel_id": channel.channel_id, "channel_secret": channel.channel_secret})


async def deliveries(request: Request) -> Response:
    query = request.query_params
    found = _state(request).deliveries(channel_id=query.get("channel_id") or None, to=query.get("to") or None)
    return LineJSON({"deliveries": found})


async def retry_keys(request: Request) -> Response:
    """Every retry key seen, with how many sends carried it and how many different bodies: a client that
    resends only the very same request has ``bodies`` 1 for every key."""
    found = _state(request).retry_uses(request.query_params.get("channel_id") or None)
    return LineJSON({"retry_keys": found})


async def requests(request: Request) -> Response:
    return LineJSON({"counts": _state(request).request_counts()})


async def tokens(request: Request) -> Response:
    return LineJSON(
        {"tokens": _state(request).describe_tokens(request.query_params.get("channel_id") or None)}
    )


async def faults(request: Request) -> Response:
    state = _state(request)
    if request.method == "DELETE":
        state.clear_faults()
        return LineJSON({"faults": []})
    if request.method == "POST":
        added = state.add_fault(await _body(request))
        return LineJSON(added)
    return LineJSON({"faults": state.faults()})


async def clock(request: Request) -> Response:
    state = _state(request)
    if request.method == "POST":
        body = await _body(request)
        if "advance_seconds" not in body:
            raise AdminError('send {"advance_seconds": n}')
        state.advance_clock(body["advance_seconds"])
    return LineJSON({"now": state.now()})


async def reset(request: Request) -> Response:
    _state(request).reset()
    return LineJSON({})


async def admin_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AdminError)
    return LineJSON({"message": str(exc)}, status_code=exc.status)


ROUTES = [
    Route(f"{PREFIX}/channels", create_channel, methods=["POST"]),
    Route(f"{PREFIX}/channels", list_channels, methods=["GET"]),
    Route(f"{PREFIX}/channels/{{channel_id}}/keys", register_key, methods=["POST"]),
    Route(f"{PREFIX}/channels/{{channel_id}}/long-lived-token", long_lived_token, methods=["POST"]),
    Route(f"{PREFIX}/channels/{{channel_id}}/recipients", set_recipient, methods=["POST"]),
    Route(f"{PREFIX}/channels/{{channel_id}}/reply-tokens", reply_token, methods=["POST"]),
    Route(f"{PREFIX}/channels/{{channel_id}}/events", events, methods=["POST"]),
    Route(f"{PREFIX}/channels/{{channel_id}}/webhook", webhook, methods=["GET", "PUT"]),
    Route(f"{PREFIX}/channels/{{channel_id}}/secret", secret, methods=["GET"]),
    Route(f"{PREFIX}/deliveries", deliveries, methods=["GET"]),
    Route(f"{PREFIX}/requests", requests, methods=["GET"]),
    Route(f"{PREFIX}/retry-keys", retry_keys, methods=["GET"]),
    Route(f"{PREFIX}/tokens", tokens, methods=["GET"]),
    Route(f"{PREFIX}/faults", faults, methods=["GET", "POST", "DELETE"]),
    Route(f"{PREFIX}/clock", clock, methods=["GET", "POST"]),
    Route(f"{PREFIX}/reset", reset, methods=["POST"]),
]
