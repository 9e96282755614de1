"""`linepush emulator`: the channel and key pre-creation path, without blocking on a server."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from emulator_kit import public_jwk
from typer.testing import CliRunner

import linepush.cli.emulator  # noqa: F401  (registers the command on app)
from linepush.cli import app

runner = CliRunner()


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []

    def fake_serve(emulator: Any, host: str, port: int, **options: Any) -> None:
        calls.append({"app": emulator, "host": host, "port": port, **options})

    monkeypatch.setattr("linepush.emulator.server.serve", fake_serve)
    return calls


def test_precreates_channel_and_key(
    served: list[dict[str, Any]], tmp_path: Path, private_key: rsa.RSAPrivateKey
) -> None:
    key_file = tmp_path / "public.jwk"
    key_file.write_text(json.dumps(public_jwk(private_key)))
    secret = "0123456789abcdef0123456789abcdef"
    result = runner.invoke(
        app,
        [
            "emulator",
            "--port",
            "9999",
            "--channel-id",
            "1234567890",
            "--channel-secret",
            secret,
            "--public-key",
            str(key_file),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "channel id: 1234567890" in result.output
    assert secret not in result.output  # a secret the user gave is never echoed
    kid = re.search(r"kid: ([0-9a-f-]{36})", result.output)
    assert kid is not None
    (call,) = served
    assert (call["host"], call["port"], call["log_level"], call["access_log"]) == (
        "127.0.0.1",
        9999,
        "warning",
        False,
    )
    state = call["app"].state.emulator
    channel = state.channels["1234567890"]
    assert channel.channel_secret == secret
    assert state.find_key(kid.group(1))[0] is channel


def test_made_up_secret_is_shown(served: list[dict[str, Any]]) -> None:
    result = runner.invoke(
        app, ["emulator", "--channel-id", "1234567890", "--log-level", "INFO", "--access-log"]
    )
    assert result.exit_code == 0, result.output
    shown = re.search(r"channel secret: ([0-9a-f]{32})", result.output)
    assert shown is not None
    assert served[0]["app"].state.emulator.channels["1234567890"].channel_secret == shown.group(1)
    assert served[0]["log_level"] == "info" and served[0]["access_log"] is True


def test_plain_start_creates_nothing(served: list[dict[str, Any]]) -> None:
    result = runner.invoke(app, ["emulator"])
    assert result.exit_code == 0 and "http://127.0.0.1:8765" in result.output
    assert served[0]["app"].state.emulator.channels == {}


@pytest.mark.parametrize(
    "args",
    [
        ["--channel-id", "12"],
        ["--channel-id", "1234567890", "--channel-secret", "short"],
        ["--public-key", "/nonexistent/key.jwk"],
        ["--log-level", "loud"],
    ],
)
def test_bad_options_fail_cleanly(served: list[dict[str, Any]], args: list[str]) -> None:
    result = runner.invoke(app, ["emulator", *args])
    assert result.exit_code == 2
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert served == []


def test_bad_key_files_fail_cleanly(served: list[dict[str, Any]], tmp_path: Path) -> None:
    not_json = tmp_path / "a.jwk"
    not_json.write_text("{")
    with_kid = tmp_path / "b.jwk"
    with_kid.write_text(json.dumps({"kty": "RSA", "kid": "x"}))
    for path in (not_json, with_kid):
        result = runner.invoke(app, ["emulator", "--public-key", str(path)])
        assert result.exit_code == 2, result.output
    assert served == []
