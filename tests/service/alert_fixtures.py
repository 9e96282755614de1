"""Alert payloads as Alertmanager (webhook version 4) and Grafana (webhook contact point) send them, built
from their published formats, and a gateway with the alert receivers for the tests."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from linepush.config import Channel
from linepush.service import GatewayConfig, create_gateway_app, create_gateway_token
from linepush.service.alerts import AlertsConfig
from linepush.store import OutboxMessage, Store
from tests.service.conftest import CHANNEL_ID, USER, Clock

#: Go's zero time: Alertmanager's endsAt of an alert that has not ended.
ZERO_TIME = "0001-01-01T00:00:00Z"


def am_alert(
    name: str = "HighLatency",
    *,
    status: str = "firing",
    instance: str = "db1:9100",
    fingerprint: str = "1a30ba71cca2921f",
    starts: str = "2026-11-27T07:10:00.828123456Z",  # fixed date ok: rendered, never compared with now
    ends: str = ZERO_TIME,
    **labels: str,
) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": name, "instance": instance, "severity": "critical", **labels},
        "annotations": {"summary": f"{name} on {instance}", "description": "p99 above 2 s for 5 minutes"},
        "startsAt": starts,
        "endsAt": ends,
        "generatorURL": "http://prometheus.example.test:9090/graph?g0.expr=latency%3E2",
        "fingerprint": fingerprint,
    }


def alertmanager_payload(*alerts: dict[str, Any], status: str | None = None) -> dict[str, Any]:
    chosen = list(alerts) or [am_alert()]
    overall = status or ("firing" if any(a["status"] == "firing" for a in chosen) else "resolved")
    common = {k: v for k, v in chosen[0]["labels"].items() if all(a["labels"].get(k) == v for a in chosen)}
    return {
        "version": "4",
        "groupKey": '{}:{alertname="HighLatency"}',
        "truncatedAlerts": 0,
        "status": overall,
        "receiver": "linepush",
        "groupLabels": {"alertname": chosen[0]["labels"]["alertname"]},
        "commonLabels": common,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example.test:9093",
        "alerts": chosen,
    }


#: Grafana's documented webhook body (its "Webhook JSON payload" example), as Grafana 11 and later send it.
GRAFANA_PAYLOAD: dict[str, Any] = {
    "receiver": "My Super Webhook",
    "status": "firing",
    "orgId": 1,
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "High memory usage", "team": "blue", "zone": "us-1"},
            "annotations": {
                "description": "The system has high memory usage",
                "runbook_url": "https://myrunbook.com/runbook/1234",
                "summary": "This alert was triggered for zone us-1",
            },
            "startsAt": "2021-10-12T09:51:03.157076+02:00",  # fixed date ok: Grafana's own example
            "endsAt": ZERO_TIME,
            "generatorURL": "https://play.grafana.org/alerting/1afz29v7z/edit",
            "fingerprint": "c6eadffa33fcdf37",
            "silenceURL": "https://play.grafana.org/alerting/silence/new?alertmanager=grafana&matchers=alertname%3DT2%2Cteam%3Dblue%2Czone%3Dus-1",
            "dashboardURL": "",
            "panelURL": "",
            "values": {"B": 44.23943737541908, "C": 1},
        },
        {
            "status": "firing",
            "labels": {"alertname": "High CPU usage", "team": "blue", "zone": "eu-1"},
            "annotations": {
                "description": "The system has high CPU usage",
                "runbook_url": "https://myrunbook.com/runbook/1234",
                "summary": "This alert was triggered for zone eu-1",
            },
            "startsAt": "2021-10-12T09:56:03.157076+02:00",  # fixed date ok: Grafana's own example
            "endsAt": ZERO_TIME,
            "generatorURL": "https://play.grafana.org/alerting/d1rdpdv7k/edit",
            "fingerprint": "bc97ff14869b13e3",
            "silenceURL": "https://play.grafana.org/alerting/silence/new?alertmanager=grafana&matchers=alertname%3DT1%2Cteam%3Dblue%2Czone%3Deu-1",
            "dashboardURL": "https://play.grafana.org/d/abc123",
            "panelURL": "https://play.grafana.org/d/abc123?viewPanel=4",
            "imageURL": "https://play.grafana.org/public/img/alert.png",
            "values": {"B": 0.5, "C": 1},
        },
    ],
    "groupLabels": {},
    "commonLabels": {"team": "blue"},
    "commonAnnotations": {},
    "externalURL": "https://play.grafana.org/",
    "version": "1",
    "groupKey": '{}:{alertname="High memory usage"}',
    "truncatedAlerts": 0,
    "title": "[FIRING:2]  (blue)",
    "state": "alerting",
    "message": "**Firing**\n\nLabels:\n - alertname = T2\n - team = blue\n - zone = us-1",
}


def grafana_payload() -> dict[str, Any]:
    return copy.deepcopy(GRAFANA_PAYLOAD)


@dataclass
class AlertGateway:
    app: Starlette
    store: Store
    clock: Clock
    client: TestClient

    def token(self, to: str = USER) -> str:
        secret, _ = create_gateway_token(self.store, CHANNEL_ID, to, "alerts", self.clock())
        return secret.reveal()

    def routes_token(self, table: str) -> str:
        """A token bound to the route table ``table`` instead of a recipient."""
        secret, _ = create_gateway_token(
            self.store, CHANNEL_ID, None, f"alerts {table}", self.clock(), route_table=table
        )
        return secret.reveal()

    def queued(self) -> list[OutboxMessage]:
        return self.store.list_messages(state="queued")

    def texts(self) -> list[list[str]]:
        return [[m["text"] for m in row.payload["messages"]] for row in self.queued()]


def make_alert_gateway(store: Store, channel: Channel, clock: Clock, **alerts: Any) -> AlertGateway:
    app = create_gateway_app(store, channel, GatewayConfig(), clock=clock, alerts=AlertsConfig(**alerts))
    return AlertGateway(app, store, clock, TestClient(app, raise_server_exceptions=False))


@contextmanager
def alert_gateway(store: Store, channel: Channel, clock: Clock, **alerts: Any) -> Iterator[AlertGateway]:
    """A gateway with the alert receivers configured by ``alerts``, its test client open."""
    made = make_alert_gateway(store, channel, clock, **alerts)
    with made.client:
        yield made
