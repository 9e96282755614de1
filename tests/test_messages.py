"""Tests for linepush.messages: models, normalization and every local limit, good and bad."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from linepush import messages as m
from linepush.errors import ValidationError
from linepush.messages import (
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
    grapheme_len,
    normalize_messages,
    utf16_len,
    validate_custom_aggregation_units,
    validate_to,
    validate_user_ids,
)

USER = "U" + "0123456789abcdef" * 2
GROUP = "C" + "0123456789abcdef" * 2
ROOM = "R" + "fedcba9876543210" * 2
URL = "https://example.com/a.jpg"
APPLE = "\U0001f34e"  # 🍎: one code point, two UTF-16 units


def refused(messages: Any) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        normalize_messages(messages)
    return info.value


def refused_one(message: Mapping[str, Any]) -> ValidationError:
    return refused([message])


def check_ok(message: Mapping[str, Any]) -> None:
    assert normalize_messages([message]) == [dict(message)]


# --- Counting -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "units"),
    [("", 0), ("hello", 5), ("é", 1), ("日本語", 3), (APPLE, 2), ("a" + APPLE + "b", 4), ("👨‍👩‍👧", 8)],
)
def test_utf16_len(text: str, units: int) -> None:
    assert utf16_len(text) == units


@pytest.mark.parametrize(
    ("text", "clusters"),
    [
        ("hello", 5),
        ("日本語", 3),
        (APPLE, 1),
        ("e\u0301", 1),  # e + combining acute
        ("👍🏽", 1),  # skin-tone modifier
        ("👨‍👩‍👧", 1),  # ZWJ family
        ("🇯🇵🇺🇸", 2),  # two flags
        ("❤️", 1),  # heart + variation selector
        ("a👍🏽b", 3),
    ],
)
def test_grapheme_len_approximation(text: str, clusters: int) -> None:
    assert grapheme_len(text) == clusters


# --- Strings and the shape of the input ---------------------------------------------------------------


def test_plain_string_becomes_one_text_message() -> None:
    assert normalize_messages("hello") == [{"type": "text", "text": "hello"}]


def test_list_of_strings_dicts_and_models_keeps_order() -> None:
    sticker = {"type": "sticker", "packageId": "446", "stickerId": "1988"}
    out = normalize_messages(["a", sticker, TextMessage("c")])
    assert out == [
        {"type": "text", "text": "a"},
        sticker,
        {"type": "text", "text": "c"},
    ]
    assert out[1] is sticker  # dicts pass through, not copied


def test_tuple_and_generator_are_accepted() -> None:
    assert normalize_messages(("a", "b")) == [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    assert normalize_messages(x for x in ["a"]) == [{"type": "text", "text": "a"}]


def test_single_dict_and_single_model() -> None:
    d = {"type": "text", "text": "x"}
    assert normalize_messages(d) == [d]
    assert normalize_messages(StickerMessage("1", "2")) == [
        {"type": "sticker", "packageId": "1", "stickerId": "2"}
    ]


def test_non_dict_mapping_becomes_a_dict() -> None:
    out = normalize_messages([MappingProxyType({"type": "text", "text": "x"})])
    assert out == [{"type": "text", "text": "x"}]
    assert type(out[0]) is dict


def test_str_subclass_is_a_text_message() -> None:
    class Name(str):
        pass

    assert normalize_messages([Name("hi")]) == [{"type": "text", "text": "hi"}]


@pytest.mark.parametrize("bad", [42, None, b"bytes", 3.5])
def test_unusable_top_level_input(bad: Any) -> None:
    err = refused(bad)
    assert err.property == "messages"


def test_unusable_item_names_its_index() -> None:
    err = refused(["ok", 42])
    assert err.property == "messages[1]"
    assert "int" in err.reason


# --- Count --------------------------------------------------------------------------------------------


def test_six_messages_refused_like_line() -> None:
    err = refused(["m"] * 6)
    assert err.property == "messages"
    assert err.reason == "Size must be between 1 and 5"
    assert str(err) == "messages: Size must be between 1 and 5"


def test_five_messages_ok_and_empty_list_refused() -> None:
    assert len(normalize_messages(["m"] * 5)) == 5
    assert refused([]).reason == "Size must be between 1 and 5"


# --- Text ---------------------------------------------------------------------------------------------


def test_text_limits_in_utf16_units() -> None:
    assert normalize_messages("a" * 5000)[0]["text"] == "a" * 5000
    assert normalize_messages(APPLE * 2500)[0]["text"] == APPLE * 2500
    err = refused("a" * 5001)
    assert (err.property, err.reason) == ("messages[0].text", "Length must be between 0 and 5000")
    err = refused(APPLE * 2501)
    assert (err.property, err.reason) == ("messages[0].text", "Length must be between 0 and 5000")
    # 4999 ASCII + one apple = 5001 units though only 5000 code points
    assert refused("a" * 4999 + APPLE).property == "messages[0].text"
    assert normalize_messages("é" * 5000)  # BMP non-ASCII counts one unit each


def test_text_limit_applies_to_dicts_and_models_with_their_index() -> None:
    err = refused(["ok", {"type": "text", "text": "x" * 5001}])
    assert err.property == "messages[1].text"
    err = refused(["ok", "ok", TextMessage(APPLE * 2501)])
    assert err.property == "messages[2].text"


def test_empty_and_missing_text() -> None:
    for bad in ("", {"type": "text", "text": ""}, {"type": "text"}):
        err = refused([bad])
        assert (err.property, err.reason) == ("messages[0].text", "May not be empty")


def test_text_must_be_a_string() -> None:
    err = refused_one({"type": "text", "text": 5})
    assert err.property == "messages[0].text"
    assert err.reason == "Must be a string, not number"


def test_text_with_quote_token() -> None:
    check_ok({"type": "text", "text": "x", "quoteToken": "q"})
    assert refused_one({"type": "text", "text": "x", "quoteToken": 1}).property == "messages[0].quoteToken"


# --- Emojis -------------------------------------------------------------------------------------------


def emoji(index: int) -> dict[str, Any]:
    return {"index": index, "productId": "5ac1bfd5040ab15980c9b435", "emojiId": "001"}


def test_emojis_at_dollar_signs() -> None:
    check_ok({"type": "text", "text": "$ LINE emoji $", "emojis": [emoji(0), emoji(13)]})


def test_emoji_index_is_utf16() -> None:
    # "🍎$": the $ is at code point 1 but UTF-16 index 2
    check_ok({"type": "text", "text": APPLE + "$", "emojis": [emoji(2)]})
    err = refused_one({"type": "text", "text": APPLE + "$", "emojis": [emoji(1)]})
    assert err.property == "messages[0].emojis[0].index"


def test_emoji_index_not_at_dollar() -> None:
    err = refused_one({"type": "text", "text": "$ hi $", "emojis": [emoji(0), emoji(2)]})
    assert err.property == "messages[0].emojis[1].index"
    assert "'$'" in err.reason
    err = refused_one({"type": "text", "text": "$", "emojis": [emoji(5)]})
    assert err.property == "messages[0].emojis[0].index"
    err = refused_one({"type": "text", "text": "$", "emojis": [emoji(-1)]})
    assert err.property == "messages[0].emojis[0].index"


def test_emoji_fields_and_count() -> None:
    err = refused_one({"type": "text", "text": "$", "emojis": [{"index": 0, "emojiId": "001"}]})
    assert (err.property, err.reason) == ("messages[0].emojis[0].productId", "May not be empty")
    err = refused_one(
        {"type": "text", "text": "$", "emojis": [{"index": "0", "productId": "p", "emojiId": "1"}]}
    )
    assert err.property == "messages[0].emojis[0].index"
    check_ok({"type": "text", "text": "$" * 20, "emojis": [emoji(i) for i in range(20)]})
    err = refused_one({"type": "text", "text": "$" * 21, "emojis": [emoji(i) for i in range(21)]})
    assert (err.property, err.reason) == ("messages[0].emojis", "Size must be between 0 and 20")
    err = refused_one({"type": "text", "text": "$", "emojis": {"index": 0}})
    assert err.property == "messages[0].emojis"


# --- Types --------------------------------------------------------------------------------------------


def test_unknown_type_lists_the_known_ones() -> None:
    err = refused(["ok", {"type": "gif", "url": URL}])
    assert err.property == "messages[1].type"
    assert err.reason.startswith("Must be one of the following values: [text, textV2, sticker,")
    assert "coupon]" in err.reason


def test_missing_or_non_string_type() -> None:
    assert (refused_one({"text": "x"}).reason, refused_one({"text": "x"}).property) == (
        "May not be empty",
        "messages[0].type",
    )
    assert refused_one({"type": 1}).property == "messages[0].type"


# --- textV2 -------------------------------------------------------------------------------------------


def mention(user: str = USER) -> dict[str, Any]:
    return {"type": "mention", "mentionee": {"type": "user", "userId": user}}


def test_textv2_good() -> None:
    check_ok(
        {
            "type": "textV2",
            "text": "Hi {user}, {everyone}! {smile} {{literal}}",
            "substitution": {
                "user": mention(),
                "everyone": {"type": "mention", "mentionee": {"type": "all"}},
                "smile": {"type": "emoji", "productId": "p", "emojiId": "001"},
            },
        }
    )
    check_ok({"type": "textV2", "text": "no placeholders, {{ and }} are literal"})


@pytest.mark.parametrize("text", ["a { b", "a } b", "{x", "x}", "{a{b}}", "}{"])
def test_textv2_braces_must_pair(text: str) -> None:
    err = refused_one({"type": "textV2", "text": text, "substitution": {"b": mention(), "x": mention()}})
    assert err.property == "messages[0].text"
    assert "Braces must pair" in err.reason or "Placeholder" in err.reason


def test_textv2_placeholder_rules() -> None:
    base: dict[str, Any] = {"type": "textV2", "substitution": {"a": mention()}}
    err = refused_one({**base, "text": "{b}"})
    assert "no entry in substitution" in err.reason
    err = refused_one({**base, "text": "{a-b}"})
    assert err.property == "messages[0].text"
    err = refused_one({**base, "text": "{}"})
    assert err.property == "messages[0].text"


def test_textv2_substitution_keys() -> None:
    key = "k" * 20
    check_ok({"type": "textV2", "text": "{" + key + "}", "substitution": {key: mention()}})
    err = refused_one({"type": "textV2", "text": "x", "substitution": {"k" * 21: mention()}})
    assert (err.property or "").startswith("messages[0].substitution.")
    err = refused_one({"type": "textV2", "text": "x", "substitution": {"a b": mention()}})
    assert "[0-9A-Za-z_]" in err.reason


def test_textv2_substitution_count() -> None:
    subs = {f"k{i}": {"type": "emoji", "productId": "p", "emojiId": "1"} for i in range(100)}
    check_ok({"type": "textV2", "text": "x", "substitution": subs})
    subs["k100"] = subs["k0"]
    err = refused_one({"type": "textV2", "text": "x", "substitution": subs})
    assert (err.property, err.reason) == ("messages[0].substitution", "Size must be between 0 and 100")


def test_textv2_substitution_objects() -> None:
    def sub(value: Any) -> ValidationError:
        return refused_one({"type": "textV2", "text": "{a}", "substitution": {"a": value}})

    assert sub({"type": "sticker"}).property == "messages[0].substitution.a.type"
    assert sub({"type": "mention"}).property == "messages[0].substitution.a.mentionee"
    err = sub({"type": "mention", "mentionee": {"type": "group"}})
    assert err.property == "messages[0].substitution.a.mentionee.type"
    assert sub(mention("Uabc")).property == "messages[0].substitution.a.mentionee.userId"
    assert sub({"type": "emoji", "productId": "p"}).property == "messages[0].substitution.a.emojiId"
    assert sub("x").property == "messages[0].substitution.a"


def test_textv2_at_most_20_mentions_and_20_emoji() -> None:
    subs = {"m": mention(), "e": {"type": "emoji", "productId": "p", "emojiId": "1"}}
    check_ok({"type": "textV2", "text": "{m}" * 20 + "{e}" * 20, "substitution": subs})
    assert "mentions" in refused_one({"type": "textV2", "text": "{m}" * 21, "substitution": subs}).reason
    assert "emoji" in refused_one({"type": "textV2", "text": "{e}" * 21, "substitution": subs}).reason


def test_textv2_length() -> None:
    err = refused_one({"type": "textV2", "text": APPLE * 2501})
    assert (err.property, err.reason) == ("messages[0].text", "Length must be between 0 and 5000")


# --- Sticker, media, location, coupon -----------------------------------------------------------------


def test_sticker() -> None:
    check_ok({"type": "sticker", "packageId": "446", "stickerId": "1988"})
    err = refused_one({"type": "sticker", "packageId": 446, "stickerId": "1988"})
    assert (err.property, err.reason) == ("messages[0].packageId", "Must be a string, not number")
    assert refused_one({"type": "sticker", "packageId": "446"}).property == "messages[0].stickerId"


@pytest.mark.parametrize("kind", ["image", "video"])
def test_image_and_video_urls(kind: str) -> None:
    check_ok({"type": kind, "originalContentUrl": URL, "previewImageUrl": URL})
    err = refused_one(
        {"type": kind, "originalContentUrl": "http://example.com/a.jpg", "previewImageUrl": URL}
    )
    assert err.property == "messages[0].originalContentUrl"
    assert "HTTPS" in err.reason
    long_url = "https://example.com/" + "a" * 1981
    assert len(long_url) == 2001
    err = refused_one({"type": kind, "originalContentUrl": URL, "previewImageUrl": long_url})
    assert (err.property, err.reason) == ("messages[0].previewImageUrl", "Length must be between 0 and 2000")
    check_ok({"type": kind, "originalContentUrl": URL, "previewImageUrl": long_url[:2000]})
    err = refused_one(
        {"type": kind, "originalContentUrl": "https://example.com/a b.jpg", "previewImageUrl": URL}
    )
    assert "percent-encoded" in err.reason
    assert refused_one({"type": kind, "originalContentUrl": "https://", "previewImageUrl": URL}).property == (
        "messages[0].originalContentUrl"
    )
    assert refused_one({"type": kind, "previewImageUrl": URL}).reason == "May not be empty"


def test_video_tracking_id() -> None:
    base = {"type": "video", "originalContentUrl": URL, "previewImageUrl": URL}
    check_ok({**base, "trackingId": "t" * 100})
    assert refused_one({**base, "trackingId": "t" * 101}).property == "messages[0].trackingId"


def test_audio() -> None:
    check_ok({"type": "audio", "originalContentUrl": URL, "duration": 60000})
    for bad in ("60000", True, 0, 1.5):
        err = refused_one({"type": "audio", "originalContentUrl": URL, "duration": bad})
        assert err.property == "messages[0].duration"
    assert refused_one({"type": "audio", "originalContentUrl": "ftp://x/y.mp3", "duration": 1}).property == (
        "messages[0].originalContentUrl"
    )


def test_location() -> None:
    good = {"type": "location", "title": "t" * 100, "address": "a" * 100, "latitude": 35.6, "longitude": 139}
    check_ok(good)
    assert refused_one({**good, "title": "t" * 101}).property == "messages[0].title"
    err = refused_one({**good, "address": "a" * 101})
    assert (err.property, err.reason) == ("messages[0].address", "Length must be between 0 and 100")
    assert refused_one({**good, "latitude": "35.6"}).property == "messages[0].latitude"
    assert refused_one({**good, "latitude": 91}).property == "messages[0].latitude"
    assert refused_one({**good, "longitude": -181}).property == "messages[0].longitude"
    assert refused_one({**good, "longitude": None}).reason == "May not be empty"


def test_coupon() -> None:
    check_ok({"type": "coupon", "couponId": "c1"})
    check_ok({"type": "coupon", "couponId": "c1", "deliveryTag": "Tag_1" + "x" * 25})
    assert refused_one({"type": "coupon"}).property == "messages[0].couponId"
    err = refused_one({"type": "coupon", "couponId": "c1", "deliveryTag": "x" * 31})
    assert err.property == "messages[0].deliveryTag"
    err = refused_one({"type": "coupon", "couponId": "c1", "deliveryTag": "bad-tag"})
    assert "[A-Za-z0-9_]" in err.reason


# --- Flex ---------------------------------------------------------------------------------------------


def bubble(padding: int = 0) -> dict[str, Any]:
    return {
        "type": "bubble",
        "body": {
            "type": "box",
            "layout": "vertical",
            "contents": [{"type": "text", "text": "x" * padding or "x"}],
        },
    }


def json_size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


def test_flex_bubble_and_carousel() -> None:
    check_ok({"type": "flex", "altText": "alt", "contents": bubble()})
    check_ok(
        {"type": "flex", "altText": "alt", "contents": {"type": "carousel", "contents": [bubble()] * 12}}
    )
    err = refused_one(
        {"type": "flex", "altText": "alt", "contents": {"type": "carousel", "contents": [bubble()] * 13}}
    )
    assert (err.property, err.reason) == ("messages[0].contents.contents", "Size must be between 1 and 12")
    err = refused_one({"type": "flex", "altText": "alt", "contents": {"type": "box"}})
    assert err.property == "messages[0].contents.type"
    assert err.reason == "Must be one of the following values: [bubble, carousel]"
    err = refused_one(
        {"type": "flex", "altText": "alt", "contents": {"type": "carousel", "contents": [{"type": "box"}]}}
    )
    assert err.property == "messages[0].contents.contents[0].type"
    assert refused_one({"type": "flex", "altText": "alt"}).property == "messages[0].contents"
    assert refused_one({"type": "flex", "contents": bubble()}).property == "messages[0].altText"


def test_flex_alt_text_limit() -> None:
    check_ok({"type": "flex", "altText": "a" * 1500, "contents": bubble()})
    err = refused_one({"type": "flex", "altText": "a" * 1501, "contents": bubble()})
    assert (err.property, err.reason) == ("messages[0].altText", "Length must be between 0 and 1500")


def test_flex_json_size_limits() -> None:
    overhead = json_size(bubble(1)) - 1
    at_limit = bubble(m.MAX_FLEX_BUBBLE_BYTES - overhead)
    assert json_size(at_limit) == m.MAX_FLEX_BUBBLE_BYTES
    check_ok({"type": "flex", "altText": "a", "contents": at_limit})
    err = refused_one(
        {"type": "flex", "altText": "a", "contents": bubble(m.MAX_FLEX_BUBBLE_BYTES - overhead + 1)}
    )
    assert err.property == "messages[0].contents"
    assert "bytes" in err.reason
    # A carousel under 50 KB but holding one bubble over 30 KB
    big = bubble(m.MAX_FLEX_BUBBLE_BYTES - overhead + 1)
    err = refused_one(
        {"type": "flex", "altText": "a", "contents": {"type": "carousel", "contents": [bubble(), big]}}
    )
    assert err.property == "messages[0].contents.contents[1]"
    # Two bubbles under 30 KB each but together over 50 KB
    half = bubble(26 * 1024)
    err = refused_one(
        {"type": "flex", "altText": "a", "contents": {"type": "carousel", "contents": [half, half]}}
    )
    assert err.property == "messages[0].contents"
    err = refused_one({"type": "flex", "altText": "a", "contents": {"type": "bubble", "x": object()}})
    assert "JSON" in err.reason


# --- Template -----------------------------------------------------------------------------------------


def action(label: str = "Go") -> dict[str, Any]:
    return {"type": "message", "label": label, "text": "go"}


def template(t: dict[str, Any]) -> dict[str, Any]:
    return {"type": "template", "altText": "alt", "template": t}


def test_buttons_template() -> None:
    check_ok(template({"type": "buttons", "text": "t" * 160, "actions": [action()] * 4}))
    check_ok(template({"type": "buttons", "title": "T" * 40, "text": "t" * 60, "actions": [action()]}))
    err = refused_one(template({"type": "buttons", "text": "t" * 161, "actions": [action()]}))
    assert (err.property, err.reason) == ("messages[0].template.text", "Length must be between 0 and 160")
    err = refused_one(template({"type": "buttons", "title": "T", "text": "t" * 61, "actions": [action()]}))
    assert err.reason == "Length must be between 0 and 60"
    err = refused_one(
        template({"type": "buttons", "thumbnailImageUrl": URL, "text": "t" * 61, "actions": [action()]})
    )
    assert err.reason == "Length must be between 0 and 60"
    err = refused_one(template({"type": "buttons", "title": "T" * 41, "text": "t", "actions": [action()]}))
    assert err.property == "messages[0].template.title"
    err = refused_one(template({"type": "buttons", "text": "t", "actions": [action()] * 5}))
    assert (err.property, err.reason) == ("messages[0].template.actions", "Size must be between 1 and 4")
    err = refused_one(template({"type": "buttons", "text": "t", "actions": []}))
    assert err.property == "messages[0].template.actions"
    err = refused_one(
        template({"type": "buttons", "thumbnailImageUrl": "http://x", "text": "t", "actions": [action()]})
    )
    assert err.property == "messages[0].template.thumbnailImageUrl"


def test_template_texts_count_graphemes() -> None:
    # 160 family emoji are 160 clusters (but 1280 UTF-16 units): accepted
    check_ok(template({"type": "buttons", "text": "👨‍👩‍👧" * 160, "actions": [action("👍🏽" * 20)]}))
    err = refused_one(template({"type": "buttons", "text": "t", "actions": [action("👍🏽" * 21)]}))
    assert err.property == "messages[0].template.actions[0].label"


def test_confirm_template() -> None:
    check_ok(template({"type": "confirm", "text": "t" * 240, "actions": [action("Yes"), action("No")]}))
    err = refused_one(template({"type": "confirm", "text": "t" * 241, "actions": [action(), action()]}))
    assert err.property == "messages[0].template.text"
    err = refused_one(template({"type": "confirm", "text": "t", "actions": [action()]}))
    assert err.property == "messages[0].template.actions"
    err = refused_one(template({"type": "confirm", "text": "t", "actions": [action(), action(), action()]}))
    assert err.property == "messages[0].template.actions"


def test_carousel_template() -> None:
    column = {"text": "t" * 120, "actions": [action()] * 3}
    check_ok(template({"type": "carousel", "columns": [column] * 10}))
    err = refused_one(template({"type": "carousel", "columns": [column] * 11}))
    assert (err.property, err.reason) == ("messages[0].template.columns", "Size must be between 1 and 10")
    err = refused_one(
        template({"type": "carousel", "columns": [column, {"text": "t", "actions": [action()] * 4}]})
    )
    assert err.property == "messages[0].template.columns[1].actions"
    err = refused_one(
        template({"type": "carousel", "columns": [{"title": "T", "text": "t" * 61, "actions": [action()]}]})
    )
    assert err.property == "messages[0].template.columns[0].text"
    err = refused_one(template({"type": "carousel", "columns": [{"text": "t" * 121, "actions": [action()]}]}))
    assert err.reason == "Length must be between 0 and 120"
    err = refused_one(
        template({"type": "carousel", "columns": [{"title": "T" * 41, "text": "t", "actions": [action()]}]})
    )
    assert err.property == "messages[0].template.columns[0].title"


def test_image_carousel_template() -> None:
    col = {"imageUrl": URL, "action": {"type": "uri", "label": "L" * 12, "uri": "https://example.com"}}
    check_ok(template({"type": "image_carousel", "columns": [col] * 10}))
    check_ok(
        template(
            {
                "type": "image_carousel",
                "columns": [{"imageUrl": URL, "action": {"type": "postback", "data": "d"}}],
            }
        )
    )
    err = refused_one(template({"type": "image_carousel", "columns": [col] * 11}))
    assert err.property == "messages[0].template.columns"
    bad_label = {"imageUrl": URL, "action": {"type": "uri", "label": "L" * 13, "uri": "https://x"}}
    err = refused_one(template({"type": "image_carousel", "columns": [col, bad_label]}))
    assert err.property == "messages[0].template.columns[1].action.label"
    err = refused_one(template({"type": "image_carousel", "columns": [{"imageUrl": URL}]}))
    assert err.property == "messages[0].template.columns[0].action"


def test_template_type_and_alt_text() -> None:
    err = refused_one(template({"type": "list"}))
    assert err.property == "messages[0].template.type"
    assert err.reason == "Must be one of the following values: [buttons, confirm, carousel, image_carousel]"
    assert refused_one(template({})).reason == "May not be empty"
    err = refused_one({"type": "template", "altText": "a" * 1501, "template": {"type": "confirm"}})
    assert err.property == "messages[0].altText"
    assert refused_one({"type": "template", "altText": "a"}).property == "messages[0].template"


@pytest.mark.parametrize(
    ("act", "prop"),
    [
        ({"type": "postback", "label": "L"}, "data"),
        ({"type": "postback", "label": "L", "data": "d" * 301}, "data"),
        ({"type": "message", "label": "L", "text": "t" * 301}, "text"),
        ({"type": "uri", "label": "L"}, "uri"),
        ({"type": "uri", "label": "L", "uri": "https://x/" + "a" * 991}, "uri"),
        ({"type": "datetimepicker", "label": "L", "data": "d", "mode": "week"}, "mode"),
        ({"type": "clipboard", "label": "L", "clipboardText": "c" * 1001}, "clipboardText"),
        ({"type": "message", "text": "t"}, "label"),
        ({"type": "teleport", "label": "L"}, "type"),
        ({"label": "L"}, "type"),
    ],
)
def test_template_actions(act: dict[str, Any], prop: str) -> None:
    err = refused_one(template({"type": "buttons", "text": "t", "actions": [action(), act]}))
    assert err.property == f"messages[0].template.actions[1].{prop}"


def test_good_actions_of_every_kind() -> None:
    actions = [
        {"type": "postback", "label": "L", "data": "d" * 300},
        {"type": "datetimepicker", "label": "L", "data": "d", "mode": "datetime"},
        {"type": "clipboard", "label": "L", "clipboardText": "c" * 1000},
        {"type": "uri", "label": "L", "uri": "https://x/" + "a" * 990},
    ]
    check_ok(template({"type": "buttons", "text": "t", "actions": actions}))


# --- Imagemap -----------------------------------------------------------------------------------------


def imagemap(**over: Any) -> dict[str, Any]:
    area = {"x": 0, "y": 0, "width": 520, "height": 520}
    base: dict[str, Any] = {
        "type": "imagemap",
        "baseUrl": "https://example.com/bot/images/rm001",
        "altText": "This is an imagemap",
        "baseSize": {"width": 1040, "height": 1040},
        "actions": [
            {"type": "uri", "linkUri": "https://example.com/", "area": area},
            {"type": "message", "text": "Hello", "area": area},
            {"type": "clipboard", "clipboardText": "copied", "area": area},
        ],
    }
    base.update(over)
    return base


def test_imagemap_good() -> None:
    area = {"x": 0, "y": 0, "width": 1040, "height": 585}
    check_ok(imagemap())
    check_ok(imagemap(video={"originalContentUrl": URL, "previewImageUrl": URL, "area": area}))


def test_imagemap_rules() -> None:
    err = refused_one(imagemap(baseSize={"width": 1000, "height": 1040}))
    assert (err.property, err.reason) == ("messages[0].baseSize.width", "Must be 1040")
    assert refused_one(imagemap(baseSize={"width": 1040})).property == "messages[0].baseSize.height"
    area = {"x": 0, "y": 0, "width": 1, "height": 1}
    check_ok(imagemap(actions=[{"type": "message", "text": "t", "area": area}] * 50))
    err = refused_one(imagemap(actions=[{"type": "message", "text": "t", "area": area}] * 51))
    assert (err.property, err.reason) == ("messages[0].actions", "Size must be between 0 and 50")
    err = refused_one(imagemap(actions=[{"type": "postback", "data": "d", "area": area}]))
    assert err.property == "messages[0].actions[0].type"
    err = refused_one(imagemap(actions=[{"type": "uri", "linkUri": "https://x"}]))
    assert err.property == "messages[0].actions[0].area"
    err = refused_one(imagemap(actions=[{"type": "uri", "linkUri": "https://x", "area": {**area, "x": "0"}}]))
    assert err.property == "messages[0].actions[0].area.x"
    assert refused_one(imagemap(baseUrl="http://example.com/i")).property == "messages[0].baseUrl"
    assert refused_one(imagemap(altText="a" * 1501)).property == "messages[0].altText"
    err = refused_one(
        imagemap(video={"originalContentUrl": "http://x/v.mp4", "previewImageUrl": URL, "area": area})
    )
    assert err.property == "messages[0].video.originalContentUrl"


# --- Quick reply and sender ---------------------------------------------------------------------------


def qr_item(label: str = "Yes") -> dict[str, Any]:
    return {"type": "action", "action": {"type": "message", "label": label, "text": "yes"}}


def test_quick_reply() -> None:
    check_ok({"type": "text", "text": "x", "quickReply": {"items": [qr_item()] * 13}})
    check_ok({"type": "text", "text": "x", "quickReply": {"items": [{**qr_item(), "imageUrl": URL}]}})
    err = refused_one({"type": "text", "text": "x", "quickReply": {"items": [qr_item()] * 14}})
    assert (err.property, err.reason) == ("messages[0].quickReply.items", "Size must be between 1 and 13")
    err = refused_one({"type": "text", "text": "x", "quickReply": {"items": [qr_item("L" * 21)]}})
    assert err.property == "messages[0].quickReply.items[0].action.label"
    err = refused_one(
        {"type": "text", "text": "x", "quickReply": {"items": [{**qr_item(), "imageUrl": "http://x"}]}}
    )
    assert err.property == "messages[0].quickReply.items[0].imageUrl"
    err = refused_one({"type": "text", "text": "x", "quickReply": {"items": [{"type": "button"}]}})
    assert err.property == "messages[0].quickReply.items[0].type"
    err = refused_one({"type": "sticker", "packageId": "1", "stickerId": "2", "quickReply": []})
    assert err.property == "messages[0].quickReply"
    err = refused_one({"type": "text", "text": "x", "quickReply": {"items": [{"type": "action"}]}})
    assert err.property == "messages[0].quickReply.items[0].action"


def test_sender() -> None:
    check_ok({"type": "text", "text": "x", "sender": {"name": "n" * 20, "iconUrl": URL}})
    err = refused_one({"type": "text", "text": "x", "sender": {"name": "n" * 21}})
    assert (err.property, err.reason) == ("messages[0].sender.name", "Length must be between 0 and 20")
    err = refused_one({"type": "text", "text": "x", "sender": {"iconUrl": "http://x/i.png"}})
    assert err.property == "messages[0].sender.iconUrl"
    assert refused_one({"type": "text", "text": "x", "sender": "bot"}).property == "messages[0].sender"


# --- Models -------------------------------------------------------------------------------------------

MODEL_CASES: list[tuple[m.Message, dict[str, Any]]] = [
    (TextMessage("hi"), {"type": "text", "text": "hi"}),
    (
        TextMessage("$", emojis=[{"index": 0, "productId": "p", "emojiId": "1"}], quote_token="q"),
        {
            "type": "text",
            "text": "$",
            "emojis": [{"index": 0, "productId": "p", "emojiId": "1"}],
            "quoteToken": "q",
        },
    ),
    (
        TextV2Message(
            "{a}", substitution={"a": {"type": "mention", "mentionee": {"type": "all"}}}, quote_token="q"
        ),
        {
            "type": "textV2",
            "text": "{a}",
            "substitution": {"a": {"type": "mention", "mentionee": {"type": "all"}}},
            "quoteToken": "q",
        },
    ),
    (TextV2Message("plain"), {"type": "textV2", "text": "plain"}),
    (
        StickerMessage("446", "1988", quote_token="q"),
        {"type": "sticker", "packageId": "446", "stickerId": "1988", "quoteToken": "q"},
    ),
    (ImageMessage(URL, URL), {"type": "image", "originalContentUrl": URL, "previewImageUrl": URL}),
    (
        VideoMessage(URL, URL, tracking_id="t1"),
        {"type": "video", "originalContentUrl": URL, "previewImageUrl": URL, "trackingId": "t1"},
    ),
    (AudioMessage(URL, 1500), {"type": "audio", "originalContentUrl": URL, "duration": 1500}),
    (
        LocationMessage("Office", "Tokyo", 35.68, 139.76),
        {"type": "location", "title": "Office", "address": "Tokyo", "latitude": 35.68, "longitude": 139.76},
    ),
    (FlexMessage("alt", bubble()), {"type": "flex", "altText": "alt", "contents": bubble()}),
    (
        TemplateMessage("alt", {"type": "confirm", "text": "ok?", "actions": [action(), action()]}),
        template({"type": "confirm", "text": "ok?", "actions": [action(), action()]}),
    ),
    (
        ImagemapMessage(
            imagemap()["baseUrl"],
            imagemap()["altText"],
            {"width": 1040, "height": 1040},
            imagemap()["actions"],
        ),
        imagemap(),
    ),
    (CouponMessage("c1", delivery_tag="tag"), {"type": "coupon", "couponId": "c1", "deliveryTag": "tag"}),
    (CouponMessage("c1"), {"type": "coupon", "couponId": "c1"}),
]


@pytest.mark.parametrize(("model", "expected"), MODEL_CASES)
def test_model_to_dict_and_normalize(model: m.Message, expected: dict[str, Any]) -> None:
    assert model.to_dict() == expected
    assert normalize_messages(model) == [expected]


def test_imagemap_model_with_video() -> None:
    video = {
        "originalContentUrl": URL,
        "previewImageUrl": URL,
        "area": {"x": 0, "y": 0, "width": 1, "height": 1},
    }
    model = ImagemapMessage("https://x/i", "alt", {"width": 1040, "height": 1}, [], video=video)
    assert model.to_dict()["video"] == video
    assert normalize_messages(model)[0]["video"] == video


def test_quick_reply_and_sender_on_models() -> None:
    qr = {"items": [qr_item()]}
    sender = {"name": "Bot", "iconUrl": URL}
    for model in (
        ImageMessage(URL, URL, quick_reply=qr, sender=sender),
        CouponMessage("c", quick_reply=qr, sender=sender),
    ):
        d = model.to_dict()
        assert d["quickReply"] == qr
        assert d["sender"] == sender
        assert normalize_messages(model) == [d]


def test_models_are_frozen_with_slots() -> None:
    model = TextMessage("hi")
    with pytest.raises(dataclasses.FrozenInstanceError):
        model.text = "other"  # type: ignore[misc]
    assert not hasattr(model, "__dict__")


def test_invalid_model_is_refused_when_normalized() -> None:
    err = refused(["a", ImageMessage("http://x/a.jpg", URL)])
    assert err.property == "messages[1].originalContentUrl"
    err = refused(LocationMessage("t", "a", 100.0, 0.0))
    assert err.property == "messages[0].latitude"


# --- Recipients ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("good", [USER, GROUP, ROOM])
def test_validate_to_accepts_users_groups_rooms(good: str) -> None:
    assert validate_to(good) == good


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "U123",
        USER.upper(),
        "X" + USER[1:],
        USER + "0",
        " " + USER,
        USER[:-1] + "g",
        123,
        None,
    ],
)
def test_validate_to_refuses_bad_ids(bad: Any) -> None:
    with pytest.raises(ValidationError) as info:
        validate_to(bad)
    assert info.value.property == "to"
    assert "user ID (U...), group ID (C...) or room ID (R...)" in info.value.reason


def test_validate_to_custom_property() -> None:
    with pytest.raises(ValidationError) as info:
        validate_to("nope", property="recipient")
    assert info.value.property == "recipient"


def test_validate_user_ids() -> None:
    assert validate_user_ids([USER, USER]) == [USER, USER]
    assert validate_user_ids(iter([USER])) == [USER]
    assert len(validate_user_ids([USER] * 500)) == 500


@pytest.mark.parametrize(
    ("ids", "prop", "needle"),
    [
        ([], "to", "Size must be between 1 and 500"),
        ([USER] * 501, "to", "Size must be between 1 and 500"),
        ([USER, USER, USER, GROUP], "to[3]", "user IDs only"),
        ([USER, ROOM], "to[1]", "user IDs only"),
        ([USER, "Ubad"], "to[1]", "32 lowercase hex"),
        ([USER, 7], "to[1]", "user ID"),
        (USER, "to", "list of user IDs"),
    ],
)
def test_validate_user_ids_refusals(ids: Any, prop: str, needle: str) -> None:
    with pytest.raises(ValidationError) as info:
        validate_user_ids(ids)
    assert info.value.property == prop
    assert needle in info.value.reason


# --- customAggregationUnits ---------------------------------------------------------------------------


def test_custom_aggregation_units() -> None:
    assert validate_custom_aggregation_units(None) is None
    assert validate_custom_aggregation_units([]) == []
    assert validate_custom_aggregation_units(["promo_2026"]) == ["promo_2026"]
    assert validate_custom_aggregation_units(("a" * 30,)) == ["a" * 30]


@pytest.mark.parametrize(
    ("units", "prop"),
    [
        (["a", "b"], "customAggregationUnits"),
        (["a" * 31], "customAggregationUnits[0]"),
        ([""], "customAggregationUnits[0]"),
        (["has-dash"], "customAggregationUnits[0]"),
        (["日本"], "customAggregationUnits[0]"),
        ([1], "customAggregationUnits[0]"),
        ("unit", "customAggregationUnits"),
    ],
)
def test_custom_aggregation_units_refusals(units: Any, prop: str) -> None:
    with pytest.raises(ValidationError) as info:
        validate_custom_aggregation_units(units)
    assert info.value.property == prop


# --- Errors -------------------------------------------------------------------------------------------


def test_validation_error_is_a_value_error_with_line_notation() -> None:
    err = refused(["a", "b", {"type": "text", "text": ""}])
    assert isinstance(err, ValueError)
    assert str(err) == "messages[2].text: May not be empty"


def test_first_error_wins_and_names_its_message() -> None:
    err = refused(["ok", {"type": "sticker"}, {"type": "nope"}])
    assert err.property == "messages[1].packageId"


# --- Properties ---------------------------------------------------------------------------------------


@st.composite
def texts_of_units(draw: st.DrawFn, lo: int, hi: int) -> str:
    """A text of exactly n UTF-16 units, lo <= n <= hi: random characters padded to the drawn length."""
    target = draw(st.integers(lo, hi))
    core = draw(st.text(max_size=40))
    if utf16_len(core) > target:
        core = ""
    pad = draw(st.sampled_from(["a", "é", "日", APPLE]))
    missing = target - utf16_len(core)
    text = core + pad * (missing // utf16_len(pad)) + "a" * (missing % utf16_len(pad))
    assert utf16_len(text) == target
    return text


@settings(max_examples=200, deadline=None)
@given(texts_of_units(1, 5000))
def test_any_text_within_limit_round_trips(text: str) -> None:
    out = normalize_messages(text)
    assert out == [{"type": "text", "text": text}]
    assert json.loads(json.dumps(out)) == out
    assert normalize_messages(out) == out


@settings(max_examples=100, deadline=None)
@given(texts_of_units(5001, 10000))
def test_any_text_over_limit_is_refused(text: str) -> None:
    assert refused(text).property == "messages[0].text"
    assert refused([{"type": "text", "text": text}]).reason == "Length must be between 0 and 5000"


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.sampled_from(["a", {"type": "text", "text": "b"}, TextMessage("c")]), min_size=6, max_size=30)
)
def test_more_than_five_messages_always_refused(items: list[Any]) -> None:
    err = refused(items)
    assert (err.property, err.reason) == ("messages", "Size must be between 1 and 5")


@given(st.text(max_size=200))
def test_utf16_len_matches_encoding(text: str) -> None:
    assert utf16_len(text) == len(text.encode("utf-16-le")) // 2
    assert grapheme_len(text) <= len(text)


@given(st.from_regex(r"[UCR][0-9a-f]{32}", fullmatch=True))
def test_any_well_formed_id_is_accepted(recipient: str) -> None:
    assert validate_to(recipient) == recipient


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from([URL, "$"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)


def _good_messages() -> list[dict[str, Any]]:
    area = {"x": 0, "y": 0, "width": 1, "height": 1}
    return [
        {"type": "text", "text": "$ hi", "emojis": [emoji(0)], "quickReply": {"items": [qr_item()]}},
        {
            "type": "textV2",
            "text": "{a}{b}",
            "substitution": {"a": mention(), "b": {"type": "emoji", "productId": "p", "emojiId": "1"}},
        },
        {
            "type": "location",
            "title": "t",
            "address": "a",
            "latitude": 1,
            "longitude": 2,
            "sender": {"name": "n", "iconUrl": URL},
        },
        {"type": "flex", "altText": "a", "contents": {"type": "carousel", "contents": [bubble()]}},
        template(
            {
                "type": "buttons",
                "thumbnailImageUrl": URL,
                "title": "t",
                "text": "t",
                "defaultAction": action(),
                "actions": [action()],
            }
        ),
        template(
            {
                "type": "carousel",
                "columns": [
                    {
                        "text": "t",
                        "actions": [{"type": "datetimepicker", "label": "d", "data": "x", "mode": "date"}],
                    }
                ],
            }
        ),
        template(
            {
                "type": "image_carousel",
                "columns": [{"imageUrl": URL, "action": {"type": "clipboard", "clipboardText": "c"}}],
            }
        ),
        template(
            {
                "type": "confirm",
                "text": "t",
                "actions": [action(), {"type": "postback", "label": "p", "data": "d"}],
            }
        ),
        imagemap(video={"originalContentUrl": URL, "previewImageUrl": URL, "area": area}),
        {"type": "coupon", "couponId": "c", "deliveryTag": "t"},
        {"type": "audio", "originalContentUrl": URL, "duration": 5},
        {"type": "video", "originalContentUrl": URL, "previewImageUrl": URL, "trackingId": "t"},
    ]


def _slots(node: Any) -> list[tuple[Any, Any]]:
    """Every (container, key) pair inside a JSON value."""
    keys = list(node) if isinstance(node, dict) else list(range(len(node)))
    found = [(node, key) for key in keys]
    for key in keys:
        if isinstance(node[key], dict | list):
            found += _slots(node[key])
    return found


@st.composite
def _mutated(draw: st.DrawFn) -> dict[str, Any]:
    """A valid message with one value anywhere inside it replaced by arbitrary JSON, or removed."""
    message: dict[str, Any] = json.loads(json.dumps(draw(st.sampled_from(_good_messages()))))
    container, key = draw(st.sampled_from(_slots(message)))
    if isinstance(container, dict) and draw(st.booleans()):
        del container[key]
    else:
        container[key] = draw(_json)
    return message


@settings(max_examples=400, deadline=None)
@given(_mutated())
def test_valid_message_with_any_value_replaced_never_crashes(message: dict[str, Any]) -> None:
    try:
        out = normalize_messages([message])
    except ValidationError as err:
        assert err.property and err.property.startswith("messages[0]")
        assert err.reason
    else:
        assert out == [message]


def test_good_fuzz_seeds_are_valid() -> None:
    for message in _good_messages():
        check_ok(message)


@pytest.mark.parametrize(
    ("template", "prop"),
    [
        ({"type": "buttons", "text": "x" * 160}, None),
        ({"type": "buttons", "text": "x" * 161}, "template.text"),
        ({"type": "buttons", "title": "T", "text": "x" * 60}, None),
        ({"type": "buttons", "thumbnailImageUrl": "https://e.test/a.png", "text": "x" * 61}, "template.text"),
        ({"type": "carousel", "columns": [{"text": "x" * 120}]}, None),
        ({"type": "carousel", "columns": [{"text": "x" * 121}]}, "template.columns[0].text"),
        ({"type": "carousel", "columns": [{"title": "T", "text": "x" * 61}]}, "template.columns[0].text"),
    ],
)
def test_a_title_or_image_shortens_the_text_of_buttons_and_carousel_columns(
    template: dict[str, Any], prop: str | None
) -> None:
    actions = [{"type": "postback", "label": "x", "data": "d"}]
    if template["type"] == "buttons":
        template = {**template, "actions": actions}
    else:
        template = {**template, "columns": [{**c, "actions": actions} for c in template["columns"]]}
    message = {"type": "template", "altText": "a", "template": template}
    if prop is None:
        normalize_messages([message])
        return
    with pytest.raises(ValidationError) as caught:
        normalize_messages([message])
    assert caught.value.property == f"messages[0].{prop}"
