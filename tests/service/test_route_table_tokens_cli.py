"""Gateway tokens bound to a route table of linepush.toml: `gateway token create --routes`, `token list`,
`alerts render --routes`, and `serve` refusing to start with a token whose table the file lacks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from linepush.cli import serve as serve_module
from linepush.service.store import gateway_store
from linepush.store import SQLiteStore
from tests.service.conftest import GROUP, USER
from tests.service.test_cli import env, host_logging_untouched, run

__all__ = ["env", "host_logging_untouched"]

ROOM = "R" + "0" * 32
TABLES = f"""
[recipients]
ops-room = "{GROUP}"
dba = "{USER}"

[[alerts.route_tables.db-team.routes]]
match = {{ severity = "critical" }}
to = ["dba", "ops-room"]

[alerts.route_tables.db-team]
default = "ops-room"

[alerts.route_tables.web-team]
default = {{ to = "{ROOM}" }}
"""


@pytest.fixture
def tables(env: Path) -> Path:
    Path("linepush.toml").write_text(TABLES, encoding="utf-8")
    return env


def test_create_a_token_for_a_route_table(tables: Path) -> None:
    code, _, err = run("gateway", "token", "create", "--routes", "db-team", "--name", "db")
    assert code == 0, err
    assert "for route table db-team created" in err
    with SQLiteStore(tables) as store:
        [token] = gateway_store(store).list_gateway_tokens()
    assert (token.recipient_id, token.route_table, token.name) == (None, "db-team", "db")
    made = json.loads(run("gateway", "token", "create", "--routes", "web-team", "--json")[1])
    assert (made["to"], made["routes"], made["target_type"]) == (None, "web-team", "ROUTES")


def test_token_list_shows_the_table(tables: Path) -> None:
    run("gateway", "token", "create", "--routes", "db-team", "--name", "db")
    run("gateway", "token", "create", "--to", GROUP, "--name", "ops")
    code, out, err = run("gateway", "token", "list")
    assert code == 0 and "warning" not in err
    header, first, second = out.splitlines()
    assert header.split()[:5] == ["ID", "CHANNEL", "TO", "ROUTES", "TYPE"]
    assert first.split()[2:6] == ["-", "db-team", "ROUTES", "db"]
    assert second.split()[2:6] == [GROUP, "-", "GROUP", "ops"]
    listed = json.loads(run("gateway", "token", "list", "--json")[1])
    assert [(t["to"], t["routes"]) for t in listed] == [(None, "db-team"), (GROUP, None)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--routes", "ops-team"),
            "linepush.toml defines no [alerts.route_tables.ops-team]",
        ),
        (("--routes", "db-team", "--to", GROUP), "give --to ID"),
        ((), "give --to ID"),
    ],
)
def test_create_refuses_a_table_the_file_lacks_and_a_wrong_binding(
    tables: Path, args: tuple[str, ...], message: str
) -> None:
    code, out, err = run("gateway", "token", "create", *args)
    assert code == 2 and message in err and out == ""
    if args[:2] == ("--routes", "ops-team"):
        assert "route tables: db-team, web-team" in err
    with SQLiteStore(tables) as store:
        assert gateway_store(store).list_gateway_tokens() == []


def test_create_refuses_when_the_tables_are_broken(env: Path) -> None:
    Path("linepush.toml").write_text("[alerts.route_tables.db-team]\nroutes = []\n", encoding="utf-8")
    code, _, err = run("gateway", "token", "create", "--routes", "db-team")
    assert code == 2 and "route_tables.db-team: needs default = recipients" in err


def test_serve_refuses_to_start_with_a_token_whose_table_is_gone(
    tables: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run("gateway", "token", "create", "--routes", "web-team", "--name", "web")[0] == 0
    assert run("gateway", "token", "create", "--routes", "db-team")[0] == 0
    Path("linepush.toml").write_text(TABLES.split("[alerts.route_tables.web-team]")[0], encoding="utf-8")
    monkeypatch.setattr(serve_module, "run_server", lambda *a, **k: pytest.fail("must not serve"))
    code, _, err = run("serve", "--port", "0")
    assert code == 2, err
    assert "gateway token 1 (web) is bound to route table 'web-team'" in err
    assert "does not define" in err and "[alerts.route_tables.web-team]" in err
    assert "Traceback" not in err
    code, _, err = run("gateway", "token", "list")
    assert "warning: gateway token 1 is bound to route table 'web-team'" in err
    # Once the token is revoked, nothing is lost by serving.
    assert run("gateway", "token", "revoke", "1")[0] == 0
    served: dict[str, object] = {}
    monkeypatch.setattr(serve_module, "run_server", lambda app, *a, **k: served.update(app=app))
    code, _, err = run("serve", "--port", "0")
    assert code == 0, err
    config = served["app"].state.alerts.config  # type: ignore[attr-defined]
    assert list(config.route_tables) == ["db-team"]
    table = config.route_tables["db-team"]
    assert [r.to for r in table.routes] == [(USER, GROUP)] and table.default.to == (GROUP,)


def test_alerts_render_routes_as_a_tokens_table_would(tables: Path) -> None:
    payload = {
        "version": "4",
        "status": "firing",
        "receiver": "line",
        "groupKey": "{}:{}",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "Disk", "severity": "critical"},
                "annotations": {},
                "startsAt": "2026-11-27T07:10:00Z",  # fixed date ok
            }
        ],
    }
    Path("am.json").write_text(json.dumps(payload), encoding="utf-8")
    code, out, err = run("alerts", "render", "--payload", "am.json", "--routes", "db-team", "--json")
    assert code == 0, err
    assert [p["to"] for p in json.loads(out)] == [USER, GROUP]
    code, out, err = run("alerts", "render", "--payload", "am.json", "--routes", "web-team", "--json")
    assert [p["to"] for p in json.loads(out)] == [ROOM]
    code, _, err = run("alerts", "render", "--payload", "am.json", "--routes", "nope")
    assert code == 2 and "no route table named 'nope' (route tables: db-team, web-team)" in err
