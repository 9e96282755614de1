"""User templates (Jinja2, sandboxed) of alert messages, and POST /hooks/{name}: what they render, what
happens when they fail, and how a template that does not load is reported."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from linepush.config import Channel
from linepush.errors import ConfigurationError
from linepush.messages import utf16_len
from linepush.service.alert_templates import AlertTemplates
from linepush.service.alerts import Hook
from linepush.store import Store
from tests.service.alert_fixtures import (
    AlertGateway,
    alert_gateway,
    alertmanager_payload,
    grafana_payload,
    make_alert_gateway,
)
from tests.service.conftest import GROUP, USER, Clock
from tests.service.test_alert_receivers import post

TOKYO = ZoneInfo("Asia/Tokyo")
OPS = """{{ status | upper }}: {{ commonLabels.alertname }}
{% for a in alerts %}
- {{ a.labels.instance }} since {{ a.startsAt | localtime }}
{% endfor %}"""


def templates(**sources: str) -> AlertTemplates:
    return AlertTemplates({name: (f"{name}.j2", text) for name, text in sources.items()}, TOKYO)


@pytest.fixture
def templated(store: Store, channel: Channel, clock: Clock) -> Iterator[AlertGateway]:
    with alert_gateway(
        store,
        channel,
        clock,
        templates=templates(
            ops=OPS,
            broken="{{ alerts[0].labels.no_such_label }}",
            kuma="{{ monitor.name }} is {{ 'UP' if heartbeat.status == 1 else 'DOWN' }}: {{ msg }}",
            form="{{ hook }}: {{ message }}",
        ),
        template="ops",
        hooks={"kuma": Hook("kuma"), "form": Hook("form", (GROUP,)), "bad": Hook("broken")},
    ) as made:
        yield made


def test_the_configured_template_renders_alerts(templated: AlertGateway) -> None:
    assert post(templated, "/alertmanager", alertmanager_payload(), templated.token()).status_code == 200
    assert templated.texts() == [["FIRING: HighLatency\n- db1:9100 since 2026-11-27 16:10 JST"]]


@pytest.mark.parametrize("name", ["broken", "escape", "empty"])
def test_a_template_failing_at_run_time_falls_back_to_the_default(
    store: Store, channel: Channel, clock: Clock, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    made = make_alert_gateway(
        store,
        channel,
        clock,
        templates=templates(
            broken="{{ alerts[0].labels.nope }}",
            # The sandbox refuses Python's internals: the classic escape renders nothing it could use.
            escape="{{ ''.__class__.__mro__[1].__subclasses__() }}",
            empty="{% if false %}x{% endif %}",
        ),
        template=name,
    )
    with made.client, caplog.at_level(logging.WARNING, "linepush.service.alerts"):
        assert post(made, "/grafana", grafana_payload(), made.token()).status_code == 200
    [[text]] = made.texts()
    assert text.startswith("🔥 FIRING (2 firing)")
    assert f"template {name!r}" in caplog.text and "the default rendering is used" in caplog.text


def test_what_a_template_renders_is_kept_within_lines_limits() -> None:
    big = templates(big="{% for i in range(3000) %}line {{ i }} 🍎🍎🍎\n\n{% endfor %}")
    texts = big.render("big", {})
    assert texts is not None and len(texts) == 5
    assert all(utf16_len(t) <= 5000 for t in texts)
    assert texts[-1].endswith("more")


def test_a_byte_order_mark_before_a_template_file_is_not_sent(tmp_path: Path) -> None:
    path = tmp_path / "short.j2"
    path.write_bytes(b"\xef\xbb\xbf" + "🔥 {{ status }}".encode())
    loaded = AlertTemplates.from_files({"short": path}, ZoneInfo("UTC"))
    assert loaded.render("short", {"status": "firing"}) == ["🔥 firing"]


def test_a_template_that_does_not_compile_names_its_line_and_reason() -> None:
    with pytest.raises(ConfigurationError) as caught:
        templates(ops="first line\n{% for a in alerts %}\n{{ a }")
    assert str(caught.value).startswith("template 'ops' (ops.j2, line 3): ")


def test_a_route_may_name_its_own_template(store: Store, channel: Channel, clock: Clock) -> None:
    from linepush.service.alert_routes import parse_routes

    routes = parse_routes(
        [{"match": {"severity": "critical"}, "to": GROUP, "template": "short"}], {}, ["short"]
    )
    made = make_alert_gateway(
        store, channel, clock, templates=templates(short="{{ firing | length }} firing"), routes=routes
    )
    with made.client:
        post(made, "/alertmanager", alertmanager_payload(), made.token())
    assert made.texts() == [["1 firing"]]


def test_a_missing_template_name_is_a_configuration_error(
    store: Store, channel: Channel, clock: Clock
) -> None:
    with pytest.raises(ConfigurationError, match="no template named 'ops'"):
        make_alert_gateway(store, channel, clock, template="ops")


# -- POST /hooks/{name} --------------------------------------------------------------------------------------

KUMA = {
    "heartbeat": {"status": 0, "msg": "timeout"},
    "monitor": {"name": "shop"},
    "msg": "[shop] [🔴 Down] timeout",
}


def test_a_json_hook_is_rendered_by_its_template(templated: AlertGateway) -> None:
    answer = post(templated, "/hooks/kuma", KUMA, templated.token())
    assert (answer.status_code, answer.json()["queued"]) == (200, 1)
    [row] = templated.queued()
    assert row.payload["to"] == USER
    assert templated.texts() == [["shop is DOWN: [shop] [🔴 Down] timeout"]]


def test_a_form_hook_goes_to_its_configured_recipient(templated: AlertGateway) -> None:
    answer = templated.client.post(
        "/hooks/form",
        data={"message": "build 42 failed"},
        headers={"Authorization": f"Bearer {templated.token()}"},
    )
    assert answer.status_code == 200
    [row] = templated.queued()
    assert (row.payload["to"], templated.texts()) == (GROUP, [["form: build 42 failed"]])


def test_a_failing_hook_template_sends_the_body_itself(templated: AlertGateway) -> None:
    assert post(templated, "/hooks/bad", {"alerts": [1]}, templated.token()).status_code == 200
    [[text]] = templated.texts()
    assert text.startswith("🔔 bad\n\n{") and '"alerts"' in text


def test_hooks_need_a_token_a_known_name_and_json(templated: AlertGateway) -> None:
    token = templated.token()
    assert post(templated, "/hooks/kuma", KUMA, None).status_code == 401
    unknown = post(templated, "/hooks/nope", KUMA, token)
    assert (unknown.status_code, unknown.json()["message"]) == (
        404,
        "there is no hook named 'nope' on this gateway",
    )
    assert post(templated, "/hooks/kuma", b"{oops", token).status_code == 400
    assert templated.queued() == []


def test_any_json_value_reaches_the_template_as_body(store: Store, channel: Channel, clock: Clock) -> None:
    made = make_alert_gateway(
        store,
        channel,
        clock,
        templates=templates(list="{{ body | join(', ') }}"),
        hooks={"list": Hook("list")},
    )
    with made.client:
        assert post(made, "/hooks/list", json.loads('["a", "b"]'), made.token()).status_code == 200
    assert made.texts() == [["a, b"]]
