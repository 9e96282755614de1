"""No request, however malformed, makes the emulator answer 500 or lose its LINE-style JSON shape."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette

from linepush.emulator import EmulatorConfig, create_app

ENDPOINTS = [
    ("POST", "/v2/oauth/accessToken"),
    ("POST", "/v2/oauth/verify"),
    ("POST", "/v2/oauth/revoke"),
    ("POST", "/oauth2/v2.1/token"),
    ("GET", "/oauth2/v2.1/verify"),
    ("POST", "/oauth2/v2.1/revoke"),
    ("GET", "/oauth2/v2.1/tokens/kid"),
    ("POST", "/oauth2/v3/token"),
    ("POST", "/v2/bot/message/push"),
    ("POST", "/v2/bot/message/multicast"),
    ("POST", "/v2/bot/message/broadcast"),
    ("POST", "/v2/bot/message/narrowcast"),
    ("POST", "/v2/bot/message/reply"),
    *[
        ("POST", f"/v2/bot/message/validate/{k}")
        for k in ("reply", "push", "multicast", "narrowcast", "broadcast")
    ],
    ("GET", "/v2/bot/message/quota"),
    ("GET", "/v2/bot/message/quota/consumption"),
    ("GET", "/v2/bot/message/progress/narrowcast"),
    ("GET", "/v2/bot/info"),
    ("GET", "/v2/bot/profile/U" + "0" * 32),
    ("GET", "/v2/bot/group/C" + "0" * 32 + "/summary"),
    ("GET", "/v2/bot/group/C" + "0" * 32 + "/members/count"),
    ("GET", "/v2/bot/room/R" + "0" * 32 + "/members/count"),
    ("GET", "/v2/bot/followers/ids"),
    ("GET", "/v2/bot/message/delivery/push"),
    ("GET", "/v2/bot/channel/webhook/endpoint"),
    ("PUT", "/v2/bot/channel/webhook/endpoint"),
    ("POST", "/v2/bot/channel/webhook/test"),
    ("POST", "/_emulator/channels"),
    ("GET", "/_emulator/channels"),
    ("POST", "/_emulator/channels/{cid}/keys"),
    ("POST", "/_emulator/channels/{cid}/long-lived-token"),
    ("POST", "/_emulator/channels/{cid}/recipients"),
    ("POST", "/_emulator/channels/{cid}/reply-tokens"),
    ("GET", "/_emulator/deliveries"),
    ("GET", "/_emulator/requests"),
    ("GET", "/_emulator/tokens"),
    ("POST", "/_emulator/faults"),
    ("POST", "/_emulator/clock"),
    ("POST", "/_emulator/channels/{cid}/events"),
    ("GET", "/_emulator/channels/{cid}/webhook"),
    ("PUT", "/_emulator/channels/{cid}/webhook"),
    ("GET", "/_emulator/channels/{cid}/secret"),
    ("GET", "/_emulator/timeline"),
]
POST_ENDPOINTS = [(m, p) for m, p in ENDPOINTS if m == "POST"]
FIELD_NAMES = [
    "to",
    "messages",
    "type",
    "text",
    "emojis",
    "index",
    "productId",
    "emojiId",
    "substitution",
    "mentionee",
    "userId",
    "packageId",
    "stickerId",
    "originalContentUrl",
    "previewImageUrl",
    "duration",
    "title",
    "address",
    "latitude",
    "longitude",
    "baseUrl",
    "altText",
    "baseSize",
    "width",
    "height",
    "actions",
    "area",
    "x",
    "y",
    "template",
    "columns",
    "action",
    "label",
    "data",
    "uri",
    "mode",
    "contents",
    "couponId",
    "deliveryTag",
    "quickReply",
    "items",
    "imageUrl",
    "sender",
    "name",
    "iconUrl",
    "notificationDisabled",
    "customAggregationUnits",
    "limit",
    "max",
    "upToRemainingQuota",
    "forbidPartialDelivery",
    "recipient",
    "filter",
    "id",
    "state",
    "monthly_quota",
    "kty",
    "alg",
    "n",
    "e",
    "use",
    "key_ops",
    "kid",
    "path",
    "status",
    "count",
    "latency_ms",
    "rate",
    "seed",
    "advance_seconds",
    "channel_id",
    "channel_secret",
    "quoteToken",
    "replyToken",
    "endpoint",
    "source",
    "message",
    "groupId",
    "roomId",
    "url",
    "active",
    "redelivery",
]
TOKEN_FIELDS = [
    "grant_type",
    "client_id",
    "client_secret",
    "access_token",
    "client_assertion",
    "client_assertion_type",
]
TYPE_VALUES = [
    "text",
    "textV2",
    "sticker",
    "image",
    "video",
    "audio",
    "location",
    "imagemap",
    "template",
    "flex",
    "coupon",
    "buttons",
    "confirm",
    "carousel",
    "image_carousel",
    "bubble",
    "postback",
    "message",
    "uri",
    "datetimepicker",
    "camera",
    "clipboard",
    "mention",
    "emoji",
    "user",
    "all",
    "action",
    "status",
    "random",
    "latency",
    "drop_after_accept",
    "friend",
    "blocked",
    "unknown",
    "follow",
    "unfollow",
    "join",
    "leave",
    "group",
    "room",
    "RSA",
    "RS256",
    "sig",
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(TYPE_VALUES),
    st.just("U" + "0" * 32),
    st.just("https://example.com/a.png"),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=6),
        st.dictionaries(st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=8)), children, max_size=6),
    ),
    max_leaves=40,
)
# Bodies that look like a send so that validation is reached deeply.
message_like = st.fixed_dictionaries(
    {"type": st.sampled_from(TYPE_VALUES)},
    optional={name: json_values for name in FIELD_NAMES[3:45]},
)
send_like = st.fixed_dictionaries(
    {"messages": st.one_of(st.lists(message_like, max_size=6), json_values)},
    optional={
        "to": st.one_of(json_values, st.lists(st.just("U" + "1" * 32), max_size=3)),
        "limit": json_values,
    },
)

# Bodies that look like a simulated user's event, so that the admin events route is reached deeply.
ids = st.sampled_from(["U" + "2" * 32, "C" + "3" * 32, "R" + "4" * 32, "U1", ""])
event_like = st.fixed_dictionaries(
    {"type": st.sampled_from(["message", "follow", "unfollow", "join", "leave", "postback"])},
    optional={
        "source": st.one_of(
            st.fixed_dictionaries(
                {"type": st.sampled_from(["user", "group", "room", "x"])},
                optional={"userId": ids, "groupId": ids, "roomId": ids},
            ),
            json_values,
        ),
        "message": st.one_of(message_like, json_values),
    },
)


def encode(value: Any) -> bytes:
    return json.dumps(value).encode()  # NaN/Infinity become the non-JSON tokens a sloppy client might send


bodies = st.one_of(
    json_values.map(encode),
    message_like.map(encode),
    send_like.map(encode),
    event_like.map(encode),
    st.binary(max_size=200),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.dictionaries(
        st.sampled_from([*FIELD_NAMES, *TOKEN_FIELDS]),
        st.text(max_size=40),
    ).map(lambda d: "&".join(f"{k}={v}" for k, v in d.items()).encode()),
    st.just(b"[" * 5000 + b"]" * 5000),
)
content_types = st.sampled_from(
    [
        None,
        "application/json",
        "application/json; charset=UTF-8",
        "application/x-www-form-urlencoded",
        "text/plain",
        "multipart/form-data; boundary=x",
        "application/xml",
        "",
        "application/json; charset=utf-16",
    ]
)


@pytest.fixture(scope="module")
def world() -> dict[str, Any]:
    return fresh_world()


@pytest.fixture
def clean_world() -> dict[str, Any]:
    return fresh_world()


def fresh_world() -> dict[str, Any]:
    # Webhook URLs may name loopback only: a fuzzed URL never makes the emulator connect elsewhere.
    app = create_app(EmulatorConfig(rate_limits=None, webhook_hosts=("127.0.0.1",)))
    state = app.state.emulator
    channel = state.create_channel()
    token = state.issue_long_lived(channel.channel_id)
    return {"app": app, "state": state, "cid": channel.channel_id, "token": token}


async def call(
    app: Starlette, method: str, path: str, body: bytes, headers: dict[str, str]
) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://emulator") as client:
        return await client.request(method, path, content=body if method == "POST" else None, headers=headers)


def check(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    assert "x-line-request-id" in response.headers
    if response.content:
        assert isinstance(response.json(), dict)


# A fixed, derandomized run in the suite; EMULATOR_FUZZ_EXAMPLES=N runs a longer random search by hand.
@settings(
    max_examples=int(os.environ.get("EMULATOR_FUZZ_EXAMPLES", "400")),
    derandomize="EMULATOR_FUZZ_EXAMPLES" not in os.environ,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    endpoint=st.sampled_from(ENDPOINTS),
    body=bodies,
    content_type=content_types,
    auth=st.sampled_from(["valid", "missing", "garbage"]),
    key=st.one_of(
        st.none(), st.just("uuid"), st.text(max_size=10).filter(lambda t: t.isprintable() and t.isascii())
    ),
    query=st.dictionaries(
        st.sampled_from(
            [
                *("access_token", "client_assertion", "client_assertion_type", "requestId", "channel_id"),
                *("to", "date", "limit", "start", "after"),
            ]
        ),
        st.text(max_size=20),
        max_size=3,
    ),
)
def test_no_request_gets_a_500(
    world: dict[str, Any],
    endpoint: tuple[str, str],
    body: bytes,
    content_type: str | None,
    auth: str,
    key: str | None,
    query: dict[str, str],
) -> None:
    method, path = endpoint
    path = path.format(cid=world["cid"])
    headers: dict[str, str] = {}
    if content_type is not None:
        headers["content-type"] = content_type
    if auth == "valid":
        headers["authorization"] = f"Bearer {world['token']}"
    elif auth == "garbage":
        headers["authorization"] = "Bearer \t x"
    if key is not None:
        headers["x-line-retry-key"] = str(uuid.uuid4()) if key == "uuid" else key
    url = httpx.URL(path, params=query)
    try:
        check(asyncio.run(call(world["app"], method, str(url), body, headers)))
    finally:
        state = world["state"]
        state.clear_faults()  # a fault the fuzzer added must not fail the next example
        token = state.token(world["token"])
        if token is None or token.status(state.now()) != "valid":  # the fuzzer may have reissued it
            world["token"] = state.issue_long_lived(world["cid"])


@pytest.mark.parametrize(
    "url", ["http://[::1", "http://127.0.0.1:99999", "http://[zz]/", "http://127.0.0.1:x/"]
)
@pytest.mark.parametrize(
    ("path", "field", "status"),
    [
        ("/_emulator/channels/{cid}/webhook", "url", 400),
        ("/v2/bot/channel/webhook/endpoint", "endpoint", 400),
    ],
)
def test_a_malformed_webhook_url_is_a_400(
    clean_world: dict[str, Any], url: str, path: str, field: str, status: int
) -> None:
    """PUT bodies (which the fuzzer above does not send) with URLs that urlsplit cannot read."""
    world = clean_world
    headers = {"authorization": f"Bearer {world['token']}", "content-type": "application/json"}
    body = json.dumps({field: url}).encode()
    transport = httpx.ASGITransport(app=world["app"])

    async def put() -> httpx.Response:
        async with httpx.AsyncClient(transport=transport, base_url="http://emulator") as client:
            return await client.put(path.format(cid=world["cid"]), content=body, headers=headers)

    response = asyncio.run(put())
    assert response.status_code == 400, response.text
    assert response.json()["message"]


@pytest.mark.parametrize("path", [p for m, p in POST_ENDPOINTS if not p.startswith("/_emulator")])
def test_over_2_mb_is_413_on_every_line_endpoint(clean_world: dict[str, Any], path: str) -> None:
    world = clean_world
    method = "POST"
    big = b"{" + b" " * (2 * 1024 * 1024) + b"}"
    headers = {"authorization": f"Bearer {world['token']}", "content-type": "application/json"}
    response = asyncio.run(call(world["app"], method, path.format(cid=world["cid"]), big, headers))
    assert response.status_code == 413 and response.json()["message"]


@pytest.mark.parametrize("path", [p for m, p in POST_ENDPOINTS if p.startswith("/v2/bot/")])
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_wrong_content_type_is_415_on_messaging(
    clean_world: dict[str, Any], path: str, content_type: str | None
) -> None:
    world = clean_world
    headers = {"authorization": f"Bearer {world['token']}"}
    if content_type is not None:
        headers["content-type"] = content_type
    response = asyncio.run(call(world["app"], "POST", path, b'{"messages":[]}', headers))
    assert response.status_code == 415
    assert response.json() == {"message": f"The content type, {content_type or 'null'}, is not supported"}


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/oauth2/v2.1/token"), ("POST", "/oauth2/v3/token"), ("GET", "/oauth2/v2.1/tokens/kid")],
)
def test_a_jwt_with_a_deeply_nested_header_is_a_400(world: dict[str, Any], method: str, path: str) -> None:
    import base64
    from urllib.parse import urlencode

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    nested = b64(b"[" * 10_000 + b"]" * 10_000)  # far deeper than Python's recursion limit
    jwt = f"{nested}.{b64(b'{}')}.c2ln"
    fields = {
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": jwt,
    }
    form = urlencode(fields)
    target = f"{path}?{form}" if method == "GET" else path
    headers = {"content-type": "application/x-www-form-urlencoded"}
    response = asyncio.run(call(world["app"], method, target, form.encode(), headers))
    assert response.status_code == 400, response.text
    assert response.json() == {"error": "invalid_client", "error_description": "Invalid JWT header"}
    check(response)
