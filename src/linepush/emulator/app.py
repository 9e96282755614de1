"""The emulator's ASGI app: api.line.me's token and Messaging API endpoints, the /_emulator admin API and
inbox, and a plain 501 for any path it does not serve."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from email.utils import formatdate
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from linepush.emulator import admin, bot, inbox, messaging, tokens
from linepush.emulator.config import EmulatorConfig
from linepush.emulator.faults import fault_body
from linepush.emulator.http import REQUEST_ID_KEY, LineError, LineJSON
from linepush.emulator.state import AdminError, EmulatorState

#: The status counted for a request whose client went away before it was whole (nginx's 499).
CLIENT_GONE = 499


class LineEdge:
    """What sits in front of every LINE endpoint: a fresh x-line-request-id, a Date header from the emulator's
    clock (so a moved clock shows as LINE's does), the request log, and faults.

    Faults are applied here, outside the endpoints, so a failed attempt never records a retry key or a
    delivery, while a dropped answer does (the request was accepted before the connection broke).
    """

    def __init__(self, app: ASGIApp, state: EmulatorState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = str(uuid.uuid4())
        scope[REQUEST_ID_KEY] = rid
        path: str = scope["path"]
        method: str = scope["method"]
        is_admin = path == admin.PREFIX or path.startswith(admin.PREFIX + "/")
        status_seen = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status_seen
            if message["type"] == "http.response.start":
                status_seen = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"date"]
                headers.append((b"x-line-request-id", rid.encode("ascii")))
                headers.append((b"date", formatdate(self.state.now(), usegmt=True).encode("ascii")))
                message = {**message, "headers": headers}
            await send(message)

        if is_admin:
            await self.app(scope, receive, send_with_id)
            return
        action = self.state.fault_for(path)
        try:
            if action.latency_ms:
                await asyncio.sleep(action.latency_ms / 1000)
            if action.status is not None:
                response = LineJSON(fault_body(action.status), status_code=action.status)
                await response(scope, receive, send_with_id)
            elif action.drop:
                await self._accept_then_drop(scope, receive, send_with_id)
            else:
                await self.app(scope, receive, send_with_id)
        except ClientDisconnect:
            # The client went away before its request was whole (a sender killed, say): nothing to answer,
            # and no fault of the emulator's. Counted as nginx logs it.
            status_seen = status_seen or CLIENT_GONE
        finally:
            self.state.count_request(method, path, status_seen or 500)

    async def _accept_then_drop(self, scope: Scope, receive: Receive, send: Send) -> None:
        held: list[Message] = []

        async def hold(message: Message) -> None:
            held.append(message)

        await self.app(scope, receive, hold)
        start = next((m for m in held if m["type"] == "http.response.start"), None)
        if start is None or not 200 <= start["status"] < 300:
            for message in held:
                await send(message)
            return
        body = b"".join(m.get("body", b"") for m in held if m["type"] == "http.response.body")
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode("ascii")))
        await send({"type": "http.response.start", "status": start["status"], "headers": headers})
        # Half the body and then nothing: the server returns without completing the response, so the
        # client sees a broken connection after LINE has already accepted the request.
        await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})


async def _line_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LineError)
    if exc.body is None:
        return Response(status_code=exc.status, headers=exc.headers)
    return LineJSON(exc.body, status_code=exc.status, headers=exc.headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    messages = {404: "Not found", 405: "Method not allowed"}
    return LineJSON(
        {"message": messages.get(exc.status_code, exc.detail)},
        status_code=exc.status_code,
        headers=exc.headers,
    )


def create_app(config: EmulatorConfig | None = None, clock: Callable[[], float] | None = None) -> Starlette:
    """A fresh emulator. Its state (and admin methods) is ``app.state.emulator``."""
    state = EmulatorState(config, clock)
    handlers: dict[Any, Callable[[Request, Exception], Any]] = {
        LineError: _line_error,
        AdminError: admin.admin_error,
        HTTPException: _http_error,
    }
    app = Starlette(
        routes=[*tokens.ROUTES, *messaging.ROUTES, *bot.ROUTES, *admin.ROUTES, *inbox.ROUTES, bot.NOT_SERVED],
        middleware=[Middleware(LineEdge, state=state)],
        exception_handlers=handlers,
    )
    app.state.emulator = state
    return app
