"""The README's examples run as written: the emulator one as is, the library one against the emulator."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.cli.conftest import Cli

README = Path(__file__).resolve().parents[2] / "README.md"


def block_after(marker: str | None, first_line: str | None = None) -> str:
    text = README.read_text(encoding="utf-8")
    blocks = re.findall(r"(<!-- tested: [\w-]+ -->\n)?```python\n(.*?)```", text, re.S)
    for tag, code in blocks:
        if (marker is not None and marker in tag) or (first_line is not None and first_line in code):
            return str(code)
    raise AssertionError(f"no python block {marker or first_line!r} in README.md")


def test_readme_starts_with_the_two_commands() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert lines[:6] == [
        "# linepush",
        "",
        "```sh",
        "make demo   # the whole flow against the in-process LINE emulator",
        "make test   # lint, type checks and the test suite",
        "```",
    ]


def test_in_process_emulator_example_runs() -> None:
    exec(compile(block_after("emulator-in-process"), "README.md", "exec"), {})


def test_library_example_runs_against_the_emulator(cli: Cli) -> None:
    # The environment points at the emulator (LINEPUSH_API_BASE) and a temporary store.
    code = block_after(None, "Channel.from_env()")
    namespace: dict[str, object] = {}
    exec(compile(code + "\nimport asyncio\nasyncio.run(main())\n", "README.md", "exec"), namespace)
    me = namespace["me"]
    got = [
        m.get("text") for d in cli.emulator.admin.deliveries(cli.channel_id, str(me)) for m in d["messages"]
    ]
    assert got == ["Hello, world1", None, "Hello, world1"]


@pytest.mark.parametrize(
    "needle",
    [
        ".venv/bin/linepush",  # what `make demo` installed, before the environment is activated
        "source .venv/bin/activate",
        "needs a PostgreSQL",
        "LINEPUSH_TEST_PG",
        "## Try it against the emulator instead of a real channel",
        "linepush emulator --channel-id 1234567890 --public-key public.jwk",
        "linepush keys public --key-file key.json | curl",
        "counts as a friend",
        "linepush queue add",
        "send --broadcast",
        "the clients take `LINEPUSH_API_BASE`",
    ],
)
def test_a_newcomer_finds_what_they_need(needle: str) -> None:
    assert needle in README.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "command", ["send", "keys", "token", "config", "demo", "queue", "worker", "serve", "gateway", "emulator"]
)
def test_every_command_in_the_readme_exists(cli: Cli, command: str) -> None:
    assert f"linepush {command}" in README.read_text(encoding="utf-8")
    assert cli(command, "--help").exit_code == 0
