"""`linepush alerts render` (a preview of what serve would send) and `linepush alerts test` (a sample pair
sent now), against the emulator."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import Cli
from tests.service.alert_fixtures import alertmanager_payload, am_alert, grafana_payload

GROUP = "C" + "ab" * 16
ROOM = "R" + "0" * 32


def write(name: str, text: str) -> Path:
    path = Path(name)
    path.write_text(text, encoding="utf-8")
    return path


def test_render_prints_the_default_texts_per_recipient(cli: Cli) -> None:
    write("am.json", json.dumps(alertmanager_payload()))
    result = cli("alerts", "render", "--payload", "am.json", "--to", GROUP)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"→ {GROUP}"
    assert lines[1] == "🔥 FIRING · 🔴 critical · HighLatency (1 firing)"


def test_render_follows_routes_and_templates_of_the_file(cli: Cli) -> None:
    write("short.j2", "{{ status }}: {{ alerts | length }} alert(s) for {{ receiver }}")
    write(
        "linepush.toml",
        f'[recipients]\nops-room = "{GROUP}"\ndba = "{ROOM}"\n\n[alerts.templates]\nshort = "short.j2"\n\n'
        '[[alerts.routes]]\nmatch = { team = "db" }\nto = ["dba", "ops-room"]\ntemplate = "short"\n',
    )
    payload = alertmanager_payload(am_alert(team="db", fingerprint="a" * 16), am_alert(fingerprint="b" * 16))
    write("am.json", json.dumps(payload))
    result = cli("alerts", "render", "--payload", "am.json", "--to", "ops-room", "--json")
    assert result.exit_code == 0, result.stderr
    planned = [(p["to"], [m["text"] for m in p["messages"]]) for p in json.loads(result.stdout)]
    assert planned[:2] == [
        (ROOM, ["firing: 1 alert(s) for linepush"]),
        (GROUP, ["firing: 1 alert(s) for linepush"]),
    ]
    assert planned[2][0] == GROUP and planned[2][1][0].startswith("🔥 FIRING")
    forced = cli("alerts", "render", "--payload", "am.json", "--template", "short", "--json")
    assert {m["text"] for p in json.loads(forced.stdout) for m in p["messages"]} == {
        "firing: 1 alert(s) for linepush"
    }


def test_render_a_grafana_payload_and_a_hook(cli: Cli) -> None:
    write("kuma.j2", "{{ monitor.name }} {{ 'up' if heartbeat.status else 'down' }}")
    write("linepush.toml", '[alerts.templates]\nkuma = "kuma.j2"\n[alerts.hooks.kuma]\ntemplate = "kuma"\n')
    write("grafana.json", json.dumps(grafana_payload()))
    result = cli("alerts", "render", "--payload", "grafana.json")
    assert result.exit_code == 0 and "🔥 FIRING (2 firing)" in result.stdout
    write("kuma.json", json.dumps({"monitor": {"name": "shop"}, "heartbeat": {"status": 0}}))
    result = cli("alerts", "render", "--payload", "kuma.json", "--hook", "kuma")
    assert result.exit_code == 0 and "shop down" in result.stdout


def test_render_refuses_bad_payloads_clearly(cli: Cli) -> None:
    write("bad.json", json.dumps({**alertmanager_payload(), "version": "3"}))
    result = cli("alerts", "render", "--payload", "bad.json")
    assert result.exit_code == 2 and 'version: must be "4"' in result.stderr
    result = cli("alerts", "render", "--payload", "missing.json")
    assert result.exit_code == 2 and "cannot be read" in result.stderr


def test_a_template_that_does_not_load_stops_at_start_up_with_file_and_line(cli: Cli) -> None:
    write("ops.j2", "ok\n{% if status %}\nno end")
    write("linepush.toml", '[alerts]\ntemplate = "ops"\n[alerts.templates]\nops = "ops.j2"\n')
    write("x.json", json.dumps(alertmanager_payload()))
    for command in (["alerts", "render", "--payload", "x.json"], ["serve"]):
        result = cli(*command)
        assert result.exit_code == 2
        assert f"template 'ops' ({Path('ops.j2').resolve()}, line 3): " in result.stderr.replace("\n", "")


def test_alerts_test_sends_a_firing_and_a_resolved_alert(cli: Cli) -> None:
    assert cli("recipients", "name", GROUP, "ops-room").exit_code == 0
    result = cli("alerts", "test", "--to", "ops-room", "--json")
    assert result.exit_code == 0, result.stderr
    assert [s["status"] for s in json.loads(result.stdout)] == ["firing", "resolved"]
    texts = [d["messages"][0]["text"] for d in cli.emulator.admin.deliveries(cli.channel_id, GROUP)]
    assert [t.splitlines()[0] for t in texts] == [
        "🔥 FIRING · 🔵 info · LinepushTest (1 firing)",
        "✅ RESOLVED · 🔵 info · LinepushTest (1 resolved)",
    ]


def test_the_readme_configuration_works_as_written(cli: Cli) -> None:
    import re

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    found = re.search(r"<!-- tested: alerts-toml -->\n```toml\n(.*?)```", readme, re.S)
    assert found is not None
    write("linepush.toml", found.group(1))
    Path("templates").mkdir()
    write("templates/short.j2", "{{ status }}: {% for a in alerts %}{{ a.labels.instance }} {% endfor %}")
    payload = alertmanager_payload(
        am_alert(instance="db1", fingerprint="a" * 16),
        am_alert(instance="db2", severity="warning", team="db", fingerprint="b" * 16),
        am_alert(instance="web1", severity="warning", fingerprint="c" * 16),
    )
    write("am.json", json.dumps(payload))
    result = cli("alerts", "render", "--payload", "am.json", "--to", "dba", "--json")
    assert result.exit_code == 0, result.stderr
    planned = [(p["to"], p["messages"][0]["text"]) for p in json.loads(result.stdout)]
    ops, dba = "C0123456789abcdef0123456789abcdef", "U0123456789abcdef0123456789abcdef"
    assert [to for to, _ in planned] == [ops, dba, ops, dba]
    assert "instance=db1" in planned[0][1] and "16:10 JST" in planned[0][1]
    assert planned[1][1] == planned[2][1] == "firing: db2"
    assert "web1" in planned[3][1]


def test_the_readme_route_tables_work_as_written(cli: Cli) -> None:
    import re

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    found = re.search(r"<!-- tested: alerts-route-tables -->\n```toml\n(.*?)```", readme, re.S)
    assert found is not None
    write("linepush.toml", found.group(1))
    made = cli("gateway", "token", "create", "--routes", "db-team", "--name", "db-alertmanager", "--json")
    assert made.exit_code == 0, made.stderr
    assert json.loads(made.stdout)["routes"] == "db-team"
    payload = alertmanager_payload(
        am_alert(instance="db1", fingerprint="a" * 16),
        am_alert(instance="db2", severity="warning", fingerprint="b" * 16),
    )
    write("am.json", json.dumps(payload))
    db_room, dba = "C0123456789abcdef0123456789abcdef", "U0123456789abcdef0123456789abcdef"
    result = cli("alerts", "render", "--payload", "am.json", "--routes", "db-team", "--json")
    assert result.exit_code == 0, result.stderr
    planned = [(p["to"], p["messages"][0]["text"]) for p in json.loads(result.stdout)]
    assert [to for to, _ in planned] == [dba, db_room, db_room]
    assert "db1" in planned[0][1] and "db2" not in planned[0][1] and "db2" in planned[2][1]
    web = cli("alerts", "render", "--payload", "am.json", "--routes", "web-team", "--json")
    assert [p["to"] for p in json.loads(web.stdout)] == ["Cfedcba9876543210fedcba9876543210"]
