"""The read endpoints a bot calls (bot info, profiles, groups and rooms, followers, delivery statistics), the
webhook settings (endpoint, test), and the answer to any path the emulator does not serve."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route

from linepush.emulator import admin, webhooks
from linepush.emulator.http import LineError, LineJSON, parse_json, read_body
from linepush.emulator.messaging import _check_json_type, _iso, _limit, _refuse_retry_key, authenticate
from linepush.emulator.state import AdminError, EmulatorState

NOT_FOUND = {"message": "Not found"}
JST = dt.timezone(dt.timedelta(hours=9))
# "out_of_service": dates before LINE started counting sent messages (NumberOfMessagesResponse).
STATS_START = dt.date(2018, 3, 31)
STATS_KINDS = ("reply", "push", "multicast", "broadcast")
FOLLOWERS_DEFAULT, FOLLOWERS_MAX = 300, 1000
WEBHOOK_URL_MAX = 500


def _state(request: Request) -> EmulatorState:
    state: EmulatorState = request.app.state.emulator
    return state


def _one_error(message: str, prop: str) -> LineError:
    return LineError(
        400,
        {"message": "The request body has 1 error(s)", "details": [{"message": message, "property": prop}]},
    )


def _reader(request: Request) -> Any:
    channel = authenticate(request)
    _limit(request, channel)
    _refuse_retry_key(request)
    return channel


async def bot_info(request: Request) -> Response:
    channel = _reader(request)
    # chatMode "bot" (chat off) goes with markAsReadMode "auto", as BotInfoResponse describes.
    return LineJSON(
        {
            "userId": channel.bot_user_id,
            "basicId": channel.basic_id,
            "displayName": channel.name,
            "chatMode": "bot",
            "markAsReadMode": "auto",
        }
    )


async def profile(request: Request) -> Response:
    channel = _reader(request)
    found = _state(request).profile(channel, request.path_params["user_id"])
    if found is None:
        # FACTS §4.2: 404 for an unknown user, one who is not a friend, or one who blocked the account.
        raise LineError(404, NOT_FOUND)
    return LineJSON(found.as_json())


def _chat(request: Request, key: str) -> Any:
    channel = _reader(request)
    chat_id = request.path_params[key]
    prefix = "C" if key == "group_id" else "R"
    found = _state(request).chat(channel, chat_id) if chat_id.startswith(prefix) else None
    if found is None:
        # Not documented: the answer for a group or room the bot is not in; 404 as for profiles.
        raise LineError(404, NOT_FOUND)
    return found


async def group_summary(request: Request) -> Response:
    chat = _chat(request, "group_id")
    return LineJSON({"groupId": chat.chat_id, "groupName": chat.name})


async def member_count(request: Request) -> Response:
    chat = _chat(request, "group_id" if "group_id" in request.path_params else "room_id")
    return LineJSON({"count": len(chat.members)})


def _page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o{offset}".encode()).decode("ascii").rstrip("=")


def _page_offset(token: str) -> int | None:
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return int(text[1:]) if text.startswith("o") and text[1:].isdigit() and len(text) < 12 else None


async def followers(request: Request) -> Response:
    channel = _reader(request)
    query = request.query_params
    raw_limit = query.get("limit", str(FOLLOWERS_DEFAULT))
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= FOLLOWERS_MAX:
        # Not documented: the body for a bad limit; the Messaging API's usual detail shape.
        raise _one_error(f"Must be between 1 and {FOLLOWERS_MAX}", "limit")
    limit = int(raw_limit)
    offset = 0
    if "start" in query:
        found = _page_offset(query["start"])
        if found is None:
            raise _one_error("Invalid continuation token", "start")
        offset = found
    ids = _state(request).followers(channel)
    answer: dict[str, Any] = {"userIds": ids[offset : offset + limit]}
    if offset + limit < len(ids):
        answer["next"] = _page_token(offset + limit)
    return LineJSON(answer)


async def delivery_stats(request: Request) -> Response:
    kind = request.url.path.rsplit("/", 1)[-1]
    channel = _reader(request)
    state = _state(request)
    raw = request.query_params.get("date")
    if not raw:
        raise _one_error("May not be empty", "date")
    try:
        if len(raw) != 8 or not raw.isdigit():
            raise ValueError(raw)
        day = dt.date(int(raw[:4]), int(raw[4:6]), int(raw[6:]))
    except ValueError as exc:
        # Not documented: the body for a date that is not yyyyMMdd.
        raise _one_error("Must be a date in the format yyyyMMdd", "date") from exc
    today = dt.datetime.fromtimestamp(state.now(), JST).date()
    if day < STATS_START:
        return LineJSON({"status": "out_of_service"})
    if day >= today:
        # Counted the day after (about a day, per NumberOfMessagesResponse): today and later are unready.
        return LineJSON({"status": "unready"})
    start = dt.datetime.combine(day, dt.time(), JST).timestamp()
    count = sum(
        len(d["delivered_to"])
        for d in state.deliveries(channel_id=channel.channel_id)
        if d["endpoint"] == kind and start <= d["time"] < start + 86400
    )
    if count < state.config.delivery_stats_privacy_threshold:
        return LineJSON({"status": "unavailable_for_privacy"})
    return LineJSON({"status": "ready", "success": count})


def _webhook_url(state: EmulatorState, value: Any) -> str:
    if not isinstance(value, str):
        raise _one_error("May not be empty", "endpoint")
    if not webhooks.acceptable_url(state.config, value, WEBHOOK_URL_MAX):
        # Not documented: LINE's body for an invalid webhook URL.
        raise _one_error("Invalid webhook endpoint URL", "endpoint")
    return value


async def _with_body(request: Request) -> tuple[bytes, Any]:
    raw = await read_body(request, _state(request).config.max_body_bytes)
    return raw, _reader(request)


async def webhook_endpoint(request: Request) -> Response:
    state = _state(request)
    raw, channel = await _with_body(request)
    if request.method == "GET":
        if channel.webhook.url is None:
            # Not documented: the answer before any URL was set; 404 as for other absent resources.
            raise LineError(404, NOT_FOUND)
        return LineJSON({"endpoint": channel.webhook.url, "active": channel.webhook.active})
    _check_json_type(request)
    body = parse_json(raw)
    if not isinstance(body, dict):
        raise _one_error("May not be empty", "endpoint")
    channel.webhook.url = _webhook_url(state, body.get("endpoint"))
    return LineJSON({})


async def webhook_test(request: Request) -> Response:
    state = _state(request)
    raw, channel = await _with_body(request)
    url = channel.webhook.url
    if raw.strip():
        _check_json_type(request)
        body = parse_json(raw)
        if isinstance(body, dict) and body.get("endpoint") is not None:
            url = _webhook_url(state, body["endpoint"])
    if url is None:
        # Not documented: testing with no URL given and none set.
        raise _one_error("May not be empty", "endpoint")
    sent_at = state.now()
    # The connectivity check LINE sends: no events (FACTS §6), signed like any webhook.
    attempt = await webhooks.post(
        url,
        channel.channel_secret,
        {"destination": channel.bot_user_id, "events": []},
        state.config.webhook_timeout,
    )
    return LineJSON(
        {
            "success": 200 <= attempt.status < 300,
            "timestamp": _iso(sent_at),
            "statusCode": attempt.status,
            "reason": attempt.reason or "COULD_NOT_CONNECT",
            "detail": str(attempt.status) if attempt.status else attempt.reason,
        }
    )


async def not_served(request: Request) -> Response:
    """Authenticate, then say plainly that the emulator does not serve this path (never LINE's 404)."""
    if request.url.path.startswith(admin.PREFIX + "/"):
        raise AdminError(f"no admin operation {request.method} {request.url.path}", status=404)
    authenticate(request)
    for route in request.app.router.routes:
        if route.endpoint is not not_served and route.matches(request.scope)[0] == Match.PARTIAL:
            raise LineError(405, {"message": "Method not allowed"})
    raise LineError(
        501, {"message": f"{request.method} {request.url.path} is not served by the linepush emulator"}
    )


ROUTES = [
    Route("/v2/bot/info", bot_info, methods=["GET"]),
    Route("/v2/bot/profile/{user_id}", profile, methods=["GET"]),
    Route("/v2/bot/group/{group_id}/summary", group_summary, methods=["GET"]),
    Route("/v2/bot/group/{group_id}/members/count", member_count, methods=["GET"]),
    Route("/v2/bot/room/{room_id}/members/count", member_count, methods=["GET"]),
    Route("/v2/bot/followers/ids", followers, methods=["GET"]),
    *(Route(f"/v2/bot/message/delivery/{kind}", delivery_stats, methods=["GET"]) for kind in STATS_KINDS),
    Route("/v2/bot/channel/webhook/endpoint", webhook_endpoint, methods=["GET", "PUT"]),
    Route("/v2/bot/channel/webhook/test", webhook_test, methods=["POST"]),
]
# Last: everything else under api.line.me.
NOT_SERVED = Route(
    "/{path:path}", not_served, methods=["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
)
