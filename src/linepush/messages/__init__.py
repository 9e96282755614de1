"""Message models and the local validation of everything a send carries (messages, recipients, units).

Every send is checked here once, before any request: what LINE would refuse raises
:class:`~linepush.errors.ValidationError` naming the field in LINE's notation (``messages[2].text``).
The limits and LINE's ways of counting are in ``_limits``, the models' base in ``_message``, the typed
models in ``_models``, the validator in ``_validate`` and recipient ids in ``_recipients``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from linepush.messages import _limits

# Every limit, and LINE's ways of counting text, by name.
from linepush.messages._limits import *  # noqa: F403

# What a send takes as one message, and the base of the typed models.
from linepush.messages._message import Message, MessageLike
from linepush.messages._recipients import validate_custom_aggregation_units, validate_to, validate_user_ids
from linepush.messages._validate import normalize_messages

if TYPE_CHECKING:
    from linepush.messages._models import (
        AudioMessage,
        CouponMessage,
        FlexMessage,
        ImagemapMessage,
        ImageMessage,
        LocationMessage,
        StickerMessage,
        TemplateMessage,
        TextMessage,
        TextV2Message,
        VideoMessage,
    )

__all__ = [
    "AudioMessage",
    "CouponMessage",
    "FlexMessage",
    "ImageMessage",
    "ImagemapMessage",
    "LocationMessage",
    "Message",
    "MessageLike",
    "StickerMessage",
    "TemplateMessage",
    "TextMessage",
    "TextV2Message",
    "VideoMessage",
    "normalize_messages",
    "validate_custom_aggregation_units",
    "validate_to",
    "validate_user_ids",
]

# The typed models load on first use (PEP 562): building their eleven dataclasses costs a one-shot command
# about 10 ms, and a send of plain text or of LINE's own dicts never needs them.
_MODELS = frozenset(name for name in __all__ if name.endswith("Message") and name != "Message")

__all__ += _limits.__all__


def __getattr__(name: str) -> Any:
    if name in _MODELS:
        from linepush.messages import _models

        value = getattr(_models, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _MODELS)
