"""`linepush send --digest` and `linepush queue add --digest`: each send merged into the recipient's digest,
queued for the worker, and what a digest cannot be refused before anything is stored."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tests.outbox.kit import user
from tests.outbox.test_queue_cli import _no_outside_config, db, run, stored

from linepush.cli.invocation import Exit

__all__ = ["_no_outside_config", "db"]


def texts_of(row: Any) -> list[str]:
    return [line.split("] ", 1)[1] for line in row.payload["messages"][0]["text"].splitlines()[1:]]


def test_sends_within_the_window_are_merged_into_one_queued_digest(db: str) -> None:
    for command, text in (("send", "disk 91%"), ("queue add", "disk 95%"), ("send", "disk full")):
        result = run(db, *command.split(), "--to", user(1), "--digest", "30s", text)
        assert result.exit_code == Exit.OK, result.output
    assert "merged into digest message(s) 1 (3 notifications)" in result.output
    assert "`linepush worker` delivers them" in result.output
    (row,) = stored(db)
    assert (row.state, row.kind, row.payload["to"]) == ("queued", "push", user(1))
    assert row.payload["messages"][0]["text"].startswith("🔔 3 notifications, ")
    assert texts_of(row) == ["disk 91%", "disk 95%", "disk full"]
    assert 29 <= row.not_before - row.created_at <= 30


def test_each_recipient_and_silent_sends_have_a_digest_of_their_own(db: str) -> None:
    run(db, "send", "--to", user(1), "--to", user(2), "--digest", "1m", "a")
    run(db, "send", "--to", user(1), "--digest", "1m", "--notification-disabled", "b")
    result = run(db, "queue", "add", "--to", user(2), "--digest", "1m", "c", "-o", "json")
    assert json.loads(result.output)["digests"][0]["notifications"] == 2
    rows = stored(db)
    assert [(r.payload["to"], r.payload.get("notificationDisabled", False)) for r in rows] == [
        (user(1), False),
        (user(2), False),
        (user(1), True),
    ]
    assert texts_of(rows[1]) == ["a", "c"]


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--digest", "0s"], "--digest: the window must be more than 0 seconds"),
        (["--digest", "soon"], "is not a window"),
        (["--digest", "30s", "--at", "+5m"], "not with --at"),
        (["--digest", "30s", "--broadcast"], "not with --broadcast"),
        (["--digest", "30s", "--retry-key", "1b4e28ba-2fa1-11d2-883f-0016d3cca427"], "drop --retry-key"),
    ],
)
@pytest.mark.parametrize("command", ["send", "queue add"])
def test_what_a_digest_cannot_be_is_refused_and_nothing_is_stored(
    db: str, command: str, args: list[str], said: str
) -> None:
    to = [] if "--broadcast" in args else ["--to", user(1)]
    result = run(db, *command.split(), *to, *args, "hi")
    assert result.exit_code == Exit.USAGE, result.output
    assert said in result.output and "Traceback" not in result.output
    assert stored(db) == []
