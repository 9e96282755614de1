"""The retry policy: which failures are retried, how long to wait, and the deadline."""

from __future__ import annotations

import pytest

from linepush.api._base import ApiRequest
from linepush.errors import (
    AuthenticationError,
    BadRequestError,
    ConflictError,
    ConnectError,
    MonthlyLimitError,
    NotFoundError,
    OutcomeUnknownError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
)
from linepush.retry import NO_RETRY, RetryPolicy

SEND = ApiRequest("POST", "/v2/bot/message/push", "POST /v2/bot/message/push", retry_key="k", idempotent=True)
ISSUE = ApiRequest("POST", "/oauth2/v2.1/token", "POST /oauth2/v2.1/token")


def api(cls: type, status: int) -> Exception:
    return cls(status, "x")


@pytest.mark.parametrize(
    ("error", "request_", "expected"),
    [
        (ConnectError("refused"), ISSUE, True),
        (ConnectError("refused"), SEND, True),
        (OutcomeUnknownError("read timeout"), SEND, True),
        (OutcomeUnknownError("read timeout"), ISSUE, False),
        (api(RateLimitError, 429), SEND, True),
        (api(ServerError, 500), SEND, True),
        (api(ServerError, 503), ISSUE, True),
        (api(MonthlyLimitError, 429), SEND, False),
        (api(BadRequestError, 400), SEND, False),
        (api(AuthenticationError, 401), SEND, False),
        (api(PermissionDeniedError, 403), SEND, False),
        (api(NotFoundError, 404), SEND, False),
        (api(ConflictError, 409), SEND, False),
    ],
)
def test_which_failures_are_retried(error: Exception, request_: ApiRequest, expected: bool) -> None:
    assert RetryPolicy().may_retry(error, request_) is expected  # type: ignore[arg-type]


def test_backoff_grows_exponentially_with_full_jitter_and_a_cap() -> None:
    policy = RetryPolicy(max_attempts=10, initial_backoff=0.5, max_backoff=3.0, deadline=1000)
    error = ServerError(500, "x")
    assert [policy.backoff_cap(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert policy.next_delay(3, error, SEND, 0.0, rand=lambda: 1.0) == 2.0
    assert policy.next_delay(3, error, SEND, 0.0, rand=lambda: 0.25) == 0.5
    assert policy.next_delay(3, error, SEND, 0.0, rand=lambda: 0.0) == 0.0


def test_attempts_and_deadline_bound_the_retries() -> None:
    policy = RetryPolicy(max_attempts=3, initial_backoff=1.0, deadline=10.0)
    error = ServerError(500, "x")
    assert policy.next_delay(2, error, SEND, 0.0, rand=lambda: 1.0) == 2.0
    assert policy.next_delay(3, error, SEND, 0.0, rand=lambda: 1.0) is None
    assert policy.next_delay(1, error, SEND, 9.5, rand=lambda: 1.0) is None
    assert policy.next_delay(1, error, SEND, 8.5, rand=lambda: 1.0) == 1.0
    assert NO_RETRY.next_delay(1, error, SEND, 0.0) is None


def test_invalid_policies_are_refused() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="multiplier"):
        RetryPolicy(multiplier=0.5)
