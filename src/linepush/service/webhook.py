"""The webhook receiver: checks LINE's signature (FACTS §6) and records the user, group and room ids it sees,
so that ``linepush recipients list`` can tell people the ids to send to.

Anyone can post to it, so what it holds for requests not yet checked is bounded, and a signed body replayed
later counts for nothing: events older than a window, and repeats of a ``webhookEventId``, are ignored.
"""

from __future__ import annotations

import base64
import binascii
import collections
import hashlib
import hmac
import json
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any, Final

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from linepush._secret import Secret
from linepush.service.notify_form import NotifyError, read_body
from linepush.service.store import MAX_EVENT_TYPE, RecipientSighting, gateway_store
from linepush.store import Store
from linepush.store.base import recipient_type

__all__ = ["WebhookReceiver", "sightings", "signature", "signature_matches"]

log = logging.getLogger("linepush.service.webhook")

_ID_KEYS: Final = ("userId", "groupId", "roomId")
#: A ``webhookEventId`` is a ULID (26 characters); anything much longer is not LINE's.
_MAX_EVENT_ID: Final = 64
#: Receipts remembered in memory so that their leases can be given back once out of the window.
_MAX_REMEMBERED: Final = 100_000


def signature(secret: str | Secret, body: bytes) -> str:
    """``X-Line-Signature`` of a body: Base64(HMAC-SHA256(key = channel secret, message = the raw body))."""
    key = (secret.reveal() if isinstance(secret, Secret) else secret).encode("utf-8")
    return base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode("ascii")


def signature_matches(secret: str | Secret, body: bytes, header: str | None) -> bool:
    """Whether ``header`` is the signature of ``body``, compared in constant time."""
    if not header:
        return False
    expected = signature(secret, body).encode("ascii")
    # Header values arrive as Latin-1 text; compare the bytes that came over the wire.
    return hmac.compare_digest(expected, header.strip().encode("latin-1", "replace"))


def _is_id(value: str) -> bool:
    try:
        recipient_type(value)
    except ValueError:
        return False
    return True


def _ids(value: object) -> Iterable[str]:
    if isinstance(value, dict):
        for key in _ID_KEYS:
            found = value.get(key)
            if isinstance(found, str) and _is_id(found):
                yield found


def _plausible_signature(header: str | None) -> bool:
    """Whether ``header`` can be a signature at all: Base64 of the 32 bytes of an HMAC-SHA256."""
    if not header:
        return False
    try:
        return len(base64.b64decode(header.strip(), validate=True)) == 32
    except (binascii.Error, ValueError):
        return False


def sightings(payload: Any) -> list[RecipientSighting]:
    """The ids in a webhook body's events: each event's ``source`` (userId, groupId, roomId) and the members
    of ``memberJoined``/``memberLeft`` events. Malformed parts are skipped: LINE adds fields and event types
    over time, and one odd event must not cost the ids of the others."""
    events = payload.get("events") if isinstance(payload, dict) else None
    return _sightings(events) if isinstance(events, list) else []


def _sightings(events: list[Any]) -> list[RecipientSighting]:
    seen: list[RecipientSighting] = []
    for event in events:
        if not isinstance(event, dict):
            continue
        kind = event.get("type")
        kind = kind[:MAX_EVENT_TYPE] if isinstance(kind, str) and kind else "unknown"
        for found in _ids(event.get("source")):
            seen.append(RecipientSighting(found, kind))
        for part in ("joined", "left"):
            members = event.get(part)
            members = members.get("members") if isinstance(members, dict) else None
            if isinstance(members, list):
                for member in members:
                    seen.extend(RecipientSighting(found, kind) for found in _ids(member))
    return seen


def _event_time(event: Any) -> float | None:
    stamp = event.get("timestamp") if isinstance(event, dict) else None
    if isinstance(stamp, bool) or not isinstance(stamp, int | float):
        return None
    try:
        at = stamp / 1000
    except OverflowError:  # an integer of hundreds of digits: JSON has no bound, Python reads it whole
        return math.inf
    # NaN and the infinities (Python's JSON reads them) are out of every window.
    return at if math.isfinite(at) else math.inf


def _event_id(event: Any) -> str | None:
    found = event.get("webhookEventId") if isinstance(event, dict) else None
    if isinstance(found, str) and 0 < len(found) <= _MAX_EVENT_ID and found.isascii() and found.isprintable():
        return found
    return None


class WebhookReceiver:
    """``POST /webhook`` for one channel. Without the channel secret nothing can be checked: it answers 404
    and says why.

    Bodies not yet checked are held up to ``max_held`` bytes together (more waiting requests get a 503, and
    LINE redelivers); a request without a well-formed signature is refused before its body is read. Events
    whose ``timestamp`` is more than ``max_age`` seconds from the clock are ignored, and so are repeats of
    a ``webhookEventId`` within it: the first receipt takes a lease named after the id in the store (so
    every gateway sharing the store agrees), held until the event leaves the window.
    """

    def __init__(
        self,
        store: Store,
        channel_id: str,
        secret: Secret | None,
        *,
        max_body: int = 256 * 1024,
        max_held: int = 8 * 1024 * 1024,
        max_age: float = 86_400.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.channel_id = channel_id
        self._secret = secret
        self.max_body = max_body
        self.max_held = max_held
        self.max_age = max_age
        self.clock = clock
        self._held = 0
        self._last_busy_warning = float("-inf")
        # (lease end, lease name, owner) of this process's receipts, oldest first.
        self._leases: collections.deque[tuple[float, str, str]] = collections.deque(maxlen=_MAX_REMEMBERED)
        self._leases_lock = threading.Lock()

    async def __call__(self, request: Request) -> Response:
        if self._secret is None:
            raise NotifyError(
                404,
                "the webhook is not enabled on this gateway: it needs the channel secret to check requests",
            )
        header = request.headers.get("x-line-signature")
        if not _plausible_signature(header):
            # Not worth a warning: anyone can post junk here. Refused before a byte of the body is read.
            log.info("webhook request refused: missing or malformed X-Line-Signature")
            raise NotifyError(401, "Invalid signature")
        body = await self._read(request)
        if not signature_matches(self._secret, body, header):
            # Nothing of the body is logged.
            log.info("webhook request refused: wrong X-Line-Signature")
            raise NotifyError(401, "Invalid signature")
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser goes
            raise NotifyError(400, "the body is not JSON") from None
        if not isinstance(payload, dict) or not isinstance(payload.get("events"), list):
            raise NotifyError(400, "the body must be a JSON object with an events array")
        events: list[Any] = payload["events"]
        now = self.clock()
        found, ignored = await run_in_threadpool(self._record, events, now)
        log.info(
            "webhook: %d events, %d ids recorded%s",
            len(events),
            len(found),
            f", {ignored} replayed or out-of-window events ignored" if ignored else "",
        )
        return JSONResponse({})

    async def _read(self, request: Request) -> bytes:
        """The body, counted against what is held for all requests at once from before it is read."""
        declared = request.headers.get("content-length", "").strip()
        share = min(int(declared), self.max_body) if declared.isdigit() else self.max_body
        if self._held + share > self.max_held:
            now = time.monotonic()
            if now - self._last_busy_warning > 60:
                self._last_busy_warning = now
                log.warning("webhook: %d bytes of bodies are being received; refusing more", self._held)
            raise NotifyError(503, "the gateway is busy receiving other webhook requests; try again later")
        self._held += share
        try:
            return await read_body(request, self.max_body)
        finally:
            self._held -= share

    def _record(self, events: list[Any], now: float) -> tuple[list[RecipientSighting], int]:
        """Record the ids of the events that are neither out of the window nor repeats; returns them and how
        many events were ignored. Runs on a worker thread (store calls block)."""
        self._forget_old_leases(now)
        kept: list[Any] = []
        for event in events:
            at = _event_time(event)
            # An event without a timestamp has no age to check; LINE always sends one, so such a body was
            # written by someone holding the channel secret, not replayed from LINE.
            if at is not None and abs(now - at) > self.max_age:
                continue
            event_id = _event_id(event)
            if event_id is not None and not self._first_receipt(event_id, (at or now) + self.max_age, now):
                continue
            kept.append(event)
        found = _sightings(kept)
        if found:
            gateway_store(self.store).record_recipients(self.channel_id, found, now)
        return found, len(events) - len(kept)

    def _first_receipt(self, event_id: str, until: float, now: float) -> bool:
        name, owner = f"webhook-event:{self.channel_id}:{event_id}", f"webhook-{uuid.uuid4().hex}"
        if not self.store.try_lock(name, owner, max(until - now, 1.0), now):
            return False
        self._leases.append((until, name, owner))
        return True

    def _forget_old_leases(self, now: float) -> None:
        # The lease of an event out of the window is no longer needed: the window refuses it now. (Leases of
        # a process that stopped stay until another receipt of the same id takes them over.)
        with self._leases_lock:
            old = []
            while self._leases and self._leases[0][0] <= now:
                old.append(self._leases.popleft())
        for _, name, owner in old:
            self.store.unlock(name, owner)
