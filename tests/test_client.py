"""LineClient and AsyncLineClient against the emulator, in-process and over a real loopback socket.

Every test runs four ways: sync and async client, each in-process (ASGI) and over HTTP on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from linepush import errors
from linepush.client import AsyncLineClient, LineClient, MulticastError
from linepush.config import Channel
from linepush.keys import PrivateKey
from linepush.retry import RetryPolicy
from linepush.transport import Timeouts
from tests.conftest import Emulator, async_transport, make_channel, sync_transport
from tests.support.emulator import Facade

USER = "U" + "1" * 32
PUSH = "/v2/bot/message/push"
MULTICAST = "/v2/bot/message/multicast"
MODES = ["sync", "async", "sync-socket", "async-socket"]


def user(i: int) -> str:
    return f"U{i:032x}"


class Env:
    def __init__(self, emulator: Emulator, channel: Channel, mode: str) -> None:
        self.emulator = emulator
        self.admin = emulator.admin
        self.channel = channel
        self.mode = mode
        self.sleeps: list[float] = []
        self._open: list[Facade] = []

    def client(self, *, token: Any = None, retry: RetryPolicy | None = None, **kwargs: Any) -> Facade:
        if token is None:
            token = self.admin.long_lived_token(self.channel.require_id())
        common: dict[str, Any] = {
            "token": token,
            "retry": retry or RetryPolicy(max_attempts=4),
            "rand": lambda: 0.5,
            "wall_clock": self.emulator.now,
            "rate_limits": None,  # the limiter has its own tests; here its pacing would show up as sleeps
            **kwargs,
        }
        if self.mode.startswith("async"):
            sleeps = self.sleeps

            async def fake_sleep(seconds: float) -> None:
                sleeps.append(seconds)

            transport = kwargs.pop("transport", None) or async_transport(self.emulator)
            common.pop("transport", None)
            client: Any = AsyncLineClient(self.channel, transport=transport, sleep=fake_sleep, **common)
            facade = Facade(client, asyncio.Runner())
        else:
            transport = kwargs.pop("transport", None) or sync_transport(self.emulator)
            common.pop("transport", None)
            client = LineClient(self.channel, transport=transport, sleep=self.sleeps.append, **common)
            facade = Facade(client, None)
        self._open.append(facade)
        return facade

    def close(self) -> None:
        for facade in self._open:
            facade.close()


def _env(request: pytest.FixtureRequest, assertion_key: PrivateKey, tmp_path: Path) -> Iterator[Env]:
    mode: str = request.param
    emulator: Emulator = request.getfixturevalue("live_emulator" if "socket" in mode else "emulator")
    if emulator.url is not None:
        emulator.admin.clear_faults()
    channel = make_channel(emulator, assertion_key, tmp_path)
    environment = Env(emulator, channel, mode)
    try:
        yield environment
    finally:
        environment.close()
        if emulator.url is not None:
            emulator.admin.clear_faults()


env = pytest.fixture(params=MODES)(_env)
#: Only over a real socket: connection refused and read timeouts have no in-process equivalent.
socket_env = pytest.fixture(params=[m for m in MODES if "socket" in m])(_env)


def test_push_returns_what_line_returned(env: Env) -> None:
    line = env.client()
    sent = line.push(USER, ["Hello, world1", {"type": "sticker", "packageId": "446", "stickerId": "1988"}])
    assert len(sent.sent_messages) == 2
    assert all(m.id.isdigit() for m in sent.sent_messages)
    assert sent.request_id
    assert not sent.duplicate
    [delivery] = env.admin.deliveries(env.channel.channel_id, USER)
    assert delivery["retry_key"] == sent.retry_key
    assert delivery["messages"][0] == {"type": "text", "text": "Hello, world1"}


def test_a_409_for_a_key_another_send_took_is_not_a_delivered_push(env: Env) -> None:
    line = env.client()
    key = "123e4567-e89b-12d3-a456-426614174001"
    line.multicast([USER], "a multicast first", retry_key=key)
    with pytest.raises(errors.ConflictError, match="this push was not sent") as caught:
        line.push(USER, "then a push under the same key", retry_key=key)
    assert not caught.value.retryable
    assert caught.value.accepted_request_id
    assert [d["endpoint"] for d in env.admin.deliveries(env.channel.channel_id, USER)] == ["multicast"]


def test_the_same_retry_key_never_delivers_twice(env: Env) -> None:
    line = env.client()
    key = "123e4567-e89b-12d3-a456-426614174000"
    first = line.push(USER, "once", retry_key=key)
    again = line.push(USER, "once", retry_key=key)
    assert again.duplicate
    assert again.accepted_request_id == first.request_id
    assert again.sent_messages == first.sent_messages
    assert len(env.admin.deliveries(env.channel.channel_id, USER)) == 1


def test_multicast_is_split_into_chunks_of_500_each_with_its_own_key(env: Env) -> None:
    line = env.client()
    ids = [user(i) for i in range(1234)]
    result = line.multicast(ids, "hi all")
    assert [len(c.recipients) for c in result.chunks] == [500, 500, 234]
    assert len({c.retry_key for c in result.chunks}) == 3
    assert result.ok and result.recipients == 1234
    deliveries = [
        d for d in env.admin.deliveries(env.channel.channel_id) if d["endpoint"].endswith("multicast")
    ]
    assert sorted(len(d["to"]) for d in deliveries) == [234, 500, 500]
    # The same call under the same key reproduces every chunk's key: LINE drops all three.
    again = line.multicast(ids, "hi all", retry_key=result.chunks[0].retry_key)
    assert all(c.result is not None and c.result.duplicate for c in again.chunks)
    assert env.admin.count(MULTICAST, status=200) == 3


def test_a_failed_chunk_is_reported_with_the_others(env: Env) -> None:
    line = env.client()
    env.admin.fault(path=MULTICAST, mode="status", status=400, count=1)
    with pytest.raises(MulticastError) as info:
        line.multicast([user(i) for i in range(1000)], "hi")
    result = info.value.result
    assert len(result.failed) == 1 and len(result.chunks) == 2
    assert isinstance(result.failed[0].error, errors.BadRequestError)
    assert not info.value.retryable


def test_broadcast_narrowcast_validate_and_quota(env: Env) -> None:
    channel_id, _ = env.admin.create_channel(monthly_quota=1000)
    env.channel = Channel(channel_id, None)
    line = env.client()
    assert line.broadcast("to every friend").request_id
    narrow = line.narrowcast("to some", limit={"max": 10})
    assert narrow.request_id
    line.validate("push", ["a", "b"])
    quota = line.quota()
    assert (quota.type, quota.value) == ("limited", 1000)
    line.push(USER, "counted")
    assert line.quota_consumption().total_usage >= 1


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
def test_transient_failures_are_retried_with_the_same_key_and_delivered_once(env: Env, status: int) -> None:
    line = env.client()
    env.admin.fault(path=PUSH, mode="status", status=status, count=2)
    sent = line.push(USER, "eventually")
    assert not sent.duplicate
    assert env.admin.count(PUSH) == 3
    assert env.sleeps == [0.125, 0.25]
    [delivery] = env.admin.deliveries(env.channel.channel_id, USER)
    assert delivery["retry_key"] == sent.retry_key


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, errors.BadRequestError),
        (401, errors.AuthenticationError),
        (403, errors.PermissionDeniedError),
        (404, errors.NotFoundError),
        (410, errors.GoneError),
        (413, errors.RequestTooLargeError),
        (415, errors.UnsupportedMediaTypeError),
    ],
)
def test_final_errors_are_not_retried_and_say_what_line_said(env: Env, status: int, cls: type) -> None:
    line = env.client()
    env.admin.fault(path=PUSH, mode="status", status=status, count=2)
    with pytest.raises(cls) as info:
        line.push(USER, "no")
    assert info.value.status == status
    assert info.value.request_id
    assert env.admin.count(PUSH) == 1
    assert env.sleeps == []


def test_a_monthly_limit_is_final(env: Env) -> None:
    channel_id, _ = env.admin.create_channel(monthly_quota=1)
    env.channel = Channel(channel_id, None)
    line = env.client()
    line.push(USER, "the one allowed")
    with pytest.raises(errors.MonthlyLimitError) as info:
        line.push(user(2), "over")
    assert info.value.message == "You have reached your monthly limit."
    assert not info.value.retryable


def test_an_unknown_recipient_gets_lines_error(env: Env) -> None:
    line = env.client()
    env.admin.recipient(env.channel.require_id(), USER, "unknown")
    with pytest.raises(errors.BadRequestError) as info:
        line.push(USER, "hello?")
    assert info.value.message == "Failed to send messages"
    assert "Failed to send messages" in str(info.value)


def test_a_bad_token_is_a_401_and_a_static_token_is_not_retried(env: Env) -> None:
    line = env.client(token="not-a-real-token")
    with pytest.raises(errors.AuthenticationError) as info:
        line.push(USER, "x")
    assert "Authentication failed" in info.value.message
    assert "not-a-real-token" not in str(info.value)
    assert env.admin.count(PUSH) == 1


def test_accept_then_drop_delivers_exactly_once(env: Env) -> None:
    line = env.client()
    env.admin.fault(path=PUSH, mode="drop_after_accept", count=1)
    sent = line.push(USER, "dropped answer")
    assert sent.duplicate  # the retry learned from LINE's 409 that the first attempt had landed
    assert len(env.admin.deliveries(env.channel.channel_id, USER)) == 1
    assert env.admin.count(PUSH) == 2


def test_local_validation_sends_nothing(env: Env) -> None:
    line = env.client()
    cases: list[tuple[Any, Any, str]] = [
        (USER, ["m"] * 6, "messages"),
        (USER, "x" * 5001, "messages[0].text"),
        (USER, "🍎" * 2501, "messages[0].text"),
        ("U123", "hi", "to"),
        (USER, [{"type": "hologram"}], "messages[0].type"),
    ]
    for to, messages, prop in cases:
        with pytest.raises(errors.ValidationError) as info:
            line.push(to, messages)
        assert info.value.property == prop
    with pytest.raises(errors.ValidationError):
        line.multicast(["C" + "0" * 32], "groups cannot be multicast to")
    assert env.admin.count(PUSH) == 0
    assert env.admin.count(MULTICAST) == 0


def test_token_endpoints(env: Env) -> None:
    line = env.client()
    short = line.issue_short_lived_token()
    assert short.kind == "v2" and short.expires_in == 2_592_000
    assert line.verify_short_lived_token(short.access_token).client_id == env.channel.channel_id
    line.revoke_short_lived_token(short.access_token)
    with pytest.raises(errors.BadRequestError):
        line.verify_short_lived_token(short.access_token)

    v21 = line.issue_v21_token(token_exp=3600)
    assert v21.key_id and v21.expires_in == 3600
    assert line.verify_v21_token(v21.access_token).client_id == env.channel.channel_id
    assert v21.key_id in line.list_v21_key_ids()
    sent = env.client(token=v21.access_token).push(USER, "with a v2.1 token")
    assert sent.request_id
    line.revoke_v21_token(v21.access_token)
    assert v21.key_id not in line.list_v21_key_ids()

    by_jwt = line.issue_stateless_token()
    by_secret = line.issue_stateless_token(use_secret=True)
    assert by_jwt.kind == by_secret.kind == "v3"
    assert 0 < by_jwt.expires_in <= 900
    assert "…" in repr(by_jwt) and by_jwt.access_token.reveal() not in repr(by_jwt)


def test_connection_refused_is_connect_error_after_retries(socket_env: Env) -> None:
    env = socket_env
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    from linepush.transport import AiohttpTransport, Urllib3Transport

    transport = AiohttpTransport(url) if env.mode.startswith("async") else Urllib3Transport(url)
    line = env.client(transport=transport, retry=RetryPolicy(max_attempts=3))
    with pytest.raises(errors.ConnectError) as info:
        line.push(USER, "nobody home")
    assert info.value.attempts == 3
    assert not info.value.maybe_sent


def test_a_read_timeout_is_retried_with_the_same_key_and_delivered_once(socket_env: Env) -> None:
    env = socket_env
    env.admin.fault(path=PUSH, mode="latency", latency_ms=400, count=1)
    line = env.client(timeouts=Timeouts(connect=2, read=0.15))
    sent = line.push(USER, "slow")
    assert len(env.admin.deliveries(env.channel.channel_id, USER)) == 1
    assert sent.retry_key == env.admin.deliveries(env.channel.channel_id, USER)[0]["retry_key"]
