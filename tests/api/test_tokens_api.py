"""The token endpoints' requests (method, path, form fields) and their parsers on hand-built answers."""

from __future__ import annotations

import json
import pickle
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from linepush._secret import Secret
from linepush.api._base import FORM_CONTENT_TYPE, ApiRequest, ApiResponse, Operation
from linepush.api.tokens import (
    CLIENT_ASSERTION_TYPE,
    IssuedToken,
    TokenInfo,
    TokenKind,
    issue_short_lived,
    issue_stateless,
    issue_v21,
    list_v21_key_ids,
    revoke_short_lived,
    revoke_v21,
    verify_short_lived,
    verify_v21,
)
from linepush.errors import (
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    LineApiError,
    NotFoundError,
    RateLimitError,
    ServerError,
    TokenLimitError,
    ValidationError,
)

CHANNEL_ID = "1234567890"
CHANNEL_SECRET = "8c570fa6dd201bb328f1c1eac23a96d8"
TOKEN = "W1TeHCgfH2LiwaSECRETtoken0123456789abcdefXYZ="
V21_TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJzZWNyZXQtdjIxIn0.c2lnbmF0dXJlLXYyMQ"
ASSERTION = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIiwidHlwIjoiSldUIn0.eyJpc3MiOiIxMjM0NTY3ODkwIn0.U0lHTkFUVVJF"
NOW = 1_700_000_000.5
REQUEST_ID = "req-0001"


def fields_of(request: ApiRequest) -> dict[str, str]:
    """The form fields of a request (body for POST, query for GET), each given exactly once."""
    if request.method == "GET":
        assert request.body is None
        raw = urlsplit(request.path).query
    else:
        assert request.body is not None
        raw = request.body.decode("ascii")
    parsed = parse_qs(raw, keep_blank_values=True, strict_parsing=True)
    assert all(len(values) == 1 for values in parsed.values()), parsed
    return {name: values[0] for name, values in parsed.items()}


def answer(status: int, body: Any = None, *, raw: bytes | None = None) -> ApiResponse:
    if raw is None:
        raw = b"" if body is None else json.dumps(body).encode()
    return ApiResponse(status, {"x-line-request-id": REQUEST_ID, "content-type": "application/json"}, raw)


def assert_no_secrets(*texts: str) -> None:
    for text in texts:
        for secret in (CHANNEL_SECRET, TOKEN, V21_TOKEN, ASSERTION):
            assert secret not in text
            assert secret[-16:] not in text


# --- requests ---


def test_issue_short_lived_request() -> None:
    request = issue_short_lived(CHANNEL_ID, CHANNEL_SECRET, NOW).request
    assert (request.method, request.path, request.endpoint) == (
        "POST",
        "/v2/oauth/accessToken",
        "POST /v2/oauth/accessToken",
    )
    assert request.content_type == FORM_CONTENT_TYPE == "application/x-www-form-urlencoded"
    assert fields_of(request) == {
        "grant_type": "client_credentials",
        "client_id": CHANNEL_ID,
        "client_secret": CHANNEL_SECRET,
    }
    assert not request.needs_token
    assert not request.idempotent
    assert request.retry_key is None


def test_issue_short_lived_takes_the_secret_wrapped() -> None:
    request = issue_short_lived(CHANNEL_ID, Secret(CHANNEL_SECRET), NOW).request
    assert fields_of(request)["client_secret"] == CHANNEL_SECRET


def test_verify_short_lived_request() -> None:
    request = verify_short_lived(TOKEN).request
    assert (request.method, request.path, request.endpoint) == (
        "POST",
        "/v2/oauth/verify",
        "POST /v2/oauth/verify",
    )
    assert request.content_type == FORM_CONTENT_TYPE
    # The token holds '=' and other reserved characters: they must survive the form encoding.
    assert fields_of(request) == {"access_token": TOKEN}
    assert request.idempotent
    assert not request.needs_token


def test_revoke_short_lived_request() -> None:
    request = revoke_short_lived(Secret(TOKEN)).request
    assert (request.method, request.path) == ("POST", "/v2/oauth/revoke")
    assert request.content_type == FORM_CONTENT_TYPE
    assert fields_of(request) == {"access_token": TOKEN}
    assert request.idempotent


def test_issue_v21_request() -> None:
    request = issue_v21(ASSERTION, NOW).request
    assert (request.method, request.path, request.endpoint) == (
        "POST",
        "/oauth2/v2.1/token",
        "POST /oauth2/v2.1/token",
    )
    assert request.content_type == FORM_CONTENT_TYPE
    assert fields_of(request) == {
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": ASSERTION,
    }
    assert CLIENT_ASSERTION_TYPE == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    assert not request.idempotent
    assert not request.needs_token


def test_verify_v21_request_is_a_get_with_the_token_in_the_query() -> None:
    request = verify_v21(V21_TOKEN).request
    assert request.method == "GET"
    assert urlsplit(request.path).path == "/oauth2/v2.1/verify"
    assert request.endpoint == "GET /oauth2/v2.1/verify"
    assert request.body is None and request.content_type is None
    assert fields_of(request) == {"access_token": V21_TOKEN}
    assert request.idempotent
    assert not request.needs_token


def test_revoke_v21_request() -> None:
    request = revoke_v21(CHANNEL_ID, CHANNEL_SECRET, V21_TOKEN).request
    assert (request.method, request.path, request.endpoint) == (
        "POST",
        "/oauth2/v2.1/revoke",
        "POST /oauth2/v2.1/revoke",
    )
    assert request.content_type == FORM_CONTENT_TYPE
    assert fields_of(request) == {
        "client_id": CHANNEL_ID,
        "client_secret": CHANNEL_SECRET,
        "access_token": V21_TOKEN,
    }
    assert request.idempotent


def test_list_v21_key_ids_request() -> None:
    request = list_v21_key_ids(ASSERTION).request
    assert request.method == "GET"
    assert urlsplit(request.path).path == "/oauth2/v2.1/tokens/kid"
    assert request.endpoint == "GET /oauth2/v2.1/tokens/kid"
    assert request.body is None
    assert fields_of(request) == {
        "client_assertion_type": CLIENT_ASSERTION_TYPE,
        "client_assertion": ASSERTION,
    }
    assert request.idempotent


def test_issue_stateless_with_an_assertion() -> None:
    request = issue_stateless(NOW, assertion=ASSERTION).request
    assert (request.method, request.path, request.endpoint) == (
        "POST",
        "/oauth2/v3/token",
        "POST /oauth2/v3/token",
    )
    assert request.content_type == FORM_CONTENT_TYPE
    assert fields_of(request) == {
        "grant_type": "client_credentials",
        "client_assertion_type": CLIENT_ASSERTION_TYPE,
        "client_assertion": ASSERTION,
    }
    assert not request.idempotent


def test_issue_stateless_with_id_and_secret() -> None:
    request = issue_stateless(NOW, channel_id=CHANNEL_ID, channel_secret=Secret(CHANNEL_SECRET)).request
    assert (request.method, request.path) == ("POST", "/oauth2/v3/token")
    assert fields_of(request) == {
        "grant_type": "client_credentials",
        "client_id": CHANNEL_ID,
        "client_secret": CHANNEL_SECRET,
    }
    assert not request.idempotent


def test_issue_stateless_refuses_both_forms() -> None:
    with pytest.raises(ValidationError, match="not both") as caught:
        issue_stateless(NOW, assertion=ASSERTION, channel_id=CHANNEL_ID, channel_secret=CHANNEL_SECRET)
    assert_no_secrets(str(caught.value))
    with pytest.raises(ValidationError, match="not both"):
        issue_stateless(NOW, assertion=ASSERTION, channel_secret=CHANNEL_SECRET)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, "either a client assertion"),
        ({"channel_id": CHANNEL_ID}, "also needs the channel secret"),
        ({"channel_secret": CHANNEL_SECRET}, "also needs the channel id"),
    ],
)
def test_issue_stateless_needs_one_complete_form(kwargs: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigurationError, match=expected) as caught:
        issue_stateless(NOW, **kwargs)
    assert_no_secrets(str(caught.value))


def all_operations() -> list[Operation[Any]]:
    return [
        issue_short_lived(CHANNEL_ID, CHANNEL_SECRET, NOW),
        verify_short_lived(TOKEN),
        revoke_short_lived(TOKEN),
        issue_v21(ASSERTION, NOW),
        verify_v21(V21_TOKEN),
        revoke_v21(CHANNEL_ID, CHANNEL_SECRET, V21_TOKEN),
        list_v21_key_ids(ASSERTION),
        issue_stateless(NOW, assertion=ASSERTION),
        issue_stateless(NOW, channel_id=CHANNEL_ID, channel_secret=CHANNEL_SECRET),
    ]


def test_reprs_of_requests_and_operations_never_show_secrets() -> None:
    for operation in all_operations():
        assert_no_secrets(repr(operation.request), str(operation.request), repr(operation))
        # The endpoint is what a rate limiter or a log line keys on: never the query with the token in it.
        assert "?" not in operation.request.endpoint


# --- argument checks ---


@pytest.mark.parametrize("bad", ["", "  ", "abc def", "token\n", 123, None])
def test_a_bad_access_token_is_refused(bad: Any) -> None:
    for build in (verify_short_lived, revoke_short_lived, verify_v21):
        with pytest.raises(ValidationError) as caught:
            build(bad)
        assert caught.value.property == "access_token"
    with pytest.raises(ValidationError):
        revoke_v21(CHANNEL_ID, CHANNEL_SECRET, bad)


def test_a_token_with_a_trailing_newline_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValidationError) as caught:
        verify_short_lived(TOKEN + "\n")
    assert_no_secrets(str(caught.value))


@pytest.mark.parametrize("bad", ["", "not-a-jwt", "a.b", "a.b.c.d", "a.b.c\n", "a.b+.c", Secret("x.y"), 5])
def test_a_bad_assertion_is_refused(bad: Any) -> None:
    for build in (lambda a: issue_v21(a, NOW), list_v21_key_ids, lambda a: issue_stateless(NOW, assertion=a)):
        with pytest.raises(ValidationError) as caught:
            build(bad)
        assert caught.value.property == "client_assertion"


def test_an_assertion_may_come_wrapped() -> None:
    assert fields_of(issue_v21(Secret(ASSERTION), NOW).request)["client_assertion"] == ASSERTION


@pytest.mark.parametrize("bad", ["", "12 34", "1234\n", 1234567890, None])
def test_a_bad_channel_id_is_a_configuration_error(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="channel id"):
        issue_short_lived(bad, CHANNEL_SECRET, NOW)
    with pytest.raises(ConfigurationError, match="channel id"):
        revoke_v21(bad, CHANNEL_SECRET, V21_TOKEN)


@pytest.mark.parametrize("bad", ["", CHANNEL_SECRET + "\n", Secret(" " + CHANNEL_SECRET), None])
def test_a_bad_channel_secret_is_a_configuration_error_that_does_not_echo_it(bad: Any) -> None:
    for build in (
        lambda s: issue_short_lived(CHANNEL_ID, s, NOW),
        lambda s: revoke_v21(CHANNEL_ID, s, V21_TOKEN),
        lambda s: issue_stateless(NOW, channel_id=CHANNEL_ID, channel_secret=s),
    ):
        with pytest.raises(ConfigurationError, match="channel secret") as caught:
            build(bad)
        assert_no_secrets(str(caught.value))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0, "1700000000", True])
def test_a_bad_now_is_refused(bad: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        issue_short_lived(CHANNEL_ID, CHANNEL_SECRET, bad)
    assert caught.value.property == "now"
    with pytest.raises(ValidationError):
        issue_v21(ASSERTION, bad)
    with pytest.raises(ValidationError):
        issue_stateless(bad, assertion=ASSERTION)


# --- parsing successful answers ---


def test_parse_short_lived_token() -> None:
    operation = issue_short_lived(CHANNEL_ID, CHANNEL_SECRET, NOW)
    issued = operation.parse(
        answer(200, {"access_token": TOKEN, "expires_in": 2592000, "token_type": "Bearer"})
    )
    assert issued == IssuedToken(
        access_token=Secret(TOKEN),
        token_type="Bearer",
        expires_in=2592000,
        expires_at=NOW + 2592000,
        key_id=None,
        kind=TokenKind.V2,
    )
    assert issued.access_token.reveal() == TOKEN
    assert issued.kind == "v2"


def test_parse_v21_token_keeps_the_key_id() -> None:
    issued = issue_v21(ASSERTION, NOW).parse(
        answer(
            200,
            {
                "access_token": V21_TOKEN,
                "token_type": "Bearer",
                "expires_in": 86400,
                "key_id": "sDTOzw5wIfxxxxPEzcmeQA",
            },
        )
    )
    assert issued.kind is TokenKind.V21
    assert issued.key_id == "sDTOzw5wIfxxxxPEzcmeQA"
    assert issued.expires_in == 86400
    assert issued.expires_at == NOW + 86400
    assert issued.access_token.reveal() == V21_TOKEN


@pytest.mark.parametrize("form", ["assertion", "secret"])
def test_parse_stateless_token(form: str) -> None:
    if form == "assertion":
        operation = issue_stateless(NOW, assertion=ASSERTION)
    else:
        operation = issue_stateless(NOW, channel_id=CHANNEL_ID, channel_secret=CHANNEL_SECRET)
    issued = operation.parse(answer(200, {"token_type": "Bearer", "access_token": TOKEN, "expires_in": 900}))
    assert (issued.kind, issued.key_id, issued.expires_in, issued.expires_at) == (
        TokenKind.V3,
        None,
        900,
        NOW + 900,
    )


def test_parse_is_lenient_with_extra_fields_and_a_missing_token_type() -> None:
    issued = issue_stateless(NOW, assertion=ASSERTION).parse(
        answer(200, {"access_token": TOKEN, "expires_in": 899, "new_field": {"x": 1}})
    )
    assert issued.token_type == "Bearer"
    assert issued.expires_in == 899


def test_token_kind_values() -> None:
    assert [k.value for k in TokenKind] == ["v2.1", "v3", "v2", "static"]
    assert TokenKind("v2.1") is TokenKind.V21
    assert f"{TokenKind.V21}" == "v2.1"


def test_parse_verify_answers() -> None:
    info = verify_short_lived(TOKEN).parse(
        answer(200, {"client_id": "1350031035", "expires_in": 3138007490, "scope": "P CM"})
    )
    assert info == TokenInfo(client_id="1350031035", expires_in=3138007490, scope="P CM")
    info = verify_v21(V21_TOKEN).parse(answer(200, {"client_id": "1573163733", "expires_in": 2591659}))
    assert info == TokenInfo(client_id="1573163733", expires_in=2591659, scope=None)


def test_parse_verify_accepts_a_numeric_client_id() -> None:
    info = verify_v21(V21_TOKEN).parse(answer(200, {"client_id": 1573163733, "expires_in": 5, "x": True}))
    assert info.client_id == "1573163733"


@pytest.mark.parametrize(
    "operation", [revoke_short_lived(TOKEN), revoke_v21(CHANNEL_ID, CHANNEL_SECRET, TOKEN)]
)
def test_parse_revoke_answers(operation: Operation[None]) -> None:
    assert operation.parse(answer(200)) is None
    assert operation.parse(answer(200, raw=b"{}")) is None


def test_parse_key_ids() -> None:
    kids = ["U_gdnFYKTWRxxxxDVZexGg", "sDTOzw5wIfWxxxxzcmeQA"]
    assert list_v21_key_ids(ASSERTION).parse(answer(200, {"kids": kids})) == kids
    assert list_v21_key_ids(ASSERTION).parse(answer(200, {"kids": []})) == []


# --- parsing errors ---


ISSUERS: list[Operation[IssuedToken]] = [
    issue_short_lived(CHANNEL_ID, CHANNEL_SECRET, NOW),
    issue_v21(ASSERTION, NOW),
    issue_stateless(NOW, assertion=ASSERTION),
]
EVERY = all_operations()
JSON_ANSWERS = [op for op in EVERY if "revoke" not in op.request.path]
REVOKES = [op for op in EVERY if "revoke" in op.request.path]


@pytest.mark.parametrize("operation", EVERY)
def test_oauth_style_error_body(operation: Operation[Any]) -> None:
    body = {"error": "invalid_request", "error_description": "access_token invalid"}
    with pytest.raises(BadRequestError) as caught:
        operation.parse(answer(400, body))
    error = caught.value
    assert type(error) is BadRequestError
    assert (error.status, error.error, error.error_description) == (
        400,
        "invalid_request",
        "access_token invalid",
    )
    assert error.message == "access_token invalid"
    assert error.request_id == REQUEST_ID


@pytest.mark.parametrize("operation", EVERY)
def test_oauth_style_error_without_description(operation: Operation[Any]) -> None:
    with pytest.raises(BadRequestError) as caught:
        operation.parse(answer(400, {"error": "invalid_request"}))
    assert caught.value.message == "invalid_request"
    assert caught.value.error_description is None


@pytest.mark.parametrize("operation", EVERY)
def test_message_style_error_body(operation: Operation[Any]) -> None:
    body = {"message": "Cannot find channel key that satisfies the conditions"}
    with pytest.raises(NotFoundError) as caught:
        operation.parse(answer(404, body))
    assert caught.value.message == "Cannot find channel key that satisfies the conditions"
    assert caught.value.error is None
    assert caught.value.request_id == REQUEST_ID


def test_v21_token_limit_becomes_token_limit_error() -> None:
    body = {"message": "The maximum number of access tokens has already been issued"}
    with pytest.raises(TokenLimitError) as caught:
        issue_v21(ASSERTION, NOW).parse(answer(400, body))
    assert isinstance(caught.value, BadRequestError)
    assert caught.value.status == 400
    assert not caught.value.retryable


def test_invalid_client_on_issue() -> None:
    body = {"error": "invalid_client", "error_description": "iss and clientId of key do not match"}
    with pytest.raises(BadRequestError) as caught:
        issue_v21(ASSERTION, NOW).parse(answer(400, body))
    assert not isinstance(caught.value, TokenLimitError)
    assert caught.value.error == "invalid_client"
    assert "iss and clientId of key do not match" in str(caught.value)


@pytest.mark.parametrize(
    ("status", "cls"),
    [(401, AuthenticationError), (429, RateLimitError), (500, ServerError), (503, ServerError)],
)
@pytest.mark.parametrize("operation", EVERY)
def test_other_statuses_map_to_their_classes(operation: Operation[Any], status: int, cls: type) -> None:
    with pytest.raises(cls):
        operation.parse(answer(status, raw=b""))


@pytest.mark.parametrize("operation", EVERY)
def test_a_non_json_error_body_still_gives_a_clear_error(operation: Operation[Any]) -> None:
    with pytest.raises(ServerError, match="upstream connect error"):
        operation.parse(answer(502, raw=b"upstream connect error"))


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"expires_in": 900, "token_type": "Bearer"}, "without an access_token"),
        ({"access_token": "", "expires_in": 900}, "without an access_token"),
        ({"access_token": 42, "expires_in": 900}, "without an access_token"),
        ({"access_token": TOKEN, "token_type": "Bearer"}, "expires_in"),
        ({"access_token": TOKEN, "expires_in": "900"}, "expires_in"),
        ({"access_token": TOKEN, "expires_in": 0}, "expires_in"),
        ({"access_token": TOKEN, "expires_in": -5}, "expires_in"),
        ({"access_token": TOKEN, "expires_in": 1.5}, "expires_in"),
        ({"access_token": TOKEN, "expires_in": True}, "expires_in"),
        ({"access_token": TOKEN, "expires_in": 900, "token_type": 1}, "token_type"),
        ({"access_token": TOKEN, "expires_in": 900, "key_id": 7}, "key_id"),
    ],
)
@pytest.mark.parametrize("operation", ISSUERS)
def test_a_malformed_200_on_issue_is_a_clear_error_without_the_token(
    operation: Operation[IssuedToken], body: dict[str, Any], expected: str
) -> None:
    with pytest.raises(LineApiError) as caught:
        operation.parse(answer(200, body))
    error = caught.value
    assert expected in str(error)
    assert error.status == 200
    assert error.request_id == REQUEST_ID
    assert_no_secrets(str(error), repr(error), repr(dict(error.body)))


def test_a_v21_answer_without_key_id_is_malformed() -> None:
    with pytest.raises(LineApiError, match="without a key_id"):
        issue_v21(ASSERTION, NOW).parse(answer(200, {"access_token": V21_TOKEN, "expires_in": 60}))


@pytest.mark.parametrize(
    "raw",
    [b"", b"not json", b"[1,2]", b'"text"', b"\xff\xfe"],
    ids=["empty", "text", "array", "string", "bytes"],
)
@pytest.mark.parametrize("operation", JSON_ANSWERS)
def test_a_200_that_is_not_a_json_object(operation: Operation[Any], raw: bytes) -> None:
    with pytest.raises(LineApiError) as caught:
        operation.parse(answer(200, raw=raw))
    assert caught.value.status == 200


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"expires_in": 10}, "client_id"),
        ({"client_id": "", "expires_in": 10}, "client_id"),
        ({"client_id": "1", "expires_in": -1}, "expires_in"),
        ({"client_id": "1"}, "expires_in"),
        ({"client_id": "1", "expires_in": 10, "scope": ["P"]}, "scope"),
    ],
)
@pytest.mark.parametrize("operation", [verify_short_lived(TOKEN), verify_v21(V21_TOKEN)])
def test_a_malformed_verify_answer(
    operation: Operation[TokenInfo], body: dict[str, Any], expected: str
) -> None:
    with pytest.raises(LineApiError, match=expected):
        operation.parse(answer(200, body))


@pytest.mark.parametrize(
    "body",
    [{}, {"kids": "abc"}, {"kids": ["a", 1]}, {"kids": None}],
    ids=["missing", "string", "mixed", "null"],
)
def test_a_malformed_key_id_list(body: dict[str, Any]) -> None:
    with pytest.raises(LineApiError, match="kids"):
        list_v21_key_ids(ASSERTION).parse(answer(200, body))


@pytest.mark.parametrize("operation", REVOKES)
def test_a_revoke_ignores_whatever_body_comes_with_a_200(operation: Operation[None]) -> None:
    assert operation.parse(answer(200, raw=b"OK")) is None


# --- nothing secret in results ---


def test_issued_token_repr_hides_the_token() -> None:
    issued = issue_v21(ASSERTION, NOW).parse(
        answer(200, {"access_token": V21_TOKEN, "expires_in": 60, "key_id": "kid-1", "token_type": "Bearer"})
    )
    assert_no_secrets(repr(issued), str(issued), f"{issued}", f"{issued.access_token}")
    assert "kid-1" in repr(issued)
    # Pickling keeps the value (results may cross process boundaries), still masked when shown.
    again = pickle.loads(pickle.dumps(issued))
    assert again == issued
    assert_no_secrets(repr(again))


def test_results_are_frozen() -> None:
    info = TokenInfo(client_id="1", expires_in=1, scope=None)
    with pytest.raises(AttributeError):
        info.expires_in = 2  # type: ignore[misc]


def test_an_expired_assertion_is_explained_by_the_clocks() -> None:
    from email.utils import formatdate

    from linepush.api.tokens import issue_v21

    body = b'{"error":"invalid_client","error_description":"Invalid exp"}'
    sent_at = 1_800_000_000.0
    jwt = "a.b.c"

    def refusal(headers: dict[str, str]) -> LineApiError:
        with pytest.raises(LineApiError) as caught:
            issue_v21(jwt, sent_at).parse(ApiResponse(400, headers, body))
        return caught.value

    ahead = refusal({"date": formatdate(sent_at + 2 * 86400, usegmt=True)})
    assert ahead.hint is not None and "48.0 h behind" in ahead.hint
    behind = refusal({"date": formatdate(sent_at - 600, usegmt=True)})
    assert behind.hint is not None and "10 min ahead" in behind.hint
    agreeing = refusal({"date": formatdate(sent_at + 5, usegmt=True)})
    assert agreeing.hint is not None and "within 30 minutes" in agreeing.hint
    undated = refusal({"date": "not a date"})
    assert undated.hint is not None and "curl -sI https://api.line.me/" in undated.hint
    server = issue_v21(jwt, sent_at)
    with pytest.raises(LineApiError) as failed:
        server.parse(ApiResponse(500, {}, b'{"message":"Internal server error"}'))
    assert failed.value.hint is not None and "--retry-key" not in failed.value.hint
