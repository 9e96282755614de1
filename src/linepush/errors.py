"""The exception tree. Every class says what the caller may do next.

    LinePushError
    ├── ConfigurationError          something is missing or malformed in the setup; fix it and run again
    ├── ValidationError             refused locally before anything was sent; fix the input
    ├── TransportError              no HTTP answer came back            (retryable)
    │   ├── ConnectError            the request was never sent: always safe to retry
    │   │   └── CertificateError    the server's TLS certificate was refused: a setup problem, not retried
    │   └── OutcomeUnknownError     sent, but no answer: safe to retry only with the same retry key
    ├── LineApiError                LINE answered with an error status; carries what LINE said
    │   ├── BadRequestError         400 (TokenLimitError: too many active v2.1 tokens)
    │   ├── AuthenticationError     401
    │   ├── PermissionDeniedError   403
    │   ├── NotFoundError           404
    │   ├── ConflictError           409 (a retry key that was already accepted; sends treat it as success)
    │   ├── GoneError               410
    │   ├── RequestTooLargeError    413
    │   ├── UnsupportedMediaTypeError 415
    │   ├── RateLimitError          429 (retryable; MonthlyLimitError is not)
    │   └── ServerError             5xx (retryable)
    ├── TokenUnavailableError       no channel access token could be had, so nothing was sent
    ├── RetryWindowExpiredError     the retry key's 24 h window has passed: resending could deliver twice
    └── StoreError                  the store could not do its job (locked too long, an I/O error); retryable
        ├── StoreFullError          the disk holding the store is full: free space (retryable)
        ├── StoreCorruptError       the store file is damaged: restore it (not retryable)
        └── StoreSettingsError      the store's settings are wrong (a database or role that does not
                                    exist, a refused password): also a ConfigurationError (not retryable)

Error texts never contain access tokens, channel secrets or keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "CertificateError",
    "ConfigurationError",
    "ConflictError",
    "ConnectError",
    "ErrorDetail",
    "GoneError",
    "LineApiError",
    "LinePushError",
    "MonthlyLimitError",
    "NotFoundError",
    "OutcomeUnknownError",
    "PermissionDeniedError",
    "RateLimitError",
    "RequestTooLargeError",
    "RetryWindowExpiredError",
    "ServerError",
    "StoreCorruptError",
    "StoreError",
    "StoreFullError",
    "StoreSettingsError",
    "TokenLimitError",
    "TokenUnavailableError",
    "TransportError",
    "UnsupportedMediaTypeError",
    "ValidationError",
    "safe_to_resend",
]


class LinePushError(Exception):
    """Base class of every error linepush raises."""

    #: Whether sending the same request again may succeed.
    retryable: bool = False
    #: How many attempts were made before this error was final (set by the retry loop).
    attempts: int = 1
    #: What to do about it, when the library can tell (the command line shows it under the error).
    hint: str | None = None


class ConfigurationError(LinePushError):
    """The configuration is missing something or holds a malformed value. The text says what to set."""


class ValidationError(LinePushError, ValueError):
    """Input refused locally, before any request was made. Nothing was sent.

    ``property`` names the offending field in LINE's notation, e.g. ``messages[2].text`` or ``to[3]``.
    """

    def __init__(self, message: str, *, property: str | None = None) -> None:
        self.property = property
        self.reason = message
        super().__init__(f"{property}: {message}" if property else message)


class TransportError(LinePushError):
    """No HTTP response was received."""

    retryable = True
    #: False when the request certainly never reached the server.
    maybe_sent: bool = True


class ConnectError(TransportError):
    """The connection could not be made; the request was never sent."""

    maybe_sent = False


class CertificateError(ConnectError, ConfigurationError):
    """The server's TLS certificate was refused (untrusted, expired, or for another host name).

    Nothing was sent. Trying again would meet the same certificate: it is a setup problem (the base URL, a
    proxy that intercepts TLS, or a private CA to trust), so it is not retried.
    """

    retryable = False


class OutcomeUnknownError(TransportError):
    """The request was sent but no complete answer came back (a timeout or a dropped connection).

    LINE may or may not have acted on it. Resending is safe only with the same ``X-Line-Retry-Key``.
    """


def safe_to_resend(error: BaseException, *, idempotent: bool) -> bool:
    """Whether the request that failed with ``error`` may be sent again: it may succeed, and it cannot act
    twice. The one rule for every retry: a request never sent may always go again (a token request too); one
    sent without an answer only when ``idempotent`` (a read, or a send that carries a retry key, which LINE
    de-duplicates); an answer from LINE when its class says a retry may help."""
    if not isinstance(error, LinePushError) or not error.retryable:
        return False
    if isinstance(error, TransportError) and error.maybe_sent:
        return idempotent
    return True


@dataclass(frozen=True, slots=True)
class ErrorDetail:
    """One entry of LINE's ``details`` array."""

    message: str | None
    property: str | None

    def __str__(self) -> str:
        if self.property and self.message:
            return f"{self.property}: {self.message}"
        return self.message or self.property or ""


class LineApiError(LinePushError):
    """LINE answered with an error status.

    Carries the HTTP status, LINE's ``message`` and ``details`` (or, on the OAuth endpoints, ``error`` and
    ``error_description``), the ``x-line-request-id`` and, on a 409, the ``x-line-accepted-request-id``.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        details: tuple[ErrorDetail, ...] = (),
        error: str | None = None,
        error_description: str | None = None,
        request_id: str | None = None,
        accepted_request_id: str | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> None:
        self.status = status
        self.message = message
        self.details = details
        self.error = error
        self.error_description = error_description
        self.request_id = request_id
        self.accepted_request_id = accepted_request_id
        self.body: Mapping[str, Any] = body if body is not None else {}
        super().__init__(self._describe())

    def _describe(self) -> str:
        text = f"LINE answered {self.status}: {self.message}"
        if self.details:
            text += " (" + "; ".join(str(d) for d in self.details) + ")"
        if self.request_id:
            text += f" [request id {self.request_id}]"
        return text

    def __reduce__(self) -> tuple[Any, ...]:
        # Keeps errors picklable (they cross process boundaries in the worker and tests), with what was set
        # on them after they were made: a hint, the attempts, a TokenLimitError's context and its text.
        extra = {k: v for k, v in vars(self).items() if k not in _API_ERROR_FIELDS}
        state = {**extra, "args": self.args} if extra else None
        return (
            _rebuild_api_error,
            (
                type(self),
                self.status,
                self.message,
                self.details,
                self.error,
                self.error_description,
                self.request_id,
                self.accepted_request_id,
                dict(self.body),
            ),
            state,
        )


_API_ERROR_FIELDS = frozenset(
    {
        "status",
        "message",
        "details",
        "error",
        "error_description",
        "request_id",
        "accepted_request_id",
        "body",
    }
)


def _rebuild_api_error(cls: type[LineApiError], *args: Any) -> LineApiError:
    status, message, details, error, desc, rid, arid, body = args
    return cls(
        status,
        message,
        details=details,
        error=error,
        error_description=desc,
        request_id=rid,
        accepted_request_id=arid,
        body=body,
    )


class BadRequestError(LineApiError):
    """400: LINE refused the request as malformed or not allowed. Not retried."""


class TokenLimitError(BadRequestError):
    """400: the channel already has the maximum number of valid v2.1 tokens (30).

    The token manager adds how many are active and what can be done about it.
    """

    active: int | None = None
    advice: str | None = None

    def _describe(self) -> str:
        text = super()._describe()
        if self.active is not None:
            text += f". {self.active} v2.1 tokens are active for this channel"
        if self.advice:
            text += f". {self.advice}"
        return text

    def with_context(self, *, active: int | None, advice: str) -> TokenLimitError:
        self.active = active
        self.advice = advice
        self.args = (self._describe(),)
        return self


class AuthenticationError(LineApiError):
    """401: the channel access token is missing, unknown, expired or revoked."""


class PermissionDeniedError(LineApiError):
    """403: the account or plan has no permission for this API."""


class NotFoundError(LineApiError):
    """404: the resource, user or key id was not found."""


class ConflictError(LineApiError):
    """409: a request with the same retry key was already accepted."""


class GoneError(LineApiError):
    """410: the resource is no longer available."""


class RequestTooLargeError(LineApiError):
    """413: the request body is larger than 2 MB."""


class UnsupportedMediaTypeError(LineApiError):
    """415: the content type is not supported."""


class RateLimitError(LineApiError):
    """429: a rate limit was exceeded; retrying later may succeed."""

    retryable = True


class MonthlyLimitError(RateLimitError):
    """429: the channel reached its monthly message limit; retrying this month will not help."""

    retryable = False


class ServerError(LineApiError):
    """5xx: LINE failed; retrying may succeed."""

    retryable = True


class TokenUnavailableError(LinePushError):
    """No channel access token could be had, so nothing was sent: LINE's token endpoint refused or failed
    (``error`` is what it said), or another process held the refresh lock for too long.

    It says nothing about the messages: send them again once the cause is fixed. ``retryable`` is false when
    LINE refused the request for a token (a wrong key id, an unregistered key, a clock far off LINE's):
    trying again changes nothing until the setup is fixed, and ``hint`` names the likely cause.
    """

    retryable = True

    def __init__(
        self,
        message: str,
        *,
        error: LinePushError | None = None,
        hint: str | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.error = error
        if hint is not None:
            self.hint = hint
        if retryable is not None:
            self.retryable = retryable

    @classmethod
    def after(cls, error: LinePushError) -> TokenUnavailableError:
        """The error for a call that failed while getting its token with ``error``."""
        return cls(
            f"could not get a channel access token, so nothing was sent: {error}",
            error=error,
            hint=error.hint,
            retryable=error.retryable,
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild_token_error,
            (str(self), self.error, self.hint, self.retryable),
        )


def _rebuild_token_error(
    message: str, error: LinePushError | None, hint: str | None, retryable: bool
) -> TokenUnavailableError:
    return TokenUnavailableError(message, error=error, hint=hint, retryable=retryable)


class RetryWindowExpiredError(LinePushError):
    """A message's first attempt is older than LINE's retry-key window (24 h).

    LINE no longer remembers its retry key, so sending it again could deliver it twice. It is not resent.
    """


class StoreError(LinePushError):
    """The store could not do its job (database locked for too long, an I/O error).

    Nothing was changed by the call that raised it; the caller may try again later.
    """

    retryable = True


class StoreFullError(StoreError):
    """The disk (or quota) holding the store is full: nothing was written; it works again given room."""


class StoreCorruptError(StoreError):
    """The store file is damaged. Retrying cannot help: the text says how to check and restore it."""

    retryable = False


class StoreSettingsError(StoreError, ConfigurationError):
    """The store refused its settings (a database or role that does not exist, a refused password, an
    option it cannot read): only changing them mends it. A store error to those who serve requests (503,
    so senders retry), a configuration error to a command line (exit 2)."""

    retryable = False


_BY_STATUS: dict[int, type[LineApiError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    410: GoneError,
    413: RequestTooLargeError,
    415: UnsupportedMediaTypeError,
    429: RateLimitError,
}

TOKEN_LIMIT_MESSAGE = "The maximum number of access tokens has already been issued"
MONTHLY_LIMIT_MESSAGE = "You have reached your monthly limit."


def error_class_for(status: int, message: str) -> type[LineApiError]:
    """The exception class for an error status and LINE's message text."""
    if status == 400 and message.startswith(TOKEN_LIMIT_MESSAGE):
        return TokenLimitError
    if status == 429 and message == MONTHLY_LIMIT_MESSAGE:
        return MonthlyLimitError
    if status >= 500:
        return ServerError
    return _BY_STATUS.get(status, LineApiError)
