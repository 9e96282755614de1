"""The retry deadline covers the whole call: what is left of it bounds each attempt, and a certificate the
server presents is never a reason to try again."""

from __future__ import annotations

from typing import Any

import pytest

from linepush._call import Send, Sleep, call_flow
from linepush.api._base import ApiRequest, Operation, expect_json_object
from linepush.errors import CertificateError, ConnectError, OutcomeUnknownError, ServerError, safe_to_resend
from linepush.retry import RetryPolicy

PUSH = ApiRequest(
    "POST", "/v2/bot/message/push", "POST /v2/bot/message/push", b"{}", retry_key="k", idempotent=True
)
ISSUE = ApiRequest("POST", "/oauth2/v2.1/token", "POST /oauth2/v2.1/token", b"a=b")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def sends(policy: RetryPolicy, clock: Clock, taking: float) -> list[float | None]:
    """The bound of each attempt of a push that never gets an answer, each attempt taking ``taking`` s."""
    flow = call_flow(
        Operation(PUSH, expect_json_object), policy, None, clock, rand=lambda: 0.5, attempt_limit=35.0
    )
    bounds: list[float | None] = []
    action: Any = next(flow)
    try:
        while True:
            if isinstance(action, Send):
                _request, _token, timeout = action
                bounds.append(timeout)
                clock.now += taking
                action = flow.throw(OutcomeUnknownError("no answer"))
            else:
                assert isinstance(action, Sleep)
                clock.now += action.seconds
                action = flow.send(None)
    except OutcomeUnknownError:
        return bounds


def test_each_attempt_is_bounded_by_what_is_left_of_the_deadline() -> None:
    policy = RetryPolicy(max_attempts=6, initial_backoff=0.2, max_backoff=0.2, deadline=3.0)
    # attempt 1 at 0 s (bound 3), fails at 1 s; wait 0.1; attempt 2 at 1.1 s (bound 1.9), ...
    assert sends(policy, Clock(), taking=1.0) == pytest.approx([3.0, 1.9, 0.8])


def test_a_deadline_longer_than_the_transports_timeouts_leaves_them_alone() -> None:
    policy = RetryPolicy(max_attempts=2, initial_backoff=0.0, max_backoff=0.0, deadline=60.0)
    assert sends(policy, Clock(), taking=1.0) == [None, None]


def test_a_zero_deadline_is_one_attempt_bounded_by_the_transport_alone() -> None:
    assert sends(RetryPolicy(deadline=0.0), Clock(), taking=1.0) == [None]


def test_what_may_be_sent_again() -> None:
    never_sent, no_answer, server = ConnectError("x"), OutcomeUnknownError("x"), ServerError(500, "x")
    assert safe_to_resend(never_sent, idempotent=False)  # a token request too: it never left
    assert not safe_to_resend(no_answer, idempotent=False)  # a token request might be issued twice
    assert safe_to_resend(no_answer, idempotent=True)  # a push with its retry key
    assert safe_to_resend(server, idempotent=True)
    assert not safe_to_resend(CertificateError("x"), idempotent=True)  # the same certificate again
    assert RetryPolicy().may_retry(no_answer, PUSH) and not RetryPolicy().may_retry(no_answer, ISSUE)
