"""JWT client assertions: every rejection is a 400 (or the documented 404), never a success or a 500."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from emulator_kit import AUD, JWT_TYPE, Channel, FakeClock, assertion, unsigned_assertion

INVALID_EXP = {"error": "invalid_client", "error_description": "Invalid exp"}
ISS_MISMATCH = {"error": "invalid_client", "error_description": "iss and clientId of key do not match"}
NO_KEY = {"message": "Cannot find channel key that satisfies the conditions"}

ENDPOINTS = ["v2.1", "kid", "v3"]


async def present(client: httpx.AsyncClient, where: str, jwt_text: str) -> httpx.Response:
    fields = {"client_assertion_type": JWT_TYPE, "client_assertion": jwt_text}
    if where == "kid":
        return await client.get("/oauth2/v2.1/tokens/kid", params=fields)
    path = "/oauth2/v2.1/token" if where == "v2.1" else "/oauth2/v3/token"
    return await client.post(path, data={"grant_type": "client_credentials", **fields})


@pytest.mark.parametrize("where", ENDPOINTS)
async def test_valid_assertion_is_accepted(client: httpx.AsyncClient, sign: Any, where: str) -> None:
    assert (await present(client, where, sign())).status_code == 200


@pytest.mark.parametrize("where", ENDPOINTS)
async def test_alg_none_is_rejected(
    client: httpx.AsyncClient, channel: Channel, clock: FakeClock, where: str
) -> None:
    payload = {
        "iss": channel.channel_id,
        "sub": channel.channel_id,
        "aud": AUD,
        "exp": clock.now + 60,
        "token_exp": 60,
    }
    for signature in ("c2ln", "x"):
        forged = unsigned_assertion({"alg": "none", "typ": "JWT", "kid": channel.kid}, payload, signature)
        response = await present(client, where, forged)
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_client"


@pytest.mark.parametrize("where", ENDPOINTS)
async def test_hs256_is_rejected(
    client: httpx.AsyncClient, channel: Channel, clock: FakeClock, where: str
) -> None:
    # Signed with the channel secret as an HMAC key: a classic algorithm-confusion attempt.
    forged = assertion(channel.channel_secret, channel.kid, channel.channel_id, clock.now, algorithm="HS256")
    response = await present(client, where, forged)
    assert (response.status_code, response.json()) == (
        400,
        {"error": "invalid_client", "error_description": "Invalid alg"},
    )


@pytest.mark.parametrize("alg", ["RS512", "PS256", "ES256", None])
async def test_other_algs_are_rejected(client: httpx.AsyncClient, channel: Channel, alg: str | None) -> None:
    header: dict[str, Any] = {"typ": "JWT", "kid": channel.kid}
    if alg is not None:
        header["alg"] = alg
    response = await present(client, "v2.1", unsigned_assertion(header, {"iss": channel.channel_id}))
    assert response.status_code == 400 and response.json()["error"] == "invalid_client"


@pytest.mark.parametrize("where", ENDPOINTS)
async def test_unknown_or_missing_kid_is_404(
    client: httpx.AsyncClient, channel: Channel, private_key: rsa.RSAPrivateKey, clock: FakeClock, where: str
) -> None:
    for kid in ("00000000-0000-4000-8000-000000000000", None):
        signed = assertion(private_key, kid, channel.channel_id, clock.now)
        response = await present(client, where, signed)
        assert (response.status_code, response.json()) == (404, NO_KEY)


@pytest.mark.parametrize("claim", ["iss", "sub"])
@pytest.mark.parametrize("where", ENDPOINTS)
async def test_wrong_iss_or_sub(client: httpx.AsyncClient, sign: Any, claim: str, where: str) -> None:
    response = await present(client, where, sign(**{claim: "9999999999"}))
    assert (response.status_code, response.json()) == (400, ISS_MISMATCH)
    missing = await present(client, where, sign(**{claim: None}))
    assert (missing.status_code, missing.json()) == (400, ISS_MISMATCH)


async def test_key_of_another_channel_cannot_speak_for_this_one(
    client: httpx.AsyncClient, channel: Channel, other_key: rsa.RSAPrivateKey, clock: FakeClock
) -> None:
    from emulator_kit import public_jwk

    other = (await client.post("/_emulator/channels", json={})).json()
    kid = (
        await client.post(f"/_emulator/channels/{other['channel_id']}/keys", json=public_jwk(other_key))
    ).json()
    signed = assertion(other_key, kid["kid"], channel.channel_id, clock.now)
    response = await present(client, "v2.1", signed)
    assert (response.status_code, response.json()) == (400, ISS_MISMATCH)


@pytest.mark.parametrize(
    "aud", ["https://api.line.me", "https://example.com/", ["https://api.line.me/"], None]
)
@pytest.mark.parametrize("where", ENDPOINTS)
async def test_wrong_aud(client: httpx.AsyncClient, sign: Any, aud: Any, where: str) -> None:
    response = await present(client, where, sign(aud=aud))
    assert (response.status_code, response.json()) == (
        400,
        {"error": "invalid_client", "error_description": "Invalid aud"},
    )


@pytest.mark.parametrize("where", ENDPOINTS)
async def test_expired_exp(client: httpx.AsyncClient, sign: Any, clock: FakeClock, where: str) -> None:
    for exp in (clock.now - 1, clock.now):
        response = await present(client, where, sign(exp=int(exp)))
        assert (response.status_code, response.json()) == (400, INVALID_EXP)


@pytest.mark.parametrize("where", ENDPOINTS)
async def test_exp_more_than_30_minutes_ahead(
    client: httpx.AsyncClient, sign: Any, clock: FakeClock, where: str
) -> None:
    assert (await present(client, where, sign(exp=int(clock.now) + 1800))).status_code == 200
    response = await present(client, where, sign(exp=int(clock.now) + 1800 + 60))
    assert (response.status_code, response.json()) == (400, INVALID_EXP)


async def test_assertion_expires_by_emulator_clock(
    client: httpx.AsyncClient, sign: Any, clock: FakeClock
) -> None:
    signed = sign(exp=int(clock.now) + 30)
    assert (await present(client, "kid", signed)).status_code == 200
    await client.post("/_emulator/clock", json={"advance_seconds": 30})
    assert (await present(client, "kid", signed)).json() == INVALID_EXP


@pytest.mark.parametrize("exp", ["soon", None, True, 1.5e300])
async def test_exp_of_wrong_type(client: httpx.AsyncClient, sign: Any, exp: Any) -> None:
    response = await present(client, "v2.1", sign(exp=exp))
    assert (response.status_code, response.json()) == (400, INVALID_EXP)


async def test_numeric_string_claims_like_the_line_guide_sample(
    client: httpx.AsyncClient, sign: Any, clock: FakeClock
) -> None:
    response = await present(client, "v2.1", sign(exp=str(int(clock.now) + 60), token_exp="3600"))
    assert response.status_code == 200 and response.json()["expires_in"] == 3600


@pytest.mark.parametrize("token_exp", [2592001, 0, -5, None, "forever", 1.5, True])
async def test_bad_token_exp_for_v21(client: httpx.AsyncClient, sign: Any, token_exp: Any) -> None:
    response = await present(client, "v2.1", sign(token_exp=token_exp))
    assert (response.status_code, response.json()) == (
        400,
        {"error": "invalid_client", "error_description": "Invalid token_exp"},
    )


async def test_token_exp_limit_is_inclusive_and_ignored_for_v3(client: httpx.AsyncClient, sign: Any) -> None:
    assert (await present(client, "v2.1", sign(token_exp=2592000))).json()["expires_in"] == 2592000
    assert (await present(client, "v3", sign(token_exp=None))).status_code == 200


@pytest.mark.parametrize("where", ENDPOINTS)
async def test_bad_signature(
    client: httpx.AsyncClient, channel: Channel, other_key: rsa.RSAPrivateKey, clock: FakeClock, where: str
) -> None:
    forged = assertion(other_key, channel.kid, channel.channel_id, clock.now)
    response = await present(client, where, forged)
    assert (response.status_code, response.json()) == (
        400,
        {"error": "invalid_client", "error_description": "Invalid signature"},
    )


async def test_tampered_payload(
    client: httpx.AsyncClient, sign: Any, channel: Channel, clock: FakeClock
) -> None:
    header, _, signature = sign().split(".")
    payload = unsigned_assertion(
        {}, {"iss": channel.channel_id, "sub": channel.channel_id, "aud": AUD}
    ).split(".")[1]
    response = await present(client, "v2.1", f"{header}.{payload}.{signature}")
    assert response.json()["error_description"] == "Invalid signature"


@pytest.mark.parametrize(
    "garbage",
    ["", "abc", "a.b", "a.b.c.d", "!!!.???.***", "e30.e30.", "W10.e30.c2ln", "ñ.ñ.ñ", "eyJ.eyJ.eyJ"],
)
async def test_garbage_assertions(client: httpx.AsyncClient, garbage: str) -> None:
    for where in ENDPOINTS:
        response = await present(client, where, garbage)
        assert response.status_code in (400, 404), (where, garbage, response.text)
