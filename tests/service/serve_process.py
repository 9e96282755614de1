"""`linepush serve` as a real child process, for the tests that need the whole command."""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from linepush.config import Channel

SRC = Path(__file__).parents[2] / "src"


@dataclass
class ServeProcess:
    process: subprocess.Popen[bytes]
    url: str
    port: int = 0
    stderr: str = ""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def worker_env(store: Path, channel: Channel) -> dict[str, str]:
    """The settings of `linepush serve --worker` for ``channel`` (assertion key and secret) on ``store``."""
    assert channel.channel_id is not None
    return {
        "LINEPUSH_STORE": str(store),
        "LINE_CHANNEL_ID": channel.channel_id,
        "LINE_CHANNEL_SECRET": channel.require_secret().reveal(),
        "LINE_ASSERTION_KEY_FILE": str(channel.assertion_key_file),
        "LINE_ASSERTION_KID": str(channel.assertion_kid),
    }


#: Variables that would bring the developer's own setup (or a proxy) into the child.
_OUTSIDE = ("LINE_", "LINEPUSH_", "XDG_CONFIG_HOME", "XDG_STATE_HOME")


@contextmanager
def linepush_serve(
    home: Path,
    env: Mapping[str, str],
    *args: str,
    timeout: float = 20.0,
    max_open_files: int | None = None,
    port: int | None = None,
) -> Iterator[ServeProcess]:
    """Run `linepush serve --port N *args` in ``home`` (also its config and state dirs) with only ``env``'s
    settings, until the block ends; then SIGTERM it and keep what it wrote to stderr (through a file, so a
    server that writes a lot never blocks on a full pipe). ``max_open_files`` lowers its descriptor limit;
    ``port`` is a free one unless given (to start it again where it was)."""
    port = port or free_port()
    full_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(_OUTSIDE) and "proxy" not in k.lower()},
        "PYTHONPATH": str(SRC),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_STATE_HOME": str(home / "state"),
        **env,
    }

    def limit_files() -> None:
        if max_open_files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (max_open_files, max_open_files))

    log = home / "serve.stderr"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "linepush", "serve", "--port", str(port), *args],
            cwd=home,
            env=full_env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            preexec_fn=limit_files,
        )
    served = ServeProcess(process, f"http://127.0.0.1:{port}", port=port)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    process.kill()
                    process.wait()
                    raise AssertionError("linepush serve did not start: " + log.read_text()) from None
                time.sleep(0.05)
        yield served
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        served.stderr = log.read_text(errors="replace")
