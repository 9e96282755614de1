"""Request and response descriptions shared by every LINE operation. No I/O happens here.

An :class:`Operation` is a request to send and a function that turns the answer into a typed result or
raises the matching :class:`~linepush.errors.LineApiError`. Clients and transports only move bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import urlencode

import orjson

from linepush.errors import ErrorDetail, LineApiError, ValidationError, error_class_for

T = TypeVar("T")

# orjson, not the json module: on the push path encoding the body and decoding the answer cost ~4 µs with
# json and ~1 µs with orjson, out of a few tens of µs that the client adds to each request. Its output is
# compact UTF-8, as LINE's own examples are.


def encode_json(payload: Any) -> bytes:
    """``payload`` as a JSON request body; a value JSON cannot hold is a :class:`ValidationError`."""
    try:
        return orjson.dumps(payload)
    except orjson.JSONEncodeError:
        pass
    try:
        # Keys that are not strings (``{1: "a"}``) are written as strings, as the json module does; the option
        # triples the cost of every call, so it is only used when the plain call refused.
        return orjson.dumps(payload, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError as exc:
        # e.g. a lone surrogate in a text (not valid UTF-8), an integer beyond 64 bits, a set or an object.
        raise ValidationError(
            f"the request body cannot be sent as JSON ({exc}); use only strings, numbers, booleans, null, "
            "lists and objects with string keys"
        ) from None


JSON_CONTENT_TYPE = "application/json"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"


# ApiRequest, ApiResponse and Operation are made once or more per request: they are plain slotted classes,
# not frozen ones (a frozen dataclass pays an object.__setattr__ call per field, ~3x the cost of building
# one). Treat them as read-only all the same: a request is sent again, unchanged, on every retry.


@dataclass(slots=True, eq=False)
class ApiRequest:
    """One HTTP request to LINE, before authentication is added. Read-only by convention.

    ``endpoint`` names the rate-limited endpoint (method and path template), ``needs_token`` says whether a
    bearer channel access token goes in the ``Authorization`` header, and ``idempotent`` whether a request
    whose outcome is unknown may be sent again (true for reads and for sends that carry a retry key).
    """

    method: str
    path: str
    endpoint: str
    body: bytes | None = None
    content_type: str | None = None
    needs_token: bool = False
    retry_key: str | None = None
    idempotent: bool = False
    #: Extra headers (the client adds Authorization, Content-Type and X-Line-Retry-Key itself).
    headers: tuple[tuple[str, str], ...] = ()

    def __repr__(self) -> str:
        # The body may hold a client secret or a token: never show it.
        return f"ApiRequest({self.method} {self.path.split('?', 1)[0]}, {len(self.body or b'')} bytes)"


@dataclass(slots=True, eq=False)
class ApiResponse:
    """An HTTP answer: status, headers (lower-case names) and the raw body. Read-only by convention."""

    status: int
    headers: Mapping[str, str]
    body: bytes = b""

    @property
    def request_id(self) -> str | None:
        return self.headers.get("x-line-request-id")

    @property
    def accepted_request_id(self) -> str | None:
        return self.headers.get("x-line-accepted-request-id")

    def json(self) -> Any:
        if not self.body:
            return {}
        return orjson.loads(self.body)


@dataclass(slots=True, eq=False)
class Operation(Generic[T]):
    """A request and the parser for its answer. Read-only by convention."""

    request: ApiRequest
    parse: Callable[[ApiResponse], T] = field(repr=False)


def json_request(
    method: str,
    path: str,
    endpoint: str,
    payload: Any,
    *,
    retry_key: str | None = None,
    idempotent: bool = False,
) -> ApiRequest:
    # Positional: keyword arguments cost a dict per call, and this runs on every send.
    return ApiRequest(
        method,
        path,
        endpoint,
        encode_json(payload),
        JSON_CONTENT_TYPE,
        True,
        retry_key,
        idempotent or retry_key is not None,
    )


def form_request(
    method: str,
    path: str,
    fields: Mapping[str, str],
    *,
    idempotent: bool = False,
) -> ApiRequest:
    """A token-endpoint request: form body for POST, query string for GET. No bearer token."""
    encoded = urlencode(fields)
    if method == "GET":
        return ApiRequest(
            method=method,
            path=f"{path}?{encoded}",
            endpoint=f"{method} {path}",
            idempotent=True,
        )
    return ApiRequest(
        method=method,
        path=path,
        endpoint=f"{method} {path}",
        body=encoded.encode(),
        content_type=FORM_CONTENT_TYPE,
        idempotent=idempotent,
    )


def api_error(response: ApiResponse) -> LineApiError:
    """Build the exception for an error response, keeping everything LINE said."""
    body: Mapping[str, Any]
    try:
        parsed = response.json()
        body = parsed if isinstance(parsed, dict) else {}
    except (ValueError, UnicodeDecodeError):
        body = {}
    error = _str_or_none(body.get("error"))
    description = _str_or_none(body.get("error_description"))
    message = _str_or_none(body.get("message")) or description or error
    if not message:
        text = response.body[:200].decode("utf-8", "replace").strip()
        message = text or f"HTTP {response.status} with no error message"
    details: list[ErrorDetail] = []
    raw_details = body.get("details")
    if isinstance(raw_details, list):
        for item in raw_details:
            if isinstance(item, dict):
                details.append(
                    ErrorDetail(_str_or_none(item.get("message")), _str_or_none(item.get("property")))
                )
    cls = error_class_for(response.status, message)
    return cls(
        response.status,
        message,
        details=tuple(details),
        error=error,
        error_description=description,
        request_id=response.request_id,
        accepted_request_id=response.accepted_request_id,
        body=body,
    )


def expect_json_object(response: ApiResponse, *, ok: tuple[int, ...] = (200,)) -> dict[str, Any]:
    """The JSON object of a successful response, or the mapped error."""
    if response.status not in ok:
        raise api_error(response)
    try:
        data = response.json()
    except (ValueError, UnicodeDecodeError) as exc:
        raise LineApiError(
            response.status,
            f"LINE answered {response.status} with a body that is not JSON",
            request_id=response.request_id,
        ) from exc
    if not isinstance(data, dict):
        raise LineApiError(
            response.status,
            f"LINE answered {response.status} with JSON that is not an object",
            request_id=response.request_id,
        )
    return data


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None
