"""The README's emulator flow as a user runs it: `linepush emulator` in its own process, the CLI on it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from linepush.transport import Urllib3Transport
from tests.support.emulator import Admin

SRC = Path(__file__).resolve().parents[2] / "src"
CHANNEL_ID = "1234567890"
ALICE = "U" + "a" * 32


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def emulator_process(tmp_path: Path, clean_env: Path) -> Iterator[tuple[str, dict[str, str]]]:
    from typer.testing import CliRunner

    from linepush.cli import app

    made = CliRunner().invoke(app, ["keys", "generate", "--out", str(tmp_path / "key.json"), "--json"])
    assert made.exit_code == 0, made.output
    public = tmp_path / "public.jwk"
    public.write_text(json.dumps(json.loads(made.stdout)["public_jwk"]))
    port = free_port()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")])))
    args = ["emulator", "--port", str(port), "--channel-id", CHANNEL_ID, "--public-key", str(public)]
    process = subprocess.Popen(
        [sys.executable, "-m", "linepush", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(4)]
        kid = next(line.split(": ", 1)[1].strip() for line in lines if line.startswith("kid: "))
        deadline = time.monotonic() + 20
        while True:  # the port accepts once uvicorn is up
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the emulator did not start"
                with pytest.raises(subprocess.TimeoutExpired):  # it must not exit while we wait for it
                    process.wait(0.05)
        url = f"http://127.0.0.1:{port}"
        yield (
            url,
            {
                "LINE_CHANNEL_ID": CHANNEL_ID,
                "LINE_ASSERTION_KEY_FILE": str(tmp_path / "key.json"),
                "LINE_ASSERTION_KID": kid,
                "LINEPUSH_API_BASE": url,
                "LINEPUSH_STORE": str(tmp_path / "store.db"),
            },
        )
    finally:
        process.terminate()
        process.wait(10)
        if process.stdout:
            process.stdout.close()
        if process.stderr:
            process.stderr.close()


def test_send_against_linepush_emulator_in_its_own_process(
    emulator_process: tuple[str, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from linepush.cli import app

    url, env = emulator_process
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    sent = CliRunner().invoke(app, ["send", "--to", ALICE, "hello emulator"])
    assert sent.exit_code == 0, sent.output
    kids = CliRunner().invoke(app, ["token", "kids", "--json"])
    # No channel secret and a new store: stateless v3 tokens, so no v2.1 token is left holding a slot.
    assert kids.exit_code == 0 and json.loads(kids.stdout)["valid_at_line"] == 0
    transport = Urllib3Transport(url)
    try:
        deliveries = Admin(transport).deliveries(CHANNEL_ID, ALICE)
    finally:
        transport.close()
    assert [m["text"] for d in deliveries for m in d["messages"]] == ["hello emulator"]
