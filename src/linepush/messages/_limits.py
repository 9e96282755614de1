"""LINE's limits on what a send carries (FACTS.md §3.2, §3.3, §5), and how LINE measures text against them."""

from __future__ import annotations

import re
import unicodedata

__all__ = [
    "IMAGEMAP_BASE_WIDTH",
    "MAX_ACTION_DATA",
    "MAX_ACTION_LABEL",
    "MAX_ACTION_TEXT",
    "MAX_ACTION_URI",
    "MAX_AGGREGATION_UNITS",
    "MAX_AGGREGATION_UNIT_LENGTH",
    "MAX_ALT_TEXT",
    "MAX_BUTTONS_ACTIONS",
    "MAX_BUTTONS_TEXT",
    "MAX_BUTTONS_TEXT_WITH_IMAGE_OR_TITLE",
    "MAX_CAROUSEL_ACTIONS",
    "MAX_CAROUSEL_TEXT",
    "MAX_CAROUSEL_TEXT_WITH_IMAGE_OR_TITLE",
    "MAX_CLIPBOARD_TEXT",
    "MAX_CONFIRM_TEXT",
    "MAX_DELIVERY_TAG",
    "MAX_EMOJIS",
    "MAX_FLEX_BUBBLE_BYTES",
    "MAX_FLEX_CAROUSEL_BUBBLES",
    "MAX_FLEX_CAROUSEL_BYTES",
    "MAX_IMAGEMAP_ACTIONS",
    "MAX_IMAGE_CAROUSEL_LABEL",
    "MAX_LOCATION_TEXT",
    "MAX_MESSAGES",
    "MAX_QUICK_REPLY_ITEMS",
    "MAX_SENDER_NAME",
    "MAX_SUBSTITUTIONS",
    "MAX_SUBSTITUTION_KEY",
    "MAX_TEMPLATE_COLUMNS",
    "MAX_TEMPLATE_TITLE",
    "MAX_TEXTV2_EMOJIS",
    "MAX_TEXTV2_MENTIONS",
    "MAX_TEXT_UTF16",
    "MAX_TRACKING_ID",
    "MAX_URL_LENGTH",
    "MESSAGE_TYPES",
    "MIN_TEXT_UTF16",
    "MULTICAST_MAX_RECIPIENTS",
    "grapheme_len",
    "utf16_len",
]

# --- Limits (FACTS.md §3.2, §3.3, §5) -----------------------------------------------------------------

MAX_MESSAGES = 5
MAX_TEXT_UTF16 = 5000
#: LINE's length error says "between 0 and 5000" but its example reports "May not be empty" for a text;
#: whether "" is accepted is not documented, so an empty text is refused (set to 0 to let LINE decide).
MIN_TEXT_UTF16 = 1
MAX_EMOJIS = 20
MAX_URL_LENGTH = 2000
MAX_ALT_TEXT = 1500
MAX_LOCATION_TEXT = 100
MAX_TRACKING_ID = 100
IMAGEMAP_BASE_WIDTH = 1040
MAX_IMAGEMAP_ACTIONS = 50
MAX_QUICK_REPLY_ITEMS = 13
MAX_SENDER_NAME = 20
#: "30 KB"/"50 KB" in LINE's docs; read as KiB so a bubble LINE accepts is never refused here.
MAX_FLEX_BUBBLE_BYTES = 30 * 1024
MAX_FLEX_CAROUSEL_BYTES = 50 * 1024
MAX_FLEX_CAROUSEL_BUBBLES = 12
MAX_TEMPLATE_COLUMNS = 10
MAX_TEMPLATE_TITLE = 40
MAX_BUTTONS_TEXT = 160
MAX_BUTTONS_TEXT_WITH_IMAGE_OR_TITLE = 60
MAX_BUTTONS_ACTIONS = 4
MAX_CONFIRM_TEXT = 240
MAX_CAROUSEL_TEXT = 120
MAX_CAROUSEL_TEXT_WITH_IMAGE_OR_TITLE = 60
MAX_CAROUSEL_ACTIONS = 3
MAX_ACTION_LABEL = 20
MAX_IMAGE_CAROUSEL_LABEL = 12
MAX_ACTION_DATA = 300
MAX_ACTION_TEXT = 300
MAX_ACTION_URI = 1000
MAX_CLIPBOARD_TEXT = 1000
MAX_SUBSTITUTIONS = 100
MAX_SUBSTITUTION_KEY = 20
MAX_TEXTV2_MENTIONS = 20
MAX_TEXTV2_EMOJIS = 20
MAX_DELIVERY_TAG = 30
MULTICAST_MAX_RECIPIENTS = 500
MAX_AGGREGATION_UNITS = 1
MAX_AGGREGATION_UNIT_LENGTH = 30

MESSAGE_TYPES: tuple[str, ...] = (
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

#: The characters of substitution keys, delivery tags and aggregation unit names.
_WORD_RE = re.compile(r"[A-Za-z0-9_]+")


# --- Lengths ------------------------------------------------------------------------------------------


def utf16_len(text: str) -> int:
    """Length of ``text`` in UTF-16 code units, the unit LINE counts text in (🍎 counts 2). A lone surrogate
    (not valid text; whoever sends it says so) counts as the one unit it is."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def grapheme_len(text: str) -> int:
    """Approximate number of user-perceived characters (grapheme clusters) in ``text``.

    LINE counts template texts and labels this way. This approximation joins combining and enclosing
    marks, variation selectors, emoji skin-tone modifiers, emoji tag characters, ZWJ sequences and
    regional-indicator pairs (flags) to the character before them. It may count some rare scripts (e.g.
    decomposed Hangul jamo) higher than a full UAX #29 segmenter would, never lower than one per cluster
    for the common cases above.
    """
    if text.isascii():
        return len(text)
    count = 0
    after_zwj = False
    open_flag = False
    for ch in text:
        code = ord(ch)
        if after_zwj:
            after_zwj = False
            continue
        if code == 0x200D:
            after_zwj = True
            continue
        if (
            0x1F3FB <= code <= 0x1F3FF
            or 0xE0020 <= code <= 0xE007F
            or unicodedata.category(ch) in ("Mn", "Me", "Mc")
        ):
            continue
        if 0x1F1E6 <= code <= 0x1F1FF:
            if open_flag:
                open_flag = False
                continue
            open_flag = True
        else:
            open_flag = False
        count += 1
    return count
