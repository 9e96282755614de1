"""Which proxy the environment names for a base URL: the standard library's answer, read without loading
urllib.request when no proxy variable is set (it costs a one-shot command part of its start-up)."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from linepush.transport._base import proxy_for

SRC = str(Path(__file__).parents[2] / "src")

ENVIRONMENTS = [
    {},
    {"HTTPS_PROXY": "http://127.0.0.1:3128"},
    {"https_proxy": "http://127.0.0.1:3128", "no_proxy": "api.line.me"},
    {"HTTPS_PROXY": "http://127.0.0.1:3128", "NO_PROXY": "*"},
    {"http_proxy": "http://127.0.0.1:3128"},
    {"ALL_PROXY": "socks5://127.0.0.1:1080"},
    {"no_proxy": "127.0.0.1"},
    {"Https_Proxy": "http://127.0.0.1:3128"},
]
BASES = ["https://api.line.me", "http://127.0.0.1:8080", "https://gateway.example/line"]


def _clear(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)


@pytest.mark.parametrize("environment", ENVIRONMENTS, ids=lambda e: ",".join(e) or "none")
@pytest.mark.parametrize("base", BASES)
def test_the_proxy_is_the_standard_librarys(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], base: str
) -> None:
    _clear(monkeypatch)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    scheme, rest = base.split("://")
    host = rest.split("/")[0].split(":")[0]
    expected = None if urllib.request.proxy_bypass(host) else urllib.request.getproxies().get(scheme)
    assert proxy_for(base) == expected


def test_no_proxy_variable_loads_no_urllib_request() -> None:
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    code = (
        "import sys\n"
        "from linepush.transport._base import proxy_for\n"
        "assert proxy_for('https://api.line.me') is None\n"
        "print('urllib.request' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**env, "PYTHONPATH": SRC},
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == "False"
