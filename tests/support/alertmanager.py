"""A real Prometheus Alertmanager (Debian's `prometheus-alertmanager`) as a child process on loopback: its
own storage directory, no cluster gossip, a free port; killed when the block ends."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.service.serve_process import free_port

BINARY = "prometheus-alertmanager"


def alertmanager_binary() -> str:
    """The binary; without it the test is skipped, except under CI=true, where that is a failure."""
    found = shutil.which(BINARY) or shutil.which("alertmanager")
    if found is None:
        message = f"{BINARY} is not installed (`make test` installs it on Debian-like systems)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


@dataclass
class RunningAlertmanager:
    process: subprocess.Popen[bytes]
    url: str

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=5) as answer:
            text = answer.read().decode()
        return json.loads(text) if text.startswith(("{", "[")) else text

    def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        self.call("POST", "/api/v2/alerts", alerts)

    def metric(self, name: str, **labels: str) -> float:
        """The sum of a counter's series whose labels include ``labels``."""
        text = self.call("GET", "/metrics")
        total = 0.0
        for line in text.splitlines():
            found = re.fullmatch(rf"{name}(?:\{{(.*)\}})? ([0-9.e+-]+)", line)
            if found is None:
                continue
            have = dict(re.findall(r'(\w+)="([^"]*)"', found.group(1) or ""))
            if all(have.get(k) == v for k, v in labels.items()):
                total += float(found.group(2))
        return total


@contextmanager
def alertmanager(config: str, workdir: Path, timeout: float = 20.0) -> Iterator[RunningAlertmanager]:
    binary = alertmanager_binary()
    workdir.mkdir(parents=True, exist_ok=True)
    config_file = workdir / "alertmanager.yml"
    config_file.write_text(config, encoding="utf-8")
    port = free_port()
    log_file = open(workdir / "alertmanager.log", "wb")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config_file}",
            f"--storage.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=debug",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log_file,
    )
    running = RunningAlertmanager(process, f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                running.call("GET", "/-/ready")
                break
            except (OSError, urllib.error.URLError):
                if process.poll() is not None or time.monotonic() > deadline:
                    log = (workdir / "alertmanager.log").read_text(errors="replace")
                    raise AssertionError(f"alertmanager did not start:\n{log[-3000:]}") from None
                time.sleep(0.05)
        yield running
    finally:
        process.kill()
        process.wait(timeout=10)
        log_file.close()
