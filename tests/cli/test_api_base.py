"""`linepush send` against scripted loopback servers: where `--api-base` points, what `--deadline` bounds."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from linepush.cli import app
from tests.support.scripted_http import Scripted

ALICE = "U" + "a" * 32


@pytest.fixture
def token_env(clean_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LINE_CHANNEL_ACCESS_TOKEN", "static-token")
    monkeypatch.setenv("LINEPUSH_STORE", f"sqlite:///{tmp_path / 'store.db'}")
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def answering() -> Iterator[Scripted]:
    server = Scripted(answer=True)
    yield server
    server.close()


def send(*args: str) -> Result:
    return CliRunner().invoke(app, ["send", *args], catch_exceptions=False)


@pytest.mark.usefixtures("token_env")
@pytest.mark.parametrize("suffix", ["/extra/", "/extra"])
def test_an_api_base_with_a_path_keeps_it(answering: Scripted, suffix: str) -> None:
    result = send("--api-base", answering.url + suffix, "--to", ALICE, "hello")
    assert result.exit_code == 0, result.output
    assert answering.request_lines == [b"POST /extra/v2/bot/message/push HTTP/1.1"]


@pytest.mark.usefixtures("token_env")
@pytest.mark.parametrize(
    "base", ["http://[::1/", "http://127.0.0.1:99999", "ftp://127.0.0.1", "http://h?q=1"]
)
def test_a_malformed_api_base_is_a_usage_error(base: str) -> None:
    result = send("--api-base", base, "--to", ALICE, "hello")
    assert result.exit_code == 2, result.output
    assert "API base URL" in result.output
    assert "unexpected" not in result.output.lower()


@pytest.mark.usefixtures("token_env")
@pytest.mark.parametrize(
    "base", ["http://ops:hunter2pw@127.0.0.1:8080", "http://ops:hunter2pw@[::1", "ftp://ops:hunter2pw@h"]
)
def test_a_password_in_a_refused_api_base_is_not_shown(base: str, monkeypatch: pytest.MonkeyPatch) -> None:
    result = send("--api-base", base, "--to", ALICE, "hello")
    assert result.exit_code == 2 and "API base URL" in result.output
    assert "hunter2pw" not in result.output and "ops:…@" in result.output
    monkeypatch.setenv("LINEPUSH_API_BASE", base)
    shown = CliRunner().invoke(app, ["config", "show", "--json"])
    assert "hunter2pw" not in shown.output and "ops:…@" in shown.output


@pytest.mark.usefixtures("token_env")
def test_the_deadline_bounds_a_request_that_is_never_answered() -> None:
    server = Scripted(answer=False)
    outcome: dict[str, Result] = {}

    def run() -> None:
        outcome["result"] = send("--api-base", server.url, "--deadline", "0.5", "--to", ALICE, "hello")

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout=15)  # the read timeout alone is 30 s: an unbounded call is still waiting here
    server.close()
    assert not worker.is_alive(), "--deadline 0.5 did not bound the wait for an answer"
    result = outcome["result"]
    assert result.exit_code == 3, result.output
    assert "no complete answer" in result.output
    assert "--retry-key" in result.output
    assert "static-token" not in result.output
