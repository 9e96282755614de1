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


@pytest.fixture
def channel(live_emulator: Emulator, clean_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """A channel whose month allows 5 messages, 4 of them used."""
    admin = live_emulator.admin
    channel_id, _ = admin.create_channel(monthly_quota=5)
    monkeypatch.setenv("LINE_CHANNEL_ID", channel_id)
    monkeypatch.setenv("LINE_CHANNEL_ACCESS_TOKEN", admin.long_lived_token(channel_id))
    assert live_emulator.url is not None
    monkeypatch.setenv("LINEPUSH_API_BASE", live_emulator.url)
    monkeypatch.setenv("LINEPUSH_STORE", str(tmp_path / "store.db"))
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


def test_worker_start_up_mentions_it(channel: str) -> None:
    result = run("worker", "--once", "--verbose")
    assert result.exit_code == Exit.OK, result.output
    assert "4 of 5" in result.stderr
