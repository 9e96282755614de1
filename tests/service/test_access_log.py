"""The access log: one structured line per request, and never a token, secret or body in any log."""

from __future__ import annotations

import json
import logging

import pytest

from linepush.service.app import ACCESS_LOG
from linepush.service.webhook import signature
from tests.service.conftest import SECRET, Gateway
from tests.service.test_notify import PNG


def access_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == ACCESS_LOG]


def test_one_line_per_request_with_method_path_status_and_duration(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    token = gateway.token()
    caplog.set_level(logging.DEBUG)
    gateway.client.post(
        "/api/notify?message=in-query", data={"message": "hi"}, headers={"Authorization": f"Bearer {token}"}
    )
    gateway.client.get("/api/status")
    gateway.client.get("/nowhere")
    lines = access_lines(caplog)
    assert [(line["method"], line["path"], line["status"]) for line in lines] == [
        ("POST", "/api/notify", 200),
        ("GET", "/api/status", 401),
        ("GET", "/nowhere", 404),
    ]
    for line in lines:
        assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
        assert line["event"] == "request"


def test_no_log_holds_a_token_secret_body_or_image_name(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    token = gateway.token()
    caplog.set_level(logging.DEBUG)
    gateway.client.post(
        "/api/notify",
        data={"message": "very private words"},
        files={"imageFile": ("x.png", PNG, "image/png")},
        headers={"Authorization": f"Bearer {token}"},
    )
    gateway.client.post("/api/notify", headers={"Authorization": "Bearer guessed-token-value"})
    name = gateway.queued()[0].payload["messages"][1]["originalContentUrl"].rsplit("/", 1)[1]
    gateway.client.get(f"/images/{name}")
    body = json.dumps({"events": [{"type": "follow", "source": {"userId": "U" + "1" * 32}}]}).encode()
    gateway.client.post("/webhook", content=body, headers={"X-Line-Signature": signature(SECRET, body)})
    gateway.client.post("/webhook", content=b"secret body", headers={"X-Line-Signature": "forged"})
    gateway.client.post("/api/revoke", headers={"Authorization": f"Bearer {token}"})
    # The test client's own (httpx) log lines name the URLs it fetched; the gateway's must not.
    ours = [r for r in caplog.records if r.name.startswith("linepush")]
    logged = "\n".join(r.getMessage() + repr(getattr(r, "http", "")) for r in ours)
    assert len(access_lines(caplog)) == 6
    for forbidden in (
        token,
        token[:12],
        "guessed-token",
        "private words",
        SECRET,
        "secret body",
        "forged",
        name,
    ):
        assert forbidden not in logged
    assert '"path": "/images/\\u2026"' in logged


def test_a_text_log_line_stays_one_line_whatever_the_path(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    """A path is the client's: a %0A in it must not start a forged line of the text log, nor an escape
    sequence act on the terminal that shows it."""
    from linepush.cli.logs import TextFormatter

    caplog.set_level(logging.DEBUG)
    gateway.client.get("/hooks/a%0A2026-12-01 00:00:00,000 INFO linepush.service: forged%1B[2J%C2%9B")
    [record] = [r for r in caplog.records if r.name == ACCESS_LOG]
    line = TextFormatter().format(record)
    assert "\n" not in line and "\x1b" not in line and "\x9b" not in line
    assert "/hooks/a\\x0a2026-12-01 00:00:00,000 INFO linepush.service: forged\\x1b[2J\\x9b 40" in line
    message = logging.LogRecord("linepush.worker", logging.INFO, __file__, 1, "LINE said %s", ("a\nb",), None)
    assert TextFormatter().format(message).endswith("LINE said a\\x0ab")
