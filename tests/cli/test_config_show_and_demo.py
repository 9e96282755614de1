"""`linepush config show`, `linepush demo`, and the command line as a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from linepush.cli.invocation import Exit, exit_code, render_error
from linepush.errors import (
    ConfigurationError,
    ConnectError,
    ErrorDetail,
    MonthlyLimitError,
    NotFoundError,
    RateLimitError,
    ServerError,
    ValidationError,
)
from tests.cli.conftest import Cli

SRC = Path(__file__).resolve().parents[2] / "src"
ALICE = "U" + "a" * 32


def test_config_show_masks_secrets_and_names_every_source(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    Path("linepush.toml").write_text(
        f'default_channel = "ops"\n[channels.ops]\nto = "{ALICE}"\n'
        'access_token = "static-token-value-0123456789"\n'
    )
    Path("linepush.toml").chmod(0o644)
    result = cli("config", "show", "--kid", "kid-from-flag")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert cli.channel_secret not in result.output
    assert "static-token-value-0123456789" not in result.output
    assert cli.channel_secret[:4] + "…" in out and "stat…" in out
    assert "env LINE_CHANNEL_ID" in out and "flag --kid" in out
    config = Path("linepush.toml").resolve()
    assert f"file {config} [channels.ops]" in out
    assert "channel profile: ops" in out
    assert "chmod 600" in result.stderr

    data = json.loads(cli("config", "show", "--json").stdout)
    rows = {r["setting"]: r for r in data["settings"]}
    assert rows["channel_id"] == {
        "setting": "channel_id",
        "value": cli.channel_id,
        "source": "env LINE_CHANNEL_ID",
        "env": "LINE_CHANNEL_ID",
    }
    assert rows["to"]["value"] == [ALICE]
    assert rows["channel_secret"]["value"].endswith("…")
    assert data["profile"] == "ops" and data["config_file"] == str(config)


def test_config_show_with_nothing_configured_says_where_it_looked(clean_env: Path) -> None:
    from typer.testing import CliRunner

    from linepush.cli import app

    result = CliRunner().invoke(app, ["config", "show"])
    assert result.exit_code == 0, result.output
    assert "configuration file: none (looked for" in result.stdout
    assert "not set (LINE_CHANNEL_ID)" in result.stdout


def test_a_broken_config_file_is_exit_2_with_the_reason(cli: Cli) -> None:
    Path("linepush.toml").write_text("to = [\n")
    result = cli("send", "hello")
    assert result.exit_code == 2
    assert "linepush.toml is not valid TOML" in result.stderr
    missing = cli("config", "show", "--config", "nope.toml")
    assert missing.exit_code == 2 and "nope.toml does not exist" in missing.stderr
    unknown = cli("config", "show", "--channel", "ops", "--config", "/dev/null")
    assert unknown.exit_code == 2 and "no channel profile named 'ops'" in unknown.stderr


def test_output_option_is_checked(cli: Cli) -> None:
    result = cli("config", "show", "-o", "yaml")
    assert result.exit_code == 2


def test_exit_codes_by_error() -> None:
    assert exit_code(ConfigurationError("x")) is Exit.USAGE
    assert exit_code(ValidationError("x", property="to")) is Exit.USAGE
    assert exit_code(NotFoundError(404, "Not found")) is Exit.REFUSED
    assert exit_code(MonthlyLimitError(429, "You have reached your monthly limit.")) is Exit.REFUSED
    assert (
        exit_code(RateLimitError(429, "The API rate limit has been exceeded. Try again later."))
        is Exit.TRANSIENT
    )
    assert exit_code(ServerError(500, "boom")) is Exit.TRANSIENT
    assert exit_code(ConnectError("refused")) is Exit.TRANSIENT
    info = render_error(
        NotFoundError(404, "Not found", details=(ErrorDetail("bad", "to"),), request_id="rid-1")
    )
    assert info["details"] == [{"property": "to", "message": "bad"}] and info["request_id"] == "rid-1"


def test_demo_runs_and_prints_the_summary(clean_env: Path) -> None:
    from typer.testing import CliRunner

    from linepush.cli import app

    result = CliRunner().invoke(app, ["demo"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Hello, world1" in out
    assert "Failed to send messages" in out  # the provoked error, as the CLI prints it
    assert "What the emulator received" in out
    for row in ("/oauth2/v2.1/token", "/v2/bot/message/multicast", "/v2/oauth/revoke"):
        assert row in out
    assert "done in" in out


def _run(*args: str, env: dict[str, str], input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "linepush", *args],
        env=env,
        input=input,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_python_dash_m_linepush_sends_as_a_real_process(cli: Cli) -> None:
    env = {k: v for k, v in os.environ.items()}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    sent = _run("send", "--to", ALICE, "-", env=env, input="from a subprocess\n")
    assert sent.returncode == 0, sent.stderr
    assert [
        m["text"] for d in cli.emulator.admin.deliveries(cli.channel_id, ALICE) for m in d["messages"]
    ] == ["from a subprocess"]
    assert sent.stdout.startswith("sent: 1 message(s) to ")


def test_version(cli: Cli) -> None:
    result = cli("--version")
    assert result.exit_code == 0 and result.stdout.startswith("linepush ")
