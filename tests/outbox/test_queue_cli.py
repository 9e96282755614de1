"""`linepush queue …` and `linepush worker`, and the pieces `linepush send` takes from them."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import Emulator
from tests.outbox.kit import Line, user
from typer.testing import CliRunner

from linepush.cli import _register, app
from linepush.cli.inputs import parse_at, read_recipients
from linepush.cli.invocation import Exit
from linepush.cli.queue import drain_with_progress, enqueue_from_cli
from linepush.errors import ConfigurationError, ValidationError
from linepush.outbox import Outbox, send_items
from linepush.store import Store, open_store

_register()
CHANNEL = "1234567890"


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "cli.db")


@pytest.fixture(autouse=True)
def _no_outside_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No linepush.toml or LINE_* setting of the developer's leaks into these tests."""
    for name in list(os.environ):
        if name.startswith(("LINE_", "LINEPUSH_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("COLUMNS", "1000")
    monkeypatch.chdir(tmp_path)


def run(db: str, *args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> Any:
    environment = {"LINE_CHANNEL_ID": CHANNEL, "LINEPUSH_STORE": db, **(env or {})}
    return CliRunner().invoke(app, list(args), env=environment, input=stdin)


def _tokyo(moment: dt.datetime) -> str:
    """``moment`` as ISO 8601 in Tokyo time, to the minute."""
    return moment.astimezone(dt.timezone(dt.timedelta(hours=9))).strftime("%Y-%m-%dT%H:%M%z")


def stored(db: str) -> Any:
    with open_store(db) as s:
        return s.list_messages(limit=10_000)


# -- queue add ----------------------------------------------------------------------------------------------


def test_add_one_push(db: str) -> None:
    result = run(db, "queue", "add", "--to", user(1), "disk full")
    assert result.exit_code == Exit.OK, result.output
    assert "queued 1 message(s): ids 1" in result.output
    (row,) = stored(db)
    assert row.kind == "push" and row.channel_id == CHANNEL
    assert row.payload == {"to": user(1), "messages": [{"type": "text", "text": "disk full"}]}


def test_add_prints_json(db: str) -> None:
    result = run(db, "queue", "add", "--to", user(1), "hi", "-o", "json")
    data = json.loads(result.output)
    assert data["queued"][0]["state"] == "queued" and data["queued"][0]["recipients"] == user(1)


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--to", "Uxyz", "hi"], "Must be a user ID (U...)"),
        (["--to", user(1), "x" * 5001], "messages[0].text"),
        (["--to", user(1)], "nothing to send"),
        (["hi"], "no recipient"),
        (["--broadcast", "--to", user(1), "hi"], "--broadcast sends to every friend"),
        (["--to", user(1), "--at", "next tuesday", "hi"], "cannot read the time"),
        (["--to", user(1), "--retry-key", "123", "hi"], "retry_key"),
    ],
)
def test_bad_input_is_refused_before_it_is_stored(db: str, args: list[str], said: str) -> None:
    result = run(db, "queue", "add", *args)
    assert result.exit_code == 2, result.output
    assert said in result.output
    assert "Traceback" not in result.output
    assert stored(db) == []


def test_bad_json_message_is_refused(db: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"type": "sticker", "packageId": "1"}]))
    result = run(db, "queue", "add", "--to", user(1), "--json", str(bad))
    assert result.exit_code == 2 and "stickerId" in result.output
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert run(db, "queue", "add", "--to", user(1), "--json", str(broken)).exit_code == 2
    assert stored(db) == []


def test_add_json_messages_from_stdin(db: str) -> None:
    body = {
        "messages": [
            {"type": "text", "text": "a"},
            {"type": "sticker", "packageId": "446", "stickerId": "1988"},
        ]
    }
    result = run(db, "queue", "add", "--to", user(1), "--json", "-", stdin=json.dumps(body))
    assert result.exit_code == 0, result.output
    assert stored(db)[0].payload["messages"] == body["messages"]


def test_to_file_makes_one_multicast_row_per_500(db: str, tmp_path: Path) -> None:
    ids = tmp_path / "ids.txt"
    ids.write_text("# our users\n" + "\n".join(user(i) for i in range(1201)) + "\n\n" + user(5) + "\n")
    result = run(db, "queue", "add", "--to-file", str(ids), "news")
    assert result.exit_code == 0, result.output
    rows = stored(db)
    assert [len(r.payload["to"]) for r in rows] == [500, 500, 201]
    assert len({r.retry_key for r in rows}) == 3


def test_a_bad_id_in_the_file_is_named_by_line_and_nothing_is_stored(db: str, tmp_path: Path) -> None:
    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join([user(1), user(2), "U123", user(3)]))
    result = run(db, "queue", "add", "--to-file", str(ids), "news")
    assert result.exit_code == 2 and "line 3" in result.output
    assert stored(db) == []


def test_users_go_by_multicast_and_groups_by_push(db: str) -> None:
    group = "C" + "a" * 32
    result = run(db, "queue", "add", "--to", user(1), "--to", user(2), "--to", group, "hi")
    assert result.exit_code == 0, result.output
    rows = stored(db)
    assert [(r.kind, r.payload["to"]) for r in rows] == [("multicast", [user(1), user(2)]), ("push", group)]


def test_add_scheduled(db: str) -> None:
    morning = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).replace(second=0, microsecond=0)
    result = run(db, "queue", "add", "--to", user(1), "--at", _tokyo(morning), "morning")
    assert result.exit_code == 0, result.output
    assert stored(db)[0].not_before == morning.timestamp()


def test_no_channel_is_a_configuration_error(db: str) -> None:
    result = CliRunner().invoke(
        app, ["queue", "add", "--to", user(1), "hi"], env={"LINEPUSH_STORE": db, "LINE_CHANNEL_ID": ""}
    )
    assert result.exit_code == 2 and "LINE_CHANNEL_ID" in result.output


# -- status, list, retry, purge ------------------------------------------------------------------------------


def _settle(db: str) -> list[int]:
    with open_store(db) as s:
        box = Outbox(s, CHANNEL)
        rows = [box.push(user(i), f"m{i}") for i in range(3)]
        box.claim("w", 10, 30)
        s.mark_delivered(rows[0].id, "w", box.clock(), "req-1", {})
        s.mark_failed(rows[1].id, "w", box.clock(), {"status": 400, "message": "Failed to send messages"})
        s.release([rows[2].id], "w", box.clock())
        return [r.id for r in rows]


def test_a_control_character_in_lines_answer_is_shown_escaped(db: str) -> None:
    """LINE's error text (or a proxy's, in front of it) reaches the terminal through `queue list`: an escape
    sequence in it must not act on the terminal."""
    with open_store(db) as s:
        box = Outbox(s, CHANNEL)
        row = box.push(user(1), "m")
        box.claim("w", 10, 30)
        s.mark_failed(row.id, "w", box.clock(), {"status": 400, "message": "bad\x1b[2J\x9b31mthing\r\n"})
    listed = run(db, "queue", "list")
    assert listed.exit_code == 0, listed.output
    assert "\x1b" not in listed.output and "\x9b" not in listed.output and "\r" not in listed.output
    assert "bad\\x1b[2J\\x9b31mthing\\x0d\\x0a" in listed.output


def test_status_list_retry_purge(db: str) -> None:
    ids = _settle(db)
    status = run(db, "queue", "status", "--json")
    assert json.loads(status.output) == {"queued": 1, "sending": 0, "delivered": 1, "failed": 1}
    listed = run(db, "queue", "list", "--state", "failed")
    assert listed.exit_code == 0 and "400 Failed to send messages" in listed.output
    rows = json.loads(run(db, "queue", "list", "--json").output)
    assert [r["state"] for r in rows] == ["delivered", "failed", "queued"]
    assert rows[0]["request_id"] == "req-1"
    assert run(db, "queue", "list", "--state", "lost").exit_code == 2
    retried = run(db, "queue", "retry", str(ids[1]))
    assert retried.exit_code == 0 and "requeued 1" in retried.output
    assert run(db, "queue", "retry").output.strip() == "requeued 0 message(s)"
    again = run(db, "queue", "retry", str(ids[0]), "99999")  # delivered, and no such id
    assert again.exit_code == 2
    assert "requeued 0 message(s)" in again.output
    assert "no message with id 99999" in again.output
    assert f"message {ids[0]} is delivered, not failed" in again.output
    far = run(db, "queue", "retry", str(2**64))  # past any id a store holds
    assert far.exit_code == 2 and f"no message with id {2**64}" in far.output
    purged = run(db, "queue", "purge", "--older-than", "0s")
    assert purged.exit_code == 0 and "purged 1" in purged.output
    assert json.loads(run(db, "queue", "status", "--json").output)["delivered"] == 0
    assert run(db, "queue", "purge", "--state", "sending").exit_code == 2
    assert run(db, "queue", "purge", "--older-than", "soon").exit_code == 2


def test_retry_with_a_new_key(db: str) -> None:
    ids = _settle(db)
    before = stored(db)[1].retry_key
    assert run(db, "queue", "retry", "--new-key", "--channel-id", CHANNEL, str(ids[1])).exit_code == 0
    after = stored(db)[1]
    assert after.state == "queued" and after.retry_key != before


# -- the pieces for `linepush send` ------------------------------------------------------------------------


def test_parse_at() -> None:
    # Parsing alone: these dates are never compared with today.
    written = "2026-12-01T09:00+09:00"  # fixed date ok
    assert parse_at(written) == dt.datetime(2026, 12, 1, tzinfo=dt.UTC).timestamp()
    assert parse_at("+15m", now=1000.0) == 1900.0
    assert parse_at("+1.5h", now=0.0) == 5400.0
    naive = dt.datetime(2026, 12, 1, 9, 0)
    assert parse_at("2026-12-01T09:00") == naive.astimezone().timestamp()  # fixed date ok
    for bad in ("tomorrow", "+5x", "+m", ""):
        with pytest.raises(ValidationError):
            parse_at(bad)


@pytest.mark.parametrize("at", ["+99999999999h", "0001-01-01T00:00:00", "9999-12-31T23:59:59-14:00"])
def test_a_time_no_calendar_can_show_is_refused_and_queues_nothing(db: str, at: str) -> None:
    result = run(db, "queue", "add", "--at", at, "--to", user(1), "hi")
    assert result.exit_code == Exit.USAGE
    assert "out of range" in result.output and "9999" in result.output
    assert "unexpected" not in result.output
    assert stored(db) == []


def test_queue_list_shows_a_row_due_past_the_calendar(db: str) -> None:
    """A row the library queued for a time no calendar shows (a year past 9999) is listed, not a crash."""
    with open_store(db) as s:
        Outbox(s, CHANNEL).push(user(1), "far", not_before=1e15)
    listed = run(db, "queue", "list")
    assert listed.exit_code == Exit.OK, listed.output
    assert "far" not in listed.output and "1000000000000000" in listed.output
    assert run(db, "queue", "list", "--json").exit_code == Exit.OK


def test_read_recipients(tmp_path: Path) -> None:
    f = tmp_path / "ids.txt"
    f.write_text(f"{user(1)}\n  {user(2)}  # bob\n\n{user(1)}\n")
    assert read_recipients(f) == [user(1), user(2)]
    (tmp_path / "empty.txt").write_text("# nobody\n")
    with pytest.raises(ValidationError, match="holds no recipient ids"):
        read_recipients(tmp_path / "empty.txt")
    with pytest.raises(ConfigurationError, match="cannot read"):
        read_recipients(tmp_path / "missing.txt")


def test_send_items_one_recipient_is_a_push_even_for_a_group() -> None:
    (item,) = send_items(CHANNEL, [{"type": "text", "text": "x"}], to=["R" + "1" * 32])
    assert item.kind == "push"
    with pytest.raises(ValidationError):
        send_items(
            CHANNEL,
            [{"type": "text", "text": "x"}],
            to=[user(1), "C" + "1" * 32],
            retry_key=str(__import__("uuid").uuid4()),
        )


def test_enqueue_from_cli_stores_nothing_when_a_part_is_refused(store: Store, tmp_path: Path) -> None:
    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join(user(i) for i in range(600)))
    box = Outbox(store, CHANNEL)
    with pytest.raises(ValidationError):
        enqueue_from_cli(box, [{"type": "text", "text": "x"}], to=["C" + "z" * 32], to_file=ids)
    assert sum(store.counts().values()) == 0
    rows = enqueue_from_cli(box, [{"type": "text", "text": "x"}], to=[user(0)], to_file=ids, at="+1h")
    assert [len(r.payload["to"]) for r in rows] == [500, 100]  # user(0) is in the file too: once
    assert rows[0].not_before == pytest.approx(box.clock() + 3600, abs=5)


@pytest.mark.parametrize("progress", [False, True])
def test_drain_with_progress_delivers_the_send(store: Store, line: Line, progress: bool, capsys: Any) -> None:
    box = Outbox(store, line.channel_id)
    rows = box.multicast([user(i) for i in range(1200)], "news")
    result = drain_with_progress(
        store, line.client(), [r.id for r in rows], channel_id=line.channel_id, progress=progress
    )
    assert result.exit_code == Exit.OK
    assert result.counts["delivered"] == 3
    assert len(line.deliveries()) == 3
    if progress:
        assert "3/3" in capsys.readouterr().err


def test_drain_reports_refused_and_transient(store: Store, line: Line) -> None:
    line.emulator.admin.recipient(line.channel_id, user(9), "unknown")
    box = Outbox(store, line.channel_id)
    refused = box.push(user(9), "x")
    assert (
        drain_with_progress(
            store, line.client(), [refused.id], channel_id=line.channel_id, progress=False
        ).exit_code
        == Exit.REFUSED
    )
    line.emulator.admin.fault(path="/v2/bot/message/push", mode="status", status=500, count=None)
    later = box.push(user(1), "x")
    result = drain_with_progress(
        store, line.client(), [later.id], channel_id=line.channel_id, progress=False, deadline=0.0
    )
    assert result.exit_code == Exit.TRANSIENT and result.counts["queued"] == 1


# -- linepush worker -----------------------------------------------------------------------------------------


@pytest.mark.e2e
def test_worker_once_over_a_socket(live_emulator: Emulator, tmp_path: Path) -> None:
    admin = live_emulator.admin
    channel_id, _ = admin.create_channel()
    token = admin.long_lived_token(channel_id)
    admin.recipient(channel_id, user(99), "unknown")
    db = str(tmp_path / "w.db")
    with open_store(db) as s:
        box = Outbox(s, channel_id)
        box.enqueue([])
        for i in range(20):
            box.push(user(i), f"m{i}")
    env = {
        "LINE_CHANNEL_ID": channel_id,
        "LINE_CHANNEL_ACCESS_TOKEN": token,
        "LINEPUSH_API_BASE": str(live_emulator.url),
    }
    result = run(db, "worker", "--once", "--concurrency", "4", "--json", env=env)
    assert result.exit_code == Exit.OK, result.output
    assert json.loads(result.output)["delivered"] == 20
    assert len(admin.deliveries(channel_id)) == 20
    with open_store(db) as s:
        Outbox(s, channel_id).push(user(99), "nobody")
    refused = run(db, "worker", "--once", env=env)
    assert refused.exit_code == Exit.REFUSED
    assert "failed 1" in refused.output


def test_worker_without_a_channel_is_a_configuration_error(db: str) -> None:
    result = CliRunner().invoke(app, ["worker", "--once"], env={"LINEPUSH_STORE": db, "LINE_CHANNEL_ID": ""})
    assert result.exit_code == 2 and "LINE_CHANNEL_ID" in result.output


def test_send_with_outbox_queue_only_and_scheduled_stay_for_a_worker(store: Store, line: Line) -> None:
    from linepush.cli.queue import send_with_outbox
    from linepush.config import Channel

    said: list[str] = []
    channel = Channel(line.channel_id)
    text = [{"type": "text", "text": "x"}]
    code, data = send_with_outbox(store, channel, text, to=[user(1)], queue_only=True, echo=said.append)
    assert code == Exit.OK and data["queued"] == [1]
    assert send_with_outbox(store, channel, text, to=[user(2)], at="+1h", echo=said.append)[0] == Exit.OK
    assert store.counts()["queued"] == 2 and line.deliveries() == []
    assert "`linepush worker` delivers them" in said[0] and " for " in said[1]


def test_send_with_outbox_to_file_delivers_now(store: Store, line: Line, tmp_path: Path) -> None:
    from linepush.cli.queue import send_with_outbox
    from linepush.config import Channel

    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join(user(i) for i in range(1001)))
    said: list[str] = []
    code, data = send_with_outbox(
        store,
        Channel(line.channel_id),
        [{"type": "text", "text": "news"}],
        to_file=ids,
        progress=False,
        client=line.client(),
        echo=said.append,
    )
    assert code == Exit.OK and data["counts"]["delivered"] == 3
    assert said == ["delivered 3 of 3 request(s)"]
    assert sorted(len(d["to"]) for d in line.deliveries()) == [1, 500, 500]


def test_send_with_outbox_reports_a_refusal(store: Store, line: Line) -> None:
    from linepush.cli.queue import send_with_outbox
    from linepush.config import Channel

    line.emulator.admin.recipient(line.channel_id, user(3), "unknown")
    said: list[str] = []
    code, _ = send_with_outbox(
        store,
        Channel(line.channel_id),
        [{"type": "text", "text": "x"}],
        to=[user(3)],
        progress=False,
        client=line.client(),
        echo=said.append,
    )
    assert code == Exit.REFUSED and "1 refused by LINE" in said[0]


def test_worker_once_exit_codes() -> None:
    from linepush.cli.worker import exit_code_after_once
    from linepush.worker import WorkerStats

    assert exit_code_after_once(WorkerStats(delivered=5), queued=0) == Exit.OK
    assert exit_code_after_once(WorkerStats(delivered=5), queued=3) == Exit.OK  # scheduled for later
    assert exit_code_after_once(WorkerStats(delivered=4, retried=1), queued=1) == Exit.TRANSIENT
    assert (
        exit_code_after_once(WorkerStats(delivered=4, retried=1), queued=0) == Exit.OK
    )  # retried, then sent
    assert exit_code_after_once(WorkerStats(failed=1, retried=1), queued=1) == Exit.REFUSED
    assert exit_code_after_once(WorkerStats(delivered=1, stopped=True), queued=9) == Exit.TRANSIENT


def test_worker_refuses_a_margin_as_long_as_the_window(db: str) -> None:
    result = run(db, "worker", "--once", "--retry-window", "3600", "--window-margin", "3600")
    assert result.exit_code == 2 and "margin" in result.output


# -- linepush send --queue / --at / --to-file ----------------------------------------------------------------


def test_send_queue_and_at_leave_it_for_a_worker(db: str) -> None:
    queued = run(db, "send", "--to", user(1), "--queue", "later", "-o", "json")
    assert queued.exit_code == 0, queued.output
    tomorrow = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).replace(second=0, microsecond=0)
    scheduled = run(db, "send", "--to", user(2), "--at", _tokyo(tomorrow), "on time")
    assert scheduled.exit_code == 0, scheduled.output
    assert "`linepush worker` delivers them" in scheduled.output
    # A time a minute ago is still a scheduled send: it goes through the outbox, for the worker.
    just_past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    late = run(db, "send", "--to", user(3), "--at", just_past.isoformat(), "a bit late")
    assert late.exit_code == 0, late.output
    assert "`linepush worker` delivers them" in late.output
    rows = stored(db)
    assert [r.payload["to"] for r in rows] == [user(1), user(2), user(3)]
    assert rows[1].not_before == tomorrow.timestamp()
    assert {r.state for r in rows} == {"queued"}


@pytest.mark.parametrize("command", ["send", "queue add"])
def test_a_time_well_in_the_past_is_refused_with_the_time_read(db: str, command: str) -> None:
    yesterday = _tokyo(dt.datetime.now(dt.UTC) - dt.timedelta(days=1))
    for at in ("2020-01-01T00:00Z", yesterday):  # fixed date ok: long past, it stays past
        result = run(db, *command.split(), "--to", user(1), "--at", at, "hi")
        assert result.exit_code == 2, result.output
        assert "in the past" in result.output and "+15m" in result.output
    refused = run(db, "send", "--to", user(1), "--at", "2020-01-01T00:00Z", "x")  # fixed date ok
    assert "2020-01-01T00:00:00Z" in refused.output  # fixed date ok
    assert stored(db) == []


def test_send_refuses_bad_input_before_storing(db: str, tmp_path: Path) -> None:
    ids = tmp_path / "ids.txt"
    ids.write_text(f"{user(1)}\nnot-an-id\n")
    assert run(db, "send", "--to-file", str(ids), "hi").exit_code == 2
    assert run(db, "send", "--to", user(1), "--at", "whenever", "hi").exit_code == 2
    assert stored(db) == []


@pytest.mark.e2e
def test_send_to_file_delivers_through_the_outbox(live_emulator: Emulator, tmp_path: Path) -> None:
    admin = live_emulator.admin
    channel_id, _ = admin.create_channel()
    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join(user(i) for i in range(1100)))
    db = str(tmp_path / "send.db")
    env = {
        "LINE_CHANNEL_ID": channel_id,
        "LINE_CHANNEL_ACCESS_TOKEN": admin.long_lived_token(channel_id),
        "LINEPUSH_API_BASE": str(live_emulator.url),
    }
    result = run(db, "send", "--to-file", str(ids), "news", "-o", "json", env=env)
    assert result.exit_code == 0, result.output
    assert sorted(len(d["to"]) for d in admin.deliveries(channel_id)) == [100, 500, 500]
    assert [r.state for r in stored(db)] == ["delivered"] * 3


# -- the monthly limit ---------------------------------------------------------------------------------------


def _emulator_to_next_month(emulator: Emulator) -> None:
    """Move the emulator's clock into its next month (Japan time), whatever today is."""
    japan = dt.timezone(dt.timedelta(hours=9))
    now = dt.datetime.fromtimestamp(emulator.now(), japan)
    first = dt.datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=japan)
    emulator.admin.advance(first.timestamp() - now.timestamp() + 60)


@pytest.mark.e2e
def test_the_monthly_limit_pauses_the_channel_until_resumed(live_emulator: Emulator, tmp_path: Path) -> None:
    admin = live_emulator.admin
    channel_id, _ = admin.create_channel(monthly_quota=2)
    env = {
        "LINE_CHANNEL_ID": channel_id,
        "LINE_CHANNEL_ACCESS_TOKEN": admin.long_lived_token(channel_id),
        "LINEPUSH_API_BASE": str(live_emulator.url),
    }
    db = str(tmp_path / "m.db")
    for i in range(4):
        assert run(db, "send", "--queue", "--to", user(i), f"alert {i}", env=env).exit_code == Exit.OK
    result = run(db, "worker", "--once", "--concurrency", "1", env=env)
    assert result.exit_code == Exit.TRANSIENT, result.output
    assert "monthly message limit" in result.output and "paused until" in result.output
    rows = stored(db)
    assert [r.state for r in rows] == ["delivered", "delivered", "queued", "queued"]
    assert [r.attempts for r in rows[2:]] == [0, 0]
    status = run(db, "queue", "status", env=env)
    assert "paused until" in status.output and "monthly message limit" in status.output
    paused = json.loads(run(db, "queue", "status", "--json", env=env).output)
    assert paused["queued"] == 2 and paused["paused"][channel_id] > live_emulator.now()

    pushes = admin.count("/v2/bot/message/push")
    again = run(db, "worker", "--once", env=env)
    assert again.exit_code == Exit.TRANSIENT and "paused until" in again.output
    assert admin.count("/v2/bot/message/push") == pushes  # a paused channel sends nothing at all

    _emulator_to_next_month(live_emulator)
    resumed = run(db, "queue", "resume", env=env)
    assert resumed.exit_code == Exit.OK and "resumed" in resumed.output
    assert "paused" not in json.loads(run(db, "queue", "status", "--json", env=env).output)
    assert "not paused" in run(db, "queue", "resume", env=env).output
    done = run(db, "worker", "--once", "--json", env=env)
    assert done.exit_code == Exit.OK, done.output
    assert json.loads(done.output)["delivered"] == 2
    assert [r.state for r in stored(db)] == ["delivered"] * 4
    keys = [d["retry_key"] for d in admin.deliveries(channel_id)]
    assert len(keys) == len(set(keys)) == 4


@pytest.mark.e2e
def test_send_to_file_stops_at_the_monthly_limit_and_keeps_the_rows(
    live_emulator: Emulator, tmp_path: Path
) -> None:
    admin = live_emulator.admin
    channel_id, _ = admin.create_channel(monthly_quota=0)
    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join(user(i) for i in range(600)))
    env = {
        "LINE_CHANNEL_ID": channel_id,
        "LINE_CHANNEL_ACCESS_TOKEN": admin.long_lived_token(channel_id),
        "LINEPUSH_API_BASE": str(live_emulator.url),
    }
    db = str(tmp_path / "send.db")
    result = run(db, "send", "--to-file", str(ids), "news", "--yes", env=env)  # past what is left
    assert result.exit_code == Exit.TRANSIENT, result.output
    assert "monthly message limit" in result.output and "2 still queued" in result.output
    assert [(r.state, r.attempts) for r in stored(db)] == [("queued", 0)] * 2
    assert admin.deliveries(channel_id) == []


def test_worker_takes_the_reset_offset(db: str) -> None:
    bad = run(db, "worker", "--once", "--quota-reset-utc-offset", "20")
    assert bad.exit_code == 2 and "Traceback" not in bad.output


@pytest.mark.parametrize(
    "args",
    [
        ["queue", "status"],
        ["queue", "list"],
        ["queue", "retry"],
        ["queue", "purge"],
        ["gateway", "token", "list"],
        ["recipients", "list"],
    ],
)
def test_a_command_that_reads_the_store_makes_none_where_there_is_none(
    tmp_path: Path, args: list[str]
) -> None:
    """A mistyped --store is said, and read as the empty store it is: no file or directory is made."""
    missing = tmp_path / "nowhere" / "x.db"
    for extra in ([], ["--json"]):
        result = run(str(missing), *args, *extra)
        assert result.exit_code == Exit.OK, result.output
        assert f"there is no store at {missing}" in result.stderr and "Traceback" not in result.output
        assert not missing.parent.exists()
    assert json.loads(result.stdout) is not None
