"""The emulator's own check of send bodies and message objects (FACTS §3-§5), written apart from the client.

Two kinds of failure, as LINE reports them: a value of the wrong JSON type stops parsing at once
("The property, X, in the request body is invalid ..."), while rule violations are collected into
"The request body has N error(s)" with one ``details`` entry per problem.
"""

from __future__ import annotations

import json
import re
from typing import Any

from linepush.emulator.config import EmulatorConfig

MESSAGE_TYPES = (
    "text",
    "textV2",
    "sticker",
    "image",
    "video",
    "audio",
    "location",
    "imagemap",
    "template",
    "flex",
    "coupon",
)
QUOTABLE_TYPES = frozenset({"text", "textV2", "sticker", "image", "video", "template", "flex"})
ACTION_TYPES = (
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
TEMPLATE_TYPES = ("buttons", "confirm", "carousel", "image_carousel")
USER_ID = re.compile(r"U[0-9a-f]{32}")
RECIPIENT_ID = re.compile(r"[UCR][0-9a-f]{32}")
AGGREGATION_UNIT = re.compile(r"[A-Za-z0-9_]{1,30}")
SUBSTITUTION_KEY = re.compile(r"[0-9A-Za-z_]{1,20}")
UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")

# Not documented wording (FACTS gives only the four detail messages of §4.3); plausible Bean-Validation style.
MAY_NOT_BE_EMPTY = "May not be empty"
MUST_BE_HTTPS = "Must be a valid HTTPS URL"


class BodyInvalid(Exception):
    """The body is refused; ``body`` is LINE's JSON answer (always a 400)."""

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__(body.get("message"))
        self.body = body


class _PropertyInvalid(Exception):
    def __init__(self, prop: str) -> None:
        super().__init__(prop)
        self.prop = prop


def property_invalid(prop: str) -> dict[str, Any]:
    return {"message": f"The property, {prop}, in the request body is invalid (line: -, column: -)"}


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _enum_message(values: tuple[str, ...]) -> str:
    return f"Must be one of the following values: [{', '.join(values)}]"


class _Checker:
    """Collects detail errors; raises at once for a wrong JSON type."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.details: list[dict[str, str]] = []

    def add(self, message: str, prop: str) -> None:
        self.details.append({"message": message, "property": prop})

    def obj(self, value: Any, prop: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _PropertyInvalid(prop)
        return value

    def string(
        self,
        parent: dict[str, Any],
        key: str,
        prop: str,
        *,
        required: bool = True,
        max_len: int | None = None,
        utf16: bool = False,
        allow_empty: bool = False,
    ) -> str | None:
        value = parent.get(key)
        path = f"{prop}.{key}"
        if value is None:
            if required:
                self.add(MAY_NOT_BE_EMPTY, path)
            return None
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise _PropertyInvalid(path)
        text = str(value)  # numbers are coerced to strings, as a Java JSON binder does
        if text == "" and required and not allow_empty:
            self.add(MAY_NOT_BE_EMPTY, path)
            return text
        # Template texts are counted in grapheme clusters by LINE; code points are a close approximation.
        length = utf16_len(text) if utf16 else len(text)
        if max_len is not None and length > max_len:
            self.add(f"Length must be between 0 and {max_len}", path)
        return text

    def url(self, parent: dict[str, Any], key: str, prop: str, *, required: bool = True) -> None:
        text = self.string(parent, key, prop, required=required, max_len=2000)
        if text and not text.startswith("https://"):
            self.add(MUST_BE_HTTPS, f"{prop}.{key}")

    def number(self, parent: dict[str, Any], key: str, prop: str, *, required: bool = True) -> float | None:
        value = parent.get(key)
        if value is None:
            if required:
                self.add("May not be null", f"{prop}.{key}")
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _PropertyInvalid(f"{prop}.{key}")
        return float(value)

    def boolean(self, parent: dict[str, Any], key: str, prop: str) -> None:
        value = parent.get(key)
        if value is not None and not isinstance(value, bool):
            raise _PropertyInvalid(f"{prop}.{key}" if prop else key)

    def array(
        self, parent: dict[str, Any], key: str, prop: str, low: int, high: int, *, required: bool = True
    ) -> list[Any] | None:
        value = parent.get(key)
        path = f"{prop}.{key}" if prop else key
        if value is None:
            if required:
                self.add(MAY_NOT_BE_EMPTY, path)
            return None
        if not isinstance(value, list):
            raise _PropertyInvalid(path)
        if not low <= len(value) <= high:
            self.add(f"Size must be between {low} and {high}", path)
        return value

    # ---- actions -------------------------------------------------------------------------------------
    def action(self, value: Any, prop: str, *, label_max: int = 20, label_required: bool = True) -> None:
        action = self.obj(value, prop)
        kind = action.get("type")
        if kind is None:
            self.add(MAY_NOT_BE_EMPTY, f"{prop}.type")
            return
        if not isinstance(kind, str):
            raise _PropertyInvalid(f"{prop}.type")
        if kind not in ACTION_TYPES:
            self.add(_enum_message(ACTION_TYPES), f"{prop}.type")
            return
        self.string(action, "label", prop, required=label_required, max_len=label_max)
        if kind == "postback":
            self.string(action, "data", prop, max_len=300)
            self.string(action, "displayText", prop, required=False, max_len=300)
        elif kind == "message":
            self.string(action, "text", prop, max_len=300)
        elif kind == "uri":
            self.string(action, "uri", prop, max_len=1000)
        elif kind == "datetimepicker":
            self.string(action, "data", prop, max_len=300)
            mode = self.string(action, "mode", prop)
            if mode is not None and mode not in ("date", "time", "datetime"):
                self.add(_enum_message(("date", "time", "datetime")), f"{prop}.mode")
        elif kind == "richmenuswitch":
            self.string(action, "richMenuAliasId", prop, max_len=32)
            self.string(action, "data", prop, max_len=300)
        elif kind == "clipboard":
            self.string(action, "clipboardText", prop, max_len=1000)

    # ---- messages ------------------------------------------------------------------------------------
    def messages(self, body: dict[str, Any]) -> None:
        items = self.array(body, "messages", "", 1, 5)
        for i, item in enumerate(items or []):
            self.message(item, f"messages[{i}]")

    def message(self, value: Any, prop: str) -> None:
        msg = self.obj(value, prop)
        kind = msg.get("type")
        if kind is None or kind == "":
            self.add(MAY_NOT_BE_EMPTY, f"{prop}.type")
            return
        if not isinstance(kind, str):
            raise _PropertyInvalid(f"{prop}.type")
        if kind not in MESSAGE_TYPES:
            self.add(_enum_message(MESSAGE_TYPES), f"{prop}.type")
            return
        getattr(self, f"_{kind}")(msg, prop)
        if msg.get("quickReply") is not None:
            self.quick_reply(msg["quickReply"], f"{prop}.quickReply")
        if msg.get("sender") is not None:
            sender = self.obj(msg["sender"], f"{prop}.sender")
            self.string(sender, "name", f"{prop}.sender", required=False, max_len=20)
            self.url(sender, "iconUrl", f"{prop}.sender", required=False)

    def quick_reply(self, value: Any, prop: str) -> None:
        quick = self.obj(value, prop)
        items = self.array(quick, "items", prop, 1, 13)
        for i, item in enumerate(items or []):
            path = f"{prop}.items[{i}]"
            button = self.obj(item, path)
            if button.get("type") != "action":
                self.add(_enum_message(("action",)), f"{path}.type")
            if button.get("action") is None:
                self.add(MAY_NOT_BE_EMPTY, f"{path}.action")
            else:
                self.action(button["action"], f"{path}.action")
            self.url(button, "imageUrl", path, required=False)

    def _text(self, msg: dict[str, Any], prop: str) -> None:
        text = self.string(
            msg, "text", prop, max_len=5000, utf16=True, allow_empty=self.config.allow_empty_text
        )
        self.string(msg, "quoteToken", prop, required=False)
        emojis = self.array(msg, "emojis", prop, 0, 20, required=False)
        units = text.encode("utf-16-le", "surrogatepass") if text is not None else b""
        for i, item in enumerate(emojis or []):
            path = f"{prop}.emojis[{i}]"
            emoji = self.obj(item, path)
            self.string(emoji, "productId", path)
            self.string(emoji, "emojiId", path)
            index = emoji.get("index")
            if index is None:
                self.add("May not be null", f"{path}.index")
            elif isinstance(index, bool) or not isinstance(index, int):
                raise _PropertyInvalid(f"{path}.index")
            elif not (0 <= index < len(units) // 2 and units[2 * index : 2 * index + 2] == b"$\x00"):
                # FACTS §5.2: an index not pointing at "$" is a 400; the wording is not documented.
                self.add("Must point at a $ in text", f"{path}.index")

    def _textV2(self, msg: dict[str, Any], prop: str) -> None:
        text = self.string(
            msg, "text", prop, max_len=5000, utf16=True, allow_empty=self.config.allow_empty_text
        )
        self.string(msg, "quoteToken", prop, required=False)
        subs_value = msg.get("substitution")
        subs = self.obj(subs_value, f"{prop}.substitution") if subs_value is not None else {}
        if len(subs) > 100:
            self.add("Size must be between 0 and 100", f"{prop}.substitution")
        for key, entry in subs.items():
            path = f"{prop}.substitution.{key}"
            if not SUBSTITUTION_KEY.fullmatch(key):
                self.add("Must match [0-9A-Za-z_]{1,20}", path)
            item = self.obj(entry, path)
            kind = item.get("type")
            if kind == "mention":
                mentionee = self.obj(item.get("mentionee"), f"{path}.mentionee")
                if mentionee.get("type") == "user":
                    user = mentionee.get("userId")
                    if not isinstance(user, str) or not USER_ID.fullmatch(user):
                        self.add("Must be a user ID", f"{path}.mentionee.userId")
                elif mentionee.get("type") != "all":
                    self.add(_enum_message(("user", "all")), f"{path}.mentionee.type")
            elif kind == "emoji":
                self.string(item, "productId", path)
                self.string(item, "emojiId", path)
            else:
                self.add(_enum_message(("mention", "emoji")), f"{path}.type")
        if text:
            self._placeholders(text, subs, f"{prop}.text")

    def _placeholders(self, text: str, subs: dict[str, Any], prop: str) -> None:
        i = 0
        while i < len(text):
            char = text[i]
            if text.startswith("{{", i) or text.startswith("}}", i):
                i += 2
                continue
            if char == "}":
                self.add("Unbalanced braces", prop)
                return
            if char == "{":
                end = text.find("}", i)
                if end < 0:
                    self.add("Unbalanced braces", prop)
                    return
                key = text[i + 1 : end]
                if key not in subs:
                    self.add(f"Placeholder {{{key}}} has no substitution", prop)
                i = end + 1
                continue
            i += 1

    def _sticker(self, msg: dict[str, Any], prop: str) -> None:
        self.string(msg, "packageId", prop)
        self.string(msg, "stickerId", prop)
        self.string(msg, "quoteToken", prop, required=False)

    def _image(self, msg: dict[str, Any], prop: str) -> None:
        self.url(msg, "originalContentUrl", prop)
        self.url(msg, "previewImageUrl", prop)

    def _video(self, msg: dict[str, Any], prop: str) -> None:
        self._image(msg, prop)
        self.string(msg, "trackingId", prop, required=False, max_len=100)

    def _audio(self, msg: dict[str, Any], prop: str) -> None:
        self.url(msg, "originalContentUrl", prop)
        duration = self.number(msg, "duration", prop)
        if duration is not None and duration < 0:
            self.add("Must be greater than or equal to 0", f"{prop}.duration")

    def _location(self, msg: dict[str, Any], prop: str) -> None:
        self.string(msg, "title", prop, max_len=100)
        self.string(msg, "address", prop, max_len=100)
        self.number(msg, "latitude", prop)
        self.number(msg, "longitude", prop)

    def _imagemap(self, msg: dict[str, Any], prop: str) -> None:
        self.url(msg, "baseUrl", prop)
        self.string(msg, "altText", prop, max_len=1500)
        if msg.get("baseSize") is None:
            self.add(MAY_NOT_BE_EMPTY, f"{prop}.baseSize")
        else:
            size = self.obj(msg["baseSize"], f"{prop}.baseSize")
            width = self.number(size, "width", f"{prop}.baseSize")
            self.number(size, "height", f"{prop}.baseSize")
            if width is not None and width != 1040:
                self.add("Must be 1040", f"{prop}.baseSize.width")
        actions = self.array(msg, "actions", prop, 0, 50)
        for i, item in enumerate(actions or []):
            path = f"{prop}.actions[{i}]"
            action = self.obj(item, path)
            kind = action.get("type")
            if kind == "uri":
                self.string(action, "linkUri", path, max_len=1000)
            elif kind == "message":
                self.string(action, "text", path, max_len=400)
            elif kind == "clipboard":
                self.string(action, "clipboardText", path, max_len=1000)
            else:
                self.add(_enum_message(("uri", "message", "clipboard")), f"{path}.type")
            if action.get("area") is None:
                self.add(MAY_NOT_BE_EMPTY, f"{path}.area")
            else:
                area = self.obj(action["area"], f"{path}.area")
                for key in ("x", "y", "width", "height"):
                    self.number(area, key, f"{path}.area")

    def _template(self, msg: dict[str, Any], prop: str) -> None:
        self.string(msg, "altText", prop, max_len=1500)
        if msg.get("template") is None:
            self.add(MAY_NOT_BE_EMPTY, f"{prop}.template")
            return
        path = f"{prop}.template"
        template = self.obj(msg["template"], path)
        kind = template.get("type")
        if kind not in TEMPLATE_TYPES:
            self.add(_enum_message(TEMPLATE_TYPES), f"{path}.type")
            return
        if kind == "buttons":
            short = template.get("thumbnailImageUrl") is not None or template.get("title") is not None
            self.string(template, "title", path, required=False, max_len=40)
            self.string(template, "text", path, max_len=60 if short else 160)
            self._actions(template, path, 1, 4)
        elif kind == "confirm":
            self.string(template, "text", path, max_len=240)
            self._actions(template, path, 2, 2)
        elif kind == "carousel":
            columns = self.array(template, "columns", path, 1, 10)
            for i, item in enumerate(columns or []):
                col_path = f"{path}.columns[{i}]"
                column = self.obj(item, col_path)
                short = column.get("thumbnailImageUrl") is not None or column.get("title") is not None
                self.string(column, "title", col_path, required=False, max_len=40)
                self.string(column, "text", col_path, max_len=60 if short else 120)
                self._actions(column, col_path, 1, 3)
        else:
            columns = self.array(template, "columns", path, 1, 10)
            for i, item in enumerate(columns or []):
                col_path = f"{path}.columns[{i}]"
                column = self.obj(item, col_path)
                self.url(column, "imageUrl", col_path)
                if column.get("action") is None:
                    self.add(MAY_NOT_BE_EMPTY, f"{col_path}.action")
                else:
                    self.action(column["action"], f"{col_path}.action", label_max=12, label_required=False)

    def _actions(self, parent: dict[str, Any], prop: str, low: int, high: int) -> None:
        actions = self.array(parent, "actions", prop, low, high)
        for i, item in enumerate(actions or []):
            self.action(item, f"{prop}.actions[{i}]")

    def _flex(self, msg: dict[str, Any], prop: str) -> None:
        self.string(msg, "altText", prop, max_len=1500)
        if msg.get("contents") is None:
            self.add(MAY_NOT_BE_EMPTY, f"{prop}.contents")
            return
        path = f"{prop}.contents"
        contents = self.obj(msg["contents"], path)
        kind = contents.get("type")
        # The inside of a bubble (boxes, components) is not checked; only the container rules of FACTS §5.4.
        size = len(json.dumps(contents, ensure_ascii=False).encode("utf-8", "surrogatepass"))
        if kind == "bubble":
            if size > 30 * 1024:
                self.add("Size of the bubble must be at most 30 KB", path)
        elif kind == "carousel":
            bubbles = self.array(contents, "contents", path, 1, 12)
            for i, item in enumerate(bubbles or []):
                bubble = self.obj(item, f"{path}.contents[{i}]")
                if bubble.get("type") != "bubble":
                    self.add(_enum_message(("bubble",)), f"{path}.contents[{i}].type")
            if size > 50 * 1024:
                self.add("Size of the carousel must be at most 50 KB", path)
        else:
            self.add(_enum_message(("bubble", "carousel")), f"{path}.type")

    def _coupon(self, msg: dict[str, Any], prop: str) -> None:
        self.string(msg, "couponId", prop)
        tag = self.string(msg, "deliveryTag", prop, required=False, max_len=30)
        if tag and not AGGREGATION_UNIT.fullmatch(tag):
            self.add("Must match [A-Za-z0-9_]", f"{prop}.deliveryTag")

    # ---- request bodies ------------------------------------------------------------------------------
    def aggregation_units(self, body: dict[str, Any]) -> None:
        units = self.array(body, "customAggregationUnits", "", 0, 1, required=False)
        for i, unit in enumerate(units or []):
            if not isinstance(unit, str):
                raise _PropertyInvalid(f"customAggregationUnits[{i}]")
            if not AGGREGATION_UNIT.fullmatch(unit):
                self.add("Must match [A-Za-z0-9_]{1,30}", f"customAggregationUnits[{i}]")


def validate_body(endpoint: str, body: Any, config: EmulatorConfig) -> dict[str, Any]:
    """Check the JSON body of ``endpoint`` (reply, push, multicast, broadcast, narrowcast, validate/<kind>).

    Returns the body; raises :class:`BodyInvalid` with LINE's answer.
    """
    if not isinstance(body, dict):
        # A JSON value that is not an object cannot be bound at all: Jackson reports it at the start.
        raise BodyInvalid({"message": "The request body could not be parsed as JSON (line: 1, column: 1)"})
    checker = _Checker(config)
    try:
        if endpoint == "reply":
            token = body.get("replyToken")
            if token is None or token == "":
                checker.add(MAY_NOT_BE_EMPTY, "replyToken")
            elif not isinstance(token, str):
                raise _PropertyInvalid("replyToken")
        elif endpoint == "push":
            to = body.get("to")
            if to is None or to == "":
                checker.add(MAY_NOT_BE_EMPTY, "to")
            elif not isinstance(to, str):
                raise _PropertyInvalid("to")
        elif endpoint == "multicast":
            recipients = checker.array(body, "to", "", 1, 500)
            for i, rid in enumerate(recipients or []):
                if not isinstance(rid, str):
                    raise _PropertyInvalid(f"to[{i}]")
        elif endpoint == "narrowcast":
            for key in ("recipient", "filter", "limit"):
                if body.get(key) is not None:
                    checker.obj(body[key], key)
            limit = body.get("limit") or {}
            checker.boolean(limit, "upToRemainingQuota", "limit")
            checker.boolean(limit, "forbidPartialDelivery", "limit")
            maximum = checker.number(limit, "max", "limit", required=False)
            if maximum is not None and maximum < 1:
                checker.add("Must be greater than or equal to 1", "limit.max")
            if limit.get("forbidPartialDelivery") and not limit.get("upToRemainingQuota"):
                raise BodyInvalid(
                    {"message": "The option forbidPartialDelivery must be used with upToRemainingQuota."}
                )
        if not endpoint.startswith("validate/"):
            checker.boolean(body, "notificationDisabled", "")
        if endpoint in ("push", "multicast"):
            checker.aggregation_units(body)
        checker.messages(body)
    except _PropertyInvalid as exc:
        raise BodyInvalid(property_invalid(exc.prop)) from exc
    if checker.details:
        raise BodyInvalid(
            {"message": f"The request body has {len(checker.details)} error(s)", "details": checker.details}
        )
    # Ids are checked after the body is well formed, as LINE reports one bad recipient at a time.
    if endpoint == "push" and not RECIPIENT_ID.fullmatch(body["to"]):
        raise BodyInvalid(property_invalid("to"))
    if endpoint == "multicast":
        for i, rid in enumerate(body["to"]):
            if not USER_ID.fullmatch(rid):
                raise BodyInvalid(property_invalid(f"to[{i}]"))
    return body
