"""What a Python user meets who hands the clients a wrong argument: an error naming it and what it takes, at
construction, rather than an AttributeError or TypeError from deep inside on the first call."""

from __future__ import annotations

from typing import Any

import pytest

from linepush import AsyncLineClient, LineClient, RetryPolicy, Timeouts
from linepush.config import Channel
from linepush.errors import ConfigurationError

CHANNEL = Channel("1234567890", "0123456789abcdef0123456789abcdef")


@pytest.mark.parametrize("client", [LineClient, AsyncLineClient])
@pytest.mark.parametrize(
    ("argument", "said"),
    [
        ({"channel": "1234567890"}, "channel must be a Channel"),
        ({"api_base": 8765}, "api_base must be a URL"),
        ({"retry": 3}, "retry must be a RetryPolicy"),
        ({"retry": {"max_attempts": 3}}, "retry must be a RetryPolicy"),
        ({"timeouts": (5, 30)}, "timeouts must be a Timeouts"),
        ({"store": 5}, "store must be a Store or a store URL"),
        ({"token": ""}, "the channel access token is empty"),
        ({"token": "  "}, "the channel access token is empty"),
    ],
)
def test_a_wrong_argument_is_named(client: Any, argument: dict[str, Any], said: str) -> None:
    arguments = {"channel": CHANNEL, "token": "t", **argument}
    with pytest.raises(ConfigurationError, match=said):
        client(**arguments)


@pytest.mark.parametrize(
    "given",
    [
        {"connect": -1},
        {"connect": 0},
        {"read": "30"},
        {"read": float("nan")},
        {"read": float("inf")},
        {"connect": True},
    ],
)
def test_a_timeout_is_seconds_above_zero(given: dict[str, Any]) -> None:
    (name,) = given
    with pytest.raises(ValueError, match=f"the {name} timeout must be a number of seconds above 0"):
        Timeouts(**given)


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ({"max_attempts": "3"}, "max_attempts must be a whole number"),
        ({"max_attempts": 2.5}, "max_attempts must be a whole number"),
        ({"deadline": float("nan")}, "deadline must be a number of seconds"),
        ({"initial_backoff": "1"}, "initial_backoff must be a number of seconds"),
        ({"multiplier": None}, "multiplier must be a number, not None"),
    ],
)
def test_a_retry_policy_of_the_wrong_kind_is_refused(given: dict[str, Any], said: str) -> None:
    with pytest.raises(ValueError, match=said):
        RetryPolicy(**given)


def test_a_policy_without_a_deadline_is_still_one() -> None:
    assert RetryPolicy(deadline=float("inf")).deadline == float("inf")


def _junk_provider(value: object) -> Any:
    def token_source() -> Any:
        return value

    return token_source


@pytest.mark.parametrize("value", [None, 5, b"bytes-token"])
def test_a_token_function_returning_no_string_says_what_it_returned(value: object) -> None:
    from linepush._call import CallableToken

    with pytest.raises(
        TypeError, match=f"token_source returned {type(value).__name__}, not the token string"
    ):
        CallableToken(_junk_provider(value)).get_token()


@pytest.mark.parametrize("value", [None, 5])
def test_an_async_token_function_returning_no_string_says_so(value: object) -> None:
    import asyncio

    from linepush._call import CallableToken

    async def token_source() -> Any:
        return value

    for source in (token_source, _junk_provider(value)):
        with pytest.raises(TypeError, match=f"returned {type(value).__name__}, not the token string"):
            asyncio.run(CallableToken(source).aget_token())


def test_an_async_token_function_given_to_the_sync_client_is_said_so() -> None:
    from linepush._call import CallableToken

    async def token_source() -> str:
        return "t"

    with pytest.raises(TypeError, match="returned an awaitable; use it with AsyncLineClient"):
        CallableToken(token_source).get_token()
