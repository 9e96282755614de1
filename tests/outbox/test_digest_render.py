"""How a digest reads: count and span in the header, newest last, cut only where LINE's 5,000 UTF-16 code
units force it (never inside a surrogate pair), other objects after the texts, at most 5 objects a push."""

from __future__ import annotations

from datetime import UTC
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from linepush.digest import digest_header, digest_messages, digest_part, parse_window, split_text
from linepush.errors import ValidationError
from linepush.messages import utf16_len
from linepush.store.base import DigestPart

# 2026-12-01 03:00:00 UTC, 12:00:00 in Tokyo.  # fixed date ok
NOON_TOKYO = 1_796_094_000.0
TOKYO = ZoneInfo("Asia/Tokyo")
IMAGE = {
    "type": "image",
    "originalContentUrl": "https://e.test/a.png",
    "previewImageUrl": "https://e.test/a.png",
}


def parts(*texts: str, step: float = 1.0) -> list[DigestPart]:
    return [DigestPart(NOON_TOKYO + i * step, t) for i, t in enumerate(texts)]


def test_one_notification_is_sent_as_it_came() -> None:
    assert digest_messages(parts("disk full"), TOKYO) == [{"type": "text", "text": "disk full"}]


def test_several_become_one_text_headed_with_count_and_span_newest_last() -> None:
    [message] = digest_messages(parts("first", "second", "third", step=14.5), TOKYO) or []
    assert message["text"].splitlines() == [
        "🔔 3 notifications, 2026-12-01 12:00:00 – 12:00:29 JST",
        "[12:00:00] first",
        "[12:00:14] second",
        "[12:00:29] third",
    ]


def test_the_span_is_told_in_the_configured_zone_and_names_both_days_across_midnight() -> None:
    late = [DigestPart(NOON_TOKYO - 12 * 3600 - 5, "a"), DigestPart(NOON_TOKYO - 12 * 3600 + 5, "b")]
    assert digest_header(late, TOKYO) == "🔔 2 notifications, 2026-11-30 23:59:55 – 2026-12-01 00:00:05 JST"
    assert digest_header(late, UTC) == "🔔 2 notifications, 2026-11-30 14:59:55 – 15:00:05 UTC"


def test_a_text_is_cut_only_where_the_limit_forces_it() -> None:
    many = parts(*(f"alert {i:04d} " + "x" * 80 for i in range(150)))
    messages = digest_messages(many, TOKYO) or []
    whole = "".join(m["text"] for m in messages)
    # A header of 56 units and 150 lines of 102, each after a line break: 15,506 units, four texts.
    assert utf16_len(whole) == 15_506
    assert [utf16_len(m["text"]) for m in messages] == [5000, 5000, 5000, 506]
    assert utf16_len(messages[-1]["text"]) <= 5000
    lines = whole.splitlines()
    assert lines[1].endswith("alert 0000 " + "x" * 80) and lines[-1].endswith("alert 0149 " + "x" * 80)


def test_a_surrogate_pair_is_never_split_and_counts_two_units() -> None:
    text = "a" + "😀" * 3000  # 1 + 6000 units: the pair straddling unit 5000 moves to the next piece
    first, second = split_text(text, 5000)
    assert (utf16_len(first), utf16_len(second)) == (4999, 1002)
    assert first + second == text
    assert split_text("😀" * 2500, 5000) == ["😀" * 2500]


@given(st.text(alphabet=st.sampled_from("ab\n😀𝄞é"), max_size=300), st.integers(2, 40))
def test_pieces_are_whole_characters_within_the_limit_and_rejoin_to_the_text(text: str, limit: int) -> None:
    pieces = split_text(text, limit)
    assert "".join(pieces) == text
    assert all(1 <= utf16_len(p) <= limit for p in pieces)
    # As long as they may be: only the last is short by more than the one unit a pair may leave.
    assert all(utf16_len(p) >= limit - 1 for p in pieces[:-1])


def test_objects_that_are_not_text_follow_the_text_in_the_order_they_came() -> None:
    sticker = {"type": "sticker", "packageId": "446", "stickerId": "1988"}
    one = digest_part([{"type": "text", "text": "graph"}, IMAGE], NOON_TOKYO)
    two = digest_part([{"type": "text", "text": "ok"}, sticker], NOON_TOKYO + 1)
    messages = digest_messages([one, two], TOKYO) or []
    assert [m["type"] for m in messages] == ["text", "image", "sticker"]
    assert messages[0]["text"].endswith("[12:00:00] graph\n[12:00:01] ok")


def test_a_text_with_emojis_or_a_quick_reply_is_kept_whole_as_an_object_of_its_own() -> None:
    rich = {"type": "text", "text": "$ up", "emojis": [{"index": 0, "productId": "p", "emojiId": "001"}]}
    part = digest_part([rich], NOON_TOKYO)
    assert (part.text, part.extras) == ("", (rich,))


def test_more_than_five_objects_do_not_fit_in_one_push() -> None:
    images = [DigestPart(NOON_TOKYO + i, f"{i}", (IMAGE,)) for i in range(4)]
    assert len(digest_messages(images, TOKYO) or []) == 5
    assert digest_messages([*images, DigestPart(NOON_TOKYO + 9, "5", (IMAGE,))], TOKYO) is None
    huge = parts(*("y" * 4000 for _ in range(7)))  # 28,000 units of text: six texts
    assert digest_messages(huge, TOKYO) is None
    assert len(digest_messages(huge[:6], TOKYO) or []) == 5


@pytest.mark.parametrize(
    ("given", "seconds"),
    [
        ("30s", 30.0),
        ("2m", 120.0),
        ("1h", 3600.0),
        ("45", 45.0),
        (0.5, 0.5),
        ("24h", 86400.0),
        ("1d", 86400.0),
        ("0.5d", 43200.0),
    ],
)
def test_windows_read_as_seconds(given: object, seconds: float) -> None:
    assert parse_window(given) == seconds


@pytest.mark.parametrize("given", ["", "0s", "-5s", "30 sec", "2d", "25h", "1w", True, None, float("nan"), 0])
def test_bad_windows_are_refused_clearly(given: object) -> None:
    with pytest.raises(ValidationError, match="window"):
        parse_window(given, "--digest")


def test_a_window_not_understood_names_the_units_that_are() -> None:
    with pytest.raises(ValidationError, match=r"with s, m, h or d \(seconds, minutes, hours, days\)"):
        parse_window("1w", "--digest")
