"""Token failures seen from the command line: stale stored tokens, refusals by the token endpoint, the cap.

Each test reproduces what a user would do: issue tokens with `linepush token issue`, break them at LINE (the
emulator's own endpoints), then send directly or through the outbox and a worker.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from linepush.api.tokens import revoke_short_lived, revoke_v21
from linepush.cli.invocation import Exit
from linepush.keys import generate_key_pair
from linepush.outbox import Outbox, push_item
from linepush.store import open_store
from linepush.transport import Urllib3Transport
from tests.cli.conftest import Cli

USER = "U" + "5" * 32


def issue_stored_tokens(cli: Cli, count: int) -> list[str]:
    values = []
    for _ in range(count):
        issued = cli("token", "issue", "--show-token")
        assert issued.exit_code == 0, issued.output
        values.append(issued.stdout.strip())
    return values


def revoke_at_line(cli: Cli, tokens: list[str]) -> None:
    """Revoke tokens at LINE behind linepush's back (as the console or another tool would)."""
    assert cli.emulator.url is not None
    transport = Urllib3Transport(cli.emulator.url)
    try:
        for token in tokens:
            response = transport.send(revoke_v21(cli.channel_id, cli.channel_secret, token).request, None)
            assert response.status == 200
    finally:
        transport.close()


def rows() -> list[Any]:
    with open_store(os.environ["LINEPUSH_STORE"]) as store:
        return store.list_messages(limit=100)


def test_revoked_stored_tokens_do_not_fail_a_queued_message(cli: Cli) -> None:
    revoke_at_line(cli, issue_stored_tokens(cli, 3))
    queued = cli("send", "--queue", "--to", USER, "disk full")
    assert queued.exit_code == 0, queued.output
    worker = cli("worker", "--once", "--json")
    assert worker.exit_code == Exit.OK, worker.output
    assert json.loads(worker.stdout)["delivered"] == 1
    assert [row.state for row in rows()] == ["delivered"]
    assert len(cli.emulator.admin.deliveries(cli.channel_id, USER)) == 1


def test_revoked_stored_tokens_do_not_fail_direct_sends(cli: Cli) -> None:
    revoke_at_line(cli, issue_stored_tokens(cli, 5))
    codes = [cli("send", "--to", USER, f"send {i}").exit_code for i in range(5)]
    assert codes == [0] * 5
    assert len(cli.emulator.admin.deliveries(cli.channel_id, USER)) == 5


def queue_rows(cli: Cli, count: int) -> None:
    with open_store(os.environ["LINEPUSH_STORE"]) as store:
        box = Outbox(store, cli.channel_id)
        box.enqueue([push_item(cli.channel_id, USER, f"alert {i}") for i in range(count)])


def break_clock(cli: Cli, tmp_path: Path) -> list[str]:
    cli.emulator.admin.advance(2 * 86400)  # LINE's clock two days ahead of this host's
    return []


def break_kid(cli: Cli, tmp_path: Path) -> list[str]:
    return ["--kid", "00000000-0000-4000-8000-000000000000"]


def break_key(cli: Cli, tmp_path: Path) -> list[str]:
    other = tmp_path / "unregistered.json"
    generate_key_pair().write_private_jwk(other)  # a key never registered in the console
    return ["--key-file", str(other)]


@pytest.mark.parametrize(
    ("broken", "cause"),
    [
        (break_clock, "clock"),
        (break_kid, "kid"),
        (break_key, "not registered"),
    ],
)
def test_a_refused_token_request_gives_the_rows_back_and_stops_the_worker(
    cli: Cli, tmp_path: Path, broken: Callable[[Cli, Path], list[str]], cause: str
) -> None:
    queue_rows(cli, 100)
    flags = broken(cli, tmp_path)
    worker = cli("worker", "--once", *flags)
    assert worker.exit_code == Exit.USAGE, worker.output
    assert cause in worker.stderr
    assert "Traceback" not in worker.output
    states = [(row.state, row.attempts) for row in rows()]
    assert states == [("queued", 0)] * 100
    assert cli.emulator.admin.deliveries(cli.channel_id) == []


def break_channel(cli: Cli, tmp_path: Path) -> list[str]:
    return ["--channel-id", "1999999999"]  # another channel's id with this channel's key


@pytest.mark.parametrize(
    ("broken", "hint"),
    [
        (break_kid, "LINE knows no assertion key with this kid"),
        (break_channel, "registered for another channel: check LINE_CHANNEL_ID"),
        (break_key, "the key is not registered"),
        (break_clock, "this host's clock is off: LINE's Date header says"),
    ],
)
def test_token_endpoint_refusals_name_the_likely_cause(
    cli: Cli, tmp_path: Path, broken: Callable[[Cli, Path], list[str]], hint: str
) -> None:
    flags = broken(cli, tmp_path)
    issued = cli("token", "issue", *flags)
    assert issued.exit_code != 0
    assert hint in issued.stderr, issued.stderr
    sent = cli("send", "--to", USER, "hi", *flags)
    assert sent.exit_code == Exit.USAGE
    assert hint in sent.stderr and "nothing was sent" in sent.stderr


def test_a_failing_token_endpoint_does_not_suggest_a_retry_key(cli: Cli) -> None:
    cli.emulator.admin.fault(path="/oauth2/v2.1/token", mode="status", status=500, count=100)
    sent = cli("send", "--to", USER, "hi", "--deadline", "0")
    assert sent.exit_code == Exit.TRANSIENT, sent.output
    assert "--retry-key" not in sent.stderr
    assert "nothing was sent" in sent.stderr
    assert cli.emulator.admin.deliveries(cli.channel_id) == []


def test_throwaway_stores_never_lock_the_channel_out(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CI job or a container without a volume: every run starts with a new, empty store."""
    codes = []
    for run in range(32):
        monkeypatch.setenv("LINEPUSH_STORE", f"sqlite:///{tmp_path / f'run-{run}.db'}")
        codes.append(cli("send", "--to", USER, f"run {run}").exit_code)
    assert codes == [0] * 32
    assert len(cli.emulator.admin.deliveries(cli.channel_id, USER)) == 32


def test_without_a_secret_throwaway_stores_use_stateless_tokens(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LINE_CHANNEL_SECRET")
    for run in range(3):
        monkeypatch.setenv("LINEPUSH_STORE", f"sqlite:///{tmp_path / f'run-{run}.db'}")
        assert cli("send", "--to", USER, f"run {run}").exit_code == 0
    kinds = [t["kind"] for t in cli.emulator.admin.tokens(cli.channel_id)]
    assert kinds == ["v3"] * 3  # no v2.1 token left behind to hold a slot


def test_a_refused_static_token_leaves_the_queue_queued(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """A long-lived token revoked (or reissued) in the console: LINE answers 401 to every send. No message
    is at fault, so none is failed: they stay queued for when the token is fixed."""
    token = cli.emulator.admin.call("POST", f"/_emulator/channels/{cli.channel_id}/long-lived-token")
    value = token["access_token"]
    assert cli.emulator.url is not None
    transport = Urllib3Transport(cli.emulator.url)
    try:
        assert transport.send(revoke_short_lived(value).request, None).status == 200
    finally:
        transport.close()
    for name in ("LINE_CHANNEL_SECRET", "LINE_ASSERTION_KEY_FILE", "LINE_ASSERTION_KID"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("LINE_CHANNEL_ACCESS_TOKEN", value)
    queue_rows(cli, 3)
    worker = cli("worker", "--once")
    assert worker.exit_code != Exit.OK, worker.output
    assert "LINE_CHANNEL_ACCESS_TOKEN" in worker.stderr
    assert value not in worker.output
    assert [(row.state, row.attempts) for row in rows()] == [("queued", 0)] * 3


def test_at_the_cap_later_runs_reuse_the_stored_v3_token(cli: Cli) -> None:
    """30 v2.1 tokens are held elsewhere (another tool, a store that was lost): the first send falls back to
    a v3 token. The sends after it, each a new process on the same store, use that token rather than ask
    LINE for a v2.1 token again, list its key ids and issue one more v3 token every time."""
    state = cli.emulator.state
    channel = state.channel(cli.channel_id)
    for _ in range(30):
        assert state.issue_v21(channel, 86_400) is not None
    first = cli("send", "--to", USER, "first")
    assert first.exit_code == 0, first.output
    admin = cli.emulator.admin

    def token_calls() -> tuple[int, int, int]:
        return (
            admin.count("/oauth2/v2.1/token"),
            admin.count("/oauth2/v2.1/tokens/kid", method="GET"),
            admin.count("/oauth2/v3/token"),
        )

    before = token_calls()
    assert before == (1, 1, 1)
    for run in range(2):
        sent = cli("send", "--to", USER, f"run {run}")
        assert sent.exit_code == 0, sent.output
    assert token_calls() == before
    assert len(admin.deliveries(cli.channel_id, USER)) == 3
