"""Errors cross process boundaries (a worker's pool, multiprocessing, a test's subprocess): each comes back
from pickle as it was, its text and what was set on it after it was made included."""

from __future__ import annotations

import pickle

from linepush.api.messaging import MulticastChunk, MulticastResult, SendResult
from linepush.client import MulticastError
from linepush.errors import TOKEN_LIMIT_MESSAGE, ServerError, TokenLimitError, ValidationError

ALICE = "U" + "a" * 32
BOB = "U" + "b" * 32


def test_a_multicast_error_comes_back_with_its_chunks() -> None:
    failed = MulticastChunk((ALICE,), "key-a", None, ServerError(500, "busy"))
    delivered = MulticastChunk((BOB,), "key-b", SendResult(request_id="r-1", retry_key="key-b"), None)
    error = MulticastError(MulticastResult((delivered, failed)))
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is MulticastError and str(again) == str(error)
    assert again.result.failed[0].recipients == (ALICE,) and again.retryable is True
    assert again.result.chunks[0].result == delivered.result


def test_a_token_limit_error_keeps_its_context_and_an_error_its_attempts() -> None:
    error = TokenLimitError(400, TOKEN_LIMIT_MESSAGE).with_context(active=30, advice="revoke one")
    error.attempts = 3
    again = pickle.loads(pickle.dumps(error))
    assert str(again) == str(error) and "30 v2.1 tokens are active" in str(again)
    assert (again.active, again.advice, again.attempts) == (30, "revoke one", 3)


def test_a_validation_error_keeps_the_property() -> None:
    again = pickle.loads(pickle.dumps(ValidationError("too long", property="messages[0].text")))
    assert (again.property, again.reason, str(again)) == (
        "messages[0].text",
        "too long",
        "messages[0].text: too long",
    )
