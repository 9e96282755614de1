"""Token endpoints: issue, verify, revoke, caps and lifetimes of every kind (FACTS §1)."""

from __future__ import annotations

from typing import Any

import httpx
from emulator_kit import JWT_TYPE, Channel, FakeClock, short_lived

from linepush.emulator import EmulatorState

V2 = "/v2/oauth/accessToken"
DAY = 86400


def creds(channel: Channel, **extra: str) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_id": channel.channel_id,
        "client_secret": channel.channel_secret,
        **extra,
    }


async def issue_v21(client: httpx.AsyncClient, assertion: str) -> httpx.Response:
    return await client.post(
        "/oauth2/v2.1/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": JWT_TYPE,
            "client_assertion": assertion,
        },
    )


async def kids(client: httpx.AsyncClient, assertion: str) -> httpx.Response:
    return await client.get(
        "/oauth2/v2.1/tokens/kid", params={"client_assertion_type": JWT_TYPE, "client_assertion": assertion}
    )


# ---- v2 short-lived -------------------------------------------------------------------------------------
async def test_short_lived_issue_verify_revoke(client: httpx.AsyncClient, channel: Channel) -> None:
    response = await client.post(V2, data=creds(channel))
    body = response.json()
    assert response.status_code == 200
    assert body["expires_in"] == 2592000 and body["token_type"] == "Bearer"
    token = body["access_token"]
    assert not token.startswith("eyJ") and "." not in token

    verified = await client.post("/v2/oauth/verify", data={"access_token": token})
    assert verified.status_code == 200
    assert verified.json() == {"client_id": channel.channel_id, "expires_in": 2592000, "scope": "P CM"}

    revoked = await client.post("/v2/oauth/revoke", data={"access_token": token})
    assert revoked.status_code == 200 and revoked.content == b""
    after = await client.post("/v2/oauth/verify", data={"access_token": token})
    assert after.status_code == 400
    assert after.json() == {"error": "invalid_request", "error_description": "access_token invalid"}


async def test_short_lived_errors(client: httpx.AsyncClient, channel: Channel) -> None:
    bad_id = await client.post(V2, data=creds(channel, client_id="1234567890"))
    assert (bad_id.status_code, bad_id.json()) == (
        400,
        {"error": "invalid_client", "error_description": "invalid client_id"},
    )
    bad_secret = await client.post(V2, data=creds(channel, client_secret="0" * 32))
    assert (bad_secret.status_code, bad_secret.json()) == (
        400,
        {"error": "invalid_client", "error_description": "invalid client_secret"},
    )
    missing = await client.post(V2, data={"grant_type": "client_credentials"})
    assert (missing.status_code, missing.json()) == (
        400,
        {"error": "invalid_request", "error_description": "some parameters missed or invalid"},
    )
    wrong_grant = await client.post(V2, data=creds(channel, grant_type="password"))
    assert wrong_grant.status_code == 400
    as_json = await client.post(V2, json=creds(channel))
    assert as_json.status_code == 400 and as_json.json()["error"] == "invalid_request"


async def test_v2_verify_errors(client: httpx.AsyncClient, token: str, clock: FakeClock) -> None:
    bad_format = await client.post("/v2/oauth/verify", data={"access_token": "not a token!"})
    assert bad_format.json() == {
        "error": "invalid_request",
        "error_description": "access_token in invalid format",
    }
    unknown = await client.post("/v2/oauth/verify", data={"access_token": "abc"})
    assert unknown.json() == {"error": "invalid_request", "error_description": "access_token invalid"}
    clock.now += 30 * DAY
    expired = await client.post("/v2/oauth/verify", data={"access_token": token})
    assert expired.status_code == 400
    assert expired.json()["error"] == "invalid_request"


async def test_v2_revoke_errors(client: httpx.AsyncClient) -> None:
    bad = await client.post("/v2/oauth/revoke", data={"access_token": "bad token"})
    assert (bad.status_code, bad.json()) == (400, {"error": "invalid_request"})
    missing = await client.post("/v2/oauth/revoke", data={})
    assert (missing.status_code, missing.json()) == (400, {"error": "invalid_request"})
    unknown = await client.post("/v2/oauth/revoke", data={"access_token": "abcdef"})
    assert unknown.status_code == 200


async def test_short_lived_lifetime_by_clock(
    client: httpx.AsyncClient, channel: Channel, token: str, clock: FakeClock
) -> None:
    clock.now += 30 * DAY - 1
    ok = await client.post("/v2/oauth/verify", data={"access_token": token})
    assert ok.json()["expires_in"] == 1
    clock.now += 1
    assert (await client.post("/v2/oauth/verify", data={"access_token": token})).status_code == 400
    assert (
        await client.get("/v2/bot/message/quota", headers={"Authorization": f"Bearer {token}"})
    ).status_code == 401


async def test_31st_short_lived_token_revokes_oldest(
    client: httpx.AsyncClient, channel: Channel, clock: FakeClock, state: EmulatorState
) -> None:
    tokens = []
    for _ in range(31):
        tokens.append(await short_lived(client, channel))
        clock.now += 1
    valid = await client.post("/v2/oauth/verify", data={"access_token": tokens[0]})
    assert valid.status_code == 400
    for token in tokens[1:]:
        assert (await client.post("/v2/oauth/verify", data={"access_token": token})).status_code == 200
    listed = (await client.get("/_emulator/tokens", params={"channel_id": channel.channel_id})).json()[
        "tokens"
    ]
    assert [t["state"] for t in listed].count("valid") == 30
    assert listed[0]["state"] == "revoked"
    assert all(tok not in str(listed) for tok in tokens)  # values are masked


async def test_expired_short_lived_tokens_do_not_count(
    client: httpx.AsyncClient, channel: Channel, clock: FakeClock, state: EmulatorState
) -> None:
    first = [await short_lived(client, channel) for _ in range(30)]
    clock.now += 30 * DAY
    newer = [await short_lived(client, channel) for _ in range(30)]
    assert len(state.valid_tokens(channel.channel_id, "v2")) == 30
    assert first[0] not in newer


# ---- v2.1 -----------------------------------------------------------------------------------------------
async def test_v21_issue_verify_kids_revoke(client: httpx.AsyncClient, channel: Channel, sign: Any) -> None:
    issued = await issue_v21(client, sign(token_exp=3600))
    body = issued.json()
    assert issued.status_code == 200, body
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    assert len(body["key_id"]) == 22
    token = body["access_token"]
    assert token.startswith("eyJ") and token.count(".") == 2

    verified = await client.get("/oauth2/v2.1/verify", params={"access_token": token})
    assert verified.json() == {"client_id": channel.channel_id, "expires_in": 3600}
    assert (await kids(client, sign())).json() == {"kids": [body["key_id"]]}

    revoke = await client.post(
        "/oauth2/v2.1/revoke",
        data={
            "client_id": channel.channel_id,
            "client_secret": channel.channel_secret,
            "access_token": token,
        },
    )
    assert revoke.status_code == 200 and revoke.content == b""
    assert (await kids(client, sign())).json() == {"kids": []}
    gone = await client.get("/oauth2/v2.1/verify", params={"access_token": token})
    assert gone.status_code == 400 and gone.json()["error"] == "invalid_request"


async def test_v21_lifetime_is_token_exp(
    client: httpx.AsyncClient, channel: Channel, sign: Any, clock: FakeClock
) -> None:
    token = (await issue_v21(client, sign(token_exp=60))).json()["access_token"]
    clock.now += 60
    expired = await client.get("/oauth2/v2.1/verify", params={"access_token": token})
    assert (expired.status_code, expired.json()) == (
        400,
        {"error": "invalid_request", "error_description": "The access token expired"},
    )
    assert (await kids(client, sign())).json() == {"kids": []}


async def test_v21_cap_refuses_31st(
    client: httpx.AsyncClient, channel: Channel, sign: Any, clock: FakeClock
) -> None:
    for _ in range(30):
        assert (await issue_v21(client, sign(token_exp=100))).status_code == 200
    refused = await issue_v21(client, sign(token_exp=100))
    assert (refused.status_code, refused.json()) == (
        400,
        {"message": "The maximum number of access tokens has already been issued"},
    )
    assert len((await kids(client, sign())).json()["kids"]) == 30
    clock.now += 100  # all expire: the cap frees up
    assert (await issue_v21(client, sign(token_exp=100))).status_code == 200


async def test_v21_revoking_frees_a_slot(client: httpx.AsyncClient, channel: Channel, sign: Any) -> None:
    tokens = [(await issue_v21(client, sign())).json()["access_token"] for _ in range(30)]
    assert (await issue_v21(client, sign())).status_code == 400
    await client.post(
        "/oauth2/v2.1/revoke",
        data={
            "client_id": channel.channel_id,
            "client_secret": channel.channel_secret,
            "access_token": tokens[3],
        },
    )
    assert (await issue_v21(client, sign())).status_code == 200


async def test_v21_verify_errors(client: httpx.AsyncClient) -> None:
    not_jws = await client.get("/oauth2/v2.1/verify", params={"access_token": "opaque"})
    assert not_jws.json() == {"error": "invalid_request", "error_description": "The access token not JWS"}
    missing = await client.get("/oauth2/v2.1/verify")
    assert missing.status_code == 400
    unknown = await client.get(
        "/oauth2/v2.1/verify", params={"access_token": "eyJhbGciOiJIUzI1NiJ9.e30.c2ln"}
    )
    assert unknown.status_code == 400 and unknown.json()["error"] == "invalid_request"


async def test_v21_revoke_errors(client: httpx.AsyncClient, channel: Channel, sign: Any) -> None:
    def form(**kw: str) -> dict[str, str]:
        base = {
            "client_id": channel.channel_id,
            "client_secret": channel.channel_secret,
            "access_token": "eyJhbGciOiJIUzI1NiJ9.e30.c2ln",
        }
        return {**base, **kw}

    not_jws = await client.post("/oauth2/v2.1/revoke", data=form(access_token="opaque"))
    assert not_jws.json() == {"error": "invalid_request", "error_description": "The access token not JWS"}
    malformed = await client.post("/oauth2/v2.1/revoke", data=form(access_token="bm90IGpzb24.e30.c2ln"))
    assert malformed.json() == {"error": "invalid_request", "error_description": "The access token malformed"}
    unknown = await client.post("/oauth2/v2.1/revoke", data=form())
    assert unknown.status_code == 200  # "an invalid token gives no error"
    wrong_secret = await client.post("/oauth2/v2.1/revoke", data=form(client_secret="f" * 32))
    assert wrong_secret.status_code == 400 and wrong_secret.json()["error"] == "invalid_client"
    missing = await client.post("/oauth2/v2.1/revoke", data={"access_token": "a.b.c"})
    assert missing.status_code == 400


async def test_v21_issue_needs_all_fields(client: httpx.AsyncClient, sign: Any) -> None:
    wrong_type = await client.post(
        "/oauth2/v2.1/token",
        data={"grant_type": "client_credentials", "client_assertion_type": "x", "client_assertion": sign()},
    )
    assert wrong_type.status_code == 400
    assert (await client.post("/oauth2/v2.1/token", data={})).json()["error"] == "invalid_request"
    assert (await client.get("/oauth2/v2.1/tokens/kid")).status_code == 400


# ---- v3 stateless ---------------------------------------------------------------------------------------
async def test_stateless_by_secret_and_by_jwt(
    client: httpx.AsyncClient, channel: Channel, sign: Any, clock: FakeClock
) -> None:
    by_secret = await client.post("/oauth2/v3/token", data=creds(channel))
    assert by_secret.status_code == 200
    assert by_secret.json()["expires_in"] == 900 and by_secret.json()["token_type"] == "Bearer"
    by_jwt = await client.post(
        "/oauth2/v3/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": JWT_TYPE,
            "client_assertion": sign(),
        },
    )
    assert by_jwt.status_code == 200 and "key_id" not in by_jwt.json()
    token = by_jwt.json()["access_token"]
    assert token.startswith("eyJ")
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/v2/bot/message/quota", headers=headers)).status_code == 200
    clock.now += 900
    assert (await client.get("/v2/bot/message/quota", headers=headers)).status_code == 401


async def test_stateless_is_uncapped_and_unrevocable(client: httpx.AsyncClient, channel: Channel) -> None:
    tokens = [
        (await client.post("/oauth2/v3/token", data=creds(channel))).json()["access_token"] for _ in range(35)
    ]
    assert len(set(tokens)) == 35
    await client.post("/v2/oauth/revoke", data={"access_token": tokens[0]})
    headers = {"Authorization": f"Bearer {tokens[0]}"}
    assert (await client.get("/v2/bot/message/quota", headers=headers)).status_code == 200


async def test_stateless_bad_credentials(client: httpx.AsyncClient, channel: Channel) -> None:
    expected = {"error": "invalid_request", "error_description": "Invalid 'client_credentials'."}
    bad_secret = await client.post("/oauth2/v3/token", data=creds(channel, client_secret="0" * 32))
    assert (bad_secret.status_code, bad_secret.json()) == (400, expected)
    bad_id = await client.post("/oauth2/v3/token", data=creds(channel, client_id="1111111111"))
    assert bad_id.status_code == 400
    assert (await client.post("/oauth2/v3/token", data={"client_id": "1"})).status_code == 400


# ---- long-lived -----------------------------------------------------------------------------------------
async def test_long_lived_token_via_admin(
    client: httpx.AsyncClient, channel: Channel, clock: FakeClock
) -> None:
    url = f"/_emulator/channels/{channel.channel_id}/long-lived-token"
    first = (await client.post(url)).json()["access_token"]
    clock.now += 400 * DAY
    verified = await client.post("/v2/oauth/verify", data={"access_token": first})
    assert verified.status_code == 200 and verified.json()["expires_in"] > 10**9
    second = (await client.post(url)).json()["access_token"]
    assert (await client.post("/v2/oauth/verify", data={"access_token": first})).status_code == 400
    await client.post("/v2/oauth/revoke", data={"access_token": second})
    assert (await client.post("/v2/oauth/verify", data={"access_token": second})).status_code == 400
