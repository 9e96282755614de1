"""`linepush serve`'s alert settings: passed to the app, and refused at start-up when wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from linepush.cli import serve as serve_module
from linepush.service.store import gateway_store
from tests.service.test_cli import env, host_logging_untouched, run

__all__ = ["env", "host_logging_untouched"]

GRAFANA_SECRET = "shared-grafana-secret"


def test_serve_passes_the_alert_settings(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    served: dict[str, object] = {}
    monkeypatch.setattr(serve_module, "run_server", lambda app, *a, **k: served.update(app=app))
    monkeypatch.setenv("LINEPUSH_GRAFANA_HMAC_SECRET", GRAFANA_SECRET)
    code, out, err = run(
        "serve",
        "--port",
        "0",  # any free port: another program may hold the default
        "--alerts-dedupe-window",
        "60",
        "--alerts-time-zone",
        "Asia/Tokyo",
        "--grafana-timestamp-header",
        "X-Grafana-Alerting-Timestamp",
    )
    assert code == 0, err
    config = served["app"].state.alerts.config  # type: ignore[attr-defined]
    assert (config.dedupe_window, config.time_zone) == (60.0, "Asia/Tokyo")
    assert config.grafana_secret.reveal() == GRAFANA_SECRET
    assert config.grafana_timestamp_header == "X-Grafana-Alerting-Timestamp"
    assert "POST /alertmanager, POST /grafana" in err
    assert GRAFANA_SECRET not in out + err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--alerts-time-zone", "Mars/Olympus"), "unknown time zone 'Mars/Olympus'"),
        (("--grafana-timestamp-header", "X-Ts"), "needs Grafana's HMAC secret"),
    ],
)
def test_serve_refuses_wrong_alert_settings_at_start_up(
    env: Path, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...], message: str
) -> None:
    monkeypatch.setattr(serve_module, "run_server", lambda *a, **k: pytest.fail("must not serve"))
    code, _, err = run("serve", *args)
    assert code == 2 and message in err


GROUP = "C" + "ab" * 16
ROUTES = f"""
[recipients]
ops-room = "{GROUP}"

[alerts]
time_zone = "Asia/Tokyo"
dedupe_window = 120

[[alerts.routes]]
match = {{ severity = "critical" }}
to = "ops-room"

[[alerts.routes]]
match = {{ team = "db" }}
to = ["dba", "ops-room"]
"""


def test_serve_reads_routes_and_settings_from_the_file(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from linepush.store import SQLiteStore
    from tests.service.conftest import CHANNEL_ID, USER

    with SQLiteStore(env) as store:
        gateway_store(store).name_recipient(CHANNEL_ID, "dba", USER, 1.0)
    Path("linepush.toml").write_text(ROUTES, encoding="utf-8")
    served: dict[str, object] = {}
    monkeypatch.setattr(serve_module, "run_server", lambda app, *a, **k: served.update(app=app))
    code, _, err = run("serve", "--port", "0", "--alerts-dedupe-window", "30")
    assert code == 0, err
    config = served["app"].state.alerts.config  # type: ignore[attr-defined]
    assert (config.time_zone, config.dedupe_window) == ("Asia/Tokyo", 30.0)
    assert [(dict(r.match), r.to) for r in config.routes] == [
        ({"severity": "critical"}, (GROUP,)),
        ({"team": "db"}, (USER, GROUP)),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[alerts]\nzone = 1\n", "unknown settings ['zone']"),
        ("[alerts]\ndedupe_window = 'soon'\n", "'dedupe_window' has the wrong type"),
        ('[[alerts.routes]]\nto = "ops"\n', "'ops' is neither a recipient id"),
    ],
)
def test_serve_stops_on_a_bad_alerts_table(
    env: Path, monkeypatch: pytest.MonkeyPatch, text: str, message: str
) -> None:
    Path("linepush.toml").write_text(text, encoding="utf-8")
    monkeypatch.setattr(serve_module, "run_server", lambda *a, **k: pytest.fail("must not serve"))
    code, _, err = run("serve")
    assert code == 2 and message in err and "linepush.toml [alerts]" in err
