"""`linepush quota`, and the warning past the threshold in `config show` and at `worker` start-up."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from linepush.cli import _register, app
from linepush.cli.invocation import Exit
from tests.conftest import Emulator

_register()


def _user(i: int) -> str:
    return f"U{i:032x}"


def _configure(emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, quota: int) -> str:
    """A new channel with this monthly quota, configured through the environment."""
    admin = emulator.admin
    channel_id, _ = admin.create_channel(monthly_quota=quota)
    monkeypatch.setenv("LINE_CHANNEL_ID", channel_id)
    monkeypatch.setenv("LINE_CHANNEL_ACCESS_TOKEN", admin.long_lived_token(channel_id))
    assert emulator.url is not None
    monkeypatch.setenv("LINEPUSH_API_BASE", emulator.url)
    monkeypatch.setenv("LINEPUSH_STORE", str(tmp_path / "store.db"))
    return channel_id


@pytest.fixture
def channel(live_emulator: Emulator, clean_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """A channel whose month allows 5 messages, 4 of them used."""
    channel_id = _configure(live_emulator, monkeypatch, tmp_path, 5)
    for i in range(4):
        assert run("send", "--to", _user(i), f"m{i}").exit_code == Exit.OK
    return channel_id


def run(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(app, list(args), env=env)


def test_quota_shows_limit_use_and_what_is_left(channel: str) -> None:
    data = json.loads(run("quota", "--json").stdout)
    assert data == {
        "channel_id": channel,
        "type": "limited",
        "limit": 5,
        "used": 4,
        "remaining": 1,
        "share": 0.8,
        "warning_threshold": 0.8,
        "past_threshold": True,
    }
    shown = run("quota")
    assert shown.exit_code == Exit.OK
    assert "80%" in shown.stdout and "warning" in shown.stderr and "4 of 5" in shown.stderr


def test_the_threshold_is_configurable_and_checked(channel: str) -> None:
    calm = run("quota", env={"LINEPUSH_QUOTA_WARNING": "90%"})
    assert calm.exit_code == Exit.OK and "warning" not in calm.stderr
    assert json.loads(run("quota", "--json", env={"LINEPUSH_QUOTA_WARNING": "90"}).stdout)[
        "warning_threshold"
    ] == pytest.approx(0.9)
    bad = run("quota", env={"LINEPUSH_QUOTA_WARNING": "lots"})
    assert bad.exit_code == Exit.USAGE and "percentage" in bad.output and "Traceback" not in bad.output


def test_config_show_mentions_a_channel_past_the_threshold(channel: str) -> None:
    shown = run("config", "show")
    assert "quota_warning" in shown.stdout
    assert "4 of 5" in shown.stderr and "warning" in shown.stderr
    data = json.loads(run("config", "show", "--json").stdout)
    assert data["quota"]["used"] == 4 and data["quota"]["past_threshold"] is True
    assert any("80%" in w for w in data["warnings"])


def test_config_show_refuses_a_threshold_that_is_no_percentage(channel: str) -> None:
    Path("linepush.toml").write_text('quota_warning = "abc"\n')
    shown = run("config", "show")
    assert shown.exit_code == Exit.USAGE, shown.output
    assert "quota_warning" in shown.stderr and "percentage from 0 to 100" in shown.stderr
    assert "could not be read" not in shown.output and "Traceback" not in shown.output


def test_worker_start_up_mentions_it(channel: str) -> None:
    result = run("worker", "--once", "--verbose")
    assert result.exit_code == Exit.OK, result.output
    assert "4 of 5" in result.stderr


# -- the cost of a bulk send, against what is left ---------------------------------------------------------


def _ids(tmp_path: Path, *ids: str) -> str:
    path = tmp_path / "ids.txt"
    path.write_text("\n".join(ids) + "\n")
    return str(path)


def _stored(tmp_path: Path) -> int:
    from linepush.store import open_store

    with open_store(str(tmp_path / "store.db")) as s:
        return sum(s.counts().values())


def test_a_bulk_send_that_would_exceed_what_is_left_stops_unless_yes(channel: str, tmp_path: Path) -> None:
    ids = _ids(tmp_path, *(_user(10 + i) for i in range(3)))
    stored = _stored(tmp_path)
    refused = run("queue", "add", "--to-file", ids, "news")
    assert refused.exit_code == Exit.USAGE, refused.output
    assert "3 messages" in refused.output and "1 left" in refused.output and "--yes" in refused.output
    assert _stored(tmp_path) == stored  # nothing queued
    sent = run("send", "--to-file", ids, "news")
    assert sent.exit_code == Exit.USAGE and _stored(tmp_path) == stored
    forced = run("queue", "add", "--to-file", ids, "news", "--yes")
    assert forced.exit_code == Exit.OK, forced.output
    assert "uses 3 messages" in forced.output and "1 left" in forced.output
    assert _stored(tmp_path) == stored + 1


def test_a_bulk_send_within_what_is_left_says_its_cost(
    live_emulator: Emulator, clean_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    channel_id = _configure(live_emulator, monkeypatch, tmp_path, 10)
    group = "C" + "a" * 32
    live_emulator.admin.recipient(
        channel_id, group, "unknown"
    )  # the bot is not in it: its member count cannot be had
    sent = run("send", "--to-file", _ids(tmp_path, _user(1), _user(2), group), "news")
    assert sent.exit_code == Exit.REFUSED  # and LINE refuses the push to it
    assert "uses 3 messages" in sent.output and "10 left" in sent.output
    assert "1 group or room" in sent.output and "counted as 1" in sent.output


def test_a_terminal_is_asked_before_exceeding(
    channel: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import linepush.cli.cost as cost

    monkeypatch.setattr(cost, "_interactive", lambda: True)
    ids = _ids(tmp_path, *(_user(10 + i) for i in range(3)))
    stored = _stored(tmp_path)
    declined = CliRunner().invoke(app, ["queue", "add", "--to-file", ids, "news"], input="n\n")
    assert declined.exit_code == Exit.USAGE and _stored(tmp_path) == stored
    accepted = CliRunner().invoke(app, ["queue", "add", "--to-file", ids, "news"], input="y\n")
    assert accepted.exit_code == Exit.OK and _stored(tmp_path) == stored + 1
