"""Who a recipient is, as LINE knows it: a user's profile (``GET /v2/bot/profile/{userId}``) and a group's
summary (``GET /v2/bot/group/{groupId}/summary``), as requests and parsers. No I/O.

LINE answers 404 for a user who is not a friend of the account, has blocked it or does not exist, and for a
group the bot is not in (FACTS §4.2). Rooms have no name in the Messaging API: there is no endpoint for one.
"""

from __future__ import annotations

from dataclasses import dataclass

from linepush.api._base import ApiRequest, ApiResponse, Operation, expect_json_object
from linepush.errors import LineApiError, ValidationError
from linepush.messages import validate_to

__all__ = ["GroupSummary", "UserProfile", "group_summary", "profile"]


@dataclass(frozen=True, slots=True)
class UserProfile:
    """A user as the bot sees them (UserProfileResponse). The optional fields are absent from LINE's answer
    when the user has no picture or status message, or has not consented to LINE's privacy policy."""

    user_id: str
    display_name: str
    picture_url: str | None = None
    status_message: str | None = None
    language: str | None = None


@dataclass(frozen=True, slots=True)
class GroupSummary:
    """A group chat the bot is in (GroupSummaryResponse); ``picture_url`` is None without a group icon."""

    group_id: str
    group_name: str
    picture_url: str | None = None


def _checked(recipient_id: str, prefix: str, what: str, property: str) -> str:
    validate_to(recipient_id, property=property)
    if not recipient_id.startswith(prefix):
        raise ValidationError(f"must be a {what} ({prefix}…), not {recipient_id[:1]}…", property=property)
    return recipient_id


def _required(data: dict[str, object], key: str, response: ApiResponse) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise LineApiError(
            response.status,
            f"LINE answered {response.status} without the string {key!r} its schema requires",
            request_id=response.request_id,
        )
    return value


def _optional(data: dict[str, object], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) else None


def _read(path: str, template: str) -> ApiRequest:
    """A GET with the bearer token; rate-limited by its path template (LINE's "other endpoints")."""
    return ApiRequest("GET", path, f"GET {template}", needs_token=True, idempotent=True)


def profile(user_id: str) -> Operation[UserProfile]:
    """A user's display name, picture, status message and language."""
    _checked(user_id, "U", "user id", "userId")

    def parse(response: ApiResponse) -> UserProfile:
        data = expect_json_object(response)
        return UserProfile(
            _required(data, "userId", response),
            _required(data, "displayName", response),
            _optional(data, "pictureUrl"),
            _optional(data, "statusMessage"),
            _optional(data, "language"),
        )

    return Operation(_read(f"/v2/bot/profile/{user_id}", "/v2/bot/profile/{userId}"), parse)


def group_summary(group_id: str) -> Operation[GroupSummary]:
    """A group's name and icon."""
    _checked(group_id, "C", "group id", "groupId")

    def parse(response: ApiResponse) -> GroupSummary:
        data = expect_json_object(response)
        return GroupSummary(
            _required(data, "groupId", response),
            _required(data, "groupName", response),
            _optional(data, "pictureUrl"),
        )

    return Operation(_read(f"/v2/bot/group/{group_id}/summary", "/v2/bot/group/{groupId}/summary"), parse)
