"""Property-based fuzzing of the alert receivers (/alertmanager, /grafana, /hooks/{name}), in-process: never
a 5xx, always a JSON answer with a status and a message, what is queued is what the answer says (and within
LINE's limits), and nothing is queued without a token or, for Grafana, without the right signature."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from linepush._secret import Secret
from linepush.config import Channel
from linepush.messages import utf16_len
from linepush.service.alert_templates import AlertTemplates
from linepush.service.alerts import Hook, grafana_signature
from linepush.store import SQLiteStore
from tests.service.alert_fixtures import (
    AlertGateway,
    alert_gateway,
    alertmanager_payload,
    am_alert,
    grafana_payload,
)
from tests.service.conftest import CHANNEL_ID, SECRET, Clock
from tests.service.test_fuzz import header_text, latin1

FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
HMAC_SECRET = "fuzzing-secret"
TIMESTAMP_HEADER = "X-Grafana-Alerting-Timestamp"

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | st.sampled_from(
        ["firing", "resolved", "4", "1", "0001-01-01T00:00:00Z", "2026-11-27T07:10:00.1234567891Z"]
    ),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
TOP_FIELDS = [
    "version",
    "groupKey",
    "status",
    "receiver",
    "groupLabels",
    "commonLabels",
    "commonAnnotations",
    "externalURL",
    "truncatedAlerts",
    "alerts",
    "orgId",
    "title",
    "message",
]
ALERT_FIELDS = [
    "status",
    "labels",
    "annotations",
    "startsAt",
    "endsAt",
    "generatorURL",
    "fingerprint",
    "values",
    "dashboardURL",
    "silenceURL",
]
# Changes to a valid payload: (where, key, new value or None to delete it).
changes = st.lists(
    st.tuples(
        st.sampled_from(["top", "alert"]), st.sampled_from(TOP_FIELDS + ALERT_FIELDS), st.none() | json_values
    ),
    max_size=4,
)


def mutate(payload: dict[str, Any], edits: list[tuple[str, str, Any]]) -> dict[str, Any]:
    changed = copy.deepcopy(payload)
    for where, key, value in edits:
        alerts = changed.get("alerts")
        target = changed if where == "top" else alerts[0] if isinstance(alerts, list) and alerts else None
        if not isinstance(target, dict):
            continue  # an earlier change took the alerts away
        if value is None:
            target.pop(key, None)
        else:
            target[key] = value
    return changed


@pytest.fixture
def fuzzed(tmp_path: Path) -> Iterator[tuple[AlertGateway, str]]:
    zone = ZoneInfo("UTC")
    templates = AlertTemplates(
        {
            "echo": ("echo.j2", "{{ body }}"),
            "fields": ("fields.j2", "{{ title }}: {{ alerts[0].labels.alertname }} {{ message | upper }}"),
        },
        zone,
    )
    with (
        SQLiteStore(tmp_path / "fuzz.db") as store,
        alert_gateway(
            store,
            Channel(CHANNEL_ID, SECRET),
            Clock(),
            max_body=64 * 1024,
            templates=templates,
            grafana_secret=Secret(HMAC_SECRET),
            grafana_timestamp_header=TIMESTAMP_HEADER,
            hooks={"echo": Hook("echo"), "fields": Hook("fields")},
        ) as gateway,
    ):
        yield gateway, gateway.token()


def next_window(gateway: AlertGateway) -> None:
    """Past the dedupe window of the examples before, so each one's payload is new (when it is valid)."""
    gateway.clock.advance(601)


def count(gateway: AlertGateway) -> int:
    return sum(gateway.store.counts().values())


def check(gateway: AlertGateway, before: int, answer: Any) -> None:
    """The answer's shape, and that exactly what it says was queued is, within LINE's limits."""
    event(f"status {answer.status_code}")
    assert answer.status_code < 500, answer.text
    body = answer.json()
    assert body["status"] == answer.status_code and isinstance(body["message"], str)
    assert "Traceback" not in answer.text and HMAC_SECRET not in answer.text
    queued = body.get("queued", 0) if answer.status_code == 200 else 0
    if answer.status_code == 200:
        event("duplicate" if body.get("duplicate") else f"queued {queued}")
    rows = gateway.store.list_messages(after_id=before) if queued else []
    assert count(gateway) == before + queued
    for row in rows:
        messages = row.payload["messages"]
        assert 1 <= len(messages) <= 5
        assert all(m["type"] == "text" and 1 <= utf16_len(m["text"]) <= 5000 for m in messages)


def signed(body: bytes, now: float) -> dict[str, str]:
    stamp = str(int(now))
    return {
        TIMESTAMP_HEADER: stamp,
        "X-Grafana-Alerting-Signature": grafana_signature(HMAC_SECRET, body, stamp),
    }


def last_id(gateway: AlertGateway) -> int:
    rows = gateway.store.list_messages()
    return rows[-1].id if rows else 0


@FUZZ
@given(
    edits=changes,
    many=st.integers(min_value=0, max_value=40),
    text=st.text(max_size=300),
)
def test_alertmanager_payloads(fuzzed: tuple[AlertGateway, str], edits: Any, many: int, text: str) -> None:
    gateway, token = fuzzed
    next_window(gateway)
    alerts = [am_alert(instance=f"{text[:40]}-{i}", fingerprint=f"{i:016x}") for i in range(many + 1)]
    alerts[0]["annotations"]["description"] = text * 30
    payload = mutate(alertmanager_payload(*alerts), edits)
    before, after = count(gateway), last_id(gateway)
    answer = gateway.client.post(
        "/alertmanager", content=json.dumps(payload), headers={"Authorization": f"Bearer {token}"}
    )
    check(gateway, before, answer)
    assert after <= last_id(gateway)


@FUZZ
@given(edits=changes, sign=st.sampled_from(["right", "wrong", "none", "stale"]))
def test_grafana_payloads_and_signatures(fuzzed: tuple[AlertGateway, str], edits: Any, sign: str) -> None:
    gateway, token = fuzzed
    next_window(gateway)
    body = json.dumps(mutate(grafana_payload(), edits)).encode()
    now = gateway.clock()
    headers = {"Authorization": f"Bearer {token}"}
    if sign == "right":
        headers.update(signed(body, now))
    elif sign == "wrong":
        headers.update(signed(body + b" ", now))
    elif sign == "stale":
        headers.update(signed(body, now - 301))
    before = count(gateway)
    answer = gateway.client.post("/grafana", content=body, headers=headers)
    check(gateway, before, answer)
    if sign != "right":
        assert answer.status_code == 401


@FUZZ
@given(
    path=st.sampled_from(["/alertmanager", "/grafana", "/hooks/echo", "/hooks/fields", "/hooks/none"]),
    body=st.one_of(st.binary(max_size=300), json_values.map(lambda v: json.dumps(v).encode())),
    content_type=st.one_of(
        st.none(),
        header_text,
        st.sampled_from(
            [
                "application/json",
                "application/x-www-form-urlencoded",
                "multipart/form-data; boundary=x",
                "text/plain",
            ]
        ),
    ),
)
def test_raw_bodies_on_every_receiver(
    fuzzed: tuple[AlertGateway, str], path: str, body: bytes, content_type: str | None
) -> None:
    gateway, token = fuzzed
    headers = {"Authorization": f"Bearer {token}"}
    if content_type is not None:
        headers["Content-Type"] = content_type
    if path == "/grafana":
        headers.update(signed(body, gateway.clock()))
    before = count(gateway)
    answer = gateway.client.post(path, content=body, headers=latin1(headers))
    check(gateway, before, answer)


@FUZZ
@given(
    authorization=st.one_of(st.none(), header_text, st.builds(lambda t: "Bearer " + t, header_text)),
    path=st.sampled_from(["/alertmanager", "/grafana", "/hooks/echo", "/hooks/none"]),
)
def test_nothing_is_queued_without_the_token(
    fuzzed: tuple[AlertGateway, str], authorization: str | None, path: str
) -> None:
    gateway, token = fuzzed
    if authorization is not None and authorization.strip().lower() == f"bearer {token}".lower():
        return  # drew the real token
    body = json.dumps(grafana_payload() if path == "/grafana" else alertmanager_payload()).encode()
    headers = {} if authorization is None else {"Authorization": authorization}
    headers.update(signed(body, gateway.clock()))
    before = count(gateway)
    answer = gateway.client.post(path, content=body, headers=latin1(headers))
    check(gateway, before, answer)
    assert answer.status_code == 401
