"""The ``X-Line-Retry-Key`` rule, written once for a direct send and for the outbox (FACTS §3.7).

A key is a UUID in LINE's hexadecimal form: 32 hex digits in groups of 8-4-4-4-12 joined by hyphens
(``123e4567-e89b-12d3-a456-426614174000``). The other spellings a UUID parser takes (braces, ``urn:uuid:``,
no hyphens) are refused, whether the key is sent now or stored for later. Hex digits are case-insensitive
(RFC 4122): a key is kept and sent in lower case, so one key names one message however it was typed.
"""

from __future__ import annotations

import os
import re
import uuid
from typing import Final

from linepush.errors import ValidationError

__all__ = ["EXAMPLE_RETRY_KEY", "check_retry_key", "chunk_retry_key", "new_retry_key"]

#: LINE's own example of a retry key.
EXAMPLE_RETRY_KEY: Final = "123e4567-e89b-12d3-a456-426614174000"

_KEY: Final = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# The variant digit (8, 9, a or b) for each random hex digit: its two low bits.
_VARIANT: Final = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def new_retry_key() -> str:
    """A random (version 4) UUID in LINE's form; formatted by hand, as ``str(uuid.uuid4())`` costs several
    times more and this runs on every send and every enqueued row."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


def check_retry_key(key: object, property: str = "X-Line-Retry-Key") -> str:
    """``key`` in lower case if it is a retry key in LINE's form; else a :class:`ValidationError` naming
    ``property``."""
    if type(key) is str and _KEY.fullmatch(key) is not None:
        return key.lower()
    raise ValidationError(
        f"a retry key must be a UUID in LINE's form, 8-4-4-4-12 hex digits such as {EXAMPLE_RETRY_KEY}",
        property=property,
    )


def chunk_retry_key(retry_key: str, index: int) -> str:
    """The retry key of chunk ``index`` of a multicast sent under ``retry_key``.

    Chunk 0 uses the key itself; the others derive theirs from it (UUID v5), so sending the same list again
    under the same key reproduces every chunk's key and LINE drops what it already accepted.
    """
    if index == 0:
        return retry_key
    return str(uuid.uuid5(uuid.UUID(retry_key), f"multicast-chunk-{index}"))
