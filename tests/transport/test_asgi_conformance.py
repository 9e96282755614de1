"""The conformance cases that apply to the in-process ASGI transports (no sockets: no TLS, proxies or
framing): what the caller sees, exactly as over a socket."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from linepush.api._base import ApiRequest, ApiResponse
from linepush.errors import ConfigurationError, OutcomeUnknownError
from linepush.transport import ASGITransport, SyncASGITransport
from tests.transport.conftest import push

Receive = Callable[[], Awaitable[Any]]
Send = Callable[[Any], Awaitable[None]]


class App:
    """An ASGI app that records what it was asked and answers as told."""

    def __init__(self, behaviour: str = "answer") -> None:
        self.behaviour = behaviour
        self.scopes: list[dict[str, Any]] = []

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        self.scopes.append(scope)
        await receive()
        if self.behaviour == "hang":
            await asyncio.Event().wait()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"x-line-request-id", b"r1")]})
        if self.behaviour == "drop":
            return  # started an answer and never finished it: a dropped connection
        await send({"type": "http.response.body", "body": b"{}", "more_body": False})


@pytest.fixture(params=["async", "sync"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def send_with(
    kind: str,
    app: App,
    request: ApiRequest,
    token: str = "tok",
    base: str = "http://emulator.invalid",
    **kw: Any,
) -> ApiResponse:
    if kind == "async":
        return await ASGITransport(app, base).send(request, token, **kw)
    transport = SyncASGITransport(app, base)
    try:
        return await asyncio.to_thread(transport.send, request, token, **kw)
    finally:
        transport.close()


async def test_an_answer_reaches_its_request(kind: str) -> None:
    app = App()
    response = await send_with(kind, app, push())
    assert (response.status, response.request_id, response.body) == (200, "r1", b"{}")


async def test_an_answer_started_and_never_finished_is_outcome_unknown(kind: str) -> None:
    with pytest.raises(OutcomeUnknownError):
        await send_with(kind, App("drop"), push())


async def test_a_bound_on_the_attempt_cuts_an_answer_that_never_comes(kind: str) -> None:
    with pytest.raises(OutcomeUnknownError):
        await send_with(kind, App("hang"), push(), timeout=0.05)


async def test_a_line_break_in_the_token_is_refused_before_the_app_is_called(kind: str) -> None:
    app = App()
    with pytest.raises(ConfigurationError):
        await send_with(kind, app, push(), token="s3cr3t\r\nX-Injected: 1")
    assert app.scopes == []


async def test_a_base_url_with_a_path_is_the_apps_root_path(kind: str) -> None:
    app = App()
    await send_with(kind, app, push(), base="http://gateway.invalid/line/")
    scope = app.scopes[0]
    assert (scope["path"], scope["root_path"]) == ("/line/v2/bot/message/push", "/line")
