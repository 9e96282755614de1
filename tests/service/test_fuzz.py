"""Property-based fuzzing of every gateway endpoint, in-process: never a 5xx, always an answer in LINE
Notify's shape, and nothing queued or recorded unless the request was accepted."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from linepush.config import Channel
from linepush.service.notify_limits import RateLimits
from linepush.service.store import gateway_store
from linepush.service.webhook import signature
from linepush.store import SQLiteStore
from tests.service.conftest import CHANNEL_ID, PUBLIC_URL, SECRET, Clock, Gateway, make_gateway
from tests.service.test_notify import JPEG, PNG

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
FIELDS = [
    "message",
    "stickerPackageId",
    "stickerId",
    "imageThumbnail",
    "imageFullsize",
    "imageFile",
    "notificationDisabled",
]
# Header values go over the wire as Latin-1; CR and LF cannot be in them at all.
header_text = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=80
)
field_values = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", "true", "false", "1", "446", "https://example.com/a.jpg", "http://x", "🍎" * 501]),
    st.text(min_size=995, max_size=1010),
)


@pytest.fixture
def fuzzed(tmp_path: Path) -> Iterator[tuple[Gateway, str]]:
    with SQLiteStore(tmp_path / "fuzz.db") as store:
        gateway = make_gateway(
            store,
            Channel(CHANNEL_ID, SECRET),
            Clock(),
            rate_limits=RateLimits(calls=10**9, images=10**9),
            public_url=PUBLIC_URL,
            image_dir=str(tmp_path / "images"),
            max_image_bytes=4096,
        )
        with gateway.client:
            yield gateway, gateway.token()


def latin1(headers: dict[str, str]) -> dict[str, bytes]:
    # httpx encodes str header values as ASCII; the wire carries Latin-1 bytes, which is what is fuzzed.
    return {name: value.encode("latin-1") for name, value in headers.items()}


def count(gateway: Gateway) -> int:
    return sum(gateway.store.counts().values())


def check_shape(answer: Any) -> None:
    event(f"status {answer.status_code}")
    assert answer.status_code < 500, answer.text
    body = answer.json()
    assert body["status"] == answer.status_code
    assert isinstance(body["message"], str) and "Traceback" not in body["message"]


def check_queued(gateway: Gateway, before: int, answer: Any) -> None:
    check_shape(answer)
    assert count(gateway) == before + (1 if answer.status_code == 200 else 0)


@FUZZ
@given(
    fields=st.dictionaries(
        st.one_of(st.sampled_from(FIELDS), st.text(max_size=10)), field_values, max_size=8
    ),
    multipart=st.booleans(),
    upload=st.one_of(
        st.none(), st.sampled_from([PNG, JPEG, b"", b"GIF89a", PNG + bytes(5000)]), st.binary(max_size=64)
    ),
    query=st.dictionaries(st.sampled_from(FIELDS), field_values, max_size=3),
    message=st.one_of(st.none(), st.text(min_size=1, max_size=30)),
)
def test_notify_fields(
    fuzzed: tuple[Gateway, str],
    fields: dict[str, str],
    multipart: bool,
    upload: bytes | None,
    query: dict[str, str],
    message: str | None,
) -> None:
    gateway, token = fuzzed
    if message is not None:  # so that the accepted path is explored as much as the refusals
        fields = {**fields, "message": message}
    before = count(gateway)
    files = {"imageFile": ("f.bin", upload, "application/octet-stream")} if upload is not None else None
    if multipart or files:
        # httpx sends multipart when there are files; an empty file list forces it otherwise.
        answer = gateway.client.post(
            "/api/notify",
            params=query,
            data=fields,
            files=files or {"unused": ("", b"", "text/plain")},
            headers={"Authorization": f"Bearer {token}"},
        )
    else:
        answer = gateway.client.post(
            "/api/notify", params=query, data=fields, headers={"Authorization": f"Bearer {token}"}
        )
    check_queued(gateway, before, answer)
    if answer.status_code == 200:
        row = gateway.store.list_messages(limit=1, after_id=before)[0]
        assert row.payload["messages"][0]["type"] == "text"
        assert 1 <= len(row.payload["messages"]) <= 5


@FUZZ
@given(
    body=st.binary(max_size=300),
    content_type=st.one_of(
        st.none(),
        header_text,
        st.sampled_from(
            [
                "application/x-www-form-urlencoded",
                "multipart/form-data",
                "multipart/form-data; boundary=x",
                "multipart/form-data; boundary=",
                'multipart/form-data; boundary="a b"',
                "application/json",
                "text/plain; charset=utf-8",
            ]
        ),
    ),
    content_length=st.one_of(st.none(), st.sampled_from(["abc", "-1", "99999999999", "0", " 3"])),
)
def test_notify_raw_bodies(
    fuzzed: tuple[Gateway, str], body: bytes, content_type: str | None, content_length: str | None
) -> None:
    gateway, token = fuzzed
    before = count(gateway)
    headers = {"Authorization": f"Bearer {token}"}
    if content_type is not None:
        headers["Content-Type"] = content_type
    if content_length is not None:
        # A lying Content-Length is only safe to send when it does not promise more than the body has.
        if content_length.strip().isdigit() and int(content_length) <= len(body):
            headers["Content-Length"] = content_length.strip()
            body = body[: int(content_length)]
        elif not content_length.strip().lstrip("-").isdigit():
            headers["Content-Length"] = content_length
    answer = gateway.client.post("/api/notify", content=body, headers=latin1(headers))
    check_queued(gateway, before, answer)


@FUZZ
@given(
    authorization=st.one_of(st.none(), header_text, st.builds(lambda t: "Bearer " + t, header_text)),
    endpoint=st.sampled_from([("POST", "/api/notify"), ("GET", "/api/status"), ("POST", "/api/revoke")]),
)
def test_wrong_tokens_on_every_endpoint(
    fuzzed: tuple[Gateway, str], authorization: str | None, endpoint: tuple[str, str]
) -> None:
    gateway, token = fuzzed
    before = count(gateway)
    headers = {} if authorization is None else {"Authorization": authorization}
    method, path = endpoint
    answer = gateway.client.request(
        method, path, data={"message": "m"} if method == "POST" else None, headers=latin1(headers)
    )
    check_shape(answer)
    if authorization is not None and authorization.strip().lower() == f"bearer {token}".lower():
        return  # drew the real token (and the case of the scheme does not matter)
    assert answer.status_code == 401
    assert count(gateway) == before
    assert not any(t.revoked for t in gateway_store(gateway.store).list_gateway_tokens())


@FUZZ
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]),
    path=st.one_of(
        st.sampled_from(
            ["/api/notify", "/api/status", "/api/revoke", "/webhook", "/healthz", "/images/", "/images/x.png"]
        ),
        st.text(
            st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="?#%"), max_size=40
        ).map(lambda p: "/" + p),
    ),
)
def test_any_method_and_path(fuzzed: tuple[Gateway, str], method: str, path: str) -> None:
    gateway, _ = fuzzed
    before = count(gateway)
    # An absolute URL: a bare "//…" would be read as a network path (a host), not a path on this server.
    answer = gateway.client.request(method, "http://testserver" + path)
    assert answer.status_code < 500
    if method != "HEAD" and answer.headers.get("content-type") == "application/json":
        body = answer.json()
        if "status" in body and isinstance(body["status"], int):
            assert body["status"] == answer.status_code
    assert count(gateway) == before
    assert gateway_store(gateway.store).list_recipients() == []


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=40)
    | st.sampled_from(["U" + "a" * 32, "C" + "1" * 32]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                ["events", "type", "source", "userId", "groupId", "roomId", "joined", "members", "x"]
            ),
            children,
            max_size=5,
        )
    ),
    max_leaves=30,
)


@FUZZ
@given(payload=json_values, sign=st.booleans())
def test_webhook_json(fuzzed: tuple[Gateway, str], payload: Any, sign: bool) -> None:
    gateway, _ = fuzzed
    body = json.dumps(payload).encode()
    headers = {"X-Line-Signature": signature(SECRET if sign else "0" * 32, body)}
    answer = gateway.client.post("/webhook", content=body, headers=headers)
    assert answer.status_code in (200, 400, 401)
    if not sign:
        assert answer.status_code == 401
        assert gateway_store(gateway.store).list_recipients() == []
    if answer.status_code != 200:
        assert answer.json()["status"] == answer.status_code


@FUZZ
@given(body=st.binary(max_size=200), sig=st.one_of(st.none(), header_text))
def test_webhook_bytes(fuzzed: tuple[Gateway, str], body: bytes, sig: str | None) -> None:
    gateway, _ = fuzzed
    before = gateway_store(gateway.store).list_recipients()
    headers = {} if sig is None else {"X-Line-Signature": sig}
    answer = gateway.client.post("/webhook", content=body, headers=latin1(headers))
    assert answer.status_code == 401
    assert gateway_store(gateway.store).list_recipients() == before
