"""The webhook receiver: checks LINE's signature (FACTS §6) and records the user, group and room ids it sees,
so that ``linepush recipients list`` can tell people the ids to send to."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, Final

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from linepush._secret import Secret
from linepush.service.gateway import NotifyError, read_body
from linepush.store import Store
from linepush.store.base import MAX_EVENT_TYPE, RecipientSighting, recipient_type

__all__ = ["WebhookReceiver", "sightings", "signature", "signature_matches"]

log = logging.getLogger("linepush.service.webhook")

_ID_KEYS: Final = ("userId", "groupId", "roomId")


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


def sightings(payload: Any) -> list[RecipientSighting]:
    """The ids in a webhook body's events: each event's ``source`` (userId, groupId, roomId) and the members
    of ``memberJoined``/``memberLeft`` events. Malformed parts are skipped: LINE adds fields and event types
    over time, and one odd event must not cost the ids of the others."""
    events = payload.get("events") if isinstance(payload, dict) else None
    if not isinstance(events, list):
        return []
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


class WebhookReceiver:
    """``POST /webhook`` for one channel. Without the channel secret nothing can be checked: it answers 404
    and says why."""

    def __init__(
        self,
        store: Store,
        channel_id: str,
        secret: Secret | None,
        *,
        max_body: int = 1024 * 1024,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.channel_id = channel_id
        self._secret = secret
        self.max_body = max_body
        self.clock = clock

    async def __call__(self, request: Request) -> Response:
        if self._secret is None:
            raise NotifyError(
                404,
                "the webhook is not enabled on this gateway: it needs the channel secret to check requests",
            )
        body = await read_body(request, self.max_body)
        if not signature_matches(self._secret, body, request.headers.get("x-line-signature")):
            # Not worth a warning: anyone can post junk here. Nothing of the body is logged.
            log.info("webhook request refused: missing or wrong X-Line-Signature")
            raise NotifyError(401, "Invalid signature")
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser goes
            raise NotifyError(400, "the body is not JSON") from None
        if not isinstance(payload, dict) or not isinstance(payload.get("events"), list):
            raise NotifyError(400, "the body must be a JSON object with an events array")
        found = sightings(payload)
        if found:
            await run_in_threadpool(self.store.record_recipients, self.channel_id, found, self.clock())
        log.info("webhook: %d events, %d ids recorded", len(payload["events"]), len(found))
        return JSONResponse({})
