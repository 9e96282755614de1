"""Push, multicast, broadcast, narrowcast, validate and quota, as requests and parsers (FACTS §3). No I/O.

Builders validate everything LINE would refuse before a request exists, so a bad message is never sent.
Every send carries an ``X-Line-Retry-Key``: the caller's, or a fresh UUID. A 409 "already accepted" for that
key means LINE has the message: it parses as a success with ``duplicate`` set.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from orjson import loads as _loads

from linepush.api._base import (
    ApiRequest,
    ApiResponse,
    Operation,
    api_error,
    expect_json_object,
    json_request,
)
from linepush.errors import ConflictError, LinePushError, ValidationError
from linepush.messages import (
    MULTICAST_MAX_RECIPIENTS,
    MessageLike,
    normalize_messages,
    validate_custom_aggregation_units,
    validate_to,
    validate_user_ids,
)
from linepush.retry_key import check_retry_key, chunk_retry_key, new_retry_key

__all__ = [
    "DEFAULT_QUOTA_WARNING",
    "MonthlyUsage",
    "MulticastChunk",
    "MulticastResult",
    "PushResult",
    "Quota",
    "QuotaConsumption",
    "SendKind",
    "SendResult",
    "SentMessage",
    "broadcast",
    "check_retry_key",
    "chunk_retry_key",
    "member_count",
    "multicast_chunks",
    "narrowcast",
    "new_retry_key",
    "push",
    "quota",
    "quota_consumption",
    "send_payload",
    "validate",
]

SendKind = Literal["push", "multicast", "broadcast", "narrowcast"]
ValidateKind = Literal["reply", "push", "multicast", "narrowcast", "broadcast"]

_SEND_PATHS: Mapping[str, str] = {
    "push": "/v2/bot/message/push",
    "multicast": "/v2/bot/message/multicast",
    "broadcast": "/v2/bot/message/broadcast",
    "narrowcast": "/v2/bot/message/narrowcast",
}
_ENDPOINTS: Mapping[str, str] = {kind: f"POST {path}" for kind, path in _SEND_PATHS.items()}
_PUSH_PATH = _SEND_PATHS["push"]
_PUSH_ENDPOINT = _ENDPOINTS["push"]
_VALIDATE_KINDS = ("reply", "push", "multicast", "narrowcast", "broadcast")


@dataclass(frozen=True, slots=True)
class SentMessage:
    id: str
    quote_token: str | None = None


@dataclass(frozen=True, slots=True)
class SendResult:
    """LINE accepted a multicast, broadcast or narrowcast request.

    ``duplicate`` is true when LINE answered 409 because this retry key had been accepted before; then
    ``accepted_request_id`` is the request id of that first acceptance.
    """

    request_id: str | None
    retry_key: str
    accepted_request_id: str | None = None

    @property
    def duplicate(self) -> bool:
        return self.accepted_request_id is not None


@dataclass(frozen=True, slots=True)
class PushResult(SendResult):
    """LINE accepted a push: one sent message id per message, in order."""

    sent_messages: tuple[SentMessage, ...] = ()


# The push path builds a PushResult and a SentMessage per call. A frozen dataclass's __init__ sets each field
# through object.__setattr__; setting the slots through their own descriptors makes the same frozen instance
# for ~60% of the cost. Only for these two classes, whose fields are listed here once more.
_new = object.__new__
_set_sent_id = SentMessage.__dict__["id"].__set__
_set_quote_token = SentMessage.__dict__["quote_token"].__set__
_set_request_id = SendResult.__dict__["request_id"].__set__
_set_retry_key = SendResult.__dict__["retry_key"].__set__
_set_accepted_request_id = SendResult.__dict__["accepted_request_id"].__set__
_set_sent_messages = PushResult.__dict__["sent_messages"].__set__


@dataclass(frozen=True, slots=True)
class MulticastChunk:
    """One multicast request of at most 500 recipients, and how it ended."""

    recipients: tuple[str, ...]
    retry_key: str
    result: SendResult | None = None
    error: LinePushError | None = None


@dataclass(frozen=True, slots=True)
class MulticastResult:
    chunks: tuple[MulticastChunk, ...]

    @property
    def ok(self) -> bool:
        return all(chunk.error is None for chunk in self.chunks)

    @property
    def failed(self) -> tuple[MulticastChunk, ...]:
        return tuple(chunk for chunk in self.chunks if chunk.error is not None)

    @property
    def recipients(self) -> int:
        return sum(len(chunk.recipients) for chunk in self.chunks)


@dataclass(frozen=True, slots=True)
class Quota:
    """The month's message limit: ``type`` "none" (unlimited) or "limited" with ``value``."""

    type: str
    value: int | None = None


@dataclass(frozen=True, slots=True)
class QuotaConsumption:
    total_usage: int


#: The share of the month's limit past which linepush warns (`linepush quota`, `config show`, `worker`).
DEFAULT_QUOTA_WARNING: Final = 0.8


@dataclass(frozen=True, slots=True)
class MonthlyUsage:
    """This month's messages against the limit, from LINE's quota and consumption endpoints (FACTS §3.8;
    the consumption is approximate and includes messages sent from LINE Official Account Manager)."""

    #: The month's limit; None when the channel has none.
    limit: int | None
    used: int

    @classmethod
    def of(cls, quota: Quota, consumption: QuotaConsumption) -> MonthlyUsage:
        limit = quota.value if quota.type == "limited" else None
        return cls(limit, consumption.total_usage)

    @property
    def remaining(self) -> int | None:
        return None if self.limit is None else max(0, self.limit - self.used)

    @property
    def share(self) -> float | None:
        """The share of the limit used (1.0 and more: reached); None without a limit."""
        if self.limit is None:
            return None
        return 1.0 if self.limit == 0 else self.used / self.limit

    def past(self, threshold: float) -> bool:
        return self.share is not None and self.share >= threshold

    def describe(self) -> str:
        if self.limit is None:
            return f"{self.used} messages sent this month, of no limit"
        return (
            f"{self.used} of {self.limit} messages used this month ({self.share:.0%}), {self.remaining} left"
        )


def _key(retry_key: str | None) -> str:
    """The caller's retry key, checked, or a new one."""
    return new_retry_key() if retry_key is None else check_retry_key(retry_key)


def _common(
    payload: dict[str, Any],
    notification_disabled: bool,
    custom_aggregation_units: Sequence[str] | None,
) -> dict[str, Any]:
    if notification_disabled:
        payload["notificationDisabled"] = True
    if custom_aggregation_units is not None:
        units = validate_custom_aggregation_units(custom_aggregation_units)
        if units:
            payload["customAggregationUnits"] = units
    return payload


def push_payload(
    to: str,
    messages: MessageLike | Sequence[MessageLike],
    *,
    notification_disabled: bool = False,
    custom_aggregation_units: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The validated JSON body of a push."""
    payload = {"to": validate_to(to), "messages": normalize_messages(messages)}
    if notification_disabled or custom_aggregation_units is not None:
        _common(payload, notification_disabled, custom_aggregation_units)
    return payload


def multicast_payload(
    to: Sequence[str],
    messages: MessageLike | Sequence[MessageLike],
    *,
    notification_disabled: bool = False,
    custom_aggregation_units: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The validated JSON body of one multicast request (1 to 500 user ids)."""
    ids = validate_user_ids(to)
    if len(ids) > MULTICAST_MAX_RECIPIENTS:
        raise ValidationError(
            f"Size must be between 1 and {MULTICAST_MAX_RECIPIENTS}; split larger lists "
            "(LineClient.multicast does this for you)",
            property="to",
        )
    payload = {"to": ids, "messages": normalize_messages(messages)}
    return _common(payload, notification_disabled, custom_aggregation_units)


def broadcast_payload(
    messages: MessageLike | Sequence[MessageLike], *, notification_disabled: bool = False
) -> dict[str, Any]:
    return _common({"messages": normalize_messages(messages)}, notification_disabled, None)


def narrowcast_payload(
    messages: MessageLike | Sequence[MessageLike],
    *,
    recipient: Mapping[str, Any] | None = None,
    filter: Mapping[str, Any] | None = None,
    limit: Mapping[str, Any] | None = None,
    notification_disabled: bool = False,
) -> dict[str, Any]:
    payload: dict[str, Any] = {"messages": normalize_messages(messages)}
    for name, value in (("recipient", recipient), ("filter", filter), ("limit", limit)):
        if value is not None:
            if not isinstance(value, Mapping):
                raise ValidationError("must be a JSON object", property=name)
            payload[name] = dict(value)
    if limit is not None and limit.get("forbidPartialDelivery") and not limit.get("upToRemainingQuota"):
        raise ValidationError(
            "The option forbidPartialDelivery must be used with upToRemainingQuota.", property="limit"
        )
    return _common(payload, notification_disabled, None)


def _parse_push(retry_key: str) -> Any:
    def parse(response: ApiResponse) -> PushResult:
        # The usual answer, a 200 with a JSON object, is decoded here directly; anything else (an error, a
        # 409 for a key already accepted, an empty body or one that is no object) goes the general way. The
        # results are built in place, not by helpers: on the push path each call is a frame more.
        data: Any = None
        if response.status == 200:
            try:
                data = _loads(response.body)
            except ValueError:  # orjson's decode error is one (as UnicodeDecodeError is)
                pass
        if type(data) is not dict:
            data = _conflict_body(response) if response.status == 409 else expect_json_object(response)
        sent = data.get("sentMessages")
        messages: tuple[SentMessage, ...] = ()
        if type(sent) is list:
            made = []
            for m in sent:
                if type(m) is dict:
                    message = _new(SentMessage)
                    _set_sent_id(message, str(m.get("id")))
                    _set_quote_token(message, m.get("quoteToken"))
                    made.append(message)
            messages = tuple(made)
        if response.status == 409 and not messages:
            raise _not_this_push(response)
        headers = response.headers
        result = _new(PushResult)
        _set_request_id(result, headers.get("x-line-request-id"))
        _set_retry_key(result, retry_key)
        _set_accepted_request_id(result, headers.get("x-line-accepted-request-id"))
        _set_sent_messages(result, messages)
        return result

    return parse


def _parse_send(retry_key: str, ok: tuple[int, ...] = (200,)) -> Any:
    def parse(response: ApiResponse) -> SendResult:
        if response.status == 409:
            _conflict_body(response)
        elif response.status not in ok:
            raise api_error(response)
        return SendResult(response.request_id, retry_key, response.accepted_request_id)

    return parse


def _not_this_push(response: ApiResponse) -> ConflictError:
    """A 409 for a push that repeats no sentMessages: LINE repeats them for a push it accepted (FACTS §3.7),
    so the key was taken by another request (a multicast, say), and this push was not sent."""
    error = api_error(response)
    assert isinstance(error, ConflictError)
    error.args = (
        f"{error}; LINE repeated no sent messages, so the key was accepted for another request (a multicast "
        "or broadcast under the same key) and this push was not sent",
    )
    error.hint = (
        "this push was not sent: its retry key belongs to another request. Send it with a new retry key "
        "(`linepush queue retry --new-key` for a queued one)"
    )
    return error


def _conflict_body(response: ApiResponse) -> dict[str, Any]:
    """A 409 is a success only when it says this retry key was already accepted."""
    error = api_error(response)
    if response.accepted_request_id is None and "retry key" not in error.message.lower():
        raise error
    return dict(error.body)


def send_payload(kind: SendKind, payload: Mapping[str, Any], retry_key: str) -> Operation[Any]:
    """A send of an already validated body (as the outbox stores it)."""
    path = _SEND_PATHS.get(kind)
    if path is None:
        raise ValidationError(f"unknown send kind {kind!r}; use one of {', '.join(_SEND_PATHS)}")
    request = json_request("POST", path, _ENDPOINTS[kind], payload, retry_key=check_retry_key(retry_key))
    if kind == "push":
        return Operation(request, _parse_push(retry_key))
    return Operation(request, _parse_send(retry_key, (202,) if kind == "narrowcast" else (200,)))


def push(
    to: str,
    messages: MessageLike | Sequence[MessageLike],
    *,
    retry_key: str | None = None,
    notification_disabled: bool = False,
    custom_aggregation_units: Sequence[str] | None = None,
) -> Operation[PushResult]:
    key = new_retry_key() if retry_key is None else check_retry_key(retry_key)
    payload = push_payload(
        to,
        messages,
        notification_disabled=notification_disabled,
        custom_aggregation_units=custom_aggregation_units,
    )
    request = json_request("POST", _PUSH_PATH, _PUSH_ENDPOINT, payload, retry_key=key)
    return Operation(request, _parse_push(key))


def multicast_chunks(
    to: Iterable[str],
    messages: MessageLike | Sequence[MessageLike],
    *,
    retry_key: str | None = None,
    notification_disabled: bool = False,
    custom_aggregation_units: Sequence[str] | None = None,
    chunk_size: int = MULTICAST_MAX_RECIPIENTS,
) -> list[tuple[MulticastChunk, Operation[SendResult]]]:
    """One multicast request per ``chunk_size`` recipients, each with its own retry key.

    Every recipient id and every message is validated before any chunk is built.
    """
    if not 1 <= chunk_size <= MULTICAST_MAX_RECIPIENTS:
        raise ValidationError(f"chunk_size must be between 1 and {MULTICAST_MAX_RECIPIENTS}")
    ids = validate_user_ids(to, limit=None)
    normalized = normalize_messages(messages)
    base_key = _key(retry_key)
    out: list[tuple[MulticastChunk, Operation[SendResult]]] = []
    for index, start in enumerate(range(0, len(ids), chunk_size)):
        recipients = ids[start : start + chunk_size]
        key = chunk_retry_key(base_key, index)
        payload = _common(
            {"to": recipients, "messages": normalized}, notification_disabled, custom_aggregation_units
        )
        request = json_request(
            "POST", _SEND_PATHS["multicast"], _ENDPOINTS["multicast"], payload, retry_key=key
        )
        out.append((MulticastChunk(tuple(recipients), key), Operation(request, _parse_send(key))))
    return out


def broadcast(
    messages: MessageLike | Sequence[MessageLike],
    *,
    retry_key: str | None = None,
    notification_disabled: bool = False,
) -> Operation[SendResult]:
    key = _key(retry_key)
    payload = broadcast_payload(messages, notification_disabled=notification_disabled)
    request = json_request("POST", _SEND_PATHS["broadcast"], _ENDPOINTS["broadcast"], payload, retry_key=key)
    return Operation(request, _parse_send(key))


def narrowcast(
    messages: MessageLike | Sequence[MessageLike],
    *,
    retry_key: str | None = None,
    recipient: Mapping[str, Any] | None = None,
    filter: Mapping[str, Any] | None = None,
    limit: Mapping[str, Any] | None = None,
    notification_disabled: bool = False,
) -> Operation[SendResult]:
    key = _key(retry_key)
    payload = narrowcast_payload(
        messages,
        recipient=recipient,
        filter=filter,
        limit=limit,
        notification_disabled=notification_disabled,
    )
    request = json_request(
        "POST", _SEND_PATHS["narrowcast"], _ENDPOINTS["narrowcast"], payload, retry_key=key
    )
    return Operation(request, _parse_send(key, (202,)))


def validate(kind: ValidateKind, messages: MessageLike | Sequence[MessageLike]) -> Operation[None]:
    """Ask LINE to check message objects for a kind of send (nothing is sent to anyone)."""
    if kind not in _VALIDATE_KINDS:
        raise ValidationError(f"unknown validate kind {kind!r}; use one of {', '.join(_VALIDATE_KINDS)}")
    path = f"/v2/bot/message/validate/{kind}"
    request = json_request(
        "POST", path, f"POST {path}", {"messages": normalize_messages(messages)}, idempotent=True
    )

    def parse(response: ApiResponse) -> None:
        expect_json_object(response)

    return Operation(request, parse)


def _get(path: str) -> ApiRequest:
    return ApiRequest("GET", path, f"GET {path}", needs_token=True, idempotent=True)


def member_count(chat_id: str) -> Operation[int]:
    """How many members a group (``C…``) or room (``R…``) has: what a push to it costs (FACTS §3.8)."""
    kind = {"C": "group", "R": "room"}.get(chat_id[:1])
    if kind is None:
        raise ValidationError("a member count is for a group (C…) or room (R…) id", property="chatId")
    validate_to(chat_id)

    def parse(response: ApiResponse) -> int:
        count = expect_json_object(response).get("count")
        return count if isinstance(count, int) else 0

    request = ApiRequest(
        "GET",
        f"/v2/bot/{kind}/{chat_id}/members/count",
        f"GET /v2/bot/{kind}/{{{kind}Id}}/members/count",
        needs_token=True,
        idempotent=True,
    )
    return Operation(request, parse)


def quota() -> Operation[Quota]:
    def parse(response: ApiResponse) -> Quota:
        data = expect_json_object(response)
        value = data.get("value")
        return Quota(str(data.get("type", "none")), value if isinstance(value, int) else None)

    return Operation(_get("/v2/bot/message/quota"), parse)


def quota_consumption() -> Operation[QuotaConsumption]:
    def parse(response: ApiResponse) -> QuotaConsumption:
        data = expect_json_object(response)
        usage = data.get("totalUsage")
        return QuotaConsumption(usage if isinstance(usage, int) else 0)

    return Operation(_get("/v2/bot/message/quota/consumption"), parse)
