"""LINE's official Python SDK (linebot.v3), unchanged, against the emulator over a real socket."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from emulator_kit import AUD, public_jwk, retry_key, user_id
from linebot.v3 import messaging, oauth  # type: ignore[import-untyped]

from linepush.emulator import RunningEmulator, running

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def emulator() -> Iterator[RunningEmulator]:
    with running() as served:
        yield served


@pytest.fixture
def setup(emulator: RunningEmulator, private_key: rsa.RSAPrivateKey) -> dict[str, str]:
    channel = emulator.state.create_channel(name="sdk")
    kid = emulator.state.register_key(channel.channel_id, public_jwk(private_key))
    return {"id": channel.channel_id, "secret": channel.channel_secret, "kid": kid}


@pytest.fixture
def token_api(emulator: RunningEmulator) -> Iterator[oauth.ChannelAccessToken]:
    with oauth.ApiClient(oauth.Configuration(host=emulator.url)) as api_client:
        yield oauth.ChannelAccessToken(api_client)


def sign(key: rsa.RSAPrivateKey, setup: dict[str, str], **claims: Any) -> str:
    # The emulator's clock is the real one here; a margin keeps exp inside the 30-minute window.
    payload = {
        "iss": setup["id"],
        "sub": setup["id"],
        "aud": AUD,
        "exp": int(time.time()) + 600,
        "token_exp": 3600,
    }
    payload.update(claims)
    return jwt.encode(payload, key, algorithm="RS256", headers={"kid": setup["kid"]})


JWT_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def messaging_api(
    emulator: RunningEmulator, token: str
) -> tuple[messaging.ApiClient, messaging.MessagingApi]:
    api_client = messaging.ApiClient(messaging.Configuration(host=emulator.url, access_token=token))
    return api_client, messaging.MessagingApi(api_client)


def test_short_lived_issue_verify_revoke(token_api: oauth.ChannelAccessToken, setup: dict[str, str]) -> None:
    issued = token_api.issue_channel_token("client_credentials", setup["id"], setup["secret"])
    assert issued.expires_in == 2592000 and issued.token_type == "Bearer"
    verified = token_api.verify_channel_token(issued.access_token)
    assert verified.client_id == setup["id"] and verified.expires_in > 2591990
    token_api.revoke_channel_token(issued.access_token)
    with pytest.raises(oauth.ApiException) as caught:
        token_api.verify_channel_token(issued.access_token)
    assert caught.value.status == 400
    assert json.loads(caught.value.body)["error_description"] == "access_token invalid"


def test_short_lived_bad_secret(token_api: oauth.ChannelAccessToken, setup: dict[str, str]) -> None:
    with pytest.raises(oauth.ApiException) as caught:
        token_api.issue_channel_token("client_credentials", setup["id"], "0" * 32)
    assert caught.value.status == 400
    assert json.loads(caught.value.body) == {
        "error": "invalid_client",
        "error_description": "invalid client_secret",
    }


def test_v21_issue_verify_kids_revoke(
    token_api: oauth.ChannelAccessToken, setup: dict[str, str], private_key: rsa.RSAPrivateKey
) -> None:
    issued = token_api.issue_channel_token_by_jwt("client_credentials", JWT_TYPE, sign(private_key, setup))
    assert issued.expires_in == 3600 and len(issued.key_id) == 22
    verified = token_api.verify_channel_token_by_jwt(issued.access_token)
    assert verified.client_id == setup["id"]
    kids = token_api.gets_all_valid_channel_access_token_key_ids(JWT_TYPE, sign(private_key, setup))
    assert kids.kids == [issued.key_id]
    token_api.revoke_channel_token_by_jwt(setup["id"], setup["secret"], issued.access_token)
    kids = token_api.gets_all_valid_channel_access_token_key_ids(JWT_TYPE, sign(private_key, setup))
    assert kids.kids == []


def test_v21_bad_iss_gets_lines_error(
    token_api: oauth.ChannelAccessToken, setup: dict[str, str], private_key: rsa.RSAPrivateKey
) -> None:
    with pytest.raises(oauth.ApiException) as caught:
        token_api.issue_channel_token_by_jwt(
            "client_credentials", JWT_TYPE, sign(private_key, setup, iss="1")
        )
    assert json.loads(caught.value.body) == {
        "error": "invalid_client",
        "error_description": "iss and clientId of key do not match",
    }


def test_v3_issue(
    token_api: oauth.ChannelAccessToken, setup: dict[str, str], private_key: rsa.RSAPrivateKey
) -> None:
    by_secret = token_api.issue_stateless_channel_token_by_client_secret(setup["id"], setup["secret"])
    assert by_secret.expires_in == 900
    by_jwt = token_api.issue_stateless_channel_token_by_jwt_assertion(sign(private_key, setup))
    assert by_jwt.access_token.startswith("eyJ")


def test_push_with_and_without_retry_key(
    emulator: RunningEmulator, token_api: oauth.ChannelAccessToken, setup: dict[str, str]
) -> None:
    token = token_api.issue_channel_token("client_credentials", setup["id"], setup["secret"]).access_token
    api_client, api = messaging_api(emulator, token)
    with api_client:
        request = messaging.PushMessageRequest(
            to=user_id(7), messages=[messaging.TextMessage(text="Hello, world")]
        )
        plain = api.push_message(request)
        assert plain.sent_messages[0].id.isdigit() and plain.sent_messages[0].quote_token
        key = retry_key()
        first = api.push_message_with_http_info(request, x_line_retry_key=key)
        assert first.status_code == 200
        with pytest.raises(messaging.ApiException) as caught:
            api.push_message(request, x_line_retry_key=key)
        assert caught.value.status == 409
        assert caught.value.headers["x-line-accepted-request-id"] == first.headers["x-line-request-id"]
        body = json.loads(caught.value.body)
        assert body["message"] == "The retry key is already accepted"
        assert body["sentMessages"][0]["id"] == first.data.sent_messages[0].id
    assert len(emulator.state.deliveries(channel_id=setup["id"])) == 2


def test_multicast_quota_and_validate(
    emulator: RunningEmulator, token_api: oauth.ChannelAccessToken, setup: dict[str, str]
) -> None:
    token = token_api.issue_stateless_channel_token_by_client_secret(
        setup["id"], setup["secret"]
    ).access_token
    api_client, api = messaging_api(emulator, token)
    with api_client:
        api.multicast(
            messaging.MulticastRequest(
                to=[user_id(1), user_id(2)], messages=[messaging.TextMessage(text="hi")]
            )
        )
        assert api.get_message_quota().type == "none"
        assert api.get_message_quota_consumption().total_usage == 2
        api.validate_push(messaging.ValidateMessageRequest(messages=[messaging.TextMessage(text="ok")]))
        with pytest.raises(messaging.ApiException) as caught:
            api.validate_push(
                messaging.ValidateMessageRequest(messages=[messaging.TextMessage(text="x" * 5001)])
            )
        assert caught.value.status == 400
        assert json.loads(caught.value.body) == {
            "message": "The request body has 1 error(s)",
            "details": [{"message": "Length must be between 0 and 5000", "property": "messages[0].text"}],
        }


def test_bad_token_gets_401(emulator: RunningEmulator) -> None:
    api_client, api = messaging_api(emulator, "not-a-token")
    with api_client, pytest.raises(messaging.ApiException) as caught:
        api.get_message_quota()
    assert caught.value.status == 401
    assert json.loads(caught.value.body)["message"].startswith(
        "Authentication failed due to the following reason"
    )


def test_the_read_endpoints_and_webhook_settings(emulator: RunningEmulator, setup: dict[str, str]) -> None:
    state = emulator.state
    channel = state.channels[setup["id"]]
    token = state.issue_long_lived(setup["id"])
    group, room = "C" + "5" * 32, "R" + "6" * 32
    for n in range(3):
        state.set_recipient(setup["id"], user_id(n), "friend")
    state.chat(channel, group).members.extend([user_id(0), user_id(1)])  # type: ignore[union-attr]
    api_client, api = messaging_api(emulator, token)
    with api_client:
        info = api.get_bot_info()
        assert (info.user_id, info.display_name, info.chat_mode) == (channel.bot_user_id, "sdk", "bot")
        assert api.get_profile(user_id(1)).display_name == "User 0001"
        state.set_recipient(setup["id"], user_id(9), "blocked")
        with pytest.raises(messaging.ApiException) as caught:
            api.get_profile(user_id(9))
        assert caught.value.status == 404 and json.loads(caught.value.body) == {"message": "Not found"}
        assert api.get_group_summary(group).group_name == "Group 5555"
        assert api.get_group_member_count(group).count == 2
        assert api.get_room_member_count(room).count == 0
        first = api.get_followers(limit=2)
        assert first.user_ids == [user_id(0), user_id(1)] and first.next
        assert api.get_followers(start=first.next).user_ids == [user_id(2)]
        stats = api.get_number_of_sent_push_messages("20240101")
        assert stats.status == "unavailable_for_privacy"
        api.set_webhook_endpoint(messaging.SetWebhookEndpointRequest(endpoint="https://bot.example/callback"))
        endpoint = api.get_webhook_endpoint()
        assert (endpoint.endpoint, endpoint.active) == ("https://bot.example/callback", True)
        with pytest.raises(messaging.ApiException) as unserved:
            api.get_rich_menu_list()
        assert unserved.value.status == 501
