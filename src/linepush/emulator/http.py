"""The emulator's HTTP plumbing: LINE-shaped JSON answers, bounded body reading, form and JSON parsing."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse

REQUEST_ID_KEY = "linepush.emulator.request_id"


class LineJSON(JSONResponse):
    """JSON as LINE sends it, compact; ASCII-escaped so any string (even a lone surrogate) can be sent."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


class LineError(Exception):
    """Answer the request with ``status`` and the JSON ``body`` (None: empty body)."""

    def __init__(
        self, status: int, body: dict[str, Any] | None, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = dict(headers or {})


def oauth_error(error: str, description: str | None = None, status: int = 400) -> LineError:
    body = {"error": error}
    if description is not None:
        body["error_description"] = description
    return LineError(status, body)


def request_id(request: Request) -> str:
    return str(request.scope.get(REQUEST_ID_KEY, ""))


async def read_body(request: Request, limit: int) -> bytes:
    """Read the body, refusing more than ``limit`` bytes with 413 before reading it all where possible."""
    # Not documented: LINE's 413 body. A front proxy answers before the API sees the request.
    too_large = LineError(413, {"message": "Request Entity Too Large"})
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def media_type(request: Request) -> str | None:
    value = request.headers.get("content-type")
    if value is None:
        return None
    return value.split(";", 1)[0].strip().lower()


def parse_form(request: Request, raw: bytes) -> dict[str, str]:
    """Form fields of a token endpoint; a body of another type simply has no fields (then 400 follows)."""
    if media_type(request) not in (None, "application/x-www-form-urlencoded"):
        return {}
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return {}
    fields = parse_qs(text, keep_blank_values=True, errors="replace")
    return {key: values[0] for key, values in fields.items() if values}


def _position(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index) + 1
    column = index - (text.rfind("\n", 0, index) + 1) + 1
    return line, column


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


def parse_json(raw: bytes) -> Any:
    """Parse a Messaging API body, or raise LINE's 400 with the line and column of the problem."""

    def unparseable(line: int | str, column: int | str) -> LineError:
        return LineError(
            400, {"message": f"The request body could not be parsed as JSON (line: {line}, column: {column})"}
        )

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        good = raw[: exc.start].decode("utf-8")
        raise unparseable(*_position(good, len(good))) from exc
    try:
        # NaN/Infinity are not JSON; a Java binder refuses them, and so does the emulator.
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise unparseable(exc.lineno, exc.colno) from exc
    except (ValueError, RecursionError) as exc:
        # Too-deep nesting, out-of-range numbers or NaN: the position is not known here.
        raise unparseable("-", "-") from exc
