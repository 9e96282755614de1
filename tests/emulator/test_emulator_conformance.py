"""Conformance with LINE's own OpenAPI documents: for every operation the emulator serves, requests generated
from the schema get a documented status (or one of LINE's common error statuses), a documented content type,
a body that matches the response schema, and never a 5xx. Bounded: a few examples per operation."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from cryptography.hazmat.primitives.asymmetric import rsa
from emulator_kit import LoopbackBot, assertion, public_jwk
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from linepush.emulator import EmulatorConfig, create_app

DATA = Path(__file__).parent / "data" / "line-openapi"
EXAMPLES = int(os.environ.get("LINEPUSH_CONFORMANCE_EXAMPLES", "12"))
# FACTS §4.2: statuses any Messaging API endpoint may answer, though the OpenAPI files model few of them.
COMMON_ERRORS = {400, 401, 403, 404, 409, 413, 415, 429}

MESSAGING = [
    "POST /v2/bot/message/reply",
    "POST /v2/bot/message/push",
    "POST /v2/bot/message/multicast",
    "POST /v2/bot/message/narrowcast",
    "GET /v2/bot/message/progress/narrowcast",
    "POST /v2/bot/message/broadcast",
    "GET /v2/bot/message/quota",
    "GET /v2/bot/message/quota/consumption",
    *(f"GET /v2/bot/message/delivery/{kind}" for kind in ("reply", "push", "multicast", "broadcast")),
    *(
        f"POST /v2/bot/message/validate/{kind}"
        for kind in ("reply", "push", "multicast", "narrowcast", "broadcast")
    ),
    "GET /v2/bot/profile/{userId}",
    "GET /v2/bot/followers/ids",
    "GET /v2/bot/info",
    "GET /v2/bot/group/{groupId}/summary",
    "GET /v2/bot/group/{groupId}/members/count",
    "GET /v2/bot/room/{roomId}/members/count",
    "GET /v2/bot/channel/webhook/endpoint",
    "PUT /v2/bot/channel/webhook/endpoint",
    "POST /v2/bot/channel/webhook/test",
]
TOKENS = [
    "POST /oauth2/v3/token",
    "GET /oauth2/v2.1/tokens/kid",
    "POST /oauth2/v2.1/token",
    "GET /oauth2/v2.1/verify",
    "POST /oauth2/v2.1/revoke",
    "POST /v2/oauth/accessToken",
    "POST /v2/oauth/verify",
    "POST /v2/oauth/revoke",
]


def _operations(document: str, labels: list[str]) -> list[Any]:
    schema = schemathesis.openapi.from_path(DATA / document)
    return [schema.find_operation_by_label(label) for label in labels]


def _documented_status(response: Any, operation: Any) -> None:
    documented = {int(code) for code in operation.definition.raw.get("responses", {}) if code.isdigit()}
    allowed = documented | COMMON_ERRORS
    assert response.status_code in allowed, (
        f"{operation.label}: status {response.status_code} is neither documented ({sorted(documented)}) "
        f"nor one of LINE's common errors: {response.text[:300]}"
    )


@dataclass
class World:
    """A served channel with something to read: a friend, a group with members, a room, a bot on loopback."""

    app: Any
    token: str
    channel: Any
    bot_url: str
    key: Any
    kid: str

    def assertion(self) -> str:
        return assertion(self.key, self.kid, self.channel.channel_id, time.time())

    def form(self, **fields: str) -> dict[str, Any]:
        return {"body": fields, "media_type": "application/x-www-form-urlencoded"}

    def credentials(self) -> dict[str, str]:
        return {"client_id": self.channel.channel_id, "client_secret": self.channel.channel_secret}

    def v21(self) -> str:
        value: str = self.app.state.emulator.issue_v21(self.channel, 86400).value
        return value

    def short_lived(self) -> str:
        value: str = self.app.state.emulator.issue_short_lived(self.channel).value
        return value

    def with_webhook(self) -> dict[str, Any]:
        self.channel.webhook.url = self.bot_url
        return {}

    def narrowcast_id(self) -> str:
        async def send() -> str:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://emulator") as client:
                answer = await client.post(
                    "/v2/bot/message/narrowcast",
                    json={"messages": [TEXT]},
                    headers={"Authorization": f"Bearer {self.token}"},
                )
            return answer.headers["x-line-request-id"]

        return asyncio.run(send())


TEXT = {"type": "text", "text": "conformance"}
FRIEND, GROUP, ROOM = "U" + "a1" * 16, "C" + "b2" * 16, "R" + "c3" * 16
JWT = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# Requests LINE would accept, so the success answers are checked against their schemas too (generated data
# is nearly always refused with a 400).
VALID: dict[str, Callable[[World], dict[str, Any]]] = {
    "POST /v2/bot/message/reply": lambda w: {
        "body": {
            "replyToken": w.app.state.emulator.issue_reply_token(w.channel.channel_id, FRIEND),
            "messages": [TEXT],
        }
    },
    "POST /v2/bot/message/push": lambda w: {
        "body": {"to": FRIEND, "messages": [TEXT], "notificationDisabled": True}
    },
    "POST /v2/bot/message/multicast": lambda w: {"body": {"to": [FRIEND], "messages": [TEXT]}},
    "POST /v2/bot/message/narrowcast": lambda w: {"body": {"messages": [TEXT]}},
    "GET /v2/bot/message/progress/narrowcast": lambda w: {"query": {"requestId": w.narrowcast_id()}},
    "POST /v2/bot/message/broadcast": lambda w: {"body": {"messages": [TEXT]}},
    "GET /v2/bot/message/quota": lambda w: {},
    "GET /v2/bot/message/quota/consumption": lambda w: {},
    **{
        f"GET /v2/bot/message/delivery/{k}": (lambda w: {"query": {"date": "20240101"}})
        for k in ("reply", "push", "multicast", "broadcast")
    },
    **{
        f"POST /v2/bot/message/validate/{k}": (lambda w: {"body": {"messages": [TEXT]}})
        for k in ("reply", "push", "multicast", "narrowcast", "broadcast")
    },
    "GET /v2/bot/profile/{userId}": lambda w: {"path_parameters": {"userId": FRIEND}},
    "GET /v2/bot/followers/ids": lambda w: {"query": {"limit": 1}},
    "GET /v2/bot/info": lambda w: {},
    "GET /v2/bot/group/{groupId}/summary": lambda w: {"path_parameters": {"groupId": GROUP}},
    "GET /v2/bot/group/{groupId}/members/count": lambda w: {"path_parameters": {"groupId": GROUP}},
    "GET /v2/bot/room/{roomId}/members/count": lambda w: {"path_parameters": {"roomId": ROOM}},
    "PUT /v2/bot/channel/webhook/endpoint": lambda w: {"body": {"endpoint": w.bot_url}},
    "GET /v2/bot/channel/webhook/endpoint": lambda w: w.with_webhook(),
    "POST /v2/bot/channel/webhook/test": lambda w: {"body": {"endpoint": w.bot_url}},
    "POST /oauth2/v3/token": lambda w: w.form(grant_type="client_credentials", **w.credentials()),
    "GET /oauth2/v2.1/tokens/kid": lambda w: {
        "query": {"client_assertion_type": JWT, "client_assertion": w.assertion()}
    },
    "POST /oauth2/v2.1/token": lambda w: w.form(
        grant_type="client_credentials", client_assertion_type=JWT, client_assertion=w.assertion()
    ),
    "GET /oauth2/v2.1/verify": lambda w: {"query": {"access_token": w.v21()}},
    "POST /oauth2/v2.1/revoke": lambda w: w.form(
        **w.credentials(),
        access_token=w.v21(),
    ),
    "POST /v2/oauth/accessToken": lambda w: w.form(grant_type="client_credentials", **w.credentials()),
    "POST /v2/oauth/verify": lambda w: w.form(access_token=w.short_lived()),
    "POST /v2/oauth/revoke": lambda w: w.form(access_token=w.short_lived()),
}


@pytest.fixture(scope="module")
def world(private_key: Any) -> Iterator[World]:
    # Webhook URLs the run generates may name loopback only, so nothing is ever sent off this machine.
    app = create_app(EmulatorConfig(rate_limits=None, webhook_hosts=("127.0.0.1", "localhost")))
    state = app.state.emulator
    channel = state.create_channel(name="conformance")
    kid = state.register_key(channel.channel_id, public_jwk(private_key))
    state.set_recipient(channel.channel_id, FRIEND, "friend")
    state.chat(channel, GROUP).members.append(FRIEND)
    with LoopbackBot() as bot:
        yield World(app, state.issue_long_lived(channel.channel_id), channel, bot.url, private_key, kid)


@pytest.fixture(scope="module")
def private_key() -> Any:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def test_every_served_operation_is_checked() -> None:
    assert sorted(VALID) == sorted([*MESSAGING, *TOKENS])


@pytest.mark.parametrize(
    "operation",
    [*_operations("messaging-api.yml", MESSAGING), *_operations("channel-access-token.yml", TOKENS)],
    ids=lambda op: op.label,
)
def test_the_emulator_answers_as_the_openapi_documents_say(operation: Any, world: World) -> None:
    app, token = world.app, world.token
    checks: list[Callable[..., Any]] = [
        not_a_server_error,
        content_type_conformance,
        response_schema_conformance,
    ]
    good = operation.Case(**VALID[operation.label](world))
    accepted = good.call(app=app, headers={"Authorization": f"Bearer {token}"})
    assert 200 <= accepted.status_code < 300, (operation.label, accepted.status_code, accepted.text[:300])
    _documented_status(accepted, operation)
    good.validate_response(accepted, checks=checks)
    checks: list[Callable[..., Any]] = [
        not_a_server_error,
        content_type_conformance,
        response_schema_conformance,
    ]

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=os.environ.get("CI", "").lower() == "true",
        suppress_health_check=list(HealthCheck),
    )
    @given(case=st.one_of(operation.as_strategy(), operation.as_strategy(GenerationMode.NEGATIVE)))
    def run(case: Any) -> None:
        response = case.call(app=app, headers={"Authorization": f"Bearer {token}"})
        counted.append(response.status_code)
        _documented_status(response, operation)
        case.validate_response(response, checks=checks)

    counted: list[int] = []
    run()
    assert counted, "no generated example was sent"
