"""running(): a real loopback server that starts, answers and stops; and the emulator's import boundary."""

from __future__ import annotations

import ast
import socket
from pathlib import Path

import urllib3

import linepush.emulator
from linepush.emulator import create_app, running


def test_running_serves_and_shuts_down() -> None:
    app = create_app()
    with running(app) as emulator:
        assert emulator.app is app and emulator.state is app.state.emulator
        assert emulator.url == f"http://127.0.0.1:{emulator.port}"
        response = urllib3.request("GET", emulator.url + "/_emulator/clock")
        assert response.status == 200 and "now" in response.json()
        assert response.headers["x-line-request-id"]
        assert "server" not in response.headers
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", emulator.port)) != 0


def test_two_emulators_side_by_side() -> None:
    with running() as first, running() as second:
        assert first.port != second.port
        first.state.create_channel()
        assert second.state.channels == {}


def test_emulator_imports_nothing_else_from_linepush() -> None:
    package = Path(linepush.emulator.__file__).parent
    for source in package.rglob("*.py"):
        tree = ast.parse(source.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.ImportFrom):
                names = ["relative import"]
            for name in names:
                if name == "linepush" or name.startswith("linepush.") or name == "relative import":
                    assert name.startswith("linepush.emulator"), f"{source.name} imports {name}"
