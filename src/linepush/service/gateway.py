"""The LINE Notify–compatible API: ``POST /api/notify``, ``GET /api/status`` and ``POST /api/revoke``.

Requests look and are answered as LINE Notify's were (FACTS §7.1): a Bearer gateway token, form fields,
``{"status": …, "message": …}`` bodies whose ``status`` is the HTTP status, and the ``X-RateLimit-*``
headers. A notification becomes ONE push (text, then sticker, then image) to the recipient bound to the
token, put in the outbox before the answer; the delivery worker sends it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import parse_qsl

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Message

from linepush.errors import ConfigurationError, ValidationError
from linepush.messages import utf16_len
from linepush.outbox import push_item
from linepush.service.gateway_tokens import MAX_TOKEN_LENGTH, hash_gateway_token, target_type
from linepush.service.group_commit import GroupCommit
from linepush.service.images import DEFAULT_MAX_IMAGE_BYTES, ImageStore, UploadRefused
from linepush.service.store import GatewayToken, gateway_store
from linepush.store import NewMessage, Store, StoreError

__all__ = [
    "DEFAULT_RATE_LIMITS",
    "GatewayConfig",
    "NotifyApi",
    "NotifyError",
    "NotifyRateLimiter",
    "Quota",
    "RateLimits",
    "caller_token",
    "notify_messages",
    "notify_response",
]

log = logging.getLogger("linepush.service.gateway")

#: LINE Notify's limit on ``message``, counted in UTF-16 code units as LINE counts text (FACTS §5.2); how
#: Notify counted is not documented.
MAX_NOTIFY_MESSAGE: Final = 1000
_FORM_SLACK: Final = 64 * 1024
_MAX_FIELDS: Final = 64
_TRUE: Final = frozenset({"true", "1", "yes", "on"})
_FALSE: Final = frozenset({"false", "0", "no", "off", ""})
_URL_FORBIDDEN: Final = frozenset(' "<>\\^`{|}\t\r\n')
_MAX_URL: Final = 2000
_MAX_STICKER_ID: Final = 20


class NotifyError(Exception):
    """An answer other than 200, in LINE Notify's shape: ``{"status": status, "message": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def notify_response(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"status": status, "message": message}, status_code=status, headers=headers)


INVALID_TOKEN: Final = "Invalid access token"


# -- rate limits ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Calls of ``/api/notify`` and image uploads allowed per token per window.

    LINE Notify's figures (1000 calls and 50 uploads an hour) were observed, not documented (FACTS §7.1); so
    were its windows' boundaries, so here a window is a fixed stretch of ``window`` seconds counted from the
    UNIX epoch (whole clock hours by default), and ``X-RateLimit-Reset`` is its end.
    """

    calls: int = 1000
    images: int = 50
    window: float = 3600.0

    def __post_init__(self) -> None:
        if self.calls < 1 or self.images < 0 or not (self.window > 0 and math.isfinite(self.window)):
            raise ConfigurationError(
                "rate limits need at least 1 call, 0 or more images and a positive window of seconds"
            )


DEFAULT_RATE_LIMITS: Final = RateLimits()


@dataclass(frozen=True, slots=True)
class Quota:
    """What a token has left in the current window, as LINE Notify's headers say it."""

    limit: int
    remaining: int
    image_limit: int
    image_remaining: int
    reset: int

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-ImageLimit": str(self.image_limit),
            "X-RateLimit-ImageRemaining": str(self.image_remaining),
            "X-RateLimit-Reset": str(self.reset),
        }


class NotifyRateLimiter:
    """Counts calls and uploads per gateway token, in memory.

    Counts are per gateway process: several processes behind one address each allow the full limit. Only
    the event loop's thread calls it, so it needs no lock.
    """

    def __init__(self, limits: RateLimits = DEFAULT_RATE_LIMITS) -> None:
        self.limits = limits
        # token id -> [window start, calls, images]
        self._used: dict[int, list[float]] = {}

    def _entry(self, token_id: int, now: float) -> list[float]:
        start = math.floor(now / self.limits.window) * self.limits.window
        entry = self._used.get(token_id)
        if entry is None or entry[0] != start:
            if len(self._used) > 10_000:
                # Tokens idle since an earlier window have nothing worth keeping.
                self._used = {k: v for k, v in self._used.items() if v[0] >= start}
            entry = self._used[token_id] = [start, 0, 0]
        return entry

    def quota(self, token_id: int, now: float) -> Quota:
        start, calls, images = self._entry(token_id, now)
        return Quota(
            limit=self.limits.calls,
            remaining=max(self.limits.calls - int(calls), 0),
            image_limit=self.limits.images,
            image_remaining=max(self.limits.images - int(images), 0),
            reset=math.ceil(start + self.limits.window),
        )

    def take_call(self, token_id: int, now: float) -> bool:
        """Count one call; False (and nothing counted) when the window's calls are used up."""
        entry = self._entry(token_id, now)
        if entry[1] >= self.limits.calls:
            return False
        entry[1] += 1
        return True

    def take_image(self, token_id: int, now: float) -> bool:
        """Count one upload; False (and nothing counted) when the window's uploads are used up."""
        entry = self._entry(token_id, now)
        if entry[2] >= self.limits.images:
            return False
        entry[2] += 1
        return True

    def give_back_image(self, token_id: int, now: float) -> None:
        entry = self._entry(token_id, now)
        entry[2] = max(entry[2] - 1, 0)


# -- configuration -------------------------------------------------------------------------------------------


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

    def image_store(self) -> ImageStore | None:
        if self.public_url is None or self.image_dir is None:
            return None
        return ImageStore(self.image_dir, self.public_url, max_bytes=self.max_image_bytes)

    @property
    def max_body(self) -> int:
        return self.max_image_bytes + _FORM_SLACK


# -- the form, as LINE Notify read it ------------------------------------------------------------------------

Fields = dict[str, "str | bytes"]


@dataclass(frozen=True, slots=True)
class NotifyRequest:
    """A checked ``/api/notify`` form."""

    message: str
    sticker: tuple[str, str] | None
    image_urls: tuple[str, str] | None  # (thumbnail, full size)
    upload: bytes | None
    notification_disabled: bool


def _text(fields: Fields, name: str) -> str | None:
    value = fields.get(name)
    if value is None:
        return None
    if isinstance(value, bytes):
        # `curl -F message=@file.txt` sends the field as a file: take its text, as a form field.
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise NotifyError(400, f"{name}: must be UTF-8 text") from None
    return value


def _https_url(value: str, name: str) -> str:
    if value[:8].lower() != "https://" or len(value) == 8:
        raise NotifyError(400, f"{name}: must be an HTTPS URL")
    if len(value) > _MAX_URL:
        raise NotifyError(400, f"{name}: must be at most {_MAX_URL} characters")
    if not value.isascii() or any(c in _URL_FORBIDDEN for c in value) or not value.isprintable():
        raise NotifyError(400, f"{name}: must be a percent-encoded URL (no spaces or non-ASCII characters)")
    return value


def parse_notify_form(fields: Fields, max_message_length: int = MAX_NOTIFY_MESSAGE) -> NotifyRequest:
    """Check the fields LINE Notify took; unknown fields are ignored, as Notify did."""
    message = _text(fields, "message")
    if not message:
        raise NotifyError(400, "message: must not be empty")
    if utf16_len(message) > max_message_length:
        raise NotifyError(400, f"message: size must be between 1 and {max_message_length}")

    package = (_text(fields, "stickerPackageId") or "").strip()
    sticker_id = (_text(fields, "stickerId") or "").strip()
    sticker: tuple[str, str] | None = None
    if package or sticker_id:
        if not package:
            raise NotifyError(400, "stickerPackageId: must be given with stickerId")
        if not sticker_id:
            raise NotifyError(400, "stickerId: must be given with stickerPackageId")
        for name, value in (("stickerPackageId", package), ("stickerId", sticker_id)):
            if not (value.isascii() and value.isdigit() and len(value) <= _MAX_STICKER_ID):
                raise NotifyError(400, f"{name}: must be a number")
        sticker = (package, sticker_id)

    thumbnail = (_text(fields, "imageThumbnail") or "").strip()
    full = (_text(fields, "imageFullsize") or "").strip()
    image_urls: tuple[str, str] | None = None
    if thumbnail or full:
        # Notify's document listed both as optional; a script that gave only one still gets its picture.
        thumbnail = _https_url(thumbnail, "imageThumbnail") if thumbnail else ""
        full = _https_url(full, "imageFullsize") if full else ""
        image_urls = (thumbnail or full, full or thumbnail)

    upload = fields.get("imageFile")
    if isinstance(upload, str):
        if upload:
            raise NotifyError(400, "imageFile: must be a file upload (multipart/form-data)")
        upload = None

    flag = (_text(fields, "notificationDisabled") or "").strip().lower()
    if flag not in _TRUE and flag not in _FALSE:
        raise NotifyError(400, "notificationDisabled: must be true or false")
    return NotifyRequest(message, sticker, image_urls, upload, flag in _TRUE)


def notify_messages(form: NotifyRequest, uploaded_url: str | None = None) -> list[dict[str, Any]]:
    """The LINE messages of a notification: text, then sticker, then image (an upload wins over URLs)."""
    messages: list[dict[str, Any]] = [{"type": "text", "text": form.message}]
    if form.sticker is not None:
        messages.append({"type": "sticker", "packageId": form.sticker[0], "stickerId": form.sticker[1]})
    if uploaded_url is not None:
        messages.append(
            {"type": "image", "originalContentUrl": uploaded_url, "previewImageUrl": uploaded_url}
        )
    elif form.image_urls is not None:
        thumbnail, full = form.image_urls
        messages.append({"type": "image", "originalContentUrl": full, "previewImageUrl": thumbnail})
    return messages


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, or a 413 as soon as it is known to be longer than ``limit``."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise NotifyError(400, "Content-Length must be a number of bytes")
        if int(declared) > limit:
            raise NotifyError(413, f"the request body must be at most {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise NotifyError(413, f"the request body must be at most {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _urlencoded(data: bytes, fields: Fields) -> None:
    try:
        # Raw (not percent-encoded) UTF-8 is taken too: `curl -d "message=こんにちは"` sends it so.
        pairs = parse_qsl(
            data.decode("utf-8"), keep_blank_values=True, errors="strict", max_num_fields=_MAX_FIELDS
        )
    except ValueError:  # not UTF-8 (raw or percent-encoded), or too many fields
        raise NotifyError(400, "the form is not valid application/x-www-form-urlencoded UTF-8") from None
    for key, value in pairs:
        fields.setdefault(key, value)


async def read_fields(request: Request, limit: int) -> Fields:
    """The form fields of a request: the body's (url-encoded or multipart), then the query string's.

    Taking fields from the query string as well keeps scripts that put them in the URL working; where a
    field is in both, the body's wins.
    """
    body = await read_body(request, limit)
    fields: Fields = {}
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if not body:
        pass  # no fields at all: answered below as a missing message, whatever the content type says
    elif media == "multipart/form-data":
        await _multipart(request, body, limit, fields)
    elif media in ("application/x-www-form-urlencoded", ""):
        _urlencoded(body, fields)
    else:
        raise NotifyError(
            415, "Content-Type must be application/x-www-form-urlencoded or multipart/form-data"
        )
    query = request.scope.get("query_string", b"")
    if query:
        _urlencoded(query, fields)
    return fields


async def _multipart(request: Request, body: bytes, limit: int, fields: Fields) -> None:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(
            max_files=8, max_fields=_MAX_FIELDS, max_part_size=limit
        )
    except Exception:  # python-multipart and starlette raise several kinds for a malformed body
        raise NotifyError(400, "the form is not valid multipart/form-data") from None
    try:
        for key, value in form.multi_items():
            if key in fields:
                continue
            if isinstance(value, UploadFile):
                fields[key] = await value.read()
            else:
                fields[key] = value
    finally:
        await form.close()


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
        self.limiter = NotifyRateLimiter(config.rate_limits)
        self.images = config.image_store()
        self.commits = GroupCommit(store, clock)
        self._last_purge = float("-inf")

    async def _token(self, request: Request) -> GatewayToken:
        return await caller_token(self.store, self.channel_id, request)

    async def notify(self, request: Request) -> Response:
        token = await self._token(request)
        now = self.clock()
        if not self.limiter.take_call(token.id, now):
            answer = self._answer(
                429, "Too Many Requests: the rate limit of this token is reached", token, now
            )
            answer.headers["Retry-After"] = str(max(int(answer.headers["X-RateLimit-Reset"]) - int(now), 1))
            return answer
        try:
            fields = await read_fields(request, self.config.max_body)
            form = parse_notify_form(fields, self.config.max_message_length)
            return await self._queue(form, token, now)
        except NotifyError as exc:
            return self._answer(exc.status, exc.message, token, now)

    async def _queue(self, form: NotifyRequest, token: GatewayToken, now: float) -> Response:
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
            return self._answer(200, "ok", token, now)
        if not self.limiter.take_image(token.id, now):
            raise NotifyError(429, "Too Many Requests: the image upload limit of this token is reached")
        try:
            uploaded = await run_in_threadpool(images.save, form.upload, now)
        except OSError:
            self.limiter.give_back_image(token.id, now)
            log.error("could not keep an uploaded image in %s", images.directory)
            raise NotifyError(503, "the gateway could not keep the image; try again later") from None
        try:
            await self._enqueue(self._item(form, token, uploaded.url), token)
        except BaseException:
            self.limiter.give_back_image(token.id, now)
            await run_in_threadpool(images.discard, uploaded.name)
            raise
        await self._purge_images(images, now)
        return self._answer(200, "ok", token, now)

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
        row = await self.commits.enqueue(item)
        log.info("queued outbox message %d for gateway token %d", row.id, token.id)

    def _item(self, form: NotifyRequest, token: GatewayToken, uploaded_url: str | None) -> NewMessage:
        """The outbox row of a notification: one push to the token's recipient."""
        try:
            return push_item(
                self.channel_id,
                token.recipient_id,
                notify_messages(form, uploaded_url),
                notification_disabled=form.notification_disabled,
            )
        except ValidationError as exc:
            raise NotifyError(400, str(exc)) from None

    def _answer(self, status: int, message: str, token: GatewayToken, now: float) -> JSONResponse:
        return notify_response(status, message, self.limiter.quota(token.id, now).headers())

    async def status(self, request: Request) -> Response:
        token = await self._token(request)
        now = self.clock()
        body = {
            "status": 200,
            "message": "ok",
            "targetType": target_type(token.recipient_id),
            "target": token.name,
        }
        return JSONResponse(body, headers=self.limiter.quota(token.id, now).headers())

    async def revoke(self, request: Request) -> Response:
        token = await self._token(request)
        now = self.clock()
        await run_in_threadpool(gateway_store(self.store).revoke_gateway_token, token.id, now)
        log.info("gateway token %d revoked by its holder", token.id)
        return self._answer(200, "ok", token, now)


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
