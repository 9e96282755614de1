"""The /_emulator admin API and the same operations on the state object; bad input is a clear 400."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from emulator_kit import Channel, FakeClock, public_jwk, user_id
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from linepush.emulator import AdminError, EmulatorState


async def test_create_channel_defaults(client: httpx.AsyncClient) -> None:
    created = (await client.post("/_emulator/channels")).json()
    assert re.fullmatch(r"[0-9]{10}", created["channel_id"])
    assert re.fullmatch(r"[0-9a-f]{32}", created["channel_secret"])
    listed = (await client.get("/_emulator/channels")).json()["channels"]
    assert listed[0]["channel_id"] == created["channel_id"] and listed[0]["monthly_quota"] is None
    assert created["channel_secret"] not in str(listed)


async def test_register_key_returns_uuid_kid(client: httpx.AsyncClient, channel: Channel) -> None:
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}", channel.kid)


@pytest.fixture(scope="module")
def jwks() -> dict[str, Any]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    return {
        "good": public_jwk(key),
        "ops": {**{k: v for k, v in public_jwk(key).items() if k != "use"}, "key_ops": ["verify"]},
        "private": {**RSAAlgorithm.to_jwk(key, as_dict=True), "alg": "RS256", "use": "sig"},
        "small": public_jwk(small),
        "ec": {**ECAlgorithm.to_jwk(ec_key.public_key(), as_dict=True), "alg": "RS256", "use": "sig"},
    }


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"kid": "mine"}, "kid"),
        ({"use": None}, "use"),
        ({"use": "enc"}, "use"),
        ({"use": None, "key_ops": ["sign"]}, "key_ops"),
        ({"use": None, "key_ops": ["verify", "sign"]}, "key_ops"),
        ({"alg": "RS512"}, "alg"),
        ({"alg": None}, "alg"),
        ({"n": "!!!"}, "'n'"),
        ({"e": None}, "'n'"),
    ],
)
async def test_bad_jwks_are_refused(
    client: httpx.AsyncClient, channel: Channel, jwks: dict[str, Any], change: dict[str, Any], fragment: str
) -> None:
    jwk = {**jwks["good"], **change}
    jwk = {k: v for k, v in jwk.items() if v is not None}
    response = await client.post(f"/_emulator/channels/{channel.channel_id}/keys", json=jwk)
    assert response.status_code == 400
    assert fragment in response.json()["message"]


@pytest.mark.parametrize("name", ["private", "small", "ec"])
async def test_private_small_and_non_rsa_keys_are_refused(
    client: httpx.AsyncClient, channel: Channel, jwks: dict[str, Any], name: str
) -> None:
    response = await client.post(f"/_emulator/channels/{channel.channel_id}/keys", json=jwks[name])
    assert response.status_code == 400 and response.json()["message"]


async def test_key_ops_verify_is_accepted(
    client: httpx.AsyncClient, channel: Channel, jwks: dict[str, Any]
) -> None:
    response = await client.post(f"/_emulator/channels/{channel.channel_id}/keys", json=jwks["ops"])
    assert response.status_code == 200 and response.json()["kid"] != channel.kid


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/_emulator/channels", {"monthly_quota": -1}, 400),
        ("POST", "/_emulator/channels", {"monthly_quota": "lots"}, 400),
        ("POST", "/_emulator/channels", {"name": 5}, 400),
        ("POST", "/_emulator/channels", {"channel_id": "12"}, 400),
        ("POST", "/_emulator/channels", {"channel_id": 1234567890}, 400),
        ("POST", "/_emulator/channels", [1, 2], 400),
        ("POST", "/_emulator/channels/0000000000/keys", {}, 404),
        ("POST", "/_emulator/channels/0000000000/long-lived-token", None, 404),
        ("POST", "/_emulator/channels/0000000000/recipients", {"id": user_id(), "state": "friend"}, 404),
        ("POST", "/_emulator/clock", {"advance_seconds": -5}, 400),
        ("POST", "/_emulator/clock", {"advance_seconds": "soon"}, 400),
        ("POST", "/_emulator/clock", {}, 400),
        ("GET", "/_emulator/nothing", None, 404),
    ],
)
async def test_bad_admin_input(
    client: httpx.AsyncClient, method: str, path: str, body: Any, status: int
) -> None:
    response = await client.request(method, path, json=body)
    assert response.status_code == status
    assert isinstance(response.json()["message"], str)


async def test_bad_recipient_input(client: httpx.AsyncClient, channel: Channel) -> None:
    url = f"/_emulator/channels/{channel.channel_id}/recipients"
    for body in ({"id": "nobody", "state": "friend"}, {"id": user_id(), "state": "enemy"}, {}):
        response = await client.post(url, json=body)
        assert response.status_code == 400 and response.json()["message"]
    not_json = await client.post(url, content=b"{", headers={"content-type": "application/json"})
    assert not_json.status_code == 400


async def test_clock_moves_forward(client: httpx.AsyncClient, clock: FakeClock) -> None:
    assert (await client.get("/_emulator/clock")).json() == {"now": clock.now}
    moved = await client.post("/_emulator/clock", json={"advance_seconds": 90.5})
    assert moved.json() == {"now": clock.now + 90.5}


async def test_requests_are_counted_per_path(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    for page in ("a", "b"):
        await client.get("/v2/bot/message/quota", params={"page": page}, headers=auth)
    await client.get("/v2/bot/message/quota")
    counts = (await client.get("/_emulator/requests")).json()["counts"]
    assert {"method": "GET", "path": "/v2/bot/message/quota", "status": 200, "count": 2} in counts
    assert {"method": "GET", "path": "/v2/bot/message/quota", "status": 401, "count": 1} in counts
    assert not [c for c in counts if c["path"].startswith("/_emulator")]


async def test_deliveries_filter(client: httpx.AsyncClient, auth: dict[str, str], channel: Channel) -> None:
    for n in (1, 2, 1):
        await client.post(
            "/v2/bot/message/push",
            json={"to": user_id(n), "messages": [{"type": "text", "text": str(n)}]},
            headers=auth,
        )
    to_one = (await client.get("/_emulator/deliveries", params={"to": user_id(1)})).json()["deliveries"]
    assert [d["messages"][0]["text"] for d in to_one] == ["1", "1"]
    mine = (await client.get("/_emulator/deliveries", params={"channel_id": channel.channel_id})).json()
    assert len(mine["deliveries"]) == 3
    assert (await client.get("/_emulator/deliveries", params={"channel_id": "1"})).json() == {
        "deliveries": []
    }
    first = mine["deliveries"][0]
    assert set(first) >= {"endpoint", "channel_id", "to", "messages", "retry_key", "request_id", "time"}


async def test_reset_forgets_everything(
    client: httpx.AsyncClient, auth: dict[str, str], state: EmulatorState
) -> None:
    await client.post(
        "/v2/bot/message/push",
        json={"to": user_id(), "messages": [{"type": "text", "text": "x"}]},
        headers=auth,
    )
    assert (await client.post("/_emulator/reset")).status_code == 200
    assert state.deliveries() == [] and state.channels == {} and state.request_counts() == []
    assert (await client.get("/v2/bot/message/quota", headers=auth)).status_code == 401


async def test_reset_gives_the_clock_back_to_line(client: httpx.AsyncClient, clock: FakeClock) -> None:
    await client.post("/_emulator/clock", json={"advance_seconds": 2 * 86400})
    assert (await client.post("/_emulator/reset")).status_code == 200
    assert (await client.get("/_emulator/clock")).json() == {"now": clock.now}


async def test_deliveries_say_whether_notifications_were_disabled(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    text = [{"type": "text", "text": "x"}]
    for silent in (True, False, None):
        body: dict[str, Any] = {"to": user_id(), "messages": text}
        if silent is not None:
            body["notificationDisabled"] = silent
        assert (await client.post("/v2/bot/message/push", json=body, headers=auth)).status_code == 200
    found = (await client.get("/_emulator/deliveries")).json()["deliveries"]
    assert [d["notification_disabled"] for d in found] == [True, False, False]


def test_state_methods_mirror_the_admin_api(state: EmulatorState, jwks: dict[str, Any]) -> None:
    channel = state.create_channel(name="direct", monthly_quota=10)
    kid = state.register_key(channel.channel_id, jwks["good"])
    assert state.find_key(kid) is not None
    state.set_recipient(channel.channel_id, user_id(), "blocked")
    assert state.recipient_state(channel, user_id()) == "blocked"
    token = state.issue_long_lived(channel.channel_id)
    assert [t["kind"] for t in state.describe_tokens(channel.channel_id)] == ["long-lived"]
    assert token not in repr(state.token(token))
    assert channel.channel_secret not in repr(channel)
    with pytest.raises(AdminError):
        state.set_recipient(channel.channel_id, "x", "friend")
    with pytest.raises(AdminError):
        state.create_channel(channel_id=channel.channel_id)
    state.add_fault({"path": "/v2/bot/message/push", "mode": "status", "status": 500})
    assert len(state.faults()) == 1
    state.clear_faults()
    assert state.faults() == []
