"""The base of the typed message models, and what a send accepts as one message.

Kept apart from the models themselves (``_models``), which load only when a program uses one: a send of
plain text, such as a one-shot ``linepush send``, never needs them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeAlias

__all__ = ["Message", "MessageLike"]


@dataclass(frozen=True, slots=True)
class Message:
    """Base of the typed message models. ``to_dict()`` gives LINE's JSON shape.

    Models are not validated when built (their dict fields stay mutable); they are validated, once, with
    everything else when passed to :func:`normalize_messages`.
    """

    type: ClassVar[str] = ""

    #: LINE's quick reply object, e.g. ``{"items": [{"type": "action", "action": {...}}]}``.
    quick_reply: Mapping[str, Any] | None = field(default=None, kw_only=True)
    #: LINE's sender object, e.g. ``{"name": "Alerts", "iconUrl": "https://..."}``.
    sender: Mapping[str, Any] | None = field(default=None, kw_only=True)

    def to_dict(self) -> dict[str, Any]:
        """This message as LINE's JSON object (camelCase keys, unset optional fields left out)."""
        data: dict[str, Any] = {"type": self.type}
        self._fill(data)
        if self.quick_reply is not None:
            data["quickReply"] = _plain(self.quick_reply)
        if self.sender is not None:
            data["sender"] = _plain(self.sender)
        return data

    def _fill(self, data: dict[str, Any]) -> None:
        raise NotImplementedError


def _plain(value: Mapping[str, Any]) -> dict[str, Any]:
    return value if isinstance(value, dict) else dict(value)


def _put(data: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        data[key] = value


#: What a send accepts as one message: a plain string (a text message), a dict in LINE's shape, or a model.
MessageLike: TypeAlias = str | Mapping[str, Any] | Message
