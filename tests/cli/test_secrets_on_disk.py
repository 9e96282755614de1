"""Secrets kept in files: a private key others can read is refused, and a store password never shows."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from linepush.cli import app
from linepush.config import masked_store_url, resolve_settings
from tests.cli.conftest import Cli

ALICE = "U" + "a" * 32
PASSWORD = "pa55-w0rd-d0-not-print"

posix_only = pytest.mark.skipif(os.name != "posix", reason="file modes")


@posix_only
def test_a_private_key_others_can_read_is_refused_with_the_chmod_to_run(cli: Cli) -> None:
    cli.key_file.chmod(0o644)
    fix = f"chmod 600 {cli.key_file}"
    for args in (
        ["send", "--to", ALICE, "hi"],
        ["send", "--to", ALICE, "--queue", "hi"],
        ["token", "issue"],
        ["keys", "public"],
        ["worker", "--once"],
    ):
        result = cli(*args)
        assert result.exit_code == 2, (args, result.output)
        assert fix in result.stderr and "mode 644" in result.stderr, (args, result.stderr)
    assert cli.api_requests() == 0
    shown = cli("config", "show")
    assert shown.exit_code == 0 and fix in shown.stderr
    assert fix in json.dumps(json.loads(cli("config", "show", "--json").stdout)["warnings"])

    cli.key_file.chmod(0o600)
    assert cli("send", "--to", ALICE, "hi").exit_code == 0
    assert "chmod" not in cli("config", "show").stderr


def test_config_show_masks_the_store_password_in_every_format(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LINEPUSH_STORE", f"postgresql://linepush:{PASSWORD}@db.example:5432/linepush")
    for args in (["config", "show"], ["config", "show", "--json"], ["config", "show", "-o", "json"]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        assert PASSWORD not in result.output
        assert "postgresql://linepush:…@db.example:5432/linepush" in result.stdout


def test_config_show_shows_the_default_store_it_uses(clean_env: Path) -> None:
    result = CliRunner().invoke(app, ["config", "show", "--json"])
    rows = {r["setting"]: r for r in json.loads(result.stdout)["settings"]}
    expected = f"sqlite:///{clean_env / 'state' / 'linepush' / 'linepush.db'}"
    assert (rows["store"]["value"], rows["store"]["source"]) == (expected, "default")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:secret@h:5432/db", "postgresql://u:…@h:5432/db"),
        ("postgres://u:se@c/r?et@h/db", "postgres://u:…@h/db"),
        ("postgresql://h/db?sslmode=require&password=secret", "postgresql://h/db?sslmode=require&password=…"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("sqlite:////var/lib/linepush.db", "sqlite:////var/lib/linepush.db"),
        ("/var/lib/linepush.db", "/var/lib/linepush.db"),
    ],
)
def test_masked_store_urls(url: str, shown: str) -> None:
    assert masked_store_url(url) == shown


@posix_only
def test_a_config_file_holding_a_store_password_gets_the_permission_warning(tmp_path: Path) -> None:
    config = tmp_path / "linepush.toml"
    config.write_text(f'[channels.ops]\nstore = "postgresql://u:{PASSWORD}@h/db"\n')
    config.chmod(0o644)
    warnings = resolve_settings(config_file=config, env={}).warnings
    assert any(f"chmod 600 {config}" in w for w in warnings)
    assert not any(PASSWORD in w for w in warnings)
    config.write_text('store = "postgresql://u@h/db"\n')
    assert not resolve_settings(config_file=config, env={}).warnings


@posix_only
def test_config_show_reports_a_store_file_others_can_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from linepush.store import SQLiteStore

    db = tmp_path / "linepush.db"
    monkeypatch.setenv("LINEPUSH_STORE", f"sqlite:///{db}")
    assert "chmod" not in CliRunner().invoke(app, ["config", "show"]).output
    assert not db.exists()  # config show never creates the store
    with SQLiteStore(db):
        pass
    db.chmod(0o644)
    result = CliRunner().invoke(app, ["config", "show", "--json"])
    assert result.exit_code == 0, result.output
    assert (
        f"the store file {db} holds channel access tokens but others can read it: chmod 600 {db}"
        in (json.loads(result.stdout)["warnings"])
    )
