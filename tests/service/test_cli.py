"""`linepush gateway token create|list|revoke`, `linepush recipients list` and `linepush serve`'s checks."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from linepush.cli import _register, app
from linepush.cli import serve as serve_module
from linepush.service import hash_gateway_token
from linepush.service.store import RecipientSighting, gateway_store
from linepush.store import SQLiteStore
from tests.service.conftest import CHANNEL_ID, GROUP, USER
from tests.service.serve_process import free_port

_register()


@pytest.fixture(autouse=True)
def host_logging_untouched(monkeypatch: pytest.MonkeyPatch) -> None:
    # `serve` sets up the process's logging, which would outlive the test and hide records from caplog.
    monkeypatch.setattr(serve_module, "configure_logging", lambda *args: None)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Only the test's configuration: no LINE_*/LINEPUSH_* from outside, no linepush.toml found."""
    for name in list(os.environ):
        if name.startswith(("LINE_", "LINEPUSH_", "XDG_CONFIG_HOME", "XDG_STATE_HOME")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("COLUMNS", "1000")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    db = tmp_path / "cli.db"
    monkeypatch.setenv("LINEPUSH_STORE", str(db))
    monkeypatch.setenv("LINE_CHANNEL_ID", CHANNEL_ID)
    return db


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_token_create_prints_the_token_once_and_stores_its_hash(env: Path) -> None:
    code, out, err = run("gateway", "token", "create", "--to", USER, "--name", "backups")
    assert code == 0, err
    token = out.strip()
    assert len(token) >= 43 and "\n" not in token
    assert "shown only this once" in err and token not in err
    with SQLiteStore(env) as store:
        (record,) = gateway_store(store).list_gateway_tokens()
    assert (record.channel_id, record.recipient_id, record.name) == (CHANNEL_ID, USER, "backups")
    assert record.token_hash == hash_gateway_token(token)
    listed = run("gateway", "token", "list")[1]
    assert "backups" in listed and USER in listed and token not in listed


def test_token_create_json_and_channel_flag(env: Path) -> None:
    code, out, _ = run("gateway", "token", "create", "--to", GROUP, "--channel-id", "42", "--json")
    assert code == 0
    made = json.loads(out)
    assert (made["channel_id"], made["to"], made["target_type"], made["state"]) == (
        "42",
        GROUP,
        "GROUP",
        "active",
    )
    assert (
        hash_gateway_token(made["token"])
        == gateway_store(SQLiteStore(env)).list_gateway_tokens()[0].token_hash
    )


@pytest.mark.parametrize("to", ["bad", "U123", "u" + "0" * 32])
def test_token_create_refuses_a_bad_recipient(env: Path, to: str) -> None:
    code, _, err = run("gateway", "token", "create", "--to", to)
    assert code == 2
    assert "--to" in err and "must be a user id" in err.lower()


def test_token_create_needs_a_channel(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LINE_CHANNEL_ID")
    code, _, err = run("gateway", "token", "create", "--to", USER)
    assert code == 2 and "no channel id" in err


def test_token_revoke_and_list(env: Path) -> None:
    run("gateway", "token", "create", "--to", USER)
    run("gateway", "token", "create", "--to", GROUP)
    code, _, err = run("gateway", "token", "revoke", "1")
    assert (code, err.strip()) == (0, "gateway token 1 revoked")
    assert run("gateway", "token", "revoke", "1")[2].strip() == "gateway token 1 already revoked"
    code, _, err = run("gateway", "token", "revoke", "99")
    assert code == 2 and "there is no gateway token with id 99" in err and "gateway token list" in err
    error = json.loads(run("gateway", "token", "revoke", "99", "--json")[2])
    assert (error["error"], error["exit_code"]) == ("UsageError", 2)
    far = str(2**64)  # past any id a store holds: the same answer, not the database refusing the number
    code, _, err = run("gateway", "token", "revoke", far)
    assert code == 2 and f"there is no gateway token with id {far}" in err
    code, _, err = run("gateway", "token", "digest", far, "30s")
    assert code == 2 and f"no gateway token with id {far}" in err
    listed = json.loads(run("gateway", "token", "list", "--json")[1])
    assert [(t["id"], t["state"]) for t in listed] == [(1, "revoked"), (2, "active")]
    assert listed[0]["revoked_at"] is not None
    active = json.loads(run("gateway", "token", "list", "--active", "--json")[1])
    assert [t["id"] for t in active] == [2]


def test_recipients_list(env: Path) -> None:
    code, out, err = run("recipients", "list")
    assert (code, out) == (0, "") and "no ids seen yet" in err
    with SQLiteStore(env) as store:
        gateway_store(store).record_recipients(CHANNEL_ID, [RecipientSighting(USER, "follow")], 100.0)
        gateway_store(store).record_recipients(CHANNEL_ID, [RecipientSighting(GROUP, "join")], 200.0)
    code, out, _ = run("recipients", "list", "--no-lookup")
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["ID", "TYPE", "LAST"]
    assert lines[1].split()[:3] == [GROUP, "group", "join"]
    assert lines[2].split()[:3] == [USER, "user", "follow"]
    # Without channel credentials, the names LINE knows are unknown, and the list says why.
    code, out, err = run("recipients", "list")
    assert code == 0
    assert out.splitlines()[0].split()[:4] == ["ID", "TYPE", "LINE", "NAME"]
    assert "unknown (no channel access token or credentials configured)" in out.splitlines()[1]
    listed = json.loads(run("recipients", "list", "--json")[1])
    assert [(r["id"], r["type"], r["last_event"], r["last_seen_at"]) for r in listed] == [
        (GROUP, "group", "join", "1970-01-01T00:03:20Z"),
        (USER, "user", "follow", "1970-01-01T00:01:40Z"),
    ]


def test_serve_worker_needs_credentials(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(serve_module, "run_server", lambda *a, **k: pytest.fail("must not serve"))
    code, _, err = run("serve", "--worker")
    assert code == 2
    assert "--worker needs a way to get channel access tokens" in err


def test_serve_refuses_an_http_public_url(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(serve_module, "run_server", lambda *a, **k: pytest.fail("must not serve"))
    code, _, err = run("serve", "--public-url", "http://gw.example.com")
    assert code == 2 and "HTTPS" in err


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("https://ops:hunter2pw@gw.example.com", "must not hold credentials"),
        ("https://gw.example.com/?x=1", "must not have a query or a fragment"),
        ("https://gw.example.com/#top", "must not have a query or a fragment"),
        ("https://:443", "HTTPS"),
    ],
)
def test_serve_refuses_a_public_url_that_would_be_sent_to_line_as_is(
    env: Path, monkeypatch: pytest.MonkeyPatch, url: str, said: str
) -> None:
    """The public URL starts the image URLs pushed to LINE, which every member of the chat sees."""
    monkeypatch.setattr(serve_module, "run_server", lambda *a, **k: pytest.fail("must not serve"))
    code, _, err = run("serve", "--public-url", url)
    assert code == 2 and said in err and "hunter2pw" not in err


def test_serve_refuses_an_image_dir_that_is_a_file(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(serve_module, "run_server", lambda *a, **k: pytest.fail("must not serve"))
    a_file = env.parent / "not-a-dir"
    a_file.write_text("x")
    code, _, err = run("serve", "--public-url", "https://gw.example.com", "--image-dir", str(a_file))
    assert code == 2 and f"--image-dir {a_file}" in err and "not a directory" in err.lower()


def test_serve_without_a_channel(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LINE_CHANNEL_ID")
    code, _, err = run("serve")
    assert code == 2 and "no channel id" in err


def test_token_list_shows_the_configured_channel_only(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run("gateway", "token", "create", "--to", USER, "--name", "here")
    run("gateway", "token", "create", "--to", USER, "--name", "there", "--channel-id", "42")
    assert [t["name"] for t in json.loads(run("gateway", "token", "list", "--json")[1])] == ["here"]
    listed = json.loads(run("gateway", "token", "list", "-o", "json", "--channel-id", "42")[1])
    assert [t["name"] for t in listed] == ["there"]
    monkeypatch.delenv("LINE_CHANNEL_ID")
    assert [t["name"] for t in json.loads(run("gateway", "token", "list", "--json")[1])] == ["here", "there"]


def test_token_list_table(env: Path) -> None:
    run("gateway", "token", "create", "--to", GROUP, "--name", "ops room")
    code, out, _ = run("gateway", "token", "list")
    assert code == 0
    header, row = out.splitlines()
    assert header.split()[:5] == ["ID", "CHANNEL", "TO", "ROUTES", "TYPE"]
    assert row.split()[:7] == ["1", CHANNEL_ID, GROUP, "-", "GROUP", "ops", "room"]


def test_serve_builds_the_gateway_and_serves_it(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    served: dict[str, object] = {}

    def fake_serve(app: object, sock: socket.socket, **kwargs: object) -> None:
        host, port = sock.getsockname()[:2]
        served.update(app=app, host=host, port=port, **kwargs)

    monkeypatch.setattr(serve_module, "run_server", fake_serve)
    port = free_port()
    code, _, err = run(
        "serve", "--port", str(port), "--public-url", "https://gw.example.com", "--rate-limit", "5"
    )
    assert code == 0, err
    assert (served["host"], served["port"], served["worker"]) == ("127.0.0.1", port, None)
    api = served["app"].state.notify_api  # type: ignore[attr-defined]
    assert api.config.rate_limits.calls == 5
    assert api.images.directory == env.parent / "gateway-images"
    assert "webhook off" in err


def test_the_commands_do_not_import_the_web_stack() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from linepush.cli import _register; _register(); "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'starlette', 'uvicorn', 'multipart'}))"
    )
    src = str(Path(__file__).parents[2] / "src")
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": src},
    )
    assert done.stdout.strip() == "[]"


def test_token_create_with_a_digest_and_changing_it(env: Path) -> None:
    code, out, err = run("gateway", "token", "create", "--to", USER, "--digest", "45s")
    assert code == 0, err
    assert "its notifications within 45s merge into one push" in err
    code, out, _ = run("gateway", "token", "list", "-o", "json")
    [listed] = json.loads(out)
    assert listed["digest"] == 45.0
    assert run("gateway", "token", "digest", str(listed["id"]), "2m")[0] == 0
    with SQLiteStore(env) as store:
        assert gateway_store(store).gateway_token_digest(listed["id"]) == 120.0
    code, _, err = run("gateway", "token", "digest", str(listed["id"]), "off")
    assert code == 0 and "digest off" in err
    code, out, _ = run("gateway", "token", "list")
    assert "DIGEST" in out
    code, _, err = run("gateway", "token", "digest", "999", "30s")
    assert code != 0 and "no gateway token with id 999" in err
    code, _, err = run("gateway", "token", "create", "--to", USER, "--digest", "25h")
    assert code == 2 and "at most a day" in err


def test_token_create_says_a_name_is_too_long(env: Path) -> None:
    code, _, err = run("gateway", "token", "create", "--to", USER, "--name", "n" * 5000)
    assert code == 2
    assert "--name: a token's name is 1 to 100 characters; this one has 5,000" in err
    assert "None" not in err and "nothing was sent" not in err


@pytest.mark.parametrize("name", ["ops\x1b[2J", "a\nb", "tab\there"])
def test_token_create_refuses_a_name_with_control_characters(env: Path, name: str) -> None:
    """A name is printed by `gateway token list` and answered by /api/status: an escape sequence in it
    would reach the terminal of whoever lists the tokens."""
    code, out, err = run("gateway", "token", "create", "--to", USER, "--name", name)
    assert (code, out) == (2, "")
    assert "--name: a token's name holds a control character" in err and "no token was made" in err
    assert json.loads(run("gateway", "token", "list", "--json")[1]) == []


def test_token_create_says_an_empty_name_is_empty(env: Path) -> None:
    code, _, err = run("gateway", "token", "create", "--to", USER, "--name", "")
    assert code == 2 and "this one has 0" in err and "shorter" not in err
