"""Against a real server on a loopback port: the requests people sent to LINE Notify, with only the host
changed, sent by real curl and byte for byte as curl's ``-d`` and ``-F`` build them."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from linepush.config import Channel
from linepush.service import GatewayConfig, create_gateway_app, create_gateway_token, serving
from linepush.service.server import RunningGateway
from linepush.store import SQLiteStore, Store
from tests.service.conftest import (
    CHANNEL_ID,
    GROUP,
    PUBLIC_URL,
    SECRET,
    START,
    USER,
    Clock,
    Gateway,
    make_gateway,
)
from tests.service.test_notify import PNG

pytestmark = pytest.mark.e2e

CURL = shutil.which("curl")
needs_curl = pytest.mark.skipif(CURL is None, reason="curl is not installed")


@pytest.fixture
def live(gateway: Gateway) -> Iterator[RunningGateway]:
    with serving(gateway.app) as server:
        yield server


def curl(*args: str) -> tuple[int, dict[str, str], Any]:
    """Run curl as a person would (plus -i to see the headers); returns status, headers and JSON body."""
    assert CURL is not None
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    done = subprocess.run([CURL, "-sS", "-i", *args], capture_output=True, check=True, env=env, timeout=30)
    head, _, body = done.stdout.replace(b"\r\n", b"\n").rpartition(b"\n\n")
    # With `Expect: 100-continue` curl prints the interim response first: keep the last one.
    lines = head.decode("latin-1").split("\n\n")[-1].splitlines()
    status = int(lines[0].split()[1])
    headers = {
        k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:] if ":" in line)
    }
    return status, headers, json.loads(body)


def texts(gateway: Gateway) -> list[list[dict[str, Any]]]:
    return [row.payload["messages"] for row in gateway.queued()]


@needs_curl
def test_curl_form_encoded(gateway: Gateway, live: RunningGateway) -> None:
    token = gateway.token()
    status, headers, body = curl(
        "-X", "POST", "-H", f"Authorization: Bearer {token}", "-d", "message=foobar", f"{live.url}/api/notify"
    )
    assert (status, body) == (200, {"status": 200, "message": "ok"})
    assert headers["x-ratelimit-limit"] == "1000" and headers["x-ratelimit-remaining"] == "999"
    assert {"x-ratelimit-imagelimit", "x-ratelimit-imageremaining", "x-ratelimit-reset"} <= set(headers)
    (row,) = gateway.queued()
    assert row.payload == {"to": USER, "messages": [{"type": "text", "text": "foobar"}]}


@needs_curl
def test_curl_multipart_with_sticker(gateway: Gateway, live: RunningGateway) -> None:
    token = gateway.token(to=GROUP)
    status, _, body = curl(
        "-X",
        "POST",
        "-H",
        f"Authorization: Bearer {token}",
        "-F",
        "message=サーバーが落ちました",
        "-F",
        "stickerPackageId=1",
        "-F",
        "stickerId=113",
        "-F",
        "notificationDisabled=true",
        f"{live.url}/api/notify",
    )
    assert (status, body) == (200, {"status": 200, "message": "ok"})
    (row,) = gateway.queued()
    assert row.payload == {
        "to": GROUP,
        "messages": [
            {"type": "text", "text": "サーバーが落ちました"},
            {"type": "sticker", "packageId": "1", "stickerId": "113"},
        ],
        "notificationDisabled": True,
    }


@needs_curl
def test_curl_data_urlencode_and_image_urls(gateway: Gateway, live: RunningGateway) -> None:
    token = gateway.token()
    status, _, _ = curl(
        "-H",
        f"Authorization: Bearer {token}",
        "--data-urlencode",
        "message=CPU 100% & load=12",
        "--data-urlencode",
        "imageThumbnail=https://example.com/thumb.jpg",
        "--data-urlencode",
        "imageFullsize=https://example.com/full.jpg",
        f"{live.url}/api/notify",
    )
    assert status == 200
    assert texts(gateway) == [
        [
            {"type": "text", "text": "CPU 100% & load=12"},
            {
                "type": "image",
                "originalContentUrl": "https://example.com/full.jpg",
                "previewImageUrl": "https://example.com/thumb.jpg",
            },
        ]
    ]


@needs_curl
def test_curl_image_file_upload(gateway: Gateway, live: RunningGateway, tmp_path: Path) -> None:
    picture = tmp_path / "graph.png"
    picture.write_bytes(PNG + bytes(4000))  # large enough that curl may send Expect: 100-continue
    token = gateway.token()
    status, headers, body = curl(
        "-X",
        "POST",
        "-H",
        f"Authorization: Bearer {token}",
        "-F",
        "message=see the graph",
        "-F",
        f"imageFile=@{picture}",
        f"{live.url}/api/notify",
    )
    assert (status, body) == (200, {"status": 200, "message": "ok"})
    assert headers["x-ratelimit-imageremaining"] == "49"
    (row,) = gateway.queued()
    text, image = row.payload["messages"]
    assert text == {"type": "text", "text": "see the graph"}
    url = image["originalContentUrl"]
    assert url.startswith(PUBLIC_URL + "/images/") and image["previewImageUrl"] == url
    # The image is served where the message says (behind the public URL's proxy: here, straight).
    fetched = subprocess.run(
        [CURL or "curl", "-sS", live.url + url.removeprefix(PUBLIC_URL)],
        capture_output=True,
        check=True,
        timeout=30,
    )
    assert fetched.stdout == picture.read_bytes()


@needs_curl
def test_curl_status_and_revoke(gateway: Gateway, live: RunningGateway) -> None:
    token = gateway.token(name="backup job")
    auth = f"Authorization: Bearer {token}"
    assert curl("-H", auth, f"{live.url}/api/status")[2] == {
        "status": 200,
        "message": "ok",
        "targetType": "USER",
        "target": "backup job",
    }
    assert curl("-X", "POST", "-H", auth, f"{live.url}/api/revoke")[2] == {"status": 200, "message": "ok"}
    status, _, body = curl("-X", "POST", "-H", auth, "-d", "message=x", f"{live.url}/api/notify")
    assert (status, body) == (401, {"status": 401, "message": "Invalid access token"})
    assert gateway.queued() == []


@needs_curl
def test_curl_without_a_token_or_message(gateway: Gateway, live: RunningGateway) -> None:
    status, _, body = curl("-X", "POST", "-d", "message=x", f"{live.url}/api/notify")
    assert (status, body) == (401, {"status": 401, "message": "Invalid access token"})
    status, _, body = curl(
        "-X", "POST", "-H", f"Authorization: Bearer {gateway.token()}", f"{live.url}/api/notify"
    )
    assert (status, body) == (400, {"status": 400, "message": "message: must not be empty"})
    assert gateway.queued() == []


# -- the same requests byte for byte, without curl


def raw(server: RunningGateway, method: str, path: str, headers: list[tuple[str, str]], body: bytes) -> Any:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=30)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for name, value in headers:
            conn.putheader(name, value)
        conn.endheaders(body)
        response = conn.getresponse()
        headers = {name.lower(): value for name, value in response.getheaders()}
        return response.status, headers, json.loads(response.read())
    finally:
        conn.close()


def curl_headers(server: RunningGateway, token: str, content_type: str, body: bytes) -> list[tuple[str, str]]:
    return [
        ("Host", f"{server.host}:{server.port}"),
        ("User-Agent", "curl/7.88.1"),
        ("Accept", "*/*"),
        ("Authorization", f"Bearer {token}"),
        ("Content-Length", str(len(body))),
        ("Content-Type", content_type),
    ]


def test_bytes_of_curl_d(gateway: Gateway, live: RunningGateway) -> None:
    # curl -X POST -H "Authorization: Bearer …" -d "message=foobar&stickerPackageId=446&stickerId=1988" …
    body = b"message=foobar&stickerPackageId=446&stickerId=1988"
    token = gateway.token()
    status, headers, answer = raw(
        live,
        "POST",
        "/api/notify",
        curl_headers(live, token, "application/x-www-form-urlencoded", body),
        body,
    )
    assert (status, answer) == (200, {"status": 200, "message": "ok"})
    assert headers["x-ratelimit-remaining"] == "999"
    assert texts(gateway) == [
        [{"type": "text", "text": "foobar"}, {"type": "sticker", "packageId": "446", "stickerId": "1988"}]
    ]


def test_bytes_of_curl_f_with_an_image_file(gateway: Gateway, live: RunningGateway) -> None:
    # curl -X POST -H "Authorization: Bearer …" -F "message=hi" -F "imageFile=@shot.jpg" …
    boundary = "------------------------4ebf00fbcf09"
    jpeg = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(300)
    body = (
        (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="message"\r\n\r\n'
            "hi\r\n"
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="imageFile"; filename="shot.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + jpeg
        + f"\r\n--{boundary}--\r\n".encode()
    )
    token = gateway.token()
    status, _, answer = raw(
        live,
        "POST",
        "/api/notify",
        curl_headers(live, token, f"multipart/form-data; boundary={boundary}", body),
        body,
    )
    assert (status, answer) == (200, {"status": 200, "message": "ok"})
    text, image = texts(gateway)[0]
    assert text == {"type": "text", "text": "hi"}
    assert image["originalContentUrl"].endswith(".jpg")


def test_uploads_refused_when_no_public_url(store: Store, channel: Channel) -> None:
    gateway = make_gateway(store, channel, Clock())
    boundary = "------------------------4ebf00fbcf09"
    body = (
        (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="message"\r\n\r\nhi\r\n'
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="imageFile"; filename="a.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + PNG
        + f"\r\n--{boundary}--\r\n".encode()
    )
    with serving(gateway.app) as server:
        status, _, answer = raw(
            server,
            "POST",
            "/api/notify",
            curl_headers(server, gateway.token(), f"multipart/form-data; boundary={boundary}", body),
            body,
        )
    assert status == 400
    assert answer["message"].startswith("imageFile: image uploads are not enabled on this gateway")
    assert gateway.queued() == []


def test_serving_gives_a_loopback_url_and_stops(store: Store, channel: Channel) -> None:
    app = create_gateway_app(store, channel, GatewayConfig(), clock=lambda: START)
    with serving(app) as server:
        assert server.url == f"http://127.0.0.1:{server.port}"
        conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
        conn.request("GET", "/healthz")
        assert conn.getresponse().status == 200
        conn.close()
    with pytest.raises(OSError):
        http.client.HTTPConnection(server.host, server.port, timeout=2).request("GET", "/healthz")


@needs_curl
def test_linepush_serve_process_queues_and_stops_cleanly(tmp_path: Path) -> None:
    """The `linepush serve` command as people run it: a Notify request is queued; SIGTERM ends it with 0."""
    from tests.service.serve_process import linepush_serve

    db = tmp_path / "serve.db"
    with SQLiteStore(db) as store:
        token, _ = create_gateway_token(store, CHANNEL_ID, USER, "cron", 0.0)
    env = {"LINEPUSH_STORE": str(db), "LINE_CHANNEL_ID": CHANNEL_ID, "LINE_CHANNEL_SECRET": SECRET}
    with linepush_serve(tmp_path, env) as served:
        status, headers, body = curl(
            "-X",
            "POST",
            "-H",
            f"Authorization: Bearer {token.reveal()}",
            "-F",
            "message=backup failed",
            f"{served.url}/api/notify",
        )
        assert (status, body) == (200, {"status": 200, "message": "ok"})
        assert headers["x-ratelimit-remaining"] == "999"
    assert served.process.returncode == 0, served.stderr
    with SQLiteStore(db) as store:
        (row,) = store.list_messages()
    assert (row.state, row.payload) == (
        "queued",
        {"to": USER, "messages": [{"type": "text", "text": "backup failed"}]},
    )
    assert "queueing only" in served.stderr
    assert token.reveal() not in served.stderr and SECRET not in served.stderr
    # text lines for a person, the access lines too: nothing in another format
    assert not [line for line in served.stderr.splitlines() if line.startswith("{")]
    assert "INFO linepush.service: linepush serve started: gateway for channel" in served.stderr
    assert "INFO linepush.service.access: POST /api/notify 200" in served.stderr
