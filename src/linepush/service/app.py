"""The gateway as one ASGI app: the LINE Notify–compatible API, the webhook, uploaded images, liveness and
readiness checks, and one structured access-log line per request."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Final

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from linepush.config import Channel
from linepush.service.alerts import AlertReceivers, AlertsConfig
from linepush.service.gateway import GatewayConfig, NotifyApi, guard
from linepush.service.health import Readiness, WorkerWatch
from linepush.service.metrics import Metrics
from linepush.service.notify_form import notify_response
from linepush.service.webhook import WebhookReceiver
from linepush.store import Store

__all__ = ["ACCESS_LOG", "AccessLog", "create_gateway_app"]

#: The logger of the access lines (one JSON object per request, at INFO).
ACCESS_LOG: Final = "linepush.service.access"
_MAX_LOGGED_PATH: Final = 200
#: The status logged for a request whose client went away before it was answered (nginx's number for it).
CLIENT_GONE: Final = 499

log = logging.getLogger("linepush.service")


class AccessLog:
    """ASGI middleware: one line per request with method, path, status and duration.

    Only the path is logged: never the query string, headers (the Bearer token) or bodies. A request that
    fails inside the app is answered with a plain 500 in LINE Notify's shape and logged here, so no client
    ever sees a traceback. A client that goes away before its request is read is no error of ours: nothing is
    answered, and its access line says 499.
    """

    def __init__(
        self, app: ASGIApp, logger: logging.Logger | None = None, metrics: Metrics | None = None
    ) -> None:
        self.app = app
        self.logger = logger or logging.getLogger(ACCESS_LOG)
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except ClientDisconnect:
            status = status or CLIENT_GONE
        except Exception:
            log.exception("unexpected error answering %s %s", scope.get("method"), _path(scope))
            if status == 0:
                status = 500
                response = notify_response(500, "Internal Server Error")
                await response(scope, receive, send)
        finally:
            self._log(scope, status, time.perf_counter() - started)

    def _log(self, scope: Scope, status: int, seconds: float) -> None:
        if self.metrics is not None:
            self.metrics.observe_request(str(scope.get("path", "")), status, seconds)
        if not self.logger.isEnabledFor(logging.INFO):
            return
        line = {
            "time": round(time.time(), 3),
            "event": "request",
            "method": scope.get("method"),
            "path": _path(scope),
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
        }
        client = scope.get("client")
        if client:
            line["client"] = client[0]
        self.logger.info(json.dumps(line, ensure_ascii=True), extra={"http": line})


def _path(scope: Scope) -> str:
    path = str(scope.get("path", ""))
    if path.startswith("/images/"):
        # An image's name is what keeps it private: it is not for the logs.
        return "/images/…"
    return path if len(path) <= _MAX_LOGGED_PATH else path[:_MAX_LOGGED_PATH] + "…"


def create_gateway_app(
    store: Store,
    channel: Channel,
    config: GatewayConfig | None = None,
    *,
    clock: Callable[[], float] = time.time,
    alerts: AlertsConfig | None = None,
    worker: WorkerWatch | None = None,
    metrics: Metrics | None = None,
) -> Starlette:
    """The gateway for ``channel``: its tokens' notifications go to ``store``'s outbox.

    The webhook needs the channel secret; without it ``/webhook`` answers 404 and says why. ``clock`` gives
    UNIX seconds (rate-limit windows, timestamps); tests pass their own. ``worker`` watches the delivery
    worker of this process, for ``/readyz``; ``metrics`` are served at ``/metrics`` (new ones, reading
    ``store``, unless given).
    """
    config = config or GatewayConfig()
    channel_id = channel.require_id()
    api = NotifyApi(store, channel_id, config, clock)
    webhook = WebhookReceiver(
        store,
        channel_id,
        channel.channel_secret,
        max_body=config.max_webhook_bytes,
        max_held=config.max_webhook_held,
        max_age=config.webhook_max_age,
        clock=clock,
    )
    images = api.images
    receivers = AlertReceivers(store, channel_id, alerts, clock)

    readiness = Readiness(store, worker)
    metrics = metrics or Metrics(store, clock=clock)

    async def exposition(request: Request) -> Response:
        body = await run_in_threadpool(generate_latest, metrics.registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        checks = await run_in_threadpool(readiness.checks, clock())
        failed = [name for name, answer in checks.items() if answer != "ok"]
        if failed:
            body = {"status": "not ready", "failed": failed, "checks": checks}
            return JSONResponse(body, status_code=503)
        return JSONResponse({"status": "ready", "checks": checks})

    async def image(request: Request) -> Response:
        found = images.path(request.path_params["name"]) if images is not None else None
        if found is None or not await run_in_threadpool(found[0].is_file):
            return notify_response(404, "Not Found")
        path, media_type = found
        headers = {"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"}
        return FileResponse(path, media_type=media_type, headers=headers)

    async def http_error(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, HTTPException):
            return notify_response(500, "Internal Server Error")
        # Starlette's own 404s and 405s (with their Allow header), in LINE Notify's shape.
        return notify_response(exc.status_code, exc.detail, exc.headers)

    routes = [
        Route("/api/notify", guard(api.notify), methods=["POST"]),
        Route("/api/status", guard(api.status), methods=["GET"]),
        Route("/api/revoke", guard(api.revoke), methods=["POST"]),
        Route("/webhook", guard(webhook), methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", exposition, methods=["GET"]),
        Route("/images/{name}", image, methods=["GET"]),
        Route("/alertmanager", guard(receivers.alertmanager), methods=["POST"]),
        Route("/grafana", guard(receivers.grafana), methods=["POST"]),
        Route("/hooks/{name}", guard(receivers.hook), methods=["POST"]),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(AccessLog, metrics=metrics)],
        exception_handlers={HTTPException: http_error},
    )
    app.state.notify_api = api
    app.state.webhook = webhook
    app.state.alerts = receivers
    app.state.metrics = metrics
    return app
