"""The LINE Notify–compatible API: ``POST /api/notify``, ``GET /api/status`` and ``POST /api/revoke``, and the
gateway's configuration. The form and answers are in :mod:`~linepush.service.notify_form`, the per-token
limits in :mod:`~linepush.service.notify_limits`.

Requests look and are answered as LINE Notify's were (FACTS §7.1): a Bearer gateway token, form fields,
``{"status": …, "message": …}`` bodies whose ``status`` is the HTTP status, and the ``X-RateLimit-*``
headers. A notification becomes ONE push (text, then sticker, then image) to the recipient bound to the
token, put in the outbox before the answer; the delivery worker sends it. A token with a digest window
has its notifications merged into one push per window instead (:mod:`linepush.digest`), stored before the
answer too.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from linepush.digest import append_to_digest
from linepush.errors import ConfigurationError, ValidationError
from linepush.outbox import push_item
from linepush.service.gateway_tokens import MAX_TOKEN_LENGTH, hash_gateway_token, token_target_type
from linepush.service.group_commit import GroupCommit
from linepush.service.images import DEFAULT_MAX_IMAGE_BYTES, ImageStore, UploadRefused
from linepush.service.notify_form import (
    INVALID_TOKEN,
    MAX_NOTIFY_MESSAGE,
    NotifyError,
    NotifyRequest,
    notify_messages,
    notify_response,
    parse_notify_form,
    read_fields,
)
from linepush.service.notify_limits import DEFAULT_RATE_LIMITS, NotifyRateLimiter, Quota, RateLimits
from linepush.service.store import GatewayToken, gateway_store
from linepush.store import NewMessage, Store, StoreError

__all__ = ["GatewayConfig", "NotifyApi", "caller_token", "guard", "named_zone"]

log = logging.getLogger("linepush.service.gateway")

_FORM_SLACK: Final = 64 * 1024


@dataclass(frozen=True)
class GatewayConfig:
    """How the gateway behaves. ``public_url`` (HTTPS, as LINE must reach it) and ``image_dir`` together
    enable ``imageFile`` uploads; without them an upload gets a 400 that says so."""

    rate_limits: RateLimits = field(default=DEFAULT_RATE_LIMITS)
    public_url: str | None = None
    image_dir: str | None = None
    max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES
    #: Seconds an uploaded image is kept (None: for ever). Old ones are deleted as new ones come in.
    image_retention: float | None = None
    max_message_length: int = MAX_NOTIFY_MESSAGE
    #: LINE's webhook bodies are small (a text message is at most 5,000 characters, some 30 KB of JSON at
    #: worst, and LINE sends a few events at a time); a larger one is refused before it is read.
    max_webhook_bytes: int = 256 * 1024
    #: Bytes of webhook bodies held at once, before their signatures are checked; beyond, a 503.
    max_webhook_held: int = 8 * 1024 * 1024
    #: Seconds an event's timestamp may be off the clock before the event is ignored as a replay.
    webhook_max_age: float = 86_400.0
    #: The time zone of the times in digests' headers (an IANA name).
    time_zone: str = "UTC"

    def __post_init__(self) -> None:
        if (self.public_url is None) != (self.image_dir is None):
            raise ConfigurationError("image uploads need both a public URL and an image directory")
        if not 1 <= self.max_message_length <= 5000:
            raise ConfigurationError("the message length limit must be 1 to 5000 (LINE's text limit)")
        if self.image_retention is not None and not self.image_retention > 0:
            raise ConfigurationError("the image retention must be a positive number of seconds")
        if not 1 <= self.max_webhook_bytes <= self.max_webhook_held:
            raise ConfigurationError(
                "the webhook body limit must be at least 1 byte and at most what is held at once"
            )
        if not (self.webhook_max_age > 0 and math.isfinite(self.webhook_max_age)):
            raise ConfigurationError("the webhook event window must be a positive number of seconds")
        self.zone()

    def zone(self) -> ZoneInfo:
        return named_zone(self.time_zone)

    def image_store(self) -> ImageStore | None:
        if self.public_url is None or self.image_dir is None:
            return None
        return ImageStore(self.image_dir, self.public_url, max_bytes=self.max_image_bytes)

    @property
    def max_body(self) -> int:
        return self.max_image_bytes + _FORM_SLACK


def named_zone(name: str) -> ZoneInfo:
    """The time zone of an IANA name (UTC, Asia/Tokyo), or a :class:`ConfigurationError` that says so."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigurationError(
            f"unknown time zone {name!r}: give an IANA name such as UTC or Asia/Tokyo"
        ) from None


# -- the endpoints -------------------------------------------------------------------------------------------


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    return token


async def caller_token(store: Store, channel_id: str, request: Request) -> GatewayToken:
    """The caller's working gateway token, or a 401 (a token of another channel is as good as none)."""
    token = _bearer(request)
    if token is None:
        raise NotifyError(401, INVALID_TOKEN)
    found = await run_in_threadpool(gateway_store(store).find_gateway_token, hash_gateway_token(token))
    if found is None or found.revoked or found.channel_id != channel_id:
        raise NotifyError(401, INVALID_TOKEN)
    return found


Handler = Callable[[Request], Awaitable[Response]]


class NotifyApi:
    """The three LINE Notify endpoints for one channel's gateway tokens."""

    def __init__(
        self,
        store: Store,
        channel_id: str,
        config: GatewayConfig,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.channel_id = channel_id
        self.config = config
        self.clock = clock
        self.limiter = NotifyRateLimiter(store, config.rate_limits)
        self.images = config.image_store()
        self.commits = GroupCommit(store, clock)
        self.zone = config.zone()
        self._last_purge = float("-inf")

    async def _token(self, request: Request) -> GatewayToken:
        return await caller_token(self.store, self.channel_id, request)

    async def notify(self, request: Request) -> Response:
        token = await self._token(request)
        now = self.clock()
        quota = await self.limiter.take_call(token.id, now)
        if quota is None:
            answer = await self._answer(
                429, "Too Many Requests: the rate limit of this token is reached", token, now
            )
            answer.headers["Retry-After"] = str(max(int(answer.headers["X-RateLimit-Reset"]) - int(now), 1))
            return answer
        try:
            fields = await read_fields(request, self.config.max_body)
            form = parse_notify_form(fields, self.config.max_message_length)
            return await self._queue(form, token, now, quota)
        except NotifyError as exc:
            if exc.status >= 500:
                await self._give_back_call(token, now)
            return await self._answer(exc.status, exc.message, token, now)
        except StoreError:
            # Nothing was queued (a full disk, say) and the sender will retry: the call is not counted, or a
            # retrying sender would be locked out for the rest of the window once the store is back.
            await self._give_back_call(token, now)
            raise

    async def _give_back_call(self, token: GatewayToken, now: float) -> None:
        try:
            await self.limiter.give_back_call(token.id, now)
        except StoreError as exc:  # the store that failed may fail again: the count stands, nothing worse
            log.warning("could not take back a call of gateway token %d from its count: %s", token.id, exc)

    async def _queue(self, form: NotifyRequest, token: GatewayToken, now: float, quota: Quota) -> Response:
        """Queue the notification; ``quota`` is what the call left (the headers of a text-only answer)."""
        images = self.images
        if form.upload is not None:
            if images is None:
                raise NotifyError(
                    400,
                    "imageFile: image uploads are not enabled on this gateway (it needs a public HTTPS URL "
                    "to serve them from); send imageThumbnail and imageFullsize URLs instead",
                )
            try:
                images.check(form.upload)
            except UploadRefused as exc:
                raise NotifyError(400, str(exc)) from None
        # Checked before an upload is counted and kept, so a refused message leaves nothing behind.
        item = self._item(form, token, None)
        if form.upload is None or images is None:
            await self._enqueue(item, token)
            return notify_response(200, "ok", quota.headers())
        with_image = await self.limiter.take_image(token.id, now)
        if with_image is None:
            raise NotifyError(429, "Too Many Requests: the image upload limit of this token is reached")
        try:
            uploaded = await run_in_threadpool(images.save, form.upload, now)
        except OSError:
            await self.limiter.give_back_image(token.id, now)
            log.error("could not keep an uploaded image in %s", images.directory)
            raise NotifyError(503, "the gateway could not keep the image; try again later") from None
        try:
            await self._enqueue(self._item(form, token, uploaded.url), token)
        except BaseException:
            await self.limiter.give_back_image(token.id, now)
            await run_in_threadpool(images.discard, uploaded.name)
            raise
        await self._purge_images(images, now)
        return notify_response(200, "ok", with_image.headers())

    async def _purge_images(self, images: ImageStore, now: float) -> None:
        """Delete images past their retention, at most once an hour (only uploads add images)."""
        retention = self.config.image_retention
        if retention is None or now - self._last_purge < min(retention, 3600.0):
            return
        self._last_purge = now
        try:
            removed = await run_in_threadpool(images.purge, retention, now)
        except OSError as exc:
            log.warning("could not delete old uploaded images in %s: %s", images.directory, exc.strerror)
            return
        if removed:
            log.info("deleted %d uploaded images older than the retention", removed)

    async def _enqueue(self, item: NewMessage, token: GatewayToken) -> None:
        if token.digest is not None:  # read with the token
            await run_in_threadpool(self._digest, item, token, token.digest)
            return
        row = await self.commits.enqueue(item)
        log.info("queued outbox message %d for gateway token %d", row.id, token.id)

    def _digest(self, item: NewMessage, token: GatewayToken, window: float) -> None:
        """Merge the notification into the open digest of the token's recipient (stored on return)."""
        payload = item.payload
        try:
            merged = append_to_digest(
                self.store,
                self.channel_id,
                payload["to"],
                payload["messages"],
                window=window,
                now=self.clock(),
                zone=self.zone,
                notification_disabled=bool(payload.get("notificationDisabled", False)),
            )
        except ValidationError as exc:
            raise NotifyError(400, str(exc)) from None
        log.info(
            "merged into digest outbox message %d (%d notifications) for gateway token %d",
            merged.message.id,
            merged.parts,
            token.id,
        )

    def _item(self, form: NotifyRequest, token: GatewayToken, uploaded_url: str | None) -> NewMessage:
        """The outbox row of a notification: one push to the token's recipient, batchable (the worker sends
        the notifications due together to one chat in one push, which LINE counts as one message)."""
        if token.recipient_id is None:
            raise NotifyError(
                400,
                f"this gateway token routes alerts by the route table {token.route_table!r} (POST "
                "/alertmanager, /grafana, /hooks/NAME); a notification needs a token bound to one recipient "
                "(`linepush gateway token create --to ID`)",
            )
        try:
            return push_item(
                self.channel_id,
                token.recipient_id,
                notify_messages(form, uploaded_url),
                notification_disabled=form.notification_disabled,
                batchable=True,
            )
        except ValidationError as exc:
            raise NotifyError(400, str(exc)) from None

    async def _answer(self, status: int, message: str, token: GatewayToken, now: float) -> JSONResponse:
        return notify_response(status, message, (await self.limiter.quota(token.id, now)).headers())

    async def status(self, request: Request) -> Response:
        token = await self._token(request)
        now = self.clock()
        body = {
            "status": 200,
            "message": "ok",
            "targetType": token_target_type(token),
            "target": token.name,
        }
        return JSONResponse(body, headers=(await self.limiter.quota(token.id, now)).headers())

    async def revoke(self, request: Request) -> Response:
        token = await self._token(request)
        now = self.clock()
        await run_in_threadpool(gateway_store(self.store).revoke_gateway_token, token.id, now)
        log.info("gateway token %d revoked by its holder", token.id)
        return await self._answer(200, "ok", token, now)


def guard(handler: Handler) -> Handler:
    """Turn a :class:`NotifyError` into its answer, and a store failure into a 503 (never a traceback)."""

    async def guarded(request: Request) -> Response:
        try:
            return await handler(request)
        except NotifyError as exc:
            return notify_response(exc.status, exc.message)
        except StoreError as exc:
            log.error("the store failed: %s", exc)
            return notify_response(503, "the gateway's store is unavailable; try again later")

    return guarded
