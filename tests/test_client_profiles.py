"""A user's profile and a group's summary: the request builders (no I/O), and both clients against the
emulator, in-process and over a loopback socket."""

from __future__ import annotations

import json

import pytest

from linepush import errors
from linepush.api import profiles
from linepush.api._base import ApiResponse
from linepush.api.profiles import GroupSummary, UserProfile
from tests.test_client import Env, env

__all__ = ["env"]

FRIEND = "U" + "a" * 28 + "0001"
BLOCKER = "U" + "b" * 32
GROUP = "C" + "c" * 28 + "5555"
ROOM = "R" + "d" * 32


def test_the_requests_are_authenticated_idempotent_reads() -> None:
    for op, path, endpoint in (
        (profiles.profile(FRIEND), f"/v2/bot/profile/{FRIEND}", "GET /v2/bot/profile/{userId}"),
        (
            profiles.group_summary(GROUP),
            f"/v2/bot/group/{GROUP}/summary",
            "GET /v2/bot/group/{groupId}/summary",
        ),
    ):
        request = op.request
        assert (request.method, request.path, request.endpoint) == ("GET", path, endpoint)
        assert request.needs_token and request.idempotent and request.body is None


@pytest.mark.parametrize(
    ("build", "given", "reason"),
    [
        (profiles.profile, GROUP, "must be a user id (U…)"),
        (profiles.profile, "U123", "lowercase hex"),
        (profiles.group_summary, ROOM, "must be a group id (C…)"),
        (profiles.group_summary, "C/../x", "lowercase hex"),
    ],
)
def test_a_wrong_id_is_refused_before_any_request(build: object, given: str, reason: str) -> None:
    with pytest.raises(errors.ValidationError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        build(given)  # type: ignore[operator]


def test_optional_fields_are_read_and_a_missing_required_one_is_an_error() -> None:
    full = {
        "userId": FRIEND,
        "displayName": "LINE taro",
        "pictureUrl": "https://obs.line-apps.com/x",
        "statusMessage": "Hello, LINE!",
        "language": "en",
    }
    parsed = profiles.profile(FRIEND).parse(ApiResponse(200, {}, json.dumps(full).encode()))
    assert parsed == UserProfile(FRIEND, "LINE taro", "https://obs.line-apps.com/x", "Hello, LINE!", "en")
    bare = profiles.profile(FRIEND).parse(
        ApiResponse(200, {}, json.dumps({"userId": FRIEND, "displayName": "x"}).encode())
    )
    assert (bare.picture_url, bare.status_message, bare.language) == (None, None, None)
    with pytest.raises(errors.LineApiError, match="'displayName'"):
        profiles.profile(FRIEND).parse(ApiResponse(200, {"x-line-request-id": "r"}, b'{"userId": "U"}'))
    with pytest.raises(errors.LineApiError, match="'groupName'"):
        profiles.group_summary(GROUP).parse(ApiResponse(200, {}, json.dumps({"groupId": GROUP}).encode()))


def test_profile_of_a_friend_and_not_found_for_a_blocker(env: Env) -> None:
    line = env.client()
    found = line.get_profile(FRIEND)
    assert isinstance(found, UserProfile)
    assert (found.user_id, found.display_name, found.language) == (FRIEND, "User 0001", "en")
    env.admin.recipient(env.channel.require_id(), BLOCKER, "blocked")
    with pytest.raises(errors.NotFoundError) as caught:
        line.get_profile(BLOCKER)
    assert caught.value.status == 404 and caught.value.message == "Not found"
    assert not caught.value.retryable
    assert caught.value.request_id  # what LINE said is kept, as for every other endpoint


def test_group_summary(env: Env) -> None:
    line = env.client()
    assert line.get_group_summary(GROUP) == GroupSummary(GROUP, "Group 5555")
    env.admin.recipient(env.channel.require_id(), GROUP, "unknown")  # the bot left the group
    with pytest.raises(errors.NotFoundError):
        line.get_group_summary(GROUP)


def test_line_errors_map_as_for_other_endpoints(env: Env) -> None:
    line = env.client()
    env.admin.fault(path=f"/v2/bot/profile/{FRIEND}", method="GET", mode="status", status=403, count=1)
    with pytest.raises(errors.PermissionDeniedError):
        line.get_profile(FRIEND)
    # A 500 is retried (a read may be sent again), then the answer comes.
    env.admin.fault(path=f"/v2/bot/group/{GROUP}/summary", method="GET", mode="status", status=500, count=1)
    assert line.get_group_summary(GROUP).group_name == "Group 5555"
    assert env.admin.count(f"/v2/bot/group/{GROUP}/summary", method="GET") == 2
