"""POST /alertmanager and POST /grafana in-process: authentication, what is queued, the texts, dedupe of the
sender's retries, and the answers to payloads that can never work."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from linepush.config import Channel
from linepush.messages import utf16_len
from linepush.service.alerts import grafana_signature
from linepush.service.store import gateway_store
from linepush.store import Store, StoreError
from tests.service.alert_fixtures import (
    AlertGateway,
    alert_gateway,
    alertmanager_payload,
    am_alert,
    grafana_payload,
    make_alert_gateway,
)
from tests.service.conftest import GROUP, USER, Clock

HMAC_SECRET = "grafana-shared-secret"


@pytest.fixture
def gw(store: Store, channel: Channel, clock: Clock) -> Iterator[AlertGateway]:
    with alert_gateway(store, channel, clock, time_zone="Asia/Tokyo") as made:
        yield made


def post(gw: AlertGateway, path: str, payload: Any, token: str | None, **headers: str) -> Any:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return gw.client.post(path, content=body, headers={"Content-Type": "application/json", **headers})


def test_a_firing_alert_is_queued_as_one_push_to_the_tokens_recipient(gw: AlertGateway) -> None:
    answer = post(gw, "/alertmanager", alertmanager_payload(), gw.token())
    assert (answer.status_code, answer.json()) == (200, {"status": 200, "message": "ok", "queued": 1})
    [row] = gw.queued()
    assert row.payload["to"] == USER
    [[text]] = gw.texts()
    assert text.startswith("🔥 FIRING · 🔴 critical · HighLatency (1 firing)")
    assert "HighLatency on db1:9100" in text and "p99 above 2 s for 5 minutes" in text
    # 07:10 UTC is 16:10 in Tokyo, the configured zone.
    assert "since 2026-11-27 16:10 JST" in text
    assert "source: http://prometheus.example.test:9090/graph?g0.expr=latency%3E2" in text


def test_firing_and_resolved_are_told_apart(gw: AlertGateway) -> None:
    token = gw.token()
    resolved = am_alert(status="resolved", ends="2026-11-27T07:20:00Z")
    post(gw, "/alertmanager", alertmanager_payload(resolved), token)
    [[text]] = gw.texts()
    assert text.startswith("✅ RESOLVED · 🔴 critical · HighLatency (1 resolved)")
    assert "resolved 2026-11-27 16:20 JST" in text


def test_a_group_shows_the_labels_that_differ_firing_first(gw: AlertGateway) -> None:
    payload = alertmanager_payload(
        am_alert(status="resolved", instance="db2:9100", fingerprint="b" * 16, ends="2026-11-27T07:20:00Z"),
        am_alert(instance="db1:9100", fingerprint="a" * 16),
    )
    post(gw, "/alertmanager", payload, gw.token())
    [[text]] = gw.texts()
    assert "(1 firing, 1 resolved)" in text.splitlines()[0]
    assert text.index("🔥 HighLatency\ninstance=db1:9100") < text.index("✅ HighLatency\ninstance=db2:9100")


@pytest.mark.parametrize("token", [None, "not-a-token", "x" * 43])
def test_no_or_a_wrong_token_is_401_and_nothing_is_queued(gw: AlertGateway, token: str | None) -> None:
    gw.token()
    for path, payload in (("/alertmanager", alertmanager_payload()), ("/grafana", grafana_payload())):
        answer = post(gw, path, payload, token)
        assert (answer.status_code, answer.json()["message"]) == (401, "Invalid access token")
    assert gw.queued() == []


def test_a_revoked_token_is_401(gw: AlertGateway) -> None:
    token = gw.token()
    [record] = gateway_store(gw.store).list_gateway_tokens()
    gateway_store(gw.store).revoke_gateway_token(record.id, gw.clock())
    assert post(gw, "/alertmanager", alertmanager_payload(), token).status_code == 401
    assert gw.queued() == []


def test_the_senders_retry_within_the_window_is_not_queued_again(gw: AlertGateway) -> None:
    token = gw.token()
    payload = alertmanager_payload()
    assert post(gw, "/alertmanager", payload, token).json()["queued"] == 1
    gw.clock.advance(599)
    again = post(gw, "/alertmanager", payload, token)
    assert (again.status_code, again.json()) == (
        200,
        {"status": 200, "message": "ok", "queued": 0, "duplicate": True},
    )
    assert len(gw.queued()) == 1
    # Alertmanager's repeat_interval sends the same group again much later: that one is delivered.
    gw.clock.advance(2)
    assert post(gw, "/alertmanager", payload, token).json()["queued"] == 1
    assert len(gw.queued()) == 2


def test_a_changed_group_is_a_new_notification(gw: AlertGateway) -> None:
    token = gw.token()
    first = am_alert(fingerprint="a" * 16)
    post(gw, "/alertmanager", alertmanager_payload(first), token)
    # An alert joins the group.
    post(
        gw,
        "/alertmanager",
        alertmanager_payload(first, am_alert(instance="db2", fingerprint="b" * 16)),
        token,
    )
    # The first resolves.
    resolved = {**first, "status": "resolved", "endsAt": "2026-11-27T07:30:00Z"}
    post(gw, "/alertmanager", alertmanager_payload(resolved), token)
    # The same alert firing again later (a new startsAt) is new too.
    post(gw, "/alertmanager", alertmanager_payload({**first, "startsAt": "2026-11-27T08:00:00Z"}), token)
    assert len(gw.queued()) == 4


def test_two_tokens_dedupe_apart(gw: AlertGateway) -> None:
    payload = alertmanager_payload()
    post(gw, "/alertmanager", payload, gw.token(USER))
    post(gw, "/alertmanager", payload, gw.token(GROUP))
    assert sorted(row.payload["to"] for row in gw.queued()) == sorted([USER, GROUP])


def test_a_window_of_zero_turns_dedupe_off(store: Store, channel: Channel, clock: Clock) -> None:
    made = make_alert_gateway(store, channel, clock, dedupe_window=0)
    with made.client:
        token = made.token()
        for _ in range(2):
            assert post(made, "/alertmanager", alertmanager_payload(), token).json()["queued"] == 1
    assert len(made.queued()) == 2


def test_a_failing_store_is_503_and_the_retry_is_then_taken(
    gw: AlertGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = gw.token()
    real = gw.store.enqueue

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise StoreError("database is locked")

    monkeypatch.setattr(gw.store, "enqueue", broken)
    answer = post(gw, "/alertmanager", alertmanager_payload(), token)
    assert answer.status_code == 503
    assert "try again later" in answer.json()["message"]
    monkeypatch.setattr(gw.store, "enqueue", real)
    # The failed attempt left no dedupe mark behind: the retry is queued.
    assert post(gw, "/alertmanager", alertmanager_payload(), token).json()["queued"] == 1


def test_a_retry_while_the_notification_is_being_queued_gets_503_then_goes_through(gw: AlertGateway) -> None:
    from linepush.service.alert_payloads import parse_alertmanager

    token = gw.token()
    [record] = gateway_store(gw.store).list_gateway_tokens()
    payload = alertmanager_payload()
    # What a process that died while queueing this notification leaves behind: its pending lease.
    key = f"{record.id}:{parse_alertmanager(payload).identity()}"
    assert gw.store.try_lock(f"alerts-pending:{key}", "a-crashed-process", 30.0, gw.clock())
    answer = post(gw, "/alertmanager", payload, token)
    assert answer.status_code == 503 and "try again shortly" in answer.json()["message"]
    assert gw.queued() == []
    gw.clock.advance(30.5)
    assert post(gw, "/alertmanager", payload, token).json()["queued"] == 1


def test_a_mark_that_cannot_be_kept_costs_a_duplicate_never_the_alert(
    gw: AlertGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = gw.token()
    real = gw.store.try_lock

    def failing_long_marks(name: str, owner: str, ttl: float, now: float) -> bool:
        if name.startswith("alerts:") and ttl > 1:
            raise StoreError("disk I/O error")
        return real(name, owner, ttl, now)

    monkeypatch.setattr(gw.store, "try_lock", failing_long_marks)
    answer = post(gw, "/alertmanager", alertmanager_payload(), token)
    assert (answer.status_code, answer.json()["queued"]) == (200, 1)
    monkeypatch.setattr(gw.store, "try_lock", real)
    gw.clock.advance(1)
    # With no mark the sender's retry is queued again: one duplicate, and nothing lost.
    assert post(gw, "/alertmanager", alertmanager_payload(), token).json()["queued"] == 1


def test_marks_past_their_window_are_deleted_as_notifications_come(gw: AlertGateway) -> None:
    def marks() -> int:
        return int(gw.store._connection().execute("SELECT count(*) FROM locks").fetchone()[0])  # type: ignore[attr-defined]

    token = gw.token()
    for index in range(3):
        post(gw, "/alertmanager", alertmanager_payload(am_alert(fingerprint=f"{index:016x}")), token)
    assert marks() == 3  # one per notification, for its window; the pending leases are gone
    gw.clock.advance(3601)
    post(gw, "/alertmanager", alertmanager_payload(am_alert(fingerprint="f" * 16)), token)
    assert marks() == 1


def _without(payload: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if k != key}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "the body is not JSON"),
        (b"[]", "the body must be a JSON object"),
        (json.dumps({**alertmanager_payload(), "version": "3"}).encode(), 'version: must be "4"'),
        (json.dumps(_without(alertmanager_payload(), "version")).encode(), 'version: must be "4"'),
        (json.dumps(_without(alertmanager_payload(), "groupKey")).encode(), "groupKey: must be a string"),
        (json.dumps({**alertmanager_payload(), "alerts": []}).encode(), "alerts: must be a non-empty array"),
        (json.dumps({**alertmanager_payload(), "status": "ok"}).encode(), 'status: must be "firing"'),
        (
            json.dumps({**alertmanager_payload(), "alerts": [{**am_alert(), "labels": {"a": 1}}]}).encode(),
            "alerts[0].labels: must be an object of strings",
        ),
        (
            json.dumps(
                {**alertmanager_payload(), "alerts": [{**am_alert(), "startsAt": "yesterday"}]}
            ).encode(),
            "alerts[0].startsAt: must be an RFC 3339 time",
        ),
    ],
)
def test_payloads_that_can_never_work_are_400_with_the_reason(
    gw: AlertGateway, body: bytes, message: str
) -> None:
    answer = post(gw, "/alertmanager", body, gw.token())
    assert answer.status_code == 400
    assert answer.json()["message"].startswith(message)
    assert gw.queued() == []


def test_a_body_over_the_limit_is_413(store: Store, channel: Channel, clock: Clock) -> None:
    made = make_alert_gateway(store, channel, clock, max_body=2000)
    with made.client:
        big = alertmanager_payload(*(am_alert(fingerprint=f"{i:016x}", instance=f"h{i}") for i in range(20)))
        answer = post(made, "/alertmanager", big, made.token())
        assert answer.status_code == 413
        assert made.queued() == []


def test_a_group_too_big_for_one_push_ends_with_and_n_more(gw: AlertGateway) -> None:
    alerts = [
        {
            **am_alert(fingerprint=f"{i:016x}", instance=f"host-{i}"),
            "annotations": {"description": "🍎" * 300},
        }
        for i in range(200)
    ]
    payload = {**alertmanager_payload(*alerts), "truncatedAlerts": 50}
    assert post(gw, "/alertmanager", payload, gw.token()).status_code == 200
    [texts] = gw.texts()
    assert len(texts) == 5
    assert all(utf16_len(text) <= 5000 for text in texts)
    shown = sum(text.count("🔥 HighLatency") for text in texts)
    last = texts[-1].splitlines()
    assert last[-2:] == [f"… and {200 - shown + 50} more", "http://alertmanager.example.test:9093"]


def test_one_huge_annotation_is_cut_to_fit(gw: AlertGateway) -> None:
    alert = {**am_alert(), "annotations": {"summary": "x" * 20_000}}
    assert post(gw, "/alertmanager", alertmanager_payload(alert), gw.token()).status_code == 200
    [texts] = gw.texts()
    assert all(utf16_len(text) <= 5000 for text in texts)
    assert "…" in texts[0]


# -- Grafana -------------------------------------------------------------------------------------------------


def test_grafanas_documented_payload_is_queued_with_its_links(gw: AlertGateway) -> None:
    answer = post(gw, "/grafana", grafana_payload(), gw.token())
    assert answer.status_code == 200
    [[text]] = gw.texts()
    assert text.startswith("🔥 FIRING (2 firing)\n[FIRING:2]  (blue)")
    assert "🔥 High memory usage\nzone=us-1\nThis alert was triggered for zone us-1" in text
    assert "since 2021-10-12 16:51 JST" in text
    assert "dashboard: https://play.grafana.org/d/abc123\n" in text
    assert "panel: https://play.grafana.org/d/abc123?viewPanel=4" in text
    assert "silence: https://play.grafana.org/alerting/silence/new?alertmanager=grafana" in text
    assert "image: https://play.grafana.org/public/img/alert.png" in text


def test_grafanas_retry_is_not_queued_again(gw: AlertGateway) -> None:
    token = gw.token()
    assert post(gw, "/grafana", grafana_payload(), token).json()["queued"] == 1
    assert post(gw, "/grafana", grafana_payload(), token).json()["duplicate"] is True
    other_org = {**grafana_payload(), "orgId": 2}
    assert post(gw, "/grafana", other_org, token).json()["queued"] == 1


@pytest.fixture
def signed(store: Store, channel: Channel, clock: Clock) -> Iterator[AlertGateway]:
    from linepush._secret import Secret

    with alert_gateway(
        store,
        channel,
        clock,
        grafana_secret=Secret(HMAC_SECRET),
        grafana_timestamp_header="X-Grafana-Alerting-Timestamp",
    ) as made:
        yield made


def _signed_headers(body: bytes, timestamp: int, secret: str = HMAC_SECRET) -> dict[str, str]:
    return {
        "X-Grafana-Alerting-Timestamp": str(timestamp),
        "X-Grafana-Alerting-Signature": grafana_signature(secret, body, str(timestamp)),
    }


def test_grafanas_signature_with_timestamp_is_checked(signed: AlertGateway) -> None:
    token = signed.token()
    body = json.dumps(grafana_payload()).encode()
    now = int(signed.clock())
    assert post(signed, "/grafana", body, token, **_signed_headers(body, now - 299)).status_code == 200
    assert len(signed.queued()) == 1


def test_the_signature_is_hmac_sha256_of_timestamp_colon_body_in_hex() -> None:
    # Computed independently: printf '1700000000:{}' | openssl dgst -sha256 -hmac key
    assert grafana_signature("key", b"{}", "1700000000") == (
        __import__("hmac").new(b"key", b"1700000000:{}", "sha256").hexdigest()
    )
    assert grafana_signature("key", b"{}") == __import__("hmac").new(b"key", b"{}", "sha256").hexdigest()


@pytest.mark.parametrize(
    "change",
    [
        "no signature",
        "wrong secret",
        "other body",
        "replay",
        "from the future",
        "no timestamp",
        "bad timestamp",
    ],
)
def test_a_wrongly_signed_or_replayed_grafana_call_is_401(signed: AlertGateway, change: str) -> None:
    token = signed.token()
    body = json.dumps(grafana_payload()).encode()
    now = int(signed.clock())
    headers = _signed_headers(body, now)
    if change == "no signature":
        del headers["X-Grafana-Alerting-Signature"]
    elif change == "wrong secret":
        headers = _signed_headers(body, now, "guess")
    elif change == "other body":
        body = body.replace(b"High memory", b"Low memory")
    elif change == "replay":
        headers = _signed_headers(body, now - 301)
    elif change == "from the future":
        headers = _signed_headers(body, now + 301)
    elif change == "no timestamp":
        del headers["X-Grafana-Alerting-Timestamp"]
    else:
        headers["X-Grafana-Alerting-Timestamp"] = "soon"
    answer = post(signed, "/grafana", body, token, **headers)
    assert answer.status_code == 401
    assert answer.json()["message"].startswith("Invalid signature")
    assert HMAC_SECRET not in answer.text
    assert signed.queued() == []


def test_without_a_timestamp_header_the_signature_covers_the_body(
    store: Store, channel: Channel, clock: Clock
) -> None:
    from linepush._secret import Secret

    made = make_alert_gateway(store, channel, clock, grafana_secret=Secret(HMAC_SECRET))
    with made.client:
        token = made.token()
        body = json.dumps(grafana_payload()).encode()
        good = {"X-Grafana-Alerting-Signature": grafana_signature(HMAC_SECRET, body)}
        assert post(made, "/grafana", body, token, **good).status_code == 200
        assert post(made, "/grafana", body, token).status_code == 401


# -- routes --------------------------------------------------------------------------------------------------

ROOM = "R" + "0" * 32


@pytest.fixture
def routed(store: Store, channel: Channel, clock: Clock) -> Iterator[AlertGateway]:
    from linepush.service.alert_routes import parse_routes

    routes = parse_routes(
        [
            {"match": {"severity": "critical"}, "to": "ops-room"},
            {"match": {"team": "db"}, "to": ["dba", "ops-room"]},
        ],
        {"ops-room": GROUP, "dba": ROOM},
        (),
    )
    with alert_gateway(store, channel, clock, routes=routes) as made:
        yield made


def test_routes_send_each_alert_where_its_labels_say_first_match_wins(routed: AlertGateway) -> None:
    payload = alertmanager_payload(
        am_alert(instance="a", fingerprint="a" * 16),  # critical: ops-room
        am_alert(instance="b", fingerprint="b" * 16, severity="warning", team="db"),  # dba and ops-room
        am_alert(instance="c", fingerprint="c" * 16, severity="warning"),  # no route: the token's user
        am_alert(instance="d", fingerprint="d" * 16, team="db"),  # critical first: ops-room only
    )
    answer = post(routed, "/alertmanager", payload, routed.token(USER))
    assert answer.json()["queued"] == 4
    by_to: dict[str, list[str]] = {}
    for row in routed.queued():
        by_to.setdefault(row.payload["to"], []).append(row.payload["messages"][0]["text"])
    assert sorted(by_to) == sorted([GROUP, ROOM, USER])
    [critical, db_for_ops] = by_to[GROUP]
    assert "instance=a" in critical and "instance=d" in critical and "instance=b" not in critical
    assert "instance=b" in db_for_ops
    [db] = by_to[ROOM]
    assert "instance=b" in db and "instance=a" not in db
    [rest] = by_to[USER]
    assert "instance=c" in rest and "(1 firing)" in rest.splitlines()[0]


def test_a_retry_of_a_routed_notification_is_not_queued_again(routed: AlertGateway) -> None:
    token = routed.token(USER)
    payload = alertmanager_payload(am_alert(team="db"))
    assert post(routed, "/alertmanager", payload, token).json()["queued"] == 1
    assert post(routed, "/alertmanager", payload, token).json()["duplicate"] is True
    assert len(routed.queued()) == 1


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ([{"match": {"severity": "critical"}, "to": "nobody"}], "'nobody' is neither a recipient id"),
        ([{"match": {"severity": 1}, "to": GROUP}], "'match' must be a table"),
        ([{"to": []}], "'to' must be a recipient"),
        ([{"to": GROUP, "where": "x"}], "unknown keys ['where']"),
        ([{"to": GROUP, "template": "ops"}], "no template named 'ops'"),
        ({"to": GROUP}, "routes must be an array of tables"),
        ([{"to": GROUP, "digest": "soon"}], "routes[0] digest: 'soon' is not a window"),
        ([{"to": GROUP, "digest": 0}], "the window must be more than 0 seconds"),
    ],
)
def test_bad_routes_are_refused_with_the_reason(table: Any, message: str) -> None:
    from linepush.errors import ConfigurationError
    from linepush.service.alert_routes import parse_routes

    with pytest.raises(ConfigurationError, match=re.escape(message)):
        parse_routes(table, {}, ())


@pytest.mark.parametrize("path", ["/alertmanager", "/grafana"])
def test_a_lone_surrogate_in_the_json_is_replaced_not_a_500(gw: AlertGateway, path: str) -> None:
    """JSON may spell a lone UTF-16 surrogate ("\\ud800"), which is no character at all: the alert still
    goes out, with U+FFFD where the broken character was."""
    payload = alertmanager_payload() if path == "/alertmanager" else grafana_payload()
    payload["alerts"][0]["labels"]["alertname"] = "Disk\ud800Full"
    payload["commonLabels"]["alertname"] = "Disk\ud800Full"
    answer = post(gw, path, json.dumps(payload).encode(), gw.token())
    assert answer.status_code == 200, answer.text
    [[text]] = gw.texts()
    assert "Disk\ufffdFull" in text
    text.encode("utf-8")  # valid text


@pytest.mark.parametrize("path", ["/alertmanager", "/grafana"])
@pytest.mark.parametrize("starts", ["9999-12-31T23:59:59Z", "9999-12-31T23:59:59-14:00"])
def test_a_time_past_the_calendar_is_left_out_not_a_500(gw: AlertGateway, path: str, starts: str) -> None:
    """A startsAt no calendar can show in the gateway's zone (Tokyo's clock reads the year 10000 here) is
    read as unknown, as Go's zero time is: the alert goes out without it."""
    payload = alertmanager_payload() if path == "/alertmanager" else grafana_payload()
    for alert in payload["alerts"]:
        alert["startsAt"] = starts
    answer = post(gw, path, json.dumps(payload).encode(), gw.token())
    assert answer.status_code == 200, answer.text
    [[text]] = gw.texts()
    assert "since" not in text and "10000" not in text


def test_a_surrogate_spelt_in_raw_bytes_is_replaced_too(gw: AlertGateway) -> None:
    payload = alertmanager_payload()
    payload["alerts"][0]["labels"]["alertname"] = "DiskXFull"
    body = json.dumps(payload, ensure_ascii=False).encode().replace(b"DiskXFull", b"Disk\xed\xa0\x80Full")
    answer = post(gw, "/alertmanager", body, gw.token())
    assert answer.status_code == 200, answer.text
    [[text]] = gw.texts()
    assert "Disk\ufffd" in text
    text.encode("utf-8")


# -- route tables of tokens ----------------------------------------------------------------------------------

DB_USER = "U" + "d" * 32
WEB_GROUP = "C" + "e" * 32
TABLES: dict[str, Any] = {
    "db-team": {
        "routes": [
            {"match": {"severity": "critical"}, "to": ["dba", "ops-room"]},
            {"match": {"service": "postgres"}, "to": "dba"},
        ],
        "default": "ops-room",
    },
    "web-team": {"routes": [{"match": {"team": "web"}, "to": WEB_GROUP}], "default": {"to": ROOM}},
}


@pytest.fixture
def tabled(store: Store, channel: Channel, clock: Clock) -> Iterator[AlertGateway]:
    from linepush.service.alert_routes import parse_route_tables, parse_routes

    routes = parse_routes([{"match": {"severity": "critical"}, "to": "ops-room"}], {"ops-room": GROUP}, ())
    tables = parse_route_tables(TABLES, {"ops-room": GROUP, "dba": DB_USER}, ())
    with alert_gateway(store, channel, clock, routes=routes, route_tables=tables) as made:
        yield made


def _by_to(gw: AlertGateway) -> dict[str, list[str]]:
    by_to: dict[str, list[str]] = {}
    for row in gw.queued():
        by_to.setdefault(row.payload["to"], []).append(row.payload["messages"][0]["text"])
    return by_to


def test_a_token_bound_to_a_route_table_routes_by_that_table(tabled: AlertGateway) -> None:
    payload = alertmanager_payload(
        am_alert(instance="a", fingerprint="a" * 16),  # critical: dba and ops-room (first match)
        am_alert(instance="b", fingerprint="b" * 16, severity="warning", service="postgres"),  # dba
        am_alert(instance="c", fingerprint="c" * 16, severity="warning"),  # no route: the table's default
    )
    answer = post(tabled, "/alertmanager", payload, tabled.routes_token("db-team"))
    assert (answer.status_code, answer.json()["queued"]) == (200, 4)
    by_to = _by_to(tabled)
    assert sorted(by_to) == sorted([DB_USER, GROUP])
    [critical, postgres] = by_to[DB_USER]
    assert "instance=a" in critical and "instance=b" not in critical
    assert "instance=b" in postgres and "instance=a" not in postgres
    [critical_for_ops, rest] = by_to[GROUP]
    assert "instance=a" in critical_for_ops
    assert "instance=c" in rest and "(1 firing)" in rest.splitlines()[0]
    assert USER not in by_to  # the global routes and no token recipient play any part


def test_the_same_payload_goes_where_each_tokens_table_says(tabled: AlertGateway) -> None:
    payload = alertmanager_payload(am_alert(severity="warning", team="web"))
    for token in (tabled.routes_token("db-team"), tabled.routes_token("web-team"), tabled.token(USER)):
        assert post(tabled, "/alertmanager", payload, token).json()["queued"] == 1
    # db-team: no route takes it, its default; web-team: its route; a recipient's token: global routes, then
    # its recipient.
    assert [row.payload["to"] for row in tabled.queued()] == [GROUP, WEB_GROUP, USER]


def test_grafana_and_hooks_use_the_tokens_table(store: Store, channel: Channel, clock: Clock) -> None:
    from linepush.service.alert_routes import parse_route_tables
    from linepush.service.alert_templates import AlertTemplates
    from linepush.service.alerts import Hook

    tables = parse_route_tables(TABLES, {"ops-room": GROUP, "dba": DB_USER}, ())
    templates = AlertTemplates({"raw": ("raw.j2", "{{ body.text }}")}, ZoneInfo("UTC"))
    hooks = {"deploy": Hook("raw"), "pinned": Hook("raw", (USER,))}
    with alert_gateway(store, channel, clock, route_tables=tables, templates=templates, hooks=hooks) as gw:
        token = gw.routes_token("web-team")
        assert post(gw, "/grafana", grafana_payload(), token).status_code == 200
        assert post(gw, "/hooks/deploy", {"text": "deployed"}, token).status_code == 200
        assert post(gw, "/hooks/pinned", {"text": "pinned"}, token).status_code == 200
        # Grafana's alert has no team label: web-team's default; a hook without `to`: the same default.
        assert [row.payload["to"] for row in gw.queued()] == [ROOM, ROOM, USER]


def test_a_table_the_server_does_not_have_is_503_and_loses_nothing(
    tabled: AlertGateway, channel: Channel
) -> None:
    token = tabled.routes_token("gone-team")  # made after the server read its configuration
    payload = alertmanager_payload()
    for path, body in (("/alertmanager", payload), ("/grafana", grafana_payload())):
        answer = post(tabled, path, body, token)
        assert answer.status_code == 503
        assert "route table 'gone-team' is not in the gateway's configuration" in answer.json()["message"]
    assert tabled.queued() == []
    # No dedupe mark was left: once the server has the table, the sender's retry is queued.
    restarted = make_alert_gateway(
        tabled.store, channel, tabled.clock, route_tables={"gone-team": _table("gone-team", ROOM)}
    )
    with restarted.client:
        assert post(restarted, "/alertmanager", payload, token).json()["queued"] == 1
    assert [row.payload["to"] for row in tabled.queued()] == [ROOM]


def _table(name: str, to: str) -> Any:
    from linepush.service.alert_routes import AlertRoute, RouteTable

    return RouteTable(name, (), AlertRoute({}, (to,)))


def test_notify_and_status_with_a_route_table_token(tabled: AlertGateway) -> None:
    token = tabled.routes_token("db-team")
    answer = tabled.client.post(
        "/api/notify", data={"message": "hi"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert answer.status_code == 400
    assert "routes alerts by the route table 'db-team'" in answer.json()["message"]
    assert "--to ID" in answer.json()["message"]
    assert tabled.queued() == []
    status = tabled.client.get("/api/status", headers={"Authorization": f"Bearer {token}"}).json()
    assert (status["targetType"], status["target"]) == ("ROUTES", "alerts db-team")


@pytest.mark.parametrize(
    ("tables", "message"),
    [
        ({"db": {"routes": []}}, "route_tables.db: needs default = recipients"),
        ({"db": {"default": "nobody"}}, "route_tables.db default: 'nobody' is neither a recipient id"),
        ({"db": {"default": GROUP, "match": {}}}, "unknown keys ['match']; known: routes, default"),
        ({"db": {"default": {"to": GROUP, "template": "x"}}}, "default: no template named 'x'"),
        ({"db": {"default": {"to": GROUP, "where": 1}}}, "default must be recipients, or a table"),
        ({"db team": {"default": GROUP}}, "route_tables.db team: the name must be 1 to 64 letters"),
        ({"db": {"default": GROUP, "routes": [{"to": "x"}]}}, "route_tables.db routes[0]: 'x' is neither"),
        ({"db": GROUP}, "route_tables must be tables"),
    ],
)
def test_bad_route_tables_are_refused_with_the_reason(tables: Any, message: str) -> None:
    from linepush.errors import ConfigurationError
    from linepush.service.alert_routes import parse_route_tables

    with pytest.raises(ConfigurationError, match=re.escape(message)):
        parse_route_tables(tables, {}, ())


def test_a_route_tables_template_must_exist() -> None:
    from linepush.errors import ConfigurationError
    from linepush.service.alert_routes import AlertRoute, RouteTable
    from linepush.service.alerts import AlertsConfig

    table = RouteTable("db", (AlertRoute({}, (GROUP,), "short"),), AlertRoute({}, (GROUP,)))
    with pytest.raises(ConfigurationError, match="no template named 'short'"):
        AlertsConfig(route_tables={"db": table})


def test_a_route_with_a_digest_merges_its_notifications_and_the_token_window_takes_the_rest(
    store: Store, channel: Channel, clock: Clock
) -> None:
    from linepush.service.alert_routes import parse_routes

    routes = parse_routes([{"match": {"team": "db"}, "to": GROUP, "digest": "1m"}], {}, ())
    with alert_gateway(store, channel, clock, routes=routes, time_zone="Asia/Tokyo") as gw:
        token = gw.token(USER)
        [record] = gateway_store(store).list_gateway_tokens()
        gateway_store(store).set_gateway_token_digest(record.id, 30.0)
        for n in range(3):
            payload = alertmanager_payload(
                am_alert(instance=f"db{n}", fingerprint=f"{n}" * 16, team="db"),
                am_alert(instance=f"web{n}", fingerprint=f"{n + 5}" * 16, severity="warning"),
            )
            assert post(gw, "/alertmanager", payload, token).status_code == 200
            clock.advance(10)
        rows = gw.queued()
    assert [(r.payload["to"], r.not_before - r.created_at) for r in rows] == [(GROUP, 60.0), (USER, 30.0)]
    for row, name in zip(rows, ("db", "web"), strict=True):
        [text] = [m["text"] for m in row.payload["messages"]]
        assert text.startswith("🔔 3 notifications, 2026-11-27 17:20:00 – 17:20:20 JST")
        assert [f"instance={name}{n}" in text for n in range(3)] == [True] * 3
        assert text.index(f"{name}0") < text.index(f"{name}1") < text.index(f"{name}2")
