"""The alert receivers of the gateway: ``POST /alertmanager`` and ``POST /grafana``.

A notification is answered 200 only once its push is in the outbox (a store failure is a 503, so the sender
retries); a payload that can never work is a 4xx that says why. A sender's retry of a notification it
already delivered here (same token, source, receiver, group, status and alerts) within the dedupe window is
answered 200 and not queued again: Alertmanager resends after a timeout or a 5xx.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final
from zoneinfo import ZoneInfo

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from linepush._secret import Secret
from linepush.digest import append_to_digest
from linepush.errors import ConfigurationError, ValidationError
from linepush.outbox import push_item
from linepush.service.alert_format import fit_texts, render_default
from linepush.service.alert_payloads import (
    AlertNotification,
    parse_alertmanager,
    parse_grafana,
    parse_json,
    parse_json_body,
)
from linepush.service.alert_routes import AlertRoute, RouteTable, route_alerts
from linepush.service.alert_templates import AlertTemplates, alert_context
from linepush.service.gateway import caller_token, named_zone
from linepush.service.notify_form import NotifyError, read_body, read_fields
from linepush.service.store import GatewayToken
from linepush.store import NewMessage, Store, StoreError

__all__ = [
    "DEFAULT_DEDUPE_WINDOW",
    "GRAFANA_SIGNATURE_HEADER",
    "AlertReceivers",
    "AlertsConfig",
    "Hook",
    "grafana_signature",
]

log = logging.getLogger("linepush.service.alerts")

#: Seconds in which a notification received again is a retry of the first, not a new one.
DEFAULT_DEDUPE_WINDOW: Final = 600.0
GRAFANA_SIGNATURE_HEADER: Final = "X-Grafana-Alerting-Signature"
#: A signed Grafana request older (or further ahead) than this is a replay.
REPLAY_WINDOW: Final = 300.0
_DEDUPE_PREFIX: Final = "alerts:"
_PENDING_PREFIX: Final = "alerts-pending:"
#: Seconds a notification being queued holds off its sender's retries; after a crash, they go through then.
PENDING_SECONDS: Final = 30.0
_GLANCE: Final = 0.001
_CLEANUP_EVERY: Final = 3600.0


@dataclass(frozen=True)
class AlertsConfig:
    """How the alert receivers behave. ``grafana_secret`` turns on the check of Grafana's HMAC signature
    (in ``grafana_signature_header``; with ``grafana_timestamp_header``, of ``timestamp:body``)."""

    dedupe_window: float = DEFAULT_DEDUPE_WINDOW
    #: Alertmanager sends every alert of a group at once; a large group is a large body.
    max_body: int = 4 * 1024 * 1024
    time_zone: str = "UTC"
    grafana_secret: Secret | None = None
    grafana_signature_header: str = GRAFANA_SIGNATURE_HEADER
    grafana_timestamp_header: str | None = None
    #: Where alerts go by their labels; an alert no route takes goes to the token's recipient.
    routes: tuple[AlertRoute, ...] = ()
    #: ``[alerts.route_tables.NAME]``: the routes and default of the tokens bound to NAME, instead of the
    #: above and the token's recipient.
    route_tables: Mapping[str, RouteTable] = field(default_factory=dict)
    templates: AlertTemplates | None = None
    #: The template of alerts whose route names none (None: the default rendering).
    template: str | None = None
    #: ``/hooks/{name}``: what each generic hook renders with, and where it goes.
    hooks: Mapping[str, Hook] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (self.dedupe_window >= 0 and math.isfinite(self.dedupe_window)):
            raise ConfigurationError("the alert dedupe window must be 0 or more seconds")
        if self.max_body < 1:
            raise ConfigurationError("the alert body limit must be at least 1 byte")
        known = self.templates.names if self.templates is not None else ()
        wanted = [
            self.template,
            *(r.template for r in self.routes),
            *(t for table in self.route_tables.values() for t in table.templates),
            *(h.template for h in self.hooks.values()),
        ]
        for name in wanted:
            if name is not None and name not in known:
                raise ConfigurationError(
                    f"no template named {name!r} (templates: {', '.join(known) or 'none'})"
                )
        if self.grafana_timestamp_header is not None and self.grafana_secret is None:
            raise ConfigurationError("a Grafana timestamp header needs Grafana's HMAC secret as well")
        self.zone()

    def unknown_route_tables(self, tokens: Iterable[GatewayToken]) -> list[GatewayToken]:
        """The working tokens bound to a route table this configuration does not define."""
        return [
            t
            for t in tokens
            if not t.revoked and t.route_table is not None and t.route_table not in self.route_tables
        ]

    def zone(self) -> ZoneInfo:
        return named_zone(self.time_zone)


@dataclass(frozen=True, slots=True)
class Hook:
    """A generic webhook: its body rendered by ``template``, sent to ``to`` (ids; empty: the token's
    recipient)."""

    template: str
    to: tuple[str, ...] = ()


def grafana_signature(secret: str | Secret, body: bytes, timestamp: str | None = None) -> str:
    """Grafana's webhook signature: hex HMAC-SHA256 of the body, or of ``timestamp:body`` when Grafana is
    configured with a timestamp header."""
    key = (secret.reveal() if isinstance(secret, Secret) else secret).encode("utf-8")
    message = body if timestamp is None else timestamp.encode("latin-1", "replace") + b":" + body
    return hmac.new(key, message, hashlib.sha256).hexdigest()


class AlertReceivers:
    """The alert endpoints for one channel's gateway tokens; a notification goes where the token's route
    table, or ``[[alerts.routes]]`` and the token's recipient, send it."""

    def __init__(
        self,
        store: Store,
        channel_id: str,
        config: AlertsConfig | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.channel_id = channel_id
        self.config = config or AlertsConfig()
        self.clock = clock
        self.zone = self.config.zone()
        self._last_cleanup = float("-inf")

    async def alertmanager(self, request: Request) -> Response:
        token = await caller_token(self.store, self.channel_id, request)
        body = await read_body(request, self.config.max_body)
        return await self._receive(token, parse_alertmanager(parse_json_body(body)))

    async def grafana(self, request: Request) -> Response:
        token = await caller_token(self.store, self.channel_id, request)
        body = await read_body(request, self.config.max_body)
        self._check_grafana_signature(request, body)
        return await self._receive(token, parse_grafana(parse_json_body(body)))

    def _check_grafana_signature(self, request: Request, body: bytes) -> None:
        config = self.config
        if config.grafana_secret is None:
            return
        timestamp: str | None = None
        if config.grafana_timestamp_header is not None:
            timestamp = request.headers.get(config.grafana_timestamp_header, "").strip()
            if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
                log.info("grafana request refused: missing or malformed signature timestamp")
                raise NotifyError(401, "Invalid signature")
            if abs(self.clock() - int(timestamp)) > REPLAY_WINDOW:
                log.info("grafana request refused: its signature is more than 5 minutes old (a replay)")
                raise NotifyError(401, "Invalid signature: the timestamp is outside the 5-minute window")
        expected = grafana_signature(config.grafana_secret, body, timestamp).encode("ascii")
        given = request.headers.get(config.grafana_signature_header, "").strip().lower()
        if not hmac.compare_digest(expected, given.encode("latin-1", "replace")):
            log.info("grafana request refused: missing or wrong signature")
            raise NotifyError(401, "Invalid signature")

    def render(self, notification: AlertNotification, template: str | None = None) -> list[dict[str, Any]]:
        """The LINE messages of a notification: by ``template`` (else the configured one) when it works,
        else by the default rendering."""
        name = template or self.config.template
        texts = None
        if name is not None and self.config.templates is not None:
            texts = self.config.templates.render(name, alert_context(notification))
        if texts is None:
            texts = render_default(notification, self.zone)
        return _texts(texts)

    async def hook(self, request: Request) -> Response:
        # The token first: hook names are not for strangers to probe.
        token = await caller_token(self.store, self.channel_id, request)
        name = request.path_params["name"]
        hook = self.config.hooks.get(name)
        if hook is None:
            raise NotifyError(404, f"there is no hook named {name[:100]!r} on this gateway")
        media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        body: Any
        if media in ("application/x-www-form-urlencoded", "multipart/form-data"):
            fields = await read_fields(request, self.config.max_body)
            body = {k: v if isinstance(v, str) else v.decode("utf-8", "replace") for k, v in fields.items()}
        else:
            body = parse_json(await read_body(request, self.config.max_body))
        messages = await run_in_threadpool(self.render_hook, name, body)
        now = self.clock()
        try:
            items = [
                push_item(self.channel_id, to, messages, batchable=True)
                for to in hook.to or self.routing(token)[1].to
            ]
        except ValidationError as exc:
            raise NotifyError(400, f"the hook's message cannot be sent: {exc}") from None
        rows = await run_in_threadpool(self.store.enqueue, items, now)
        log.info("queued hook %r for gateway token %d as %d outbox messages", name, token.id, len(rows))
        return _answer(len(rows))

    def render_hook(self, name: str, body: Any) -> list[dict[str, Any]]:
        """A hook's messages: its template's, else (when it fails) the body itself, shortened to fit."""
        hook = self.config.hooks[name]
        texts = None
        if self.config.templates is not None:
            context = (
                {**body, "body": body, "hook": name}
                if isinstance(body, dict)
                else {"body": body, "hook": name}
            )
            texts = self.config.templates.render(hook.template, context)
        if texts is None:
            shown = json.dumps(body, ensure_ascii=False, indent=1, sort_keys=True)
            texts = fit_texts(f"🔔 {name}", [shown])
        return _texts(texts)

    def routing(self, token: GatewayToken) -> tuple[Sequence[AlertRoute], AlertRoute]:
        """The routes and the default route of a token's notifications: its route table's, else
        ``[[alerts.routes]]`` and its recipient.

        A table the configuration lacks (a token made, or the file changed, after this server started) is a
        503: the sender keeps the notification and retries, and the error log says what to fix.
        """
        if token.route_table is None:
            assert token.recipient_id is not None  # the store keeps one or the other
            return self.config.routes, AlertRoute({}, (token.recipient_id,))
        table = self.config.route_tables.get(token.route_table)
        if table is None:
            log.error(
                "gateway token %d is bound to route table %r, which this server's configuration does not "
                "define: its notifications are refused (503, the sender retries) until linepush serve is "
                "restarted with [alerts.route_tables.%s]",
                token.id,
                token.route_table,
                token.route_table,
            )
            raise NotifyError(
                503,
                f"this gateway token's route table {token.route_table!r} is not in the gateway's "
                "configuration yet; try again later",
            )
        return table.routes, table.default

    def plan(
        self, notification: AlertNotification, default_to: str, route_table: str | None = None
    ) -> list[tuple[str, list[dict[str, Any]]]]:
        """What a notification becomes: (recipient, messages) for each recipient of each route its alerts
        take, in the routes' order; alerts no route takes go to ``default_to``. With ``route_table``, that
        table's routes and default are used instead (a table not configured is a ConfigurationError)."""
        if route_table is None:
            routes, default = self.config.routes, AlertRoute({}, (default_to,))
        else:
            table = self.config.route_tables.get(route_table)
            if table is None:
                known = ", ".join(self.config.route_tables) or "none"
                raise ConfigurationError(f"no route table named {route_table!r} (route tables: {known})")
            routes, default = table.routes, table.default
        return [(to, messages) for to, messages, _ in self._routed(notification, routes, default)]

    def _routed(
        self, notification: AlertNotification, routes: Sequence[AlertRoute], default: AlertRoute
    ) -> list[tuple[str, list[dict[str, Any]], float | None]]:
        """:meth:`plan`, with each recipient's digest window (its route's)."""
        planned = []
        for route, alerts in route_alerts(notification.alerts, routes, default):
            whole = len(alerts) == len(notification.alerts)
            messages = self.render(
                notification if whole else replace(notification, alerts=tuple(alerts)), route.template
            )
            planned += [(to, messages, route.digest) for to in route.to]
        return planned

    def _items(
        self, notification: AlertNotification, token: GatewayToken
    ) -> tuple[list[NewMessage], list[tuple[str, list[dict[str, Any]], float]]]:
        """The pushes of a notification, and what goes into digests instead: (to, messages, window). The
        default route takes the token's digest window unless it has one of its own."""
        routes, default = self.routing(token)
        if default.digest is None:
            default = replace(default, digest=token.digest)
        items: list[NewMessage] = []
        digests: list[tuple[str, list[dict[str, Any]], float]] = []
        try:
            for to, messages, window in self._routed(notification, routes, default):
                # Checked even when it goes to a digest.
                item = push_item(self.channel_id, to, messages, batchable=True)
                if window is None:
                    items.append(item)
                else:
                    digests.append((to, messages, window))
        except ValidationError as exc:  # the renderer keeps to LINE's limits; this would be our bug
            log.error("an alert notification rendered to messages LINE would refuse: %s", exc)
            raise NotifyError(400, f"the notification cannot be sent: {exc}") from None
        return items, digests

    def _queue(
        self,
        items: Sequence[NewMessage],
        digests: Sequence[tuple[str, list[dict[str, Any]], float]],
        now: float,
    ) -> list[int]:
        """Store the pushes (one transaction) and merge the rest into their digests; the rows' ids.

        Each digest is a transaction of its own: a failure part way is a 503 and the sender's retry queues
        the notification again (a duplicate, never a loss)."""
        ids = [row.id for row in self.store.enqueue(items, now)] if items else []
        for to, messages, window in digests:
            merged = append_to_digest(
                self.store, self.channel_id, to, messages, window=window, now=now, zone=self.zone
            )
            ids.append(merged.message.id)
        return ids

    async def _receive(self, token: GatewayToken, notification: AlertNotification) -> Response:
        # Off the event loop: a user template may take a while.
        items, digests = await run_in_threadpool(self._items, notification, token)
        now = self.clock()
        window = self.config.dedupe_window
        if window <= 0:
            rows = await run_in_threadpool(self._queue, items, digests, now)
        else:
            key = f"{token.id}:{notification.identity()}"
            queued = await self._enqueue_once(key, lambda: self._queue(items, digests, now), window, now)
            if queued is None:
                log.info(
                    "%s notification for gateway token %d already queued (a retry): not queued again",
                    notification.source,
                    token.id,
                )
                return _answer(0, duplicate=True)
            rows = queued
        log.info(
            "queued %s notification (%d alerts, %s) for gateway token %d as outbox message %s",
            notification.source,
            len(notification.alerts),
            notification.status,
            token.id,
            ", ".join(str(row) for row in rows),
        )
        return _answer(len(rows))

    async def _forget_old_marks(self, now: float) -> None:
        """Delete the marks whose window is over, at most once an hour (each notification leaves one)."""
        if now - self._last_cleanup < _CLEANUP_EVERY:
            return
        self._last_cleanup = now
        for prefix in (_DEDUPE_PREFIX, _PENDING_PREFIX):
            await _quietly(self.store.delete_expired_locks, prefix, now)

    async def _enqueue_once(
        self, key: str, queue: Callable[[], list[int]], window: float, now: float
    ) -> list[int] | None:
        """Run ``queue`` (it stores the rows and gives their ids) unless the notification ``key`` was queued
        within ``window``; None when it was.

        Two store leases named after the notification, shared by every process and host on the store: a
        short "pending" one while it is being queued (a retry meanwhile gets a 503 and comes back), and
        the "queued" one, held for the window from the moment the rows are in the outbox. So a crash can
        cost a duplicate (rows queued, mark not yet taken), never an alert (no mark without its rows).
        """
        store = self.store
        await self._forget_old_marks(now)
        owner = secrets.token_hex(8)
        pending, queued = f"{_PENDING_PREFIX}{key}", f"{_DEDUPE_PREFIX}{key}"
        if not await run_in_threadpool(store.try_lock, pending, owner, min(window, PENDING_SECONDS), now):
            raise NotifyError(503, "this notification is being queued by another request; try again shortly")
        try:
            # A look that takes the mark for an instant only: it is held for the window once rows exist.
            if not await run_in_threadpool(store.try_lock, queued, owner, _GLANCE, now):
                return None
            try:
                rows = await run_in_threadpool(queue)
            except BaseException:
                await _quietly(store.unlock, queued, owner)
                raise
            if not await _quietly(store.try_lock, queued, owner, window, now):
                log.warning(
                    "queued a notification but could not mark it: a retry of it would be queued again"
                )
            return rows
        finally:
            await _quietly(store.unlock, pending, owner)


async def _quietly(call: Callable[..., Any], *args: Any) -> Any:
    """``call(*args)`` off the loop; a store failure is logged, not raised (the answer does not hang on
    it)."""
    try:
        return await run_in_threadpool(call, *args)
    except StoreError as exc:
        log.warning("the store failed while marking an alert notification: %s", exc)
        return None


def _texts(texts: list[str]) -> list[dict[str, Any]]:
    return [{"type": "text", "text": text} for text in texts]


def _answer(queued: int, *, duplicate: bool = False) -> JSONResponse:
    body: dict[str, Any] = {"status": 200, "message": "ok", "queued": queued}
    if duplicate:
        body["duplicate"] = True
    return JSONResponse(body)
