"""`linepush keys` and `linepush token` end to end against the emulator: every kind, the store, bad keys."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from linepush.keys import load_private_key
from tests.cli.conftest import Cli


def test_keys_generate_writes_a_private_file_and_prints_the_public_jwk(cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "new" / "key.json"
    result = cli("keys", "generate", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    public = json.loads(result.stdout)  # stdout holds the public JWK alone
    assert set(public) == {"kty", "alg", "use", "e", "n"}
    assert public == load_private_key(out).public_jwk()
    assert "LINE Developers Console" in result.stderr and "LINE_ASSERTION_KID" in result.stderr
    assert '"d"' not in result.output  # no private member is ever printed


def test_keys_generate_refuses_to_overwrite_without_force(cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "key.json"
    assert cli("keys", "generate", "--out", str(out)).exit_code == 0
    before = out.read_bytes()
    again = cli("keys", "generate", "--out", str(out))
    assert again.exit_code == 2 and "--force" in again.stderr
    assert out.read_bytes() == before
    forced = cli("keys", "generate", "--out", str(out), "--force", "--json")
    assert forced.exit_code == 0
    data = json.loads(forced.stdout)
    assert data["private_key_file"] == str(out.resolve()) and data["public_jwk"]["kty"] == "RSA"
    assert out.read_bytes() != before


def test_keys_generate_defaults_to_the_user_config_dir(cli: Cli) -> None:
    result = cli("keys", "generate", "--json")
    assert result.exit_code == 0, result.output
    path = Path(json.loads(result.stdout)["private_key_file"])
    assert path == cli.home / "config" / "linepush" / "assertion-key.json"
    assert path.exists()


def test_keys_public_prints_the_configured_keys_public_half(cli: Cli) -> None:
    result = cli("keys", "public")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == load_private_key(cli.key_file).public_jwk()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, "does not exist"),
        (lambda p: p.mkdir(), "is a directory"),
        (lambda p: p.write_text("hello"), "neither a JWK"),
        (lambda p: p.write_text('{"kty": "RSA", "n": "AQAB"}'), "assertion key file"),
    ],
)
def test_an_unreadable_or_wrong_key_file_is_a_configuration_error(
    cli: Cli, tmp_path: Path, make: object, message: str
) -> None:
    bad = tmp_path / "bad-key"
    make(bad)  # type: ignore[operator]
    if bad.is_file():
        bad.chmod(0o600)  # as a key file should be: what is wrong here is its content
    before = cli.api_requests()
    for args in (["keys", "public"], ["token", "issue"], ["send", "--to", "U" + "a" * 32, "hi"]):
        result = cli(*args, "--key-file", str(bad))
        assert result.exit_code == 2, (args, result.output)
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.output
    assert cli.api_requests() == before


def test_a_key_the_channel_does_not_know_is_lines_error(cli: Cli, tmp_path: Path) -> None:
    other = tmp_path / "other.json"
    assert cli("keys", "generate", "--out", str(other)).exit_code == 0
    result = cli("token", "issue", "--key-file", str(other))
    assert result.exit_code == 1
    assert "LINE refused the request" in result.stderr


def test_token_issue_list_verify_revoke_v21(cli: Cli) -> None:
    issued = cli("token", "issue", "-o", "json")
    assert issued.exit_code == 0, issued.output
    data = json.loads(issued.stdout)
    assert data["kind"] == "v2.1" and data["key_id"] and data["access_token"].endswith("…")
    at_line = cli.emulator.admin.tokens(cli.channel_id)
    assert [(t["kind"], t["key_id"]) for t in at_line] == [("v2.1", data["key_id"])]

    listed = cli("token", "list", "--json")
    tokens = json.loads(listed.stdout)["tokens"]
    assert [(t["kind"], t["state"], t["key_id"]) for t in tokens] == [("v2.1", "active", data["key_id"])]
    assert tokens[0]["access_token"] == data["access_token"]

    verified = cli("token", "verify")
    assert verified.exit_code == 0, verified.output
    assert f"valid v2.1 token {data['access_token']} of channel {cli.channel_id}" in verified.stdout

    revoked = cli("token", "revoke", "--id", str(tokens[0]["id"]))
    assert revoked.exit_code == 0, revoked.output
    assert revoked.stdout.startswith(f"revoked v2.1 token {data['access_token']}"), revoked.stdout
    after = json.loads(cli("token", "list", "--all", "--json").stdout)["tokens"]
    assert after[0]["state"] == "revoked"
    assert json.loads(cli("token", "list", "--json").stdout)["tokens"] == []


def test_show_token_prints_the_value_alone_on_stdout(cli: Cli) -> None:
    issued = cli("token", "issue", "--kind", "v2", "--show-token")
    assert issued.exit_code == 0, issued.output
    token = issued.stdout.strip()
    assert "\n" not in token and "…" not in token
    checked = cli("token", "verify", "-", input=token + "\n")
    assert checked.exit_code == 0, checked.output
    assert "valid v2 token" in checked.stdout
    assert token not in checked.output  # verify shows it masked
    assert cli("token", "revoke", "-", input=token).exit_code == 0
    gone = cli("token", "verify", "-", input=token)
    assert gone.exit_code == 1
    assert "LINE refused the request (400)" in gone.stderr


def test_revoking_a_string_no_store_knows_does_not_claim_a_token_was_revoked(cli: Cli) -> None:
    """LINE answers 200 to the revocation of any string, a typo included: the output says only that."""
    done = cli("token", "revoke", "--kind", "v2", "-", input="not-a-token-at-all")
    assert done.exit_code == 0, done.output
    assert "LINE accepted the revocation" in done.stdout
    assert "never valid" in done.stdout and not done.stdout.startswith("revoked")
    assert "not-a-token-at-all" not in done.output


def test_token_issue_v3_cannot_be_revoked(cli: Cli) -> None:
    issued = cli("token", "issue", "--kind", "v3", "--json")
    assert issued.exit_code == 0, issued.output
    data = json.loads(issued.stdout)
    assert data["kind"] == "v3" and data["expires_in"] == 900
    refused = cli("token", "revoke", "--id", str(data["store_id"]))
    assert refused.exit_code == 2 and "cannot be revoked" in refused.stderr


def test_lifetime_only_for_v21(cli: Cli) -> None:
    result = cli("token", "issue", "--kind", "v3", "--lifetime", "3600")
    assert result.exit_code == 2 and "v2.1 tokens only" in result.stderr
    result = cli("token", "issue", "--lifetime", "3600", "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["expires_in"] == 3600


def test_kids_compares_line_with_the_store(cli: Cli) -> None:
    kept = json.loads(cli("token", "issue", "--json").stdout)
    alone = json.loads(cli("token", "issue", "--no-store", "--json").stdout)
    assert alone["store_id"] is None
    result = cli("token", "kids", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    rows = {r["key_id"]: r for r in data["kids"]}
    assert rows[kept["key_id"]]["store_id"] == kept["store_id"]
    assert rows[alone["key_id"]]["store_id"] is None
    assert data["valid_at_line"] == 2 and data["not_in_store"] == 1
    table = cli("token", "kids")
    assert "2 of 30 v2.1 tokens in use at LINE; 1 of them in the store" in table.stdout
    assert "not in this store" in table.stderr


def test_token_commands_without_configuration_name_what_to_set(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("LINE_ASSERTION_KEY_FILE", "LINE_ASSERTION_KID", "LINE_CHANNEL_SECRET"):
        monkeypatch.delenv(name)
    result = cli("token", "issue")
    assert result.exit_code == 2
    assert "LINE_ASSERTION_KEY_FILE" in result.stderr and "LINE_CHANNEL_SECRET" in result.stderr
    monkeypatch.delenv("LINE_CHANNEL_ID")
    for args in (["token", "list"], ["token", "kids"], ["token", "issue", "--kind", "v2"]):
        result = cli(*args)
        assert result.exit_code == 2, args
        assert "LINE_CHANNEL_ID" in result.stderr, args


def test_revoke_needs_a_target_and_v21_revoke_needs_the_secret(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli("token", "revoke").exit_code == 2
    data = json.loads(cli("token", "issue", "--json").stdout)
    monkeypatch.delenv("LINE_CHANNEL_SECRET")
    result = cli("token", "revoke", "--id", str(data["store_id"]))
    assert result.exit_code == 2 and "LINE_CHANNEL_SECRET" in result.stderr
    missing = cli("token", "verify", "--id", "999")
    assert missing.exit_code == 2 and "no token with id 999" in missing.stderr


def test_no_command_prints_a_token_unless_asked(cli: Cli) -> None:
    from linepush.store import open_store

    outputs = [cli("token", "issue").output, cli("token", "issue", "--kind", "v2", "--json").output]
    outputs += [cli("token", "list").output, cli("token", "verify").output, cli("config", "show").output]
    outputs.append(cli("send", "--to", "U" + "a" * 32, "hi", "-o", "json").output)
    with open_store(os.environ["LINEPUSH_STORE"]) as store:
        values = [r.access_token.reveal() for r in store.list_tokens(cli.channel_id)]
    assert len(values) == 2
    for output in outputs:
        for secret in [*values, cli.channel_secret]:
            assert secret not in output


def test_an_unexpected_error_is_one_line_without_debug(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    import linepush.cli.token as token_module

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("something broke")

    monkeypatch.setattr(token_module, "_record_data", broken)
    assert cli("token", "issue").exit_code == 0
    result = cli("token", "list")
    assert result.exit_code == 1
    assert "unexpected RuntimeError: something broke (run with --debug" in result.stderr
    assert "Traceback" not in result.output
    assert "Traceback" in cli("token", "list", "--debug").stderr
    as_json = cli("token", "list", "--json")
    assert as_json.exit_code == 1
    assert json.loads(as_json.stderr) == {
        "error": "RuntimeError",
        "message": "unexpected RuntimeError: something broke (run with --debug for the traceback)",
        "exit_code": 1,
    }


def test_debug_logs_do_not_carry_tokens(cli: Cli) -> None:
    # A real process, so that --debug configures logging as it would for a user (pytest owns it here).
    token = cli("token", "issue", "--show-token").stdout.strip()
    src = Path(__file__).resolve().parents[2] / "src"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(src), os.environ.get("PYTHONPATH")])))
    result = subprocess.run(
        [sys.executable, "-m", "linepush", "token", "verify", "-", "--debug"],
        input=token,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    # urllib3 logs whole URLs, and v2.1 verify carries the token in its query string.
    assert token not in result.stderr and token not in result.stdout


def test_token_cap_reads_with_what_to_do(cli: Cli) -> None:
    from linepush.client import LineClient
    from linepush.config import Channel

    channel = Channel(cli.channel_id, cli.channel_secret, cli.key_file, cli.kid)
    with LineClient(channel, api_base=cli.emulator.url) as line:
        for _ in range(30):
            line.issue_v21_token(token_exp=3600)
    result = cli("token", "issue")
    assert result.exit_code == 1, result.output
    assert "The maximum number of access tokens has already been issued" in result.stderr
    assert "linepush token kids" in result.stderr and "--kind v3" in result.stderr
    assert cli("token", "issue", "--kind", "v3").exit_code == 0
