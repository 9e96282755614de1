"""The command line imports the modules of the command it runs, not every command's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from linepush.cli import COMMANDS

SRC = str(Path(__file__).parents[2] / "src")


def _loaded_after(argv: list[str]) -> set[str]:
    code = (
        "import sys\n"
        f"sys.argv = ['linepush', *{argv!r}]\n"
        "from linepush.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('linepush.cli.'))), file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": SRC},
        timeout=60,
    )
    return set(done.stderr.strip().splitlines()[-1].split()) if done.stderr.strip() else set()


def test_version_loads_no_command() -> None:
    assert _loaded_after(["--version"]) == set()


@pytest.mark.parametrize("name", ["send", "worker", "recipients"])
def test_a_command_loads_only_its_own_modules(name: str) -> None:
    loaded = _loaded_after([name, "--help"])
    own = {f"linepush.cli.{module}" for module in COMMANDS[name]}
    others = {f"linepush.cli.{m}" for ms in COMMANDS.values() for m in ms} - own
    assert own <= loaded
    assert not loaded & others


def test_help_lists_every_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "linepush", "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": SRC, "COLUMNS": "200"},
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    for name in COMMANDS:
        assert name in done.stdout
