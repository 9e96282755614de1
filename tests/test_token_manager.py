"""TokenManager against the emulator: freshness, single-flight refresh, caps, revocation and 401s.

The manager's clock and the clients' clocks are the emulator's clock, so moving it moves everyone's time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from linepush import errors
from linepush.client import LineClient
from linepush.config import Channel
from linepush.keys import PrivateKey
from linepush.store import open_store
from linepush.tokens import Freshness, TokenManager
from linepush.transport import SyncASGITransport
from tests.conftest import Emulator

USER = "U" + "2" * 32
V21_ISSUE = "/oauth2/v2.1/token"


class Setup:
    def __init__(self, emulator: Emulator, channel: Channel, store_url: str) -> None:
        self.emulator = emulator
        self.admin = emulator.admin
        self.channel = channel
        self.store = open_store(store_url)
        self._clients: list[LineClient] = []
        self.slept: list[float] = []

    def client(self, channel: Channel | None = None, **kwargs: Any) -> LineClient:
        client = LineClient(
            channel or self.channel,
            transport=SyncASGITransport(self.emulator.app),
            wall_clock=self.emulator.now,
            sleep=self.slept.append,
            **kwargs,
        )
        self._clients.append(client)
        return client

    def manager(self, channel: Channel | None = None, **kwargs: Any) -> TokenManager:
        channel = channel or self.channel
        kwargs.setdefault("clock", self.emulator.now)
        kwargs.setdefault("sleep", self.slept.append)
        return TokenManager(channel, self.store, client=self.client(channel), **kwargs)

    def issues(self) -> int:
        return self.admin.count(V21_ISSUE, status=200)

    def close(self) -> None:
        for client in self._clients:
            client.close()
        self.store.close()


@pytest.fixture
def setup(emulator: Emulator, channel: Channel, store_url: str) -> Iterator[Setup]:
    s = Setup(emulator, channel, store_url)
    yield s
    s.close()


def test_auto_picks_v21_with_a_key_then_v3_with_a_secret_then_the_static_token(setup: Setup) -> None:
    assert setup.manager().kind == "v2.1"
    assert setup.manager(Channel(setup.channel.channel_id, "s" * 32)).kind == "v3"
    assert TokenManager(Channel(access_token="static-token")).kind == "static"
    with pytest.raises(errors.ConfigurationError, match="LINE_CHANNEL_ID"):
        TokenManager(Channel())
    with pytest.raises(errors.ConfigurationError, match="LINE_ASSERTION_KEY_FILE"):
        TokenManager(Channel("123", "secret"), setup.store, kind="v2.1")


def test_a_token_is_issued_once_then_served_from_memory(setup: Setup) -> None:
    manager = setup.manager()
    token = manager.get_token()
    assert [manager.get_token() for _ in range(100)] == [token] * 100
    assert setup.issues() == 1
    assert manager.freshness() is Freshness.FRESH
    assert setup.client(token=token).push(USER, "hi").request_id


def test_another_manager_on_the_same_store_picks_the_token_up(setup: Setup) -> None:
    token = setup.manager().get_token()
    assert setup.manager().get_token() == token
    assert setup.issues() == 1


@pytest.mark.parametrize("kind", ["v3", "v2"])
def test_other_kinds_are_issued_and_shared_too(setup: Setup, kind: str) -> None:
    first = setup.manager(kind=kind)  # type: ignore[arg-type]
    token = first.get_token()
    assert setup.manager(kind=kind).get_token() == token  # type: ignore[arg-type]
    assert setup.client(token=token).push(USER, "hi").request_id


def test_refresh_happens_inside_the_window_and_never_after_expiry(setup: Setup) -> None:
    manager = setup.manager(lifetime=3600, refresh_window=600)
    old = manager.get_token()
    setup.admin.advance(2999)  # 1 s before the window
    assert manager.get_token() == old
    assert manager.freshness() is Freshness.FRESH
    assert setup.issues() == 1
    setup.admin.advance(2)  # inside the window: the stale token is served, one refresh starts
    assert manager.freshness() is Freshness.STALE
    assert manager.get_token() == old
    manager.join_background(10)
    new = manager.get_token()
    assert new != old
    assert setup.issues() == 2
    assert manager.freshness() is Freshness.FRESH
    old_record, new_record = setup.store.list_tokens(setup.channel.require_id(), "v2.1")
    assert old_record.state == "superseded"
    assert new_record.issued_at < (old_record.expires_at or 0)


def test_an_expired_token_is_never_served(setup: Setup) -> None:
    manager = setup.manager(lifetime=3600, refresh_window=600, background=False)
    old = manager.get_token()
    setup.admin.advance(3600)
    assert manager.freshness() is Freshness.INVALID
    new = manager.get_token()  # no background refresh: this caller has to wait for one
    assert new != old
    assert setup.client(token=new).push(USER, "fresh").request_id


def test_superseded_tokens_are_revoked_after_the_grace_period(setup: Setup) -> None:
    manager = setup.manager(lifetime=3600, refresh_window=600, revoke_grace=120)
    old = manager.get_token()
    setup.admin.advance(3100)
    manager.get_token()
    manager.join_background(10)
    new = manager.get_token()
    assert new != old
    checker = setup.client()
    assert checker.verify_v21_token(old).client_id  # still valid during the grace period
    setup.admin.advance(121)
    manager.get_token()  # the revocation is due: it runs in the background, the caller does not wait
    manager.join_background(10)
    with pytest.raises(errors.BadRequestError):
        checker.verify_v21_token(old)
    states = {r.access_token.reveal(): r.state for r in setup.store.list_tokens(setup.channel.require_id())}
    assert states == {old: "revoked", new: "active"}


def test_the_cap_is_recovered_by_revoking_what_the_store_superseded(setup: Setup) -> None:
    issuer = setup.client()
    channel_id = setup.channel.require_id()
    now = setup.emulator.now()
    for _ in range(30):
        issued = issuer.issue_v21_token(token_exp=3600)
        record = setup.store.save_token(
            channel_id, "v2.1", issued.access_token.reveal(), issued.key_id, now, issued.expires_at
        )
        setup.store.set_token_state(record.id, "superseded", now)
    manager = setup.manager()
    token = manager.get_token()
    assert setup.client(token=token).push(USER, "made room").request_id
    assert len(issuer.list_v21_key_ids()) == 1
    assert setup.admin.count(V21_ISSUE, status=400) == 1


def test_the_cap_raises_a_clear_error_when_nothing_can_be_revoked(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    issuer = setup.client()
    for _ in range(30):
        issuer.issue_v21_token(token_exp=3600)  # issued elsewhere: not in our store
    manager = setup.manager(cap_fallback=False)
    with caplog.at_level(logging.WARNING, "linepush.tokens"), pytest.raises(errors.TokenLimitError) as info:
        manager.get_token()
    text = str(info.value)
    assert "30 v2.1 tokens are active" in text
    assert "linepush token revoke" in text and "--kind v3" in text
    assert "store holds 0 of them" in caplog.text


def test_without_the_secret_the_cap_cannot_be_recovered(setup: Setup, assertion_key: PrivateKey) -> None:
    issuer = setup.client()
    for _ in range(30):
        issuer.issue_v21_token(token_exp=3600)
    no_secret = Channel(
        setup.channel.channel_id, None, setup.channel.assertion_key_file, setup.channel.assertion_kid
    )
    with pytest.raises(errors.TokenLimitError, match="LINE_CHANNEL_SECRET"):
        setup.manager(no_secret, kind="v2.1", cap_fallback=False).get_token()


def test_at_the_cap_a_v3_token_from_the_same_key_does_the_job(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    issuer = setup.client()
    for _ in range(30):
        issuer.issue_v21_token(token_exp=3600)  # left behind by stores that were lost
    manager = setup.manager()
    assert manager.kind == "v2.1"  # the channel secret is set: v2.1 is the choice, until the cap
    client = setup.client(token=manager)
    with caplog.at_level(logging.WARNING, "linepush.tokens"):
        assert [bool(client.push(USER, f"m{i}").request_id) for i in range(3)] == [True] * 3
    assert "using stateless v3 tokens" in caplog.text
    assert setup.admin.count("/oauth2/v3/token", status=200) == 1
    assert setup.admin.count(V21_ISSUE, status=400) == 1
    assert [r.kind for r in setup.store.list_tokens(setup.channel.require_id())] == ["v3"]


def test_without_a_secret_and_no_v21_token_stored_auto_picks_v3(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_secret = Channel(
        setup.channel.channel_id, None, setup.channel.assertion_key_file, setup.channel.assertion_kid
    )
    assert setup.manager(no_secret).kind == "v3"  # nothing could ever revoke a v2.1 token a lost store leaves
    assert setup.manager(no_secret, lifetime=3600).kind == "v2.1"  # a v2.1 lifetime asks for v2.1
    monkeypatch.setenv("LINEPUSH_TOKEN_KIND", "v2.1")
    manager = setup.manager(no_secret)
    assert manager.kind == "v2.1"
    manager.get_token()
    monkeypatch.delenv("LINEPUSH_TOKEN_KIND")
    assert setup.manager(no_secret).kind == "v2.1"  # the store holds v2.1 tokens: it is durable, keep them
    monkeypatch.setenv("LINEPUSH_TOKEN_KIND", "v4")
    with pytest.raises(errors.ConfigurationError, match="LINEPUSH_TOKEN_KIND"):
        setup.manager(no_secret)


def test_a_401_mid_run_refreshes_once_and_delivers(setup: Setup) -> None:
    manager = setup.manager()
    client = setup.client(token=manager)
    client.push(USER, "before")
    setup.client().revoke_v21_token(manager.get_token())  # behind the manager's back
    sent = client.push(USER, "after")
    assert sent.request_id
    assert setup.issues() == 2
    assert len(setup.admin.deliveries(setup.channel.channel_id, USER)) == 2
    invalid = [r for r in setup.store.list_tokens(setup.channel.require_id()) if r.state == "invalid"]
    assert len(invalid) == 1


def test_a_401_invalidates_every_stored_token_issued_up_to_the_refused_one(setup: Setup) -> None:
    issuer = setup.client()
    channel_id = setup.channel.require_id()
    now = setup.emulator.now()
    stale = []
    for _ in range(5):  # issued and stored by earlier runs, then revoked at LINE behind the store's back
        issued = issuer.issue_v21_token(token_exp=3600)
        setup.store.save_token(
            channel_id, "v2.1", issued.access_token.reveal(), issued.key_id, now, issued.expires_at
        )
        stale.append(issued.access_token.reveal())
    for token in stale:
        issuer.revoke_v21_token(token)
    client = setup.client(token=setup.manager())
    assert [bool(client.push(USER, f"m{i}").request_id) for i in range(5)] == [True] * 5
    assert setup.issues() == 5 + 1
    states = {r.access_token.reveal(): r.state for r in setup.store.list_tokens(channel_id)}
    assert [states[t] for t in stale] == ["invalid"] * 5


def test_after_a_401_a_newer_stored_token_is_verified_before_it_is_used(setup: Setup) -> None:
    manager = setup.manager()
    client = setup.client(token=manager)
    held = manager.get_token()
    issuer = setup.client()
    newer = issuer.issue_v21_token(token_exp=3600)  # stored by another process, later revoked
    setup.store.save_token(
        setup.channel.require_id(),
        "v2.1",
        newer.access_token.reveal(),
        newer.key_id,
        setup.emulator.now() + 1,
        newer.expires_at,
    )
    issuer.revoke_v21_token(held)
    issuer.revoke_v21_token(newer.access_token)
    assert client.push(USER, "still delivered").request_id
    assert setup.admin.count("/oauth2/v2.1/verify", method="GET", status=400) == 1
    assert manager.get_token() not in (held, newer.access_token.reveal())


def test_a_static_token_is_used_as_is(setup: Setup) -> None:
    token = setup.admin.long_lived_token(setup.channel.require_id())
    manager = TokenManager(Channel(access_token=token))
    assert manager.get_token() == token
    assert not manager.refreshable
    assert manager.freshness() is Freshness.FRESH


def test_the_client_builds_a_manager_on_the_given_store(setup: Setup, store_url: str) -> None:
    client = setup.client(store=store_url)
    client.push(USER, "one line")
    client.push(USER, "two lines")
    assert setup.issues() == 1
    assert [r.kind for r in setup.store.list_tokens(setup.channel.require_id())] == ["v2.1"]


def test_no_secret_appears_in_logs_reprs_or_errors(
    setup: Setup, caplog: pytest.LogCaptureFixture, assertion_key: PrivateKey, tmp_path: Path
) -> None:
    secrets: list[str] = [setup.channel.require_secret().reveal(), assertion_key.private_jwk()["d"]]
    shown: list[str] = []
    with caplog.at_level(logging.DEBUG):
        manager = setup.manager(lifetime=3600, refresh_window=600, revoke_grace=10)
        client = setup.client(token=manager)
        client.push(USER, "a")
        secrets.append(manager.get_token())
        setup.admin.advance(3100)
        manager.get_token()
        manager.join_background(10)
        secrets.append(manager.get_token())
        setup.admin.advance(20)
        manager.get_token()
        manager.join_background(10)
        setup.client().revoke_v21_token(manager.get_token())
        client.push(USER, "b")
        secrets.append(manager.get_token())
        short = client.issue_short_lived_token()
        secrets.append(short.access_token.reveal())
        try:
            LineClient(
                setup.channel, token=secrets[-1], transport=SyncASGITransport(setup.emulator.app)
            ).push("bad", "x")
        except errors.ValidationError as exc:
            shown.append(str(exc))
        try:
            client.verify_v21_token("eyJ.not.valid")
        except errors.LineApiError as exc:
            shown.extend([str(exc), repr(exc)])
        shown += [repr(setup.channel), repr(manager), repr(client), repr(short), str(short)]
        shown += [repr(r) for r in setup.store.list_tokens(setup.channel.require_id())]
        shown.append(repr(assertion_key))
    haystack = caplog.text + "\n".join(shown)
    assert caplog.records, "the flow should have logged something"
    for secret in secrets:
        assert secret not in haystack


def test_a_manager_needs_a_client_to_call_the_token_endpoints(channel: Channel, store_url: str) -> None:
    with pytest.raises(errors.ConfigurationError, match="through a client"):
        TokenManager(channel, store_url)


async def test_an_async_client_without_a_token_runs_its_token_calls_on_its_own_loop(
    emulator: Emulator, channel: Channel, store_url: str
) -> None:
    from linepush.api import tokens as token_api
    from linepush.client import AsyncLineClient
    from linepush.transport import ASGITransport

    store = open_store(store_url)
    try:
        async with AsyncLineClient(
            channel,
            store=store,
            transport=ASGITransport(emulator.app),
            wall_clock=emulator.now,
            rate_limits=None,
        ) as line:
            assert (await line.push(USER, "one")).request_id
            assert emulator.admin.count(V21_ISSUE, status=200) == 1
            manager = line._owned_manager
            assert manager is not None
            old = manager.get_token()
            emulator.admin.advance(86_400 - 6 * 3600 + 1)  # inside the default refresh window
            assert manager.freshness() is Freshness.STALE
            assert (await line.push(USER, "two")).request_id  # the stale token; a refresh starts
            await asyncio.to_thread(manager.join_background, 10)
            assert emulator.admin.count(V21_ISSUE, status=200) == 2
            assert manager.freshness() is Freshness.FRESH and manager.get_token() != old
            # Waiting on its own loop from that loop would block it for good: refused.
            with pytest.raises(RuntimeError, match="must not wait on the event loop"):
                line._on_loop.run(token_api.verify_v21("x"))
    finally:
        store.close()


def test_a_lock_left_by_a_dead_process_of_this_host_is_taken_over(setup: Setup) -> None:
    """The refresh lock of a process killed mid-issue (the CLI test kills a real `linepush send`) is taken
    over at once, a killed child its parent has not reaped yet included; a live holder is waited for."""
    import subprocess
    import sys

    from linepush.tokens import _gone, _this_host

    manager = setup.manager(poll_interval=0.25, lock_ttl=1.0)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        alive = f"{_this_host()}:{child.pid}:0123456789ab"
        assert not _gone(alive)
        assert not _gone(f"another-host:{child.pid}:0123456789ab")
        child.kill()
        while not _gone(alive):  # killed; a zombie until waited for
            pass
        lock = f"refresh:{setup.channel.channel_id}:v2.1"
        assert setup.store.try_lock(lock, alive, 60.0, setup.emulator.now())
        manager.get_token()
        assert setup.issues() == 1 and 0.25 not in setup.slept  # it never waited for the lock
    finally:
        child.kill()
        child.wait()
    manager.close()


def test_a_holder_of_the_same_host_name_on_another_machine_is_never_taken_for_dead() -> None:
    """Hosts sharing a PostgreSQL store may have one name (``localhost``) and, in their first PID namespace,
    one namespace number: only the boot id tells them apart, and a process id of another machine is never
    looked up here."""
    import subprocess
    import sys

    from linepush.tokens import _gone, _this_host

    here = _this_host()
    if not Path("/proc/sys/kernel/random/boot_id").exists():
        pytest.skip("no boot id on this system")
    name, boot, *rest = here.split("/")
    assert len(boot) == 16
    elsewhere = "/".join([name, "0" * 16, *rest])
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # a process id that runs nothing here
    assert _gone(f"{here}:{child.pid}:0123456789ab")
    assert not _gone(f"{elsewhere}:{child.pid}:0123456789ab")


def test_a_forked_child_names_itself_in_the_lock(setup: Setup) -> None:
    import os

    manager = setup.manager()
    parent = manager._owner
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report the owner it would lock as, and leave at once
        os.write(write, manager._owner.encode())
        os._exit(0)
    os.close(write)
    owner = os.read(read, 200).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert owner.split(":")[1] == str(pid) and parent.split(":")[1] == str(os.getpid())
    manager.close()
