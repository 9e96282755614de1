"""`linepush send` end to end against the emulator on a loopback port: what arrives, and what is refused."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.cli.conftest import Cli

ALICE = "U" + "a" * 32
BOB = "U" + "b" * 32
GROUP = "C" + "c" * 32


def texts(cli: Cli, to: str) -> list[str]:
    return [
        m.get("text", m["type"])
        for d in cli.emulator.admin.deliveries(cli.channel_id, to)
        for m in d["messages"]
    ]


def test_send_text_words_are_one_message(cli: Cli) -> None:
    result = cli("send", "--to", ALICE, "disk", "full")
    assert result.exit_code == 0, result.output
    assert "sent: 1 message(s) to " + ALICE in result.stdout
    assert texts(cli, ALICE) == ["disk full"]


def test_send_to_a_group_and_several_users(cli: Cli) -> None:
    assert cli("send", "--to", GROUP, "hello group").exit_code == 0
    result = cli("send", "--to", ALICE, "--to", BOB, "hello both")
    assert result.exit_code == 0, result.output
    assert texts(cli, GROUP) == ["hello group"]
    deliveries = cli.emulator.admin.deliveries(cli.channel_id, BOB)
    assert [d["endpoint"] for d in deliveries] == ["multicast"]
    assert sorted(deliveries[0]["to"]) == [ALICE, BOB]


@pytest.mark.parametrize("queued", [False, True])
def test_a_recipient_given_twice_gets_the_message_once(cli: Cli, queued: bool) -> None:
    """By id twice, or by id and by a name for it: one recipient, one delivery (a multicast to [A, A] would
    deliver it to A twice, and count twice against the month's quota)."""
    assert cli("recipients", "name", ALICE, "alice").exit_code == 0
    args = ("--queue",) if queued else ()
    result = cli("send", *args, "--to", ALICE, "--to", "alice", "--to", f"{BOB},{ALICE}", "once each")
    assert result.exit_code == 0, result.output
    if queued:
        assert cli("worker", "--once").exit_code == 0
    deliveries = cli.emulator.admin.deliveries(cli.channel_id, ALICE)
    assert [(d["endpoint"], d["to"]) for d in deliveries] == [("multicast", [ALICE, BOB])]


def test_users_with_a_group_are_refused_saying_what_to_do(cli: Cli) -> None:
    """One multicast cannot reach a group: the error says how the same recipients can be sent to."""
    before = cli.api_requests()
    result = cli("send", "--to", ALICE, "--to", GROUP, "hi")
    assert result.exit_code == 2, result.output
    assert f"{GROUP} is a group or room" in result.stderr and "add --queue" in result.stderr
    assert cli.api_requests() == before
    queued = cli("send", "--queue", "--to", ALICE, "--to", GROUP, "hi")
    assert queued.exit_code == 0, queued.output
    assert cli("worker", "--once").exit_code == 0
    assert texts(cli, ALICE) == ["hi"] and texts(cli, GROUP) == ["hi"]


def test_send_reads_stdin_with_dash(cli: Cli) -> None:
    result = cli("send", "--to", ALICE, "-", input="line one\nline two\n")
    assert result.exit_code == 0, result.output
    assert texts(cli, ALICE) == ["line one\nline two"]


def test_send_json_file_of_message_objects(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "messages.json"
    path.write_text(
        json.dumps(
            {
                "messages": [
                    {"type": "text", "text": "a"},
                    {"type": "sticker", "packageId": "446", "stickerId": "1988"},
                ]
            }
        )
    )
    result = cli("send", "--to", ALICE, "--json", str(path), "-o", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["kind"] == "push" and data["to"] == [ALICE] and len(data["sent_messages"]) == 2
    assert data["request_id"]
    assert texts(cli, ALICE) == ["a", "sticker"]


def test_default_recipient_from_linepush_toml(cli: Cli) -> None:
    Path("linepush.toml").write_text(f'to = "{BOB}"\n')
    result = cli("send", "disk full")
    assert result.exit_code == 0, result.output
    assert texts(cli, BOB) == ["disk full"]


def test_same_retry_key_is_delivered_once(cli: Cli) -> None:
    key = str(uuid.uuid4())
    first = cli("send", "--to", ALICE, "--retry-key", key, "once")
    second = cli("send", "--to", ALICE, "--retry-key", key, "once")
    assert first.exit_code == 0 and second.exit_code == 0, second.output
    assert "already sent earlier" in second.stdout
    assert texts(cli, ALICE) == ["once"]


def test_unknown_recipient_is_lines_error_exit_1(cli: Cli) -> None:
    stranger = "U" + "d" * 32
    cli.emulator.admin.recipient(cli.channel_id, stranger, "unknown")
    result = cli("send", "--to", stranger, "hello?")
    assert result.exit_code == 1
    assert "LINE refused the request (400): Failed to send messages" in result.stderr
    assert "request id: " in result.stderr
    assert "user ids differ per provider" in result.stderr  # the hint
    assert "Traceback" not in result.output


def test_lines_error_as_json_on_stderr(cli: Cli) -> None:
    stranger = "U" + "e" * 32
    cli.emulator.admin.recipient(cli.channel_id, stranger, "unknown")
    result = cli("send", "--to", stranger, "hello?", "-o", "json")
    assert result.exit_code == 1
    error = json.loads(result.stderr)
    assert error["status"] == 400 and error["message"] == "Failed to send messages"
    assert error["request_id"] and error["exit_code"] == 1


def test_too_long_text_is_refused_locally_and_nothing_reaches_the_emulator(cli: Cli) -> None:
    before = cli.api_requests()
    result = cli("send", "--to", ALICE, "x" * 5001)
    assert result.exit_code == 2
    assert "messages[0].text: the text is 5,001 characters long" in result.stderr
    assert "nothing was sent" in result.stderr
    assert cli.api_requests() == before


def test_bad_recipient_id_is_refused_locally(cli: Cli) -> None:
    before = cli.api_requests()
    result = cli("send", "--to", "alice", "hi")
    assert result.exit_code == 2
    assert "no recipient named 'alice', and as an id: Must be a user ID" in result.stderr
    assert cli.api_requests() == before


def test_bad_json_files_say_what_is_wrong(cli: Cli, tmp_path: Path) -> None:
    before = cli.api_requests()
    cases = {
        '[{"type": "text", "text": "a"},]': "is not valid JSON: ",
        "42": "holds a JSON int; expected a list of LINE message objects",
        '{"to": "U1", "messages": []}': "unexpected 'to'; recipients go in --to",
        '[{"type": "text"}]': "messages[0].text",
        '[{"type": "text", "text": "a"}]': None,
    }
    for index, (content, message) in enumerate(cases.items()):
        path = tmp_path / f"m{index}.json"
        path.write_text(content)
        result = cli("send", "--to", ALICE, "--json", str(path))
        if message is None:
            assert result.exit_code == 0, result.output
            continue
        assert result.exit_code == 2, (content, result.output)
        assert message in result.stderr, (content, result.stderr)
        assert "Traceback" not in result.output
    missing = cli("send", "--to", ALICE, "--json", str(tmp_path / "nope.json"))
    assert missing.exit_code == 2 and "does not exist" in missing.stderr
    assert cli.api_requests() == before + 2  # only the valid file was sent (a token, then the push)


def test_usage_errors(cli: Cli, tmp_path: Path) -> None:
    nothing = cli("send", "--to", ALICE)
    assert nothing.exit_code == 2 and "nothing to send" in nothing.stderr
    both = cli("send", "--to", ALICE, "--json", str(tmp_path / "x.json"), "text")
    assert both.exit_code == 2 and "either TEXT or --json" in both.stderr
    bad_key = cli("send", "--to", ALICE, "--retry-key", "not-a-uuid", "x")
    assert bad_key.exit_code == 2 and "--retry-key" in bad_key.stderr
    bad_flag = cli("send", "--bogus")
    assert bad_flag.exit_code == 2


def test_no_recipient_names_what_to_set(cli: Cli) -> None:
    result = cli("send", "hello")
    assert result.exit_code == 2
    assert "no recipient" in result.stderr and "LINEPUSH_TO" in result.stderr


def test_missing_configuration_names_the_variable(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LINE_CHANNEL_ID")
    result = cli("send", "--to", ALICE, "hello")
    assert result.exit_code == 2
    assert "LINE_CHANNEL_ID" in result.stderr


def test_server_error_outlasting_retries_is_exit_3_and_gives_the_retry_key(cli: Cli) -> None:
    cli.emulator.admin.fault(path="/v2/bot/message/push", mode="status", status=500, count=1)
    result = cli("send", "--to", ALICE, "--deadline", "0", "hello")
    assert result.exit_code == 3, result.output
    assert "LINE answered 500" in result.stderr
    assert "--retry-key " in result.stderr


def test_no_answer_at_all_is_exit_3(cli: Cli) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = cli("send", "--api-base", f"http://127.0.0.1:{port}", "--deadline", "0", "--to", ALICE, "hello")
    assert result.exit_code == 3, result.output
    assert "Traceback" not in result.output


def test_debug_shows_the_traceback(cli: Cli) -> None:
    stranger = "U" + "f" * 32
    cli.emulator.admin.recipient(cli.channel_id, stranger, "unknown")
    result = cli("send", "--to", stranger, "hello?", "--debug")
    assert result.exit_code == 1
    assert "Traceback" in result.stderr


def test_multicast_json_output_and_the_payload_the_outbox_will_store(cli: Cli) -> None:
    result = cli("send", "--to", f"{ALICE},{BOB}", "--notification-disabled", "hi all", "-o", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["kind"] == "multicast" and data["to"] == [ALICE, BOB]
    assert [r["recipients"] for r in data["requests"]] == [2] and data["requests"][0]["request_id"]


def test_send_request_payload_is_lines_body() -> None:
    from linepush.cli.send import SendRequest

    one = SendRequest((GROUP,), ({"type": "text", "text": "x"},), notification_disabled=True)
    assert one.kind == "push"
    assert one.payload() == {
        "to": GROUP,
        "messages": [{"type": "text", "text": "x"}],
        "notificationDisabled": True,
    }
    many = SendRequest((ALICE, BOB), ({"type": "text", "text": "x"},))
    assert many.kind == "multicast"
    assert many.payload() == {"to": [ALICE, BOB], "messages": [{"type": "text", "text": "x"}]}


def test_a_profile_from_linepush_toml_sends_with_its_own_channel(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("LINE_CHANNEL_ID", "LINE_CHANNEL_SECRET", "LINE_ASSERTION_KEY_FILE", "LINE_ASSERTION_KID"):
        monkeypatch.delenv(name)
    keys = Path("keys")
    keys.mkdir()
    (keys / "ops.json").write_bytes(cli.key_file.read_bytes())
    (keys / "ops.json").chmod(0o600)
    Path("linepush.toml").write_text(
        "[channels.ops]\n"
        f'channel_id = "{cli.channel_id}"\n'
        'assertion_key_file = "keys/ops.json"\n'
        f'assertion_kid = "{cli.kid}"\n'
        f'to = "{GROUP}"\n'
    )
    without = cli("send", "hello ops")
    assert without.exit_code == 2  # no default_channel: the profile must be named
    result = cli("send", "--channel", "ops", "hello ops")
    assert result.exit_code == 0, result.output
    assert texts(cli, GROUP) == ["hello ops"]


def test_a_long_lived_token_from_the_environment_is_used_as_is(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("LINE_CHANNEL_SECRET", "LINE_ASSERTION_KEY_FILE", "LINE_ASSERTION_KID"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("LINE_CHANNEL_ACCESS_TOKEN", cli.emulator.admin.long_lived_token(cli.channel_id))
    assert cli("send", "--to", ALICE, "static").exit_code == 0
    verified = cli("token", "verify", "--json")
    assert verified.exit_code == 0, verified.output
    data = json.loads(verified.stdout)
    assert data["kind"] == "static" and data["client_id"] == cli.channel_id
    assert texts(cli, ALICE) == ["static"]


def test_monthly_limit_is_refused_not_transient(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    channel_id, secret = cli.emulator.admin.create_channel(monthly_quota=1)
    monkeypatch.setenv("LINE_CHANNEL_ID", channel_id)
    monkeypatch.setenv("LINE_CHANNEL_SECRET", secret)
    monkeypatch.delenv("LINE_ASSERTION_KEY_FILE")  # this channel has no key: v3 tokens by id and secret
    assert cli("send", "--to", ALICE, "first").exit_code == 0
    result = cli("send", "--to", ALICE, "second")
    assert result.exit_code == 1, result.output
    assert "You have reached your monthly limit." in result.stderr
    assert "message allowance" in result.stderr


def test_send_broadcast_sends_to_every_friend(cli: Cli) -> None:
    before = cli.emulator.admin.count("/v2/bot/message/broadcast")
    result = cli("send", "--broadcast", "maintenance tonight")
    assert result.exit_code == 0, result.output
    assert cli.emulator.admin.count("/v2/bot/message/broadcast") == before + 1
    refused = cli("send", "--broadcast", "--to", ALICE, "x")
    assert refused.exit_code == 2 and "--broadcast sends to every friend" in refused.output


@pytest.mark.parametrize(
    "args",
    [
        ("send", "--to", ALICE, "-"),
        ("send", "--queue", "--to", ALICE, "-"),
        ("queue", "add", "--to", ALICE, "-"),
        ("send", "--to", ALICE, "--json", "-"),
    ],
)
def test_bytes_on_stdin_that_are_not_utf8_are_a_usage_error(args: tuple[str, ...], tmp_path: Path) -> None:
    """Read by the real program from a real pipe: a clear error and exit 2, nothing sent or queued."""
    import os
    import subprocess
    import sys

    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("LINE_", "LINEPUSH_"))},
        "LINE_CHANNEL_ID": "1234567890",
        "LINE_CHANNEL_ACCESS_TOKEN": "not-used-token",
        "LINEPUSH_API_BASE": "http://127.0.0.1:9",
        "LINEPUSH_STORE": str(tmp_path / "store.db"),
        "XDG_CONFIG_HOME": str(tmp_path),
        "XDG_STATE_HOME": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-m", "linepush", *args],
        input=b"\xff\xfe disk full",
        capture_output=True,
        env=env,
        timeout=60,
    )
    err = done.stderr.decode()
    assert done.returncode == 2, err
    assert "stdin is not UTF-8 text" in err
    assert "Traceback" not in err and "unexpected" not in err


def test_an_unknown_name_is_named_in_the_error(cli: Cli) -> None:
    result = cli("send", "--to", "nosuchname", "hi")
    assert result.exit_code == 2
    assert "no recipient named 'nosuchname'" in result.stderr
    assert "recipients list" in result.stderr
    # What is meant as an id is still explained by the id check.
    assert "32" in cli("send", "--to", "U1234", "hi").stderr


BOM = b"\xef\xbb\xbf"  # what Notepad and PowerShell 5 write at the start of a UTF-8 file


def test_a_byte_order_mark_at_the_start_of_a_file_or_stdin_is_read_past(cli: Cli, tmp_path: Path) -> None:
    ids = tmp_path / "ids.txt"
    ids.write_bytes(BOM + f"{ALICE}\r\n{BOB}\r\n".encode())
    messages = tmp_path / "m.json"
    messages.write_bytes(BOM + b'[{"type": "text", "text": "from a json file"}]')
    assert cli("send", "--to-file", str(ids), "--yes", "to a file of ids").exit_code == 0
    assert cli("send", "--to", ALICE, "--json", str(messages)).exit_code == 0
    piped = subprocess.run(
        [sys.executable, "-m", "linepush", "send", "--to", ALICE, "-"],
        input=BOM + b"from stdin",
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert piped.returncode == 0, piped.stderr
    assert texts(cli, ALICE) == ["to a file of ids", "from a json file", "from stdin"]
    assert texts(cli, BOB) == ["to a file of ids"]
