"""The LINE Notify–compatible endpoints, in-process: what is queued, what is answered, and what is refused."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from linepush.config import Channel
from linepush.service.gateway_tokens import TOKEN_BYTES, hash_gateway_token
from linepush.service.notify_limits import RateLimits
from linepush.service.store import gateway_store
from linepush.store import Store
from linepush.store.sql import SQLStore
from tests.service.conftest import (
    CHANNEL_ID,
    GROUP,
    HOUR,
    PUBLIC_URL,
    START,
    USER,
    Clock,
    Gateway,
    make_gateway,
)

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(64))
JPEG = b"\xff\xd8\xff\xe0" + bytes(range(64))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def notify(gateway: Gateway, token: str, files: Any = None, **fields: str) -> Any:
    return gateway.client.post("/api/notify", data=fields, files=files, headers=bearer(token))


# -- what is queued


def test_a_message_becomes_one_queued_push_to_the_tokens_recipient(gateway: Gateway) -> None:
    token = gateway.token()
    answer = notify(gateway, token, message="disk full")
    assert (answer.status_code, answer.json()) == (200, {"status": 200, "message": "ok"})
    (row,) = gateway.queued()
    assert (row.channel_id, row.kind, row.created_at) == (CHANNEL_ID, "push", START)
    assert row.payload == {"to": USER, "messages": [{"type": "text", "text": "disk full"}]}


def test_text_sticker_and_image_urls_go_in_that_order_in_one_push(gateway: Gateway) -> None:
    token = gateway.token(to=GROUP)
    answer = notify(
        gateway,
        token,
        message="look",
        imageThumbnail="https://example.com/t.jpg",
        imageFullsize="https://example.com/f.jpg",
        stickerPackageId="446",
        stickerId="1988",
        notificationDisabled="true",
    )
    assert answer.status_code == 200
    (row,) = gateway.queued()
    assert row.payload == {
        "to": GROUP,
        "messages": [
            {"type": "text", "text": "look"},
            {"type": "sticker", "packageId": "446", "stickerId": "1988"},
            {
                "type": "image",
                "originalContentUrl": "https://example.com/f.jpg",
                "previewImageUrl": "https://example.com/t.jpg",
            },
        ],
        "notificationDisabled": True,
    }


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"imageFullsize": "https://e.com/f.jpg"}, ("https://e.com/f.jpg", "https://e.com/f.jpg")),
        ({"imageThumbnail": "https://e.com/t.jpg"}, ("https://e.com/t.jpg", "https://e.com/t.jpg")),
    ],
)
def test_one_image_url_serves_as_both(gateway: Gateway, given: dict[str, str], expected: Any) -> None:
    assert notify(gateway, gateway.token(), message="m", **given).status_code == 200
    image = gateway.queued()[0].payload["messages"][1]
    assert (image["originalContentUrl"], image["previewImageUrl"]) == expected


@pytest.mark.parametrize(
    ("flag", "disabled"), [("false", False), ("False", False), ("TRUE", True), ("", False)]
)
def test_notification_disabled_reads_like_notify(gateway: Gateway, flag: str, disabled: bool) -> None:
    assert notify(gateway, gateway.token(), message="m", notificationDisabled=flag).status_code == 200
    assert gateway.queued()[0].payload.get("notificationDisabled", False) is disabled


def test_an_uploaded_image_is_kept_served_and_named_by_the_public_url(
    gateway: Gateway, tmp_path: Path
) -> None:
    token = gateway.token()
    answer = notify(gateway, token, files={"imageFile": ("shot.png", PNG, "image/png")}, message="see")
    assert answer.status_code == 200, answer.text
    assert answer.headers["X-RateLimit-ImageRemaining"] == "49"
    messages = gateway.queued()[0].payload["messages"]
    assert messages[0] == {"type": "text", "text": "see"}
    url = messages[1]["originalContentUrl"]
    assert messages[1] == {"type": "image", "originalContentUrl": url, "previewImageUrl": url}
    assert url.startswith(PUBLIC_URL + "/images/") and url.endswith(".png")
    served = gateway.client.get(url.removeprefix(PUBLIC_URL))
    assert (served.status_code, served.content, served.headers["content-type"]) == (200, PNG, "image/png")
    assert served.headers["x-content-type-options"] == "nosniff"
    assert [p.name for p in (tmp_path / "images").iterdir()] == [url.rsplit("/", 1)[1]]


def test_an_uploaded_image_wins_over_image_urls(gateway: Gateway) -> None:
    answer = notify(
        gateway,
        gateway.token(),
        files={"imageFile": ("a.jpg", JPEG, "image/jpeg")},
        message="m",
        imageFullsize="https://example.com/f.jpg",
        imageThumbnail="https://example.com/t.jpg",
    )
    assert answer.status_code == 200
    (_, image) = gateway.queued()[0].payload["messages"]
    assert image["originalContentUrl"].endswith(".jpg") and "example.com" not in image["originalContentUrl"]


def test_the_query_string_counts_as_form_fields_and_the_body_wins(gateway: Gateway) -> None:
    answer = gateway.client.post(
        "/api/notify?message=from+query&stickerPackageId=1&stickerId=2",
        data={"message": "from body"},
        headers=bearer(gateway.token()),
    )
    assert answer.status_code == 200
    messages = gateway.queued()[0].payload["messages"]
    assert messages == [
        {"type": "text", "text": "from body"},
        {"type": "sticker", "packageId": "1", "stickerId": "2"},
    ]


def test_a_message_sent_as_a_file_part_is_read_as_text(gateway: Gateway) -> None:
    answer = notify(gateway, gateway.token(), files={"message": ("m.txt", "héllo\n".encode(), "text/plain")})
    assert answer.status_code == 200
    assert gateway.queued()[0].payload["messages"][0]["text"] == "héllo\n"


def test_a_message_of_1000_utf16_units_is_taken(gateway: Gateway) -> None:
    assert notify(gateway, gateway.token(), message="🍎" * 500).status_code == 200


# -- what is refused


def assert_refused(answer: Any, status: int, message: str, gateway: Gateway) -> None:
    assert (answer.status_code, answer.json()) == (status, {"status": status, "message": message})
    assert gateway.queued() == []


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "message: must not be empty"),
        ({"message": ""}, "message: must not be empty"),
        ({"message": "x" * 1001}, "message: size must be between 1 and 1000"),
        ({"message": "🍎" * 500 + "x"}, "message: size must be between 1 and 1000"),
        ({"message": "m", "stickerId": "1"}, "stickerPackageId: must be given with stickerId"),
        ({"message": "m", "stickerPackageId": "1"}, "stickerId: must be given with stickerPackageId"),
        ({"message": "m", "stickerPackageId": "x", "stickerId": "1"}, "stickerPackageId: must be a number"),
        ({"message": "m", "stickerPackageId": "1", "stickerId": "-1"}, "stickerId: must be a number"),
        ({"message": "m", "imageFullsize": "http://e.com/f.jpg"}, "imageFullsize: must be an HTTPS URL"),
        ({"message": "m", "imageThumbnail": "ftp://x"}, "imageThumbnail: must be an HTTPS URL"),
        (
            {"message": "m", "imageFullsize": "https://e.com/a b.jpg"},
            "imageFullsize: must be a percent-encoded URL (no spaces or non-ASCII characters)",
        ),
        ({"message": "m", "notificationDisabled": "maybe"}, "notificationDisabled: must be true or false"),
        (
            {"message": "m", "imageFile": "not a file"},
            "imageFile: must be a file upload (multipart/form-data)",
        ),
    ],
)
def test_bad_fields_get_notify_style_400s(gateway: Gateway, fields: dict[str, str], message: str) -> None:
    assert_refused(notify(gateway, gateway.token(), **fields), 400, message, gateway)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "imageFile: must not be empty"),
        (b"GIF89a" + bytes(40), "imageFile: must be a PNG or JPEG image"),
        (b"<svg/>", "imageFile: must be a PNG or JPEG image"),
    ],
)
def test_uploads_that_are_not_png_or_jpeg_are_refused(gateway: Gateway, content: bytes, message: str) -> None:
    answer = notify(
        gateway, gateway.token(), files={"imageFile": ("x.png", content, "image/png")}, message="m"
    )
    assert_refused(answer, 400, message, gateway)


def test_an_upload_over_the_size_limit_is_refused(store: Store, channel: Channel, tmp_path: Path) -> None:
    gateway = make_gateway(
        store, channel, Clock(), public_url=PUBLIC_URL, image_dir=str(tmp_path / "i"), max_image_bytes=100
    )
    token = gateway.token()
    big = PNG + bytes(100 - len(PNG) + 1)
    answer = notify(gateway, token, files={"imageFile": ("x.png", big, "image/png")}, message="m")
    assert_refused(answer, 400, "imageFile: must be at most 100 bytes", gateway)
    huge = PNG + bytes(200_000)
    answer = notify(gateway, token, files={"imageFile": ("x.png", huge, "image/png")}, message="m")
    assert answer.status_code == 413
    assert answer.json()["status"] == 413
    assert not (tmp_path / "i").exists()


def test_uploads_without_a_public_url_get_a_clear_400(store: Store, channel: Channel) -> None:
    gateway = make_gateway(store, channel, Clock())
    answer = notify(gateway, gateway.token(), files={"imageFile": ("x.png", PNG, "image/png")}, message="m")
    assert answer.status_code == 400
    assert "image uploads are not enabled on this gateway" in answer.json()["message"]
    assert gateway.queued() == []
    # Image URLs still work without one.
    assert (
        notify(gateway, gateway.token(), message="m", imageFullsize="https://e.com/f.jpg").status_code == 200
    )


def test_other_content_types_are_refused(gateway: Gateway) -> None:
    answer = gateway.client.post(
        "/api/notify",
        content=b'{"message": "hi"}',
        headers={**bearer(gateway.token()), "Content-Type": "application/json"},
    )
    assert_refused(
        answer, 415, "Content-Type must be application/x-www-form-urlencoded or multipart/form-data", gateway
    )


def test_a_malformed_multipart_body_is_a_400(gateway: Gateway) -> None:
    answer = gateway.client.post(
        "/api/notify",
        content=b"--xyz\r\nContent-Disposition: form-data\r\n\r\nhello",
        headers={**bearer(gateway.token()), "Content-Type": "multipart/form-data; boundary=xyz"},
    )
    assert answer.status_code == 400
    assert gateway.queued() == []


@pytest.mark.parametrize("where", ["body", "query", "multipart"])
def test_a_form_of_too_many_fields_says_so_not_that_it_is_not_utf8(gateway: Gateway, where: str) -> None:
    fields = [(f"f{i}", "1") for i in range(70)] + [("message", "m")]
    if where == "multipart":
        answer = gateway.client.post(
            "/api/notify", files=[(k, (None, v)) for k, v in fields], headers=bearer(gateway.token())
        )
    else:
        form = "&".join(f"{k}={v}" for k, v in fields)
        answer = gateway.client.post(
            "/api/notify" + ("?" + form if where == "query" else ""),
            content=form.encode() if where == "body" else b"message=m",
            headers={**bearer(gateway.token()), "Content-Type": "application/x-www-form-urlencoded"},
        )
    assert answer.status_code == 400
    assert "at most 64 fields" in answer.json()["message"]
    assert "UTF-8" not in answer.json()["message"]
    assert gateway.queued() == []


def test_non_utf8_form_is_a_400(gateway: Gateway) -> None:
    answer = gateway.client.post(
        "/api/notify",
        content=b"message=%FF%FE",
        headers={**bearer(gateway.token()), "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_refused(answer, 400, "the form is not valid application/x-www-form-urlencoded UTF-8", gateway)


def test_a_multipart_text_field_that_is_not_utf8_is_a_400_not_mojibake(gateway: Gateway) -> None:
    """The same bytes url-encoded or as a file part are refused; as a plain part they were read as Latin-1,
    and LINE got text the sender never wrote."""
    body = b'--xyz\r\nContent-Disposition: form-data; name="message"\r\n\r\ncaf\xe9 \xff\r\n--xyz--\r\n'
    answer = gateway.client.post(
        "/api/notify",
        content=body,
        headers={**bearer(gateway.token()), "Content-Type": "multipart/form-data; boundary=xyz"},
    )
    assert_refused(answer, 400, "message: must be UTF-8 text", gateway)


def test_a_multipart_text_field_in_utf8_is_taken_as_written(gateway: Gateway) -> None:
    body = '--xyz\r\nContent-Disposition: form-data; name="message"\r\n\r\ncafé ✓\r\n--xyz--\r\n'
    answer = gateway.client.post(
        "/api/notify",
        content=body.encode(),
        headers={**bearer(gateway.token()), "Content-Type": "multipart/form-data; boundary=xyz"},
    )
    assert answer.status_code == 200
    (row,) = gateway.queued()
    assert row.payload["messages"] == [{"type": "text", "text": "café ✓"}]


# -- tokens


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer " + "x" * 300},
    ],
)
def test_no_or_a_wrong_token_gets_401_and_nothing_is_queued(
    gateway: Gateway, headers: dict[str, str]
) -> None:
    gateway.token()
    answer = gateway.client.post("/api/notify", data={"message": "m"}, headers=headers)
    assert_refused(answer, 401, "Invalid access token", gateway)
    assert "X-RateLimit-Limit" not in answer.headers
    for path, method in (("/api/status", "GET"), ("/api/revoke", "POST")):
        answer = gateway.client.request(method, path, headers=headers)
        assert (answer.status_code, answer.json()["message"]) == (401, "Invalid access token")


def test_the_bearer_scheme_is_case_insensitive(gateway: Gateway) -> None:
    token = gateway.token()
    answer = gateway.client.post(
        "/api/notify", data={"message": "m"}, headers={"Authorization": f"bearer {token}"}
    )
    assert answer.status_code == 200


def test_a_token_of_another_channel_is_refused(gateway: Gateway) -> None:
    from linepush.service import create_gateway_token

    other, _ = create_gateway_token(gateway.store, "999", USER, None, START)
    assert_refused(notify(gateway, other.reveal()), 401, "Invalid access token", gateway)


def test_tokens_are_random_url_safe_and_stored_only_as_a_hash(gateway: Gateway) -> None:
    tokens = {gateway.token() for _ in range(20)}
    assert len(tokens) == 20
    for token in tokens:
        assert len(token) >= 43 and token.replace("-", "").replace("_", "").isalnum()
    assert TOKEN_BYTES >= 32
    stored = gateway_store(gateway.store).list_gateway_tokens()
    assert {t.token_hash for t in stored} == {hashlib.sha256(t.encode()).hexdigest() for t in tokens}
    assert {t.token_hash for t in stored} == {hash_gateway_token(t) for t in tokens}


def test_revoke_stops_the_token_and_only_that_one(gateway: Gateway) -> None:
    token, other = gateway.token(), gateway.token()
    assert notify(gateway, token, message="before").status_code == 200
    answer = gateway.client.post("/api/revoke", headers=bearer(token))
    assert (answer.status_code, answer.json()) == (200, {"status": 200, "message": "ok"})
    assert answer.headers["X-RateLimit-Remaining"] == "999"
    assert notify(gateway, token, message="after").status_code == 401
    assert gateway.client.get("/api/status", headers=bearer(token)).status_code == 401
    assert notify(gateway, other, message="other").status_code == 200
    assert [row.payload["messages"][0]["text"] for row in gateway.queued()] == ["before", "other"]
    (revoked,) = [t for t in gateway_store(gateway.store).list_gateway_tokens() if t.revoked]
    assert revoked.revoked_at == START


def test_a_token_revoked_in_the_store_stops_at_once(gateway: Gateway) -> None:
    token = gateway.token()
    (record,) = gateway_store(gateway.store).list_gateway_tokens()
    gateway_store(gateway.store).revoke_gateway_token(record.id, START)
    assert notify(gateway, token, message="m").status_code == 401


@pytest.mark.parametrize(("to", "target_type"), [(USER, "USER"), (GROUP, "GROUP"), ("R" + "1" * 32, "ROOM")])
def test_status_tells_the_target(gateway: Gateway, to: str, target_type: str) -> None:
    answer = gateway.client.get("/api/status", headers=bearer(gateway.token(to=to, name="ops room")))
    assert answer.json() == {"status": 200, "message": "ok", "targetType": target_type, "target": "ops room"}
    assert answer.headers["X-RateLimit-Remaining"] == "1000"


def test_status_target_is_null_without_a_name(gateway: Gateway) -> None:
    answer = gateway.client.get("/api/status", headers=bearer(gateway.token(name=None)))
    assert answer.json()["target"] is None


# -- rate limits


def limits(answer: Any) -> tuple[int, ...]:
    names = ("Limit", "Remaining", "ImageLimit", "ImageRemaining", "Reset")
    return tuple(int(answer.headers[f"X-RateLimit-{name}"]) for name in names)


def test_rate_limit_headers_count_down_and_429_comes_at_the_limit(
    store: Store, channel: Channel, tmp_path: Path
) -> None:
    clock = Clock()
    gateway = make_gateway(
        store,
        channel,
        clock,
        rate_limits=RateLimits(calls=3, images=1),
        public_url=PUBLIC_URL,
        image_dir=str(tmp_path / "i"),
    )
    token, other = gateway.token(), gateway.token()
    reset = int(HOUR + 3600)
    answers = [notify(gateway, token, message=f"m{i}") for i in range(3)]
    assert [limits(a) for a in answers] == [(3, 2, 1, 1, reset), (3, 1, 1, 1, reset), (3, 0, 1, 1, reset)]
    refused = notify(gateway, token, message="one too many")
    assert refused.status_code == 429
    assert refused.json()["status"] == 429
    assert limits(refused) == (3, 0, 1, 1, reset)
    assert refused.headers["Retry-After"] == str(reset - int(START))
    assert len(gateway.queued()) == 3
    # Another token has its own count; status shows the count without using it up.
    assert limits(gateway.client.get("/api/status", headers=bearer(other))) == (3, 3, 1, 1, reset)
    assert limits(notify(gateway, other, message="x")) == (3, 2, 1, 1, reset)
    # A new window starts at the reset time.
    clock.now = reset - 0.001
    assert notify(gateway, token, message="still no").status_code == 429
    clock.now = reset
    answer = notify(gateway, token, message="new hour")
    assert (answer.status_code, limits(answer)) == (200, (3, 2, 1, 1, reset + 3600))


def test_image_uploads_have_their_own_limit(store: Store, channel: Channel, tmp_path: Path) -> None:
    gateway = make_gateway(
        store,
        channel,
        Clock(),
        rate_limits=RateLimits(calls=10, images=1),
        public_url=PUBLIC_URL,
        image_dir=str(tmp_path / "i"),
    )
    token = gateway.token()
    upload = {"imageFile": ("x.png", PNG, "image/png")}
    assert limits(notify(gateway, token, files=upload, message="1"))[3] == 0
    refused = notify(gateway, token, files=upload, message="2")
    assert refused.status_code == 429
    assert len(gateway.queued()) == 1
    assert notify(gateway, token, message="text still works").status_code == 200
    assert len(list((tmp_path / "i").iterdir())) == 1


def test_a_refused_message_uses_no_image_upload(gateway: Gateway, tmp_path: Path) -> None:
    token = gateway.token()
    upload = {"imageFile": ("x.png", PNG, "image/png")}
    answer = notify(gateway, token, files=upload, message="m", stickerId="1")
    assert answer.status_code == 400
    assert limits(answer)[3] == 50
    assert not (tmp_path / "images").exists()


def test_rate_limits_must_make_sense() -> None:
    from linepush.errors import ConfigurationError

    for bad in ({"calls": 0}, {"images": -1}, {"window": 0}, {"window": float("inf")}):
        with pytest.raises(ConfigurationError):
            RateLimits(**bad)


# -- the rest of the app


def test_healthz(gateway: Gateway) -> None:
    assert gateway.client.get("/healthz").json() == {"status": "ok"}


def test_unknown_paths_and_methods_answer_in_notify_shape(gateway: Gateway) -> None:
    assert gateway.client.get("/nowhere").json() == {"status": 404, "message": "Not Found"}
    answer = gateway.client.get("/api/notify")
    assert (answer.status_code, answer.json()) == (405, {"status": 405, "message": "Method Not Allowed"})
    assert answer.headers["Allow"] == "POST"


@pytest.mark.parametrize("name", ["../gateway.db", "x.png", "%2e%2e%2fgateway.db", "A" * 32 + ".gif"])
def test_images_serves_only_names_it_gave_out(gateway: Gateway, name: str) -> None:
    assert gateway.client.get(f"/images/{name}").status_code == 404
    assert gateway.client.get("/images/" + "A" * 32 + ".png").status_code == 404


def test_a_failing_store_gets_503_not_a_traceback(gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    from linepush.store import StoreError

    token = gateway.token()

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise StoreError("database is locked")

    monkeypatch.setattr(gateway.store, "enqueue", broken)
    answer = notify(gateway, token, message="m")
    assert answer.status_code == 503
    assert answer.json()["message"] == "the gateway's store is unavailable; try again later"
    from linepush.service.store import SQLGatewayStore

    monkeypatch.setattr(SQLGatewayStore, "find_gateway_token", broken)
    assert gateway.client.get("/readyz").status_code == 503
    assert gateway.client.get("/healthz").status_code == 200  # the process runs: not a reason to restart it
    assert notify(gateway, token, message="m").status_code == 503


def test_an_unexpected_error_is_a_plain_500(gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    token = gateway.token()

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(gateway.store, "enqueue", broken)
    answer = notify(gateway, token, message="m")
    assert (answer.status_code, answer.json()) == (500, {"status": 500, "message": "Internal Server Error"})
    assert "Traceback" not in answer.text and "a bug" not in answer.text


def test_raw_utf8_in_a_form_body_is_read_as_curl_d_sends_it(gateway: Gateway) -> None:
    answer = gateway.client.post(
        "/api/notify",
        content="message=こんにちは 🍎&stickerPackageId=1&stickerId=2".encode(),
        headers={**bearer(gateway.token()), "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 200
    assert gateway.queued()[0].payload["messages"][0] == {"type": "text", "text": "こんにちは 🍎"}


@pytest.mark.parametrize("content_type", ["multipart/form-data; boundary=x", "application/json", None])
def test_an_empty_body_is_a_missing_message_whatever_its_type(
    gateway: Gateway, content_type: str | None
) -> None:
    headers = bearer(gateway.token())
    if content_type:
        headers["Content-Type"] = content_type
    answer = gateway.client.post("/api/notify", headers=headers)
    assert_refused(answer, 400, "message: must not be empty", gateway)


def test_uploaded_images_past_their_retention_are_deleted(
    store: Store, channel: Channel, tmp_path: Path
) -> None:
    import os

    clock = Clock()
    directory = tmp_path / "i"
    gateway = make_gateway(
        store, channel, clock, public_url=PUBLIC_URL, image_dir=str(directory), image_retention=86_400.0
    )
    token = gateway.token()
    upload = {"imageFile": ("x.png", PNG, "image/png")}
    assert notify(gateway, token, files=upload, message="old").status_code == 200
    (old,) = directory.iterdir()
    (directory / "keep-me.txt").write_text("not an image the gateway gave out")
    os.utime(old, (START - 86_401, START - 86_401))
    clock.advance(3600)
    assert notify(gateway, token, files=upload, message="new").status_code == 200
    names = {p.name for p in directory.iterdir()}
    assert old.name not in names and "keep-me.txt" in names and len(names) == 2
    # At most one sweep an hour.
    os.utime(next(p for p in directory.iterdir() if p.suffix == ".png"), (0, 0))
    clock.advance(60)
    assert notify(gateway, token, files=upload, message="newer").status_code == 200
    assert len(list(directory.iterdir())) == 3


def test_image_retention_must_be_positive() -> None:
    from linepush.errors import ConfigurationError
    from linepush.service import GatewayConfig

    with pytest.raises(ConfigurationError):
        GatewayConfig(image_retention=0)


def test_the_limits_keep_one_row_per_token_whatever_the_window(store: Store) -> None:
    import asyncio

    from linepush.service.notify_limits import NotifyRateLimiter

    limiter = NotifyRateLimiter(store, RateLimits(calls=2, window=3600.0))
    for hour in range(3):
        now = HOUR + hour * 3600.0
        assert asyncio.run(limiter.take_call(7, now)) is not None
        assert asyncio.run(limiter.take_call(7, now + 10)) is not None
        assert asyncio.run(limiter.take_call(7, now + 20)) is None
    assert asyncio.run(limiter.quota(7, HOUR + 3 * 3600.0)).remaining == 2
    assert isinstance(store, SQLStore)
    assert store.select("SELECT count(*) FROM notify_usage") == [(1,)]


def test_readiness_says_so_when_the_store_cannot_be_written(channel: Channel, clock: Clock) -> None:
    from linepush.store import SQLiteStore
    from tests.support.disk import fill, small_disk

    with small_disk("8m") as disk, SQLiteStore(disk / "gateway.db") as store:
        made = make_gateway(store, channel, clock)
        with made.client:
            token = made.token()
            assert made.client.get("/readyz").status_code == 200
            store._connection().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            filler = fill(disk)
            # Reads still work on a full disk; a notification cannot be stored, and health must say so.
            assert notify(made, token, message="m").status_code == 503
            assert made.client.get("/readyz").status_code == 200  # one probe a second: the last one stands
            clock.advance(1.5)
            answer = made.client.get("/readyz")
            assert answer.status_code == 503
            assert answer.json()["failed"] == ["store"]
            assert answer.json()["checks"]["store"].startswith("failing")
            filler.unlink()
            clock.advance(1.5)
            assert made.client.get("/readyz").status_code == 200
            assert notify(made, token, message="m").status_code == 200


def test_a_call_refused_for_want_of_a_store_does_not_count_against_the_limit(
    store: Store, channel: Channel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 503 (nothing queued: the disk is full, say) must not lock a retrying sender out for the hour."""
    from linepush.store import StoreFullError

    gateway = make_gateway(store, channel, Clock(), rate_limits=RateLimits(calls=2, images=1))
    token = gateway.token()
    real = store.enqueue

    def full(*args: Any, **kwargs: Any) -> Any:
        raise StoreFullError("database or disk is full")

    monkeypatch.setattr(store, "enqueue", full)
    for _ in range(5):
        assert notify(gateway, token, message="m").status_code == 503
    monkeypatch.setattr(store, "enqueue", real)
    answers = [notify(gateway, token, message=f"m{i}") for i in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert [a.headers["X-RateLimit-Remaining"] for a in answers] == ["1", "0", "0"]
    assert len(gateway.queued()) == 2
