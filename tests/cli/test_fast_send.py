"""`linepush send` read without typer: the parameters typer reads, the same outcome, a small import set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from hypothesis import given, settings
from hypothesis import strategies as st

from linepush.cli import app
from linepush.cli._fast import parse_send
from tests.cli.conftest import Cli

SRC = str(Path(__file__).parents[2] / "src")
ALICE = "U" + "a" * 32
BOB = "U" + "b" * 32
#: send's own options that only typer reads (the outbox's): the fast path never sees them set.
_TYPER_ONLY = {
    "queue": False,
    "at": None,
    "to_file": None,
    "broadcast": False,
    "yes": False,
    "digest": None,
}


def typer_params(argv: list[str]) -> dict[str, Any] | None:
    """What typer passes to the send command for ``argv``, or None when it refuses the command line."""
    group = typer.main.get_command(app)
    send = group.commands["send"]  # type: ignore[attr-defined]
    try:
        with send.make_context("send", list(argv)) as ctx:
            params = dict(ctx.params)
    except (typer.Exit, Exception):
        return None
    if params.get("text") == ():
        params["text"] = None
    if isinstance(params.get("text"), tuple | list):
        params["text"] = list(params["text"])
    if isinstance(params.get("to"), tuple | list):
        params["to"] = list(params["to"]) or None
    return params


def assert_read_alike(argv: list[str]) -> None:
    fast = parse_send(argv)
    if fast is None:
        return  # typer reads it
    assert typer_params(argv) == {**fast, **_TYPER_ONLY}, argv


@pytest.mark.parametrize(
    "argv",
    [
        ["hello"],
        ["hello", "world"],
        ["--to", ALICE, "hi"],
        ["-t", ALICE, "--to", BOB, "hi there"],
        [f"--to={ALICE},{BOB}", "hi"],
        ["hi", "--to", ALICE, "--notification-disabled", "--deadline", "2.5"],
        ["--retry-key", "1b4e28ba-2fa1-11d2-883f-0016d3b5f3d4", "-"],
        ["--json", "-", "--to", ALICE],
        ["--json=messages.json"],
        ["-c", "ops", "--config", "linepush.toml", "hi"],
        ["--channel-id", "1234567890", "--key-file", "k.json", "--kid", "abc", "hi"],
        ["--store", "sqlite:///s.db", "--api-base", "http://127.0.0.1:1", "hi"],
        ["-o", "json", "--debug", "hi"],
        ["--output=JSON", "hi"],
        ["--deadline", "0", "hi"],
    ],
)
def test_the_plain_forms_are_read_as_typer_reads_them(argv: list[str]) -> None:
    fast = parse_send(argv)
    assert fast is not None, argv
    assert_read_alike(argv)


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["hi", "--queue"],
        ["hi", "--at", "+5m"],
        ["--to-file", "ids.txt", "hi"],
        ["--broadcast", "hi"],
        ["--yes", "hi"],
        ["--deadline", "-1", "hi"],
        ["--deadline", "1e3", "hi"],
        ["--deadline", "soon", "hi"],
        ["-o", "yaml", "hi"],
        ["--to", "--debug", "hi"],
        ["--to"],
        ["--", "-hi"],
        ["--kid", "a", "--kid", "b", "hi"],
        ["-tU123", "hi"],
        ["--debug=yes", "hi"],
        ["--unknown", "hi"],
    ],
)
def test_anything_else_is_left_to_typer(argv: list[str]) -> None:
    assert parse_send(argv) is None


_WORDS = st.sampled_from(
    [
        "hi",
        "-",
        "--to",
        "-t",
        ALICE,
        f"--to={BOB}",
        "--json",
        "m.json",
        "--deadline",
        "3",
        "0.5",
        "--notification-disabled",
        "--debug",
        "-o",
        "json",
        "table",
        "--retry-key",
        "--channel",
        "-c",
        "ops",
        "--store=s.db",
        "--kid",
        "--queue",
        "-x",
        "--",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_WORDS, max_size=8))
def test_any_command_line_the_fast_path_takes_typer_reads_the_same(argv: list[str]) -> None:
    assert_read_alike(argv)


def _linepush(argv: list[str], *, report_modules: bool = False) -> subprocess.CompletedProcess[str]:
    code = (
        "import atexit, sys\n"
        + (
            "atexit.register(lambda: print('MODULES ' + ' '.join(sorted(sys.modules)), file=sys.stderr))\n"
            if report_modules
            else ""
        )
        + f"sys.argv = ['linepush', *{argv!r}]\n"
        "from linepush.cli import main\n"
        "main()\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        # No proxy: the emulator is on loopback, and a proxy variable would make the send read the standard
        # library's proxy settings.
        env={**{k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}, "PYTHONPATH": SRC},
        timeout=60,
    )


def test_a_send_imports_neither_asyncio_nor_aiohttp_nor_rich_nor_typer(cli: Cli) -> None:
    assert cli("token", "issue").exit_code == 0  # the store is warm, as for a script sending all day
    done = _linepush(["send", "--to", ALICE, "disk full"], report_modules=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"sent: 1 message(s) to {ALICE}")
    delivered = cli.emulator.admin.deliveries(cli.channel_id, ALICE)
    assert [m["text"] for d in delivered for m in d["messages"]] == ["disk full"]
    modules = set(done.stderr.split("MODULES ")[-1].split())
    assert "linepush.client" in modules  # the report is of a real send
    for heavy in ("asyncio", "aiohttp", "rich", "typer", "pydantic"):
        assert heavy not in modules, heavy
    # Nor what a send of text does not use: the typed message models, profiles, the proxy machinery.
    for unused in ("linepush.messages._models", "linepush.api.profiles", "urllib.request"):
        assert unused not in modules, unused


@pytest.mark.parametrize(
    "argv",
    [
        ["send", "--to", "nobody", "hi"],
        ["send", "--to", ALICE],
        ["send", "-o", "json", "--to", "nobody", "hi"],
        ["send", "--to", ALICE, "x" * 5001],
    ],
)
def test_a_refused_send_says_the_same_as_through_typer(cli: Cli, argv: list[str]) -> None:
    fast = _linepush(argv)
    assert parse_send(argv[1:]) is not None
    through_typer = cli(*argv)
    assert fast.returncode == through_typer.exit_code == 2
    assert fast.stderr == through_typer.stderr
    if "json" in argv:
        assert json.loads(fast.stderr)["exit_code"] == 2
