"""`linepush recipients list` beside each id shows the name LINE knows (a user's display name, a group's
name), asked of the emulator over a real socket; a lookup that fails says why and never fails the list."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from linepush.cli import _register, app
from linepush.cli.invocation import Exit
from linepush.service.store import RecipientSighting, gateway_store
from linepush.store import SQLiteStore
from tests.conftest import Emulator

_register()

FRIEND = "U" + "a" * 28 + "0001"
BLOCKER = "U" + "b" * 28 + "0002"
GROUP = "C" + "c" * 28 + "5555"
ROOM = "R" + "d" * 28 + "7777"
NAMED = "U" + "e" * 28 + "0003"  # only named, never seen by the webhook
PROFILE = "/v2/bot/profile/{}"


def run(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(app, list(args), env=env)


@pytest.fixture
def channel(live_emulator: Emulator, clean_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """A channel at the emulator whose webhook has seen a friend, a blocker, a group and a room, and one
    more user who is only named."""
    admin = live_emulator.admin
    channel_id, _ = admin.create_channel()
    monkeypatch.setenv("LINE_CHANNEL_ID", channel_id)
    monkeypatch.setenv("LINE_CHANNEL_ACCESS_TOKEN", admin.long_lived_token(channel_id))
    assert live_emulator.url is not None
    monkeypatch.setenv("LINEPUSH_API_BASE", live_emulator.url)
    db = tmp_path / "store.db"
    monkeypatch.setenv("LINEPUSH_STORE", str(db))
    admin.recipient(channel_id, BLOCKER, "blocked")
    with SQLiteStore(db) as store:
        gateway = gateway_store(store)
        seen = [RecipientSighting(rid, "message") for rid in (FRIEND, BLOCKER, GROUP, ROOM)]
        gateway.record_recipients(channel_id, seen, 1_700_000_000.0)
        gateway.name_recipient(channel_id, "ops-room", GROUP, 1_700_000_000.0)
        gateway.name_recipient(channel_id, "dba", NAMED, 1_700_000_000.0)
    return channel_id


def _by_id(stdout: str) -> dict[str, dict[str, Any]]:
    return {entry["id"]: entry for entry in json.loads(stdout)}


def test_names_line_knows_and_why_the_others_are_unknown(channel: str, live_emulator: Emulator) -> None:
    listed = run("recipients", "list", "--json")
    assert listed.exit_code == Exit.OK, listed.output
    found = _by_id(listed.stdout)
    assert found[FRIEND]["line_name"] == "User 0001" and found[FRIEND]["line_name_unknown"] is None
    assert found[GROUP]["line_name"] == "Group 5555" and found[GROUP]["names"] == ["ops-room"]
    assert found[NAMED]["line_name"] == "User 0003"
    assert found[BLOCKER]["line_name"] is None
    assert "not a friend of the account, or blocked it" in found[BLOCKER]["line_name_unknown"]
    assert (
        found[ROOM] | {"line_name": None, "line_name_unknown": "rooms have no name in LINE's API"}
        == found[ROOM]
    )
    # Each user and group once, rooms never.
    assert live_emulator.admin.count(PROFILE.format(FRIEND), method="GET") == 1
    assert live_emulator.admin.count(f"/v2/bot/room/{ROOM}/summary", method="GET") == 0

    shown = run("recipients", "list")
    assert shown.exit_code == Exit.OK
    assert "LINE NAME" in shown.stdout and "User 0001" in shown.stdout and "Group 5555" in shown.stdout
    assert "unknown (not found: not a friend" in shown.stdout
    assert "unknown (rooms have no name" in shown.stdout
    assert "LINE's name of 1 recipients is unknown" in shown.stderr


def test_no_lookup_lists_offline(channel: str, live_emulator: Emulator) -> None:
    closed = _closed_port_url()
    shown = run("recipients", "list", "--no-lookup", env={"LINEPUSH_API_BASE": closed})
    assert shown.exit_code == Exit.OK, shown.output
    assert "LINE NAME" not in shown.stdout and FRIEND in shown.stdout and "ops-room" in shown.stdout
    listed = _by_id(run("recipients", "list", "--no-lookup", "--json").stdout)
    assert listed[FRIEND]["line_name_unknown"] == "not looked up (--no-lookup)"
    assert live_emulator.admin.count(PROFILE.format(FRIEND), method="GET") == 0


def test_an_unreachable_line_does_not_fail_the_list(channel: str) -> None:
    listed = run("recipients", "list", "--json", env={"LINEPUSH_API_BASE": _closed_port_url()})
    assert listed.exit_code == Exit.OK, listed.output
    found = _by_id(listed.stdout)
    assert found[FRIEND]["line_name"] is None
    assert found[FRIEND]["line_name_unknown"] == "LINE could not be reached"
    assert found[ROOM]["line_name_unknown"] == "rooms have no name in LINE's API"


def test_no_token_does_not_fail_the_list(channel: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LINE_CHANNEL_ACCESS_TOKEN")
    listed = run("recipients", "list", "--json")
    assert listed.exit_code == Exit.OK, listed.output
    assert {e["line_name_unknown"] for e in json.loads(listed.stdout) if not e["id"].startswith("R")} == {
        "no channel access token or credentials configured"
    }


def test_a_refused_token_is_said_once_for_all(channel: str, live_emulator: Emulator) -> None:
    listed = run("recipients", "list", "--json", env={"LINE_CHANNEL_ACCESS_TOKEN": "not-a-token"})
    assert listed.exit_code == Exit.OK, listed.output
    reasons = {e["line_name_unknown"] for e in json.loads(listed.stdout) if not e["id"].startswith("R")}
    assert reasons == {"LINE refused the channel access token (401)"}


def test_lookups_are_bounded_by_the_timeout(channel: str, live_emulator: Emulator) -> None:
    live_emulator.admin.fault(path=PROFILE.format(FRIEND), method="GET", mode="latency", latency_ms=1500)
    listed = run("recipients", "list", "--json", "--lookup-timeout", "0.3")
    assert listed.exit_code == Exit.OK, listed.output
    found = _by_id(listed.stdout)
    assert found[FRIEND]["line_name"] is None
    assert found[FRIEND]["line_name_unknown"] in ("timed out after 0.3 s", "LINE did not answer in time")
    assert found[GROUP]["line_name"] == "Group 5555"  # the others were not held up


def test_a_bad_timeout_is_refused(channel: str) -> None:
    bad = run("recipients", "list", "--lookup-timeout", "0")
    assert bad.exit_code == Exit.USAGE and "--lookup-timeout" in bad.output


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
