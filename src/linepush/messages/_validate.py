"""The validator: a send's messages (strings, dicts or models) turned into LINE's JSON dicts, each field
checked against LINE's limits, the first refusal raised as a ValidationError naming the field in LINE's
notation (``messages[2].text``)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from linepush.errors import ValidationError
from linepush.messages._limits import (
    _WORD_RE,
    IMAGEMAP_BASE_WIDTH,
    MAX_ACTION_DATA,
    MAX_ACTION_LABEL,
    MAX_ACTION_TEXT,
    MAX_ACTION_URI,
    MAX_ALT_TEXT,
    MAX_BUTTONS_ACTIONS,
    MAX_BUTTONS_TEXT,
    MAX_BUTTONS_TEXT_WITH_IMAGE_OR_TITLE,
    MAX_CAROUSEL_ACTIONS,
    MAX_CAROUSEL_TEXT,
    MAX_CAROUSEL_TEXT_WITH_IMAGE_OR_TITLE,
    MAX_CLIPBOARD_TEXT,
    MAX_CONFIRM_TEXT,
    MAX_DELIVERY_TAG,
    MAX_EMOJIS,
    MAX_FLEX_BUBBLE_BYTES,
    MAX_FLEX_CAROUSEL_BUBBLES,
    MAX_FLEX_CAROUSEL_BYTES,
    MAX_IMAGE_CAROUSEL_LABEL,
    MAX_IMAGEMAP_ACTIONS,
    MAX_LOCATION_TEXT,
    MAX_MESSAGES,
    MAX_QUICK_REPLY_ITEMS,
    MAX_SENDER_NAME,
    MAX_SUBSTITUTION_KEY,
    MAX_SUBSTITUTIONS,
    MAX_TEMPLATE_COLUMNS,
    MAX_TEMPLATE_TITLE,
    MAX_TEXT_UTF16,
    MAX_TEXTV2_EMOJIS,
    MAX_TEXTV2_MENTIONS,
    MAX_TRACKING_ID,
    MAX_URL_LENGTH,
    MESSAGE_TYPES,
    MIN_TEXT_UTF16,
    grapheme_len,
    utf16_len,
)
from linepush.messages._message import Message, MessageLike
from linepush.messages._recipients import _USER_RE

_TYPES_TEXT = "Must be one of the following values: [" + ", ".join(MESSAGE_TYPES) + "]"
_PLACEHOLDER_RE = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
# Type tuples built once: an `a | b` union in isinstance() is rebuilt on every call (hot path).
_ARRAY = (list, tuple)
_NUMBER = (int, float)
# Prefixes for the only indexes a valid request can have; larger ones are refused before they are needed.
_PREFIXES = tuple(f"messages[{i}]" for i in range(MAX_MESSAGES))
_SINGLE = (str, Mapping, Message)


# --- Normalization ------------------------------------------------------------------------------------


def normalize_messages(messages: MessageLike | Iterable[MessageLike]) -> list[dict[str, Any]]:
    """Turn one message or a list (any iterable) of 1–5 messages into LINE's JSON dicts, all validated.

    Strings become text messages, models become their ``to_dict()``, and dicts are checked and passed
    through as given (not copied). Raises :class:`ValidationError` naming the first offending field, e.g.
    ``messages[2].text``; nothing is sent then.
    """
    # A plain string is the common case (alerts, cron jobs): keep it to a few checks.
    if type(messages) is str:
        return [_text_from_str(messages, "messages[0]")]
    items: Sequence[Any]
    if isinstance(messages, _ARRAY):
        items = messages
    elif type(messages) is dict or isinstance(messages, _SINGLE):
        items = (messages,)
    elif isinstance(messages, bytes | bytearray) or not isinstance(messages, Iterable):
        raise ValidationError(
            "Must be a message (a string, a dict or a message model) or a list of 1 to 5 messages",
            property="messages",
        )
    else:
        items = list(messages)
    count = len(items)
    if count < 1 or count > MAX_MESSAGES:
        raise ValidationError(f"Size must be between 1 and {MAX_MESSAGES}", property="messages")
    out: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        p = _PREFIXES[index]
        if type(item) is str:
            out.append(_text_from_str(item, p))
            continue
        data: Mapping[str, Any]
        if type(item) is dict:
            data = item
        elif isinstance(item, Message):
            data = item.to_dict()
        elif isinstance(item, Mapping):
            data = item
        elif isinstance(item, str):
            out.append(_text_from_str(str(item), p))
            continue
        else:
            raise ValidationError(
                "Must be a string, a message object (dict) or a linepush message model, "
                f"not {type(item).__name__}",
                property=p,
            )
        _check_message(data, p)
        out.append(data if type(data) is dict else dict(data))
    return out


def _text_from_str(text: str, p: str) -> dict[str, Any]:
    n = len(text)
    # Each code point is at most 2 UTF-16 units, so short strings need no encoding to be measured.
    if n < MIN_TEXT_UTF16 or (n > MAX_TEXT_UTF16 // 2 and utf16_len(text) > MAX_TEXT_UTF16):
        _text_length_error(text, p + ".text")
    return {"type": "text", "text": text}


def _text_length_error(text: str, prop: str) -> None:
    if not text:
        raise ValidationError("May not be empty", property=prop)
    raise ValidationError(f"Length must be between 0 and {MAX_TEXT_UTF16}", property=prop)


def _check_message(m: Mapping[str, Any], p: str) -> None:
    kind = m.get("type")
    if kind is None or kind == "":
        raise ValidationError("May not be empty", property=p + ".type")
    check = _CHECKS.get(kind) if type(kind) is str else None
    if check is None:
        raise ValidationError(_TYPES_TEXT, property=p + ".type")
    check(m, p)
    # Every type has a required field besides "type", which check() has already found, so a two-key
    # message cannot also carry quickReply or sender: skip the look-ups for the common {type, text}.
    if len(m) > 2:
        quick_reply = m.get("quickReply")
        if quick_reply is not None:
            _check_quick_reply(quick_reply, p + ".quickReply")
        sender = m.get("sender")
        if sender is not None:
            _check_sender(sender, p + ".sender")


# --- Field checks -------------------------------------------------------------------------------------
# Lengths are counted in UTF-16 units (LINE's validation messages are those of Java Bean Validation, which
# measures String.length()), except template texts and labels, which LINE counts in grapheme clusters.


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, _NUMBER):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, _ARRAY):
        return "array"
    return type(value).__name__


def _wrong_type(prop: str, expected: str, value: Any) -> ValidationError:
    return ValidationError(f"Must be {expected}, not {_type_name(value)}", property=prop)


def _str(
    m: Mapping[str, Any],
    key: str,
    p: str,
    limit: int | None = None,
    *,
    required: bool = True,
    measure: Callable[[str], int] = utf16_len,
) -> str | None:
    value = m.get(key)
    if value is None:
        if required:
            raise ValidationError("May not be empty", property=f"{p}.{key}")
        return None
    if type(value) is not str:
        raise _wrong_type(f"{p}.{key}", "a string", value)
    if required and not value:
        raise ValidationError("May not be empty", property=f"{p}.{key}")
    # Neither unit can exceed twice the code-point count, so short values need no measuring.
    if limit is not None and len(value) > limit // 2 and measure(value) > limit:
        raise ValidationError(f"Length must be between 0 and {limit}", property=f"{p}.{key}")
    return value


def _https_url(
    m: Mapping[str, Any], key: str, p: str, *, required: bool = True, limit: int = MAX_URL_LENGTH
) -> None:
    url = _str(m, key, p, limit, required=required)
    if url is None:
        return
    prop = f"{p}.{key}"
    if url[:8].lower() != "https://" or len(url) == 8:
        raise ValidationError("Must be an HTTPS URL (https://...)", property=prop)
    if not url.isascii() or any(c in url for c in ' "<>\\^`{|}\t\r\n'):
        raise ValidationError(
            "Must be percent-encoded: spaces and non-ASCII characters are not allowed in a URL",
            property=prop,
        )


def _number(m: Mapping[str, Any], key: str, p: str, lo: float, hi: float) -> None:
    value = m.get(key)
    prop = f"{p}.{key}"
    if value is None:
        raise ValidationError("May not be empty", property=prop)
    if isinstance(value, bool) or not isinstance(value, _NUMBER):
        raise _wrong_type(prop, "a number", value)
    if not lo <= value <= hi:
        raise ValidationError(f"Must be between {lo:g} and {hi:g}", property=prop)


def _int(m: Mapping[str, Any], key: str, p: str, *, minimum: int = 0) -> int:
    value = m.get(key)
    prop = f"{p}.{key}"
    if value is None:
        raise ValidationError("May not be empty", property=prop)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _wrong_type(prop, "an integer", value)
    if value < minimum:
        raise ValidationError(f"Must be greater than or equal to {minimum}", property=prop)
    return value


def _obj(m: Mapping[str, Any], key: str, p: str, *, required: bool = True) -> Mapping[str, Any] | None:
    value = m.get(key)
    if value is None:
        if required:
            raise ValidationError("May not be empty", property=f"{p}.{key}")
        return None
    if not isinstance(value, Mapping):
        raise _wrong_type(f"{p}.{key}", "an object", value)
    return value


def _list(
    m: Mapping[str, Any], key: str, p: str, lo: int, hi: int, *, required: bool = True
) -> Sequence[Any] | None:
    value = m.get(key)
    if value is None:
        if required:
            raise ValidationError("May not be empty", property=f"{p}.{key}")
        return None
    if not isinstance(value, _ARRAY):
        raise _wrong_type(f"{p}.{key}", "an array", value)
    if not lo <= len(value) <= hi:
        raise ValidationError(f"Size must be between {lo} and {hi}", property=f"{p}.{key}")
    return value


def _items(values: Sequence[Any], prop: str) -> Iterable[tuple[Mapping[str, Any], str]]:
    for i, value in enumerate(values):
        if not isinstance(value, Mapping):
            raise _wrong_type(f"{prop}[{i}]", "an object", value)
        yield value, f"{prop}[{i}]"


# --- Per message type ---------------------------------------------------------------------------------


def _check_text(m: Mapping[str, Any], p: str) -> None:
    text = m.get("text")
    if type(text) is not str:
        if text is None:
            raise ValidationError("May not be empty", property=p + ".text")
        raise _wrong_type(p + ".text", "a string", text)
    n = len(text)
    if n < MIN_TEXT_UTF16 or (n > MAX_TEXT_UTF16 // 2 and utf16_len(text) > MAX_TEXT_UTF16):
        _text_length_error(text, p + ".text")
    if len(m) > 2:  # {type, text} alone is the common case: skip the optional look-ups
        _str(m, "quoteToken", p, required=False)
        emojis = _list(m, "emojis", p, 0, MAX_EMOJIS, required=False)
        if emojis:
            _check_emojis(text, emojis, p + ".emojis")


def _check_emojis(text: str, emojis: Sequence[Any], prop: str) -> None:
    # LINE's emoji index is a UTF-16 position; an ASCII text can be indexed directly.
    encoded = None if text.isascii() else text.encode("utf-16-le", "surrogatepass")
    units = len(text) if encoded is None else len(encoded) // 2
    for emoji, ep in _items(emojis, prop):
        index = _int(emoji, "index", ep)
        at_dollar = index < units and (
            text[index] == "$" if encoded is None else encoded[2 * index : 2 * index + 2] == b"$\x00"
        )
        if not at_dollar:
            raise ValidationError(
                f"Must be the UTF-16 index of a '$' in text; position {index} holds no '$'",
                property=ep + ".index",
            )
        _str(emoji, "productId", ep)
        _str(emoji, "emojiId", ep)


def _check_text_v2(m: Mapping[str, Any], p: str) -> None:
    text = _str(m, "text", p, MAX_TEXT_UTF16)
    assert text is not None
    _str(m, "quoteToken", p, required=False)
    substitution = _obj(m, "substitution", p, required=False)
    sp = p + ".substitution"
    kinds: dict[str, str] = {}
    if substitution is not None:
        if len(substitution) > MAX_SUBSTITUTIONS:
            raise ValidationError(f"Size must be between 0 and {MAX_SUBSTITUTIONS}", property=sp)
        for key, value in substitution.items():
            kp = f"{sp}.{key}"
            if not isinstance(key, str) or not _is_substitution_key(key):
                raise ValidationError(
                    f"Keys must be 1 to {MAX_SUBSTITUTION_KEY} characters of [0-9A-Za-z_]",
                    property=f"{sp}.{key!s:.40}",
                )
            if not isinstance(value, Mapping):
                raise _wrong_type(kp, "an object", value)
            kinds[key] = _check_substitution(value, kp)
    mentions = emojis = 0
    for match in _PLACEHOLDER_RE.finditer(text):
        token = match.group(0)
        if token in ("{{", "}}"):
            continue
        key = match.group(1)
        if key is None:
            raise ValidationError(
                f"Braces must pair: '{token}' at position {match.start()} is unmatched "
                "(write {{ or }} for a literal brace)",
                property=p + ".text",
            )
        if not _is_substitution_key(key):
            raise ValidationError(
                f"Placeholder {{{key:.40}}} must be 1 to {MAX_SUBSTITUTION_KEY} characters of [0-9A-Za-z_]",
                property=p + ".text",
            )
        # Not documented: an undefined placeholder would reach the user as literal text, so it is refused.
        kind = kinds.get(key)
        if kind is None:
            raise ValidationError(f"Placeholder {{{key}}} has no entry in substitution", property=p + ".text")
        if kind == "mention":
            mentions += 1
        else:
            emojis += 1
    if mentions > MAX_TEXTV2_MENTIONS:
        raise ValidationError(
            f"At most {MAX_TEXTV2_MENTIONS} mentions are allowed in one message, found {mentions}",
            property=p + ".text",
        )
    if emojis > MAX_TEXTV2_EMOJIS:
        raise ValidationError(
            f"At most {MAX_TEXTV2_EMOJIS} emoji are allowed in one message, found {emojis}",
            property=p + ".text",
        )


def _is_substitution_key(key: str) -> bool:
    return 0 < len(key) <= MAX_SUBSTITUTION_KEY and _WORD_RE.fullmatch(key) is not None


def _check_substitution(value: Mapping[str, Any], p: str) -> str:
    kind = value.get("type")
    if kind == "mention":
        mentionee = _obj(value, "mentionee", p)
        assert mentionee is not None
        mp = p + ".mentionee"
        target = mentionee.get("type")
        if target == "user":
            user_id = _str(mentionee, "userId", mp)
            assert user_id is not None
            if _USER_RE.fullmatch(user_id) is None:
                raise ValidationError(
                    "Must be a user ID: U followed by 32 lowercase hex digits", property=mp + ".userId"
                )
        elif target != "all":
            raise ValidationError("Must be one of the following values: [user, all]", property=mp + ".type")
        return "mention"
    if kind == "emoji":
        _str(value, "productId", p)
        _str(value, "emojiId", p)
        return "emoji"
    raise ValidationError("Must be one of the following values: [mention, emoji]", property=p + ".type")


def _check_sticker(m: Mapping[str, Any], p: str) -> None:
    _str(m, "packageId", p)
    _str(m, "stickerId", p)
    _str(m, "quoteToken", p, required=False)


def _check_image(m: Mapping[str, Any], p: str) -> None:
    _https_url(m, "originalContentUrl", p)
    _https_url(m, "previewImageUrl", p)


def _check_video(m: Mapping[str, Any], p: str) -> None:
    _check_image(m, p)
    _str(m, "trackingId", p, MAX_TRACKING_ID, required=False)


def _check_audio(m: Mapping[str, Any], p: str) -> None:
    _https_url(m, "originalContentUrl", p)
    # LINE documents no minimum; a duration of 0 ms or less describes no playable audio.
    _int(m, "duration", p, minimum=1)


def _check_location(m: Mapping[str, Any], p: str) -> None:
    _str(m, "title", p, MAX_LOCATION_TEXT)
    _str(m, "address", p, MAX_LOCATION_TEXT)
    _number(m, "latitude", p, -90, 90)
    _number(m, "longitude", p, -180, 180)


def _check_coupon(m: Mapping[str, Any], p: str) -> None:
    _str(m, "couponId", p)
    tag = _str(m, "deliveryTag", p, MAX_DELIVERY_TAG, required=False)
    if tag is not None and _WORD_RE.fullmatch(tag) is None:
        raise ValidationError(
            f"Must be 1 to {MAX_DELIVERY_TAG} characters of [A-Za-z0-9_]", property=p + ".deliveryTag"
        )


def _check_flex(m: Mapping[str, Any], p: str) -> None:
    _str(m, "altText", p, MAX_ALT_TEXT)
    contents = _obj(m, "contents", p)
    assert contents is not None
    cp = p + ".contents"
    kind = contents.get("type")
    if kind == "bubble":
        _check_json_size(contents, cp, MAX_FLEX_BUBBLE_BYTES, "A bubble")
    elif kind == "carousel":
        bubbles = _list(contents, "contents", cp, 1, MAX_FLEX_CAROUSEL_BUBBLES)
        assert bubbles is not None
        for bubble, bp in _items(bubbles, cp + ".contents"):
            if bubble.get("type") != "bubble":
                raise ValidationError("Must be one of the following values: [bubble]", property=bp + ".type")
        size = _check_json_size(contents, cp, MAX_FLEX_CAROUSEL_BYTES, "A carousel")
        if size > MAX_FLEX_BUBBLE_BYTES:
            # Only a carousel above one bubble's limit can hold a bubble above it.
            for bubble, bp in _items(bubbles, cp + ".contents"):
                _check_json_size(bubble, bp, MAX_FLEX_BUBBLE_BYTES, "A bubble")
    elif kind is None:
        raise ValidationError("May not be empty", property=cp + ".type")
    else:
        raise ValidationError(
            "Must be one of the following values: [bubble, carousel]", property=cp + ".type"
        )


def _check_json_size(value: Mapping[str, Any], prop: str, limit: int, what: str) -> int:
    try:
        size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"Must be plain JSON data: {exc}", property=prop) from None
    if size > limit:
        raise ValidationError(
            f"{what} may be at most {limit} bytes of JSON ({limit // 1024} KB); this one is {size} bytes",
            property=prop,
        )
    return size


def _check_template_message(m: Mapping[str, Any], p: str) -> None:
    _str(m, "altText", p, MAX_ALT_TEXT)
    template = _obj(m, "template", p)
    assert template is not None
    tp = p + ".template"
    kind = template.get("type")
    if kind == "buttons":
        _check_buttons(template, tp)
    elif kind == "confirm":
        _str(template, "text", tp, MAX_CONFIRM_TEXT, measure=grapheme_len)
        actions = template.get("actions")
        if not isinstance(actions, _ARRAY) or len(actions) != 2:
            raise ValidationError("Must hold exactly 2 actions", property=tp + ".actions")
        _check_actions(actions, tp + ".actions", _TEMPLATE_LABEL)
    elif kind == "carousel":
        columns = _list(template, "columns", tp, 1, MAX_TEMPLATE_COLUMNS)
        assert columns is not None
        for column, cp in _items(columns, tp + ".columns"):
            _check_carousel_column(column, cp)
    elif kind == "image_carousel":
        columns = _list(template, "columns", tp, 1, MAX_TEMPLATE_COLUMNS)
        assert columns is not None
        for column, cp in _items(columns, tp + ".columns"):
            _https_url(column, "imageUrl", cp)
            action = _obj(column, "action", cp)
            assert action is not None
            _check_action(action, cp + ".action", _IMAGE_CAROUSEL_LABEL)
    elif kind is None:
        raise ValidationError("May not be empty", property=tp + ".type")
    else:
        raise ValidationError(
            "Must be one of the following values: [buttons, confirm, carousel, image_carousel]",
            property=tp + ".type",
        )


def _check_buttons(template: Mapping[str, Any], tp: str) -> None:
    _check_titled_text(
        template, tp, MAX_BUTTONS_TEXT, MAX_BUTTONS_TEXT_WITH_IMAGE_OR_TITLE, MAX_BUTTONS_ACTIONS
    )


def _check_carousel_column(column: Mapping[str, Any], cp: str) -> None:
    _check_titled_text(
        column, cp, MAX_CAROUSEL_TEXT, MAX_CAROUSEL_TEXT_WITH_IMAGE_OR_TITLE, MAX_CAROUSEL_ACTIONS
    )


def _check_titled_text(
    obj: Mapping[str, Any], p: str, plain_limit: int, decorated_limit: int, max_actions: int
) -> None:
    """A buttons template or a carousel column: an image and a title are optional, and with either the text
    may be shorter; a default action, and 1 to ``max_actions`` actions."""
    _https_url(obj, "thumbnailImageUrl", p, required=False)
    title = _str(obj, "title", p, MAX_TEMPLATE_TITLE, required=False, measure=grapheme_len)
    decorated = title is not None or obj.get("thumbnailImageUrl") is not None
    _str(obj, "text", p, decorated_limit if decorated else plain_limit, measure=grapheme_len)
    default = _obj(obj, "defaultAction", p, required=False)
    if default is not None:
        _check_action(default, p + ".defaultAction", _NO_LABEL)
    actions = _list(obj, "actions", p, 1, max_actions)
    assert actions is not None
    _check_actions(actions, p + ".actions", _TEMPLATE_LABEL)


def _check_imagemap(m: Mapping[str, Any], p: str) -> None:
    _https_url(m, "baseUrl", p)
    _str(m, "altText", p, MAX_ALT_TEXT)
    size = _obj(m, "baseSize", p)
    assert size is not None
    sp = p + ".baseSize"
    if _int(size, "width", sp, minimum=1) != IMAGEMAP_BASE_WIDTH:
        raise ValidationError(f"Must be {IMAGEMAP_BASE_WIDTH}", property=sp + ".width")
    _int(size, "height", sp, minimum=1)
    actions = _list(m, "actions", p, 0, MAX_IMAGEMAP_ACTIONS)
    assert actions is not None
    for action, ap in _items(actions, p + ".actions"):
        kind = action.get("type")
        if kind == "uri":
            _str(action, "linkUri", ap, MAX_ACTION_URI)
        elif kind == "message":
            _str(action, "text", ap)
        elif kind == "clipboard":
            _str(action, "clipboardText", ap, MAX_CLIPBOARD_TEXT)
        else:
            raise ValidationError(
                "Must be one of the following values: [uri, message, clipboard]", property=ap + ".type"
            )
        _check_area(action, ap)
    video = _obj(m, "video", p, required=False)
    if video is not None:
        vp = p + ".video"
        _https_url(video, "originalContentUrl", vp)
        _https_url(video, "previewImageUrl", vp)
        _check_area(video, vp)


def _check_area(m: Mapping[str, Any], p: str) -> None:
    area = _obj(m, "area", p)
    assert area is not None
    ap = p + ".area"
    _int(area, "x", ap)
    _int(area, "y", ap)
    _int(area, "width", ap, minimum=1)
    _int(area, "height", ap, minimum=1)


# --- Actions (templates and quick replies) ------------------------------------------------------------

# How a context treats an action's label: (required, maximum length in grapheme clusters).
_TEMPLATE_LABEL = (True, MAX_ACTION_LABEL)
_IMAGE_CAROUSEL_LABEL = (False, MAX_IMAGE_CAROUSEL_LABEL)
_NO_LABEL = (False, MAX_ACTION_LABEL)

_ACTION_TYPES = (
    "postback",
    "message",
    "uri",
    "datetimepicker",
    "camera",
    "cameraRoll",
    "location",
    "richmenuswitch",
    "clipboard",
)
_ACTION_TYPES_TEXT = "Must be one of the following values: [" + ", ".join(_ACTION_TYPES) + "]"


def _check_actions(actions: Sequence[Any], prop: str, label: tuple[bool, int]) -> None:
    for action, ap in _items(actions, prop):
        _check_action(action, ap, label)


def _check_action(action: Mapping[str, Any], ap: str, label: tuple[bool, int]) -> None:
    kind = action.get("type")
    if kind is None:
        raise ValidationError("May not be empty", property=ap + ".type")
    if kind not in _ACTION_TYPES:
        raise ValidationError(_ACTION_TYPES_TEXT, property=ap + ".type")
    label_required, label_limit = label
    if kind in ("camera", "cameraRoll", "location"):
        label_required = True
    _str(action, "label", ap, label_limit, required=label_required, measure=grapheme_len)
    if kind == "postback":
        _str(action, "data", ap, MAX_ACTION_DATA)
    elif kind == "message":
        _str(action, "text", ap, MAX_ACTION_TEXT)
    elif kind == "uri":
        _str(action, "uri", ap, MAX_ACTION_URI)
    elif kind == "datetimepicker":
        _str(action, "data", ap, MAX_ACTION_DATA)
        mode = action.get("mode")
        if mode not in ("date", "time", "datetime"):
            raise ValidationError(
                "Must be one of the following values: [date, time, datetime]", property=ap + ".mode"
            )
    elif kind == "clipboard":
        _str(action, "clipboardText", ap, MAX_CLIPBOARD_TEXT)


def _check_quick_reply(quick_reply: Any, qp: str) -> None:
    if not isinstance(quick_reply, Mapping):
        raise _wrong_type(qp, "an object", quick_reply)
    items = _list(quick_reply, "items", qp, 1, MAX_QUICK_REPLY_ITEMS)
    assert items is not None
    for item, ip in _items(items, qp + ".items"):
        if item.get("type", "action") != "action":
            raise ValidationError("Must be one of the following values: [action]", property=ip + ".type")
        _https_url(item, "imageUrl", ip, required=False)
        action = _obj(item, "action", ip)
        assert action is not None
        _check_action(action, ip + ".action", _TEMPLATE_LABEL)


def _check_sender(sender: Any, sp: str) -> None:
    if not isinstance(sender, Mapping):
        raise _wrong_type(sp, "an object", sender)
    # Words such as "LINE" are refused by LINE in a sender name, but the list is not published.
    _str(sender, "name", sp, MAX_SENDER_NAME, required=False)
    _https_url(sender, "iconUrl", sp, required=False)


_CHECKS: dict[str, Callable[[Mapping[str, Any], str], None]] = {
    "text": _check_text,
    "textV2": _check_text_v2,
    "sticker": _check_sticker,
    "image": _check_image,
    "video": _check_video,
    "audio": _check_audio,
    "location": _check_location,
    "imagemap": _check_imagemap,
    "template": _check_template_message,
    "flex": _check_flex,
    "coupon": _check_coupon,
}
