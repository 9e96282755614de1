"""`linepush serve` and `linepush emulator` on a port another program holds: a setup error, said plainly."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"


def _env(home: Path) -> dict[str, str]:
    """A channel id and a store in ``home``, and nothing of the developer's own setup."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("LINE_", "LINEPUSH_"))},
        "PYTHONPATH": str(SRC),
        "LINE_CHANNEL_ID": "1234567890",
        "LINEPUSH_STORE": str(home / "serve.db"),
        "XDG_CONFIG_HOME": str(home),
    }


def _linepush(home: Path, *argv: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """The exit code and everything ``linepush *argv`` wrote, run in ``home`` with :func:`_env`."""
    done = subprocess.run(
        [sys.executable, "-m", "linepush", *argv],
        capture_output=True,
        text=True,
        env=env or _env(home),
        cwd=home,
        timeout=60,
    )
    return done.returncode, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("command", "banner"),
    [(["serve"], "LINE Notify–compatible gateway"), (["emulator"], "LINE emulator on")],
)
def test_a_port_in_use_is_exit_2_with_no_banner(tmp_path: Path, command: list[str], banner: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        code, output = _linepush(tmp_path, *command, "--port", port)
    assert code == 2, output
    assert banner not in output
    assert f"127.0.0.1:{port} is in use" in output and "--port" in output
    assert "Traceback" not in output


def test_an_address_this_machine_does_not_have_is_named_as_the_host(tmp_path: Path) -> None:
    # 192.0.2.1 is TEST-NET-1 (RFC 5737): documentation only, never an address of this machine.
    code, output = _linepush(tmp_path, "serve", "--host", "192.0.2.1", "--port", "18080")
    assert code == 2, output
    assert "--host" in output and "cannot listen on 192.0.2.1" in output
    assert "stop that program" not in output and "Traceback" not in output


@pytest.mark.parametrize("host", ["192.0.2.1", "256.1.1.1"])
def test_a_metrics_host_this_machine_does_not_have_is_named_as_the_host(tmp_path: Path, host: str) -> None:
    env = {**_env(tmp_path), "LINE_CHANNEL_ACCESS_TOKEN": "static-token"}
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = str(free.getsockname()[1])
    code, output = _linepush(
        tmp_path, "worker", "--once", "--metrics-host", host, "--metrics-port", port, env=env
    )
    assert code == 2, output
    assert f"cannot serve metrics on {host}:{port}" in output and "--metrics-host" in output
    assert "another --metrics-port" not in output and "Traceback" not in output
