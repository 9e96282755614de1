"""What the command line says: help texts that tell the truth, and errors that say what to do."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from linepush.cli import _register, app
from linepush.config import resolve_settings
from linepush.errors import ConfigurationError

_register()
ALICE = "U" + "a" * 32


def every_command() -> list[list[str]]:
    found: list[list[str]] = []

    def walk(command: Any, path: list[str]) -> None:
        found.append(path)
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return found


def test_help_keeps_the_configurations_table_names() -> None:
    """Help is rich markup: a table name such as [alerts] must be escaped, or it vanishes from the help."""
    import re

    checked = 0
    for path in every_command():
        command = typer.main.get_command(app)
        for name in path:
            command = command.commands[name]  # type: ignore[attr-defined]
        helps = [getattr(p, "help", None) or "" for p in command.params]
        # The table and the word after it: the same table may be named in another option's help.
        tables = [t for h in helps for t in re.findall(r"\\?(\[[a-z][\w.-]*\] ?[\w-]*)", h)]
        if not tables:
            continue
        shown = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "300"}).output
        for table in tables:
            checked += 1
            assert table in shown, (path, table)
    assert checked >= 4


def test_help_shows_no_python_type_names() -> None:
    commands = every_command()
    assert len(commands) > 20
    for path in commands:
        result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, (path, result.output)
        for label in ("<bool>", "<str>", "<int>", "<float>", "<path>"):
            assert label not in result.output, (path, label, result.output)


def test_token_revoke_help_says_a_token_must_be_named() -> None:
    shown = CliRunner().invoke(app, ["token", "revoke", "--help"], env={"COLUMNS": "200"}).output
    assert "newest" not in shown
    assert "--id" in shown
    refused = CliRunner().invoke(app, ["token", "revoke", "--channel-id", "1234567890"])
    assert refused.exit_code == 2 and "name the token to revoke" in refused.output


def test_an_unknown_profile_without_a_config_file_says_so_plainly(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as info:
        resolve_settings(profile="ops", env={}, cwd=tmp_path, user_config_dir=tmp_path / "config")
    message = str(info.value)
    assert "profiles in no configuration file" not in message
    assert "no configuration file was found" in message and str(tmp_path / "linepush.toml") in message
    assert "[channels.ops]" in message


def test_a_text_too_long_gives_its_length_and_a_way_out(tmp_path: Path) -> None:
    env = {"LINE_CHANNEL_ID": "1234567890", "LINEPUSH_STORE": str(tmp_path / "s.db")}
    result = CliRunner().invoke(app, ["send", "--to", ALICE, "--queue", "é" * 5001 + "🙂"], env=env)
    assert result.exit_code == 2, result.output
    assert "5,003" in result.output and "5,000" in result.output
    assert "--json" in result.output


def test_the_demo_names_a_linepush_that_runs_from_here(tmp_path: Path) -> None:
    """`make demo` runs .venv/bin/linepush, which is not on PATH: its "Next" must be a command that works."""
    import os
    import subprocess
    import sys

    script = Path(sys.executable).parent / "linepush"
    root = script.parents[2]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("LINE_", "LINEPUSH_"))},
        "PATH": "/usr/bin:/bin",
        "XDG_CONFIG_HOME": str(tmp_path),
        "XDG_STATE_HOME": str(tmp_path),
        "COLUMNS": "1000",
    }
    done = subprocess.run(
        [str(script), "demo"], cwd=root, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    relative = script.relative_to(root)
    assert f"`{relative} keys generate`" in done.stdout
    assert f"source {relative.parent}/activate" in done.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["queue", "status", "--json", "--bogus"],
        ["queue", "list", "--limit", "0", "--json"],
        ["queue", "retry", "abc", "-o", "json"],
        ["send", "-o", "json", "--bogus", "hi"],
        ["token", "list", "--output=json", "--kind", "v9"],
    ],
)
def test_a_usage_error_with_json_asked_for_is_json_on_stderr(clean_env: Path, args: list[str]) -> None:
    """What a script that parses stderr as JSON gets for an option the command line refused, from the real
    command (typer's box is printed by its own entry point, before any command runs)."""
    import json
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "linepush", *args], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 2 and done.stdout == ""
    error = json.loads(done.stderr)
    assert (error["error"], error["exit_code"]) == ("UsageError", 2)
    assert error["message"] and "╭" not in done.stderr


def test_a_usage_error_without_json_is_typers_usual_answer(clean_env: Path) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "linepush", "send", "--json", "m.json", "--bogus"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2 and "No such option: --bogus" in done.stderr
    assert "Usage:" in done.stderr and "send [OPTIONS]" in done.stderr


def test_lines_words_in_an_error_never_act_on_the_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    """LINE's message, description and details (or a proxy's, in front of it) are printed as read."""
    from linepush.cli._output import Lines
    from linepush.cli.invocation import print_error
    from linepush.errors import ErrorDetail, LineApiError

    error = LineApiError(
        400,
        "bad\x1b]0;owned\x07",
        error_description="more\x1b[2J",
        details=(ErrorDetail("The\x9bthing", "messages[0]\r"),),
    )
    print_error(None, error, console=Lines(stderr=True))
    shown = capsys.readouterr().err
    assert not any(c in shown for c in "\x1b\x07\x9b\r")
    assert "bad\\x1b]0;owned\\x07" in shown and "more\\x1b[2J" in shown and "The\\x9bthing" in shown
