"""Fixtures of the CLI tests: one emulator server per module, a channel configured by environment."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from linepush.cli import _register, app
from linepush.keys import PrivateKey
from tests.conftest import Emulator, make_channel

_register()

#: Variables that would leak the developer's own setup into a test.
_OUTSIDE = ("LINE_", "LINEPUSH_", "XDG_CONFIG_HOME", "XDG_STATE_HOME")


@dataclass
class Cli:
    """Runs `linepush …` in-process and gives access to the emulator behind it."""

    emulator: Emulator
    channel_id: str
    channel_secret: str
    key_file: Path
    kid: str
    home: Path

    def __call__(self, *args: str, input: str | None = None) -> Any:
        return CliRunner().invoke(app, list(args), input=input, catch_exceptions=False)

    def api_requests(self) -> int:
        """How many requests the emulator has received on LINE's API (admin calls excluded)."""
        counts = self.emulator.admin.call("GET", "/_emulator/requests")["counts"]
        return sum(c["count"] for c in counts if not c["path"].startswith("/_emulator"))


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No configuration from outside the test: no LINE_*/LINEPUSH_* variables, config and state under tmp."""
    for name in list(os.environ):
        if name.startswith(_OUTSIDE):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / "state"))
    monkeypatch.setenv("COLUMNS", "1000")  # rich wraps tables (and their long paths) otherwise
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return home


@pytest.fixture
def cli(
    live_emulator: Emulator,
    assertion_key: PrivateKey,
    tmp_path: Path,
    clean_env: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Cli:
    """A channel at the shared emulator, configured through the environment as a user would."""
    channel = make_channel(live_emulator, assertion_key, tmp_path)
    assert (
        channel.channel_id and channel.channel_secret and channel.assertion_key_file and channel.assertion_kid
    )
    monkeypatch.setenv("LINE_CHANNEL_ID", channel.channel_id)
    monkeypatch.setenv("LINE_CHANNEL_SECRET", channel.channel_secret.reveal())
    monkeypatch.setenv("LINE_ASSERTION_KEY_FILE", str(channel.assertion_key_file))
    monkeypatch.setenv("LINE_ASSERTION_KID", channel.assertion_kid)
    assert live_emulator.url is not None
    monkeypatch.setenv("LINEPUSH_API_BASE", live_emulator.url)
    monkeypatch.setenv("LINEPUSH_STORE", f"sqlite:///{tmp_path / 'store.db'}")
    return Cli(
        live_emulator,
        channel.channel_id,
        channel.channel_secret.reveal(),
        channel.assertion_key_file,
        channel.assertion_kid,
        clean_env,
    )
