"""Recipient names: `linepush recipients name|unname`, `[recipients]` in linepush.toml, and names wherever
`--to` takes an id."""

from __future__ import annotations

import json
from pathlib import Path

from linepush.service.store import gateway_store
from linepush.store import SQLiteStore
from tests.service.conftest import CHANNEL_ID, GROUP, USER
from tests.service.test_cli import env, host_logging_untouched, run

__all__ = ["env", "host_logging_untouched"]


def test_a_stored_name_works_as_to(env: Path) -> None:
    code, _, err = run("recipients", "name", GROUP, "ops-room")
    assert code == 0, err
    assert "ops-room is now " + GROUP in err
    code, _, err = run("gateway", "token", "create", "--to", "ops-room", "--json")
    assert code == 0, err
    code, _, _ = run("queue", "add", "--to", "ops-room", "disk full")
    assert code == 0
    with SQLiteStore(env) as store:
        [token] = gateway_store(store).list_gateway_tokens()
        [row] = store.list_messages()
    assert token.recipient_id == GROUP
    assert row.payload["to"] == GROUP


def test_names_in_the_file_and_in_the_store(env: Path) -> None:
    Path("linepush.toml").write_text(f'[recipients]\ndba = "{USER}"\n', encoding="utf-8")
    run("recipients", "name", GROUP, "ops-room")
    for to in ("dba", "ops-room"):
        code, _, err = run("queue", "add", "--to", to, "vacuum")
        assert code == 0, err
    with SQLiteStore(env) as store:
        assert [r.payload["to"] for r in store.list_messages()] == [USER, GROUP]
    code, out, _ = run("recipients", "list", "--json")
    assert code == 0
    assert sorted((r["id"], r["names"]) for r in json.loads(out)) == sorted(
        [(USER, ["dba"]), (GROUP, ["ops-room"])]
    )


def test_a_default_to_may_be_a_name(env: Path) -> None:
    Path("linepush.toml").write_text(f'to = "dba"\n[recipients]\ndba = "{USER}"\n', encoding="utf-8")
    assert run("queue", "add", "hello")[0] == 0
    with SQLiteStore(env) as store:
        assert [r.payload["to"] for r in store.list_messages()] == [USER]


def test_unname(env: Path) -> None:
    run("recipients", "name", GROUP, "ops-room")
    assert run("recipients", "unname", "ops-room")[0] == 0
    code, _, err = run("recipients", "unname", "ops-room")
    assert code == 2 and "no recipient named 'ops-room'" in err and "recipients list" in err
    with SQLiteStore(env) as store:
        assert gateway_store(store).recipient_names(CHANNEL_ID) == {}


def test_bad_names_and_ids_are_refused_clearly(env: Path) -> None:
    code, _, err = run("recipients", "name", GROUP, "ops room")
    assert code == 2 and "name: must be 1 to 64 letters" in err
    code, _, err = run("recipients", "name", "C123", "ops")
    assert code == 2 and "must be a user ID (U...)" in err
    # An unknown name is not an id either: the id check says what an id looks like.
    code, _, err = run("queue", "add", "--to", "nobody", "x")
    assert code == 2 and "user ID (U...)" in err


def test_a_bad_recipients_table_names_the_file(env: Path) -> None:
    Path("linepush.toml").write_text('[recipients]\nops = "C123"\n', encoding="utf-8")
    code, _, err = run("queue", "add", "--to", "ops", "x")
    assert code == 2
    assert "linepush.toml [recipients] 'ops': recipient_id must be a user ID" in err
