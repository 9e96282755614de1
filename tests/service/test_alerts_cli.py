"""`linepush serve`'s alert settings: passed to the app, and refused at start-up when wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from linepush.cli import serve as serve_module
from tests.service.test_cli import env, host_logging_untouched, run

__all__ = ["env", "host_logging_untouched"]

GRAFANA_SECRET = "shared-grafana-secret"


def test_serve_passes_the_alert_settings(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    served: dict[str, object] = {}
    monkeypatch.setattr(serve_module, "run_server", lambda app, *a, **k: served.update(app=app))
    monkeypatch.setenv("LINEPUSH_GRAFANA_HMAC_SECRET", GRAFANA_SECRET)
    code, out, err = run(
        "serve",
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
