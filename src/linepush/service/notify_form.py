"""LINE Notify's request and answer shapes (FACTS §7.1): the ``{"status", "message"}`` answer, reading a
body and its form fields (url-encoded or multipart, then the query string), and checking the
``/api/notify`` form into the LINE messages of one push."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qsl

from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.responses import JSONResponse

from linepush.messages import utf16_len

__all__ = [
    "INVALID_TOKEN",
    "MAX_NOTIFY_MESSAGE",
    "Fields",
    "NotifyError",
    "NotifyRequest",
    "notify_messages",
    "notify_response",
    "parse_notify_form",
    "read_body",
    "read_fields",
]

#: LINE Notify's limit on ``message``, counted in UTF-16 code units as LINE counts text (FACTS §5.2); how
#: Notify counted is not documented.
MAX_NOTIFY_MESSAGE: Final = 1000
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


_TOO_MANY_FIELDS: Final = f"the form must have at most {_MAX_FIELDS} fields"


def _urlencoded(data: bytes, fields: Fields) -> None:
    if data.count(b"&") + 1 > _MAX_FIELDS:  # as parse_qsl counts them
        raise NotifyError(400, _TOO_MANY_FIELDS)
    try:
        # Raw (not percent-encoded) UTF-8 is taken too: `curl -d "message=こんにちは"` sends it so.
        pairs = parse_qsl(
            data.decode("utf-8"), keep_blank_values=True, errors="strict", max_num_fields=_MAX_FIELDS
        )
    except ValueError:  # not UTF-8, raw or percent-encoded
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


class _StrictParts(MultiPartParser):
    """Starlette's multipart parser, except that a text part not in the form's charset (UTF-8 unless the
    Content-Type says otherwise) is refused: Starlette would read it as Latin-1 and queue text not sent."""

    def on_part_end(self) -> None:
        part = self._current_part
        if part.file is None:
            try:
                bytes(part.data).decode(self._charset)
            except UnicodeDecodeError:
                spelled = "UTF-8" if self._charset == "utf-8" else self._charset
                raise NotifyError(400, f"{part.field_name}: must be {spelled} text") from None
        super().on_part_end()


async def _multipart(request: Request, body: bytes, limit: int, fields: Fields) -> None:
    async def replay() -> AsyncGenerator[bytes, None]:
        yield body

    parser = _StrictParts(request.headers, replay(), max_files=8, max_fields=_MAX_FIELDS, max_part_size=limit)
    try:
        form = await parser.parse()
    except NotifyError:
        raise
    except MultiPartException as exc:
        if exc.message.startswith("Too many fields"):
            raise NotifyError(400, _TOO_MANY_FIELDS) from None
        raise NotifyError(400, "the form is not valid multipart/form-data") from None
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
