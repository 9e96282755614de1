"""Alert notifications as the gateway reads them: Prometheus Alertmanager's webhook (version 4) and Grafana's
webhook contact point, checked and brought to one shape, and the identity that tells a sender's retry from
a new notification. No I/O here.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal

from linepush.service.notify_form import NotifyError

__all__ = [
    "Alert",
    "AlertNotification",
    "AlertSource",
    "parse_alert_payload",
    "parse_alertmanager",
    "parse_grafana",
    "parse_json",
    "parse_json_body",
    "parse_time",
    "sample_alertmanager_payload",
]

AlertSource = Literal["alertmanager", "grafana"]
AlertStatus = Literal["firing", "resolved"]
_STATUSES: Final = ("firing", "resolved")
#: More alerts than this in one notification is not a group anybody reads on a phone; refused as malformed.
MAX_ALERTS: Final = 10_000
_MAX_NAME: Final = 1024
_MAX_VALUE: Final = 64 * 1024
# Go's zero time.Time: Alertmanager's endsAt of an alert with no end yet.
_ZERO_YEAR: Final = 1
#: The last year of a time shown in any time zone: the calendar ends with the year 9999.
_LAST_SHOWN_YEAR: Final = 9998
_RFC3339 = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert of a notification; times are UNIX seconds, None when not set."""

    status: AlertStatus
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: float | None
    ends_at: float | None
    #: The times as sent: the notification's identity uses them, not their parsed (rounded) values.
    starts_at_text: str
    ends_at_text: str
    generator_url: str
    fingerprint: str
    # Grafana's, empty from Alertmanager.
    dashboard_url: str = ""
    panel_url: str = ""
    silence_url: str = ""
    image_url: str = ""
    values: Mapping[str, Any] = field(default_factory=dict)
    #: The alert as it came, for user templates.
    raw: Mapping[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "")


@dataclass(frozen=True, slots=True)
class AlertNotification:
    """One webhook call: a group of alerts and what is common to them."""

    source: AlertSource
    receiver: str
    status: AlertStatus
    alerts: tuple[Alert, ...]
    group_key: str
    group_labels: Mapping[str, str]
    common_labels: Mapping[str, str]
    common_annotations: Mapping[str, str]
    external_url: str
    #: Alerts the sender left out of the payload (Alertmanager's ``max_alerts``).
    truncated_alerts: int = 0
    # Grafana's, empty from Alertmanager.
    title: str = ""
    message: str = ""
    #: The body as it came, for user templates.
    raw: Mapping[str, Any] = field(default_factory=dict)

    def identity(self) -> str:
        """What makes a retry of this notification the same notification: the sender, its receiver, group
        key and status, and each alert's fingerprint with its start and end, as a SHA-256 in hex."""
        alerts = sorted(
            [a.fingerprint or _labels_key(a.labels), a.starts_at_text, a.ends_at_text] for a in self.alerts
        )
        parts = [self.source, self.receiver, self.group_key, self.status, alerts]
        return hashlib.sha256(json.dumps(parts, ensure_ascii=True).encode("ascii")).hexdigest()


def _labels_key(labels: Mapping[str, str]) -> str:
    return json.dumps(sorted(labels.items()), ensure_ascii=True)


def parse_json(body: bytes) -> Any:
    """The body as JSON, or a 400. A lone surrogate that JSON spells as an escape ("\\ud800": no character
    at all, and text LINE cannot take) becomes U+FFFD, so the alert still goes out."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser goes
        raise NotifyError(400, "the body is not JSON") from None
    # Only an escape, or the bytes UTF-8 would spell a surrogate with (ED A0-BF, which the json module
    # reads), can bring one in.
    return _mend(payload) if b"\\u" in body or b"\xed" in body else payload


_LONE_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def _mend(value: Any) -> Any:
    # A pair of escapes is joined into one character by the parser, so any surrogate left is a lone one.
    if isinstance(value, str):
        return value if value.isascii() else _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_mend(item) for item in value]
    if isinstance(value, dict):
        return {_mend(key): _mend(item) for key, item in value.items()}
    return value


def parse_json_body(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or a 400 that says why not."""
    payload = parse_json(body)
    if not isinstance(payload, dict):
        raise NotifyError(400, "the body must be a JSON object")
    return payload


def _string(payload: Mapping[str, Any], key: str, where: str, *, required: bool = False) -> str:
    value = payload.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise NotifyError(400, f"{where}{key}: must be a string")
    if len(value) > _MAX_VALUE:
        raise NotifyError(400, f"{where}{key}: must be at most {_MAX_VALUE} characters")
    return value


def _status(payload: Mapping[str, Any], where: str) -> AlertStatus:
    value = payload.get("status")
    if value not in _STATUSES:
        raise NotifyError(400, f'{where}status: must be "firing" or "resolved"')
    return "firing" if value == "firing" else "resolved"


def _string_map(payload: Mapping[str, Any], key: str, where: str) -> dict[str, str]:
    value = payload.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise NotifyError(400, f"{where}{key}: must be an object of strings")
    for name, text in value.items():
        if not isinstance(text, str) or len(name) > _MAX_NAME or len(text) > _MAX_VALUE:
            raise NotifyError(400, f"{where}{key}: must be an object of strings")
    return dict(value)


def _time(text: str, where: str) -> float | None:
    if not text:
        return None
    found = _RFC3339.fullmatch(text.strip())
    if found is None:
        raise NotifyError(400, f"{where}: must be an RFC 3339 time such as 2026-01-02T03:04:05Z")
    # Go writes nanoseconds; Python reads at most microseconds.
    fraction = (found.group(2) or "")[:7]
    zone = found.group(3).upper().replace("Z", "+00:00")
    try:
        moment = datetime.fromisoformat(found.group(1) + fraction + zone)
    except ValueError:
        raise NotifyError(400, f"{where}: is not a valid time") from None
    if moment.year <= _ZERO_YEAR:
        return None
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59:59-14:00 is in the year 10000
        return None
    if moment.year > _LAST_SHOWN_YEAR:
        return None  # unknown, like Go's zero: no time zone's clock (offsets under a day) could show it
    return moment.timestamp()


def parse_time(text: str) -> float | None:
    """UNIX seconds of an RFC 3339 time as payloads write it; None when it is not one (or Go's zero)."""
    try:
        return _time(text, "time")
    except NotifyError:
        return None


def _alert(value: object, index: int, source: AlertSource) -> Alert:
    where = f"alerts[{index}]."
    if not isinstance(value, dict):
        raise NotifyError(400, f"alerts[{index}]: must be an object")
    starts = _string(value, "startsAt", where)
    ends = _string(value, "endsAt", where)
    labels = _string_map(value, "labels", where)
    if not labels:
        raise NotifyError(400, f"{where}labels: must name the alert (at least alertname)")
    extra: dict[str, Any] = {}
    if source == "grafana":
        values = value.get("values")
        if values is not None and not isinstance(values, dict):
            raise NotifyError(400, f"{where}values: must be an object")
        extra = {
            "dashboard_url": _string(value, "dashboardURL", where),
            "panel_url": _string(value, "panelURL", where),
            "silence_url": _string(value, "silenceURL", where),
            "image_url": _string(value, "imageURL", where),
            "values": dict(values or {}),
        }
    return Alert(
        status=_status(value, where),
        labels=labels,
        annotations=_string_map(value, "annotations", where),
        starts_at=_time(starts, where + "startsAt"),
        ends_at=_time(ends, where + "endsAt"),
        starts_at_text=starts,
        ends_at_text=ends,
        generator_url=_string(value, "generatorURL", where),
        fingerprint=_string(value, "fingerprint", where),
        raw=value,
        **extra,
    )


def _alerts(payload: Mapping[str, Any], source: AlertSource) -> tuple[Alert, ...]:
    alerts = payload.get("alerts")
    if not isinstance(alerts, list) or not alerts:
        raise NotifyError(400, "alerts: must be a non-empty array of alerts")
    if len(alerts) > MAX_ALERTS:
        raise NotifyError(400, f"alerts: must hold at most {MAX_ALERTS} alerts")
    return tuple(_alert(value, index, source) for index, value in enumerate(alerts))


def _count(payload: Mapping[str, Any], key: str) -> int:
    value = payload.get(key, 0)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise NotifyError(400, f"{key}: must be a whole number of 0 or more")
    return value


def _common(payload: dict[str, Any], source: AlertSource) -> dict[str, Any]:
    return {
        "source": source,
        "receiver": _string(payload, "receiver", ""),
        "status": _status(payload, ""),
        "alerts": _alerts(payload, source),
        "group_labels": _string_map(payload, "groupLabels", ""),
        "common_labels": _string_map(payload, "commonLabels", ""),
        "common_annotations": _string_map(payload, "commonAnnotations", ""),
        "external_url": _string(payload, "externalURL", ""),
        "truncated_alerts": _count(payload, "truncatedAlerts"),
        "raw": payload,
    }


def parse_alertmanager(payload: dict[str, Any]) -> AlertNotification:
    """Alertmanager's webhook body, version 4; anything else is a 400 that names the field."""
    version = payload.get("version")
    if version != "4":
        shown = "missing" if version is None else repr(version)
        raise NotifyError(400, f'version: must be "4" (Alertmanager\'s webhook format), not {shown}')
    return AlertNotification(
        group_key=_string(payload, "groupKey", "", required=True), **_common(payload, "alertmanager")
    )


def parse_grafana(payload: dict[str, Any]) -> AlertNotification:
    """Grafana's webhook contact point body: Alertmanager's fields plus title, state, message and orgId."""
    version = payload.get("version")
    if version is not None and version != "1":
        raise NotifyError(400, f'version: must be "1" (Grafana\'s webhook format), not {version!r}')
    org = payload.get("orgId")
    if org is not None and (isinstance(org, bool) or not isinstance(org, int)):
        raise NotifyError(400, "orgId: must be a number")
    common = _common(payload, "grafana")
    # The same group key in two organisations is two groups.
    group_key = f"{org}:{_string(payload, 'groupKey', '')}"
    return AlertNotification(
        group_key=group_key,
        title=_string(payload, "title", ""),
        message=_string(payload, "message", ""),
        **common,
    )


def parse_alert_payload(payload: dict[str, Any]) -> AlertNotification:
    """An Alertmanager or a Grafana payload, told apart by their fields (Grafana sends ``orgId``)."""
    if "orgId" in payload or payload.get("version") == "1":
        return parse_grafana(payload)
    return parse_alertmanager(payload)


def sample_alertmanager_payload(status: AlertStatus, starts_at: str, ends_at: str) -> dict[str, Any]:
    """A notification as Alertmanager sends it, of one alert that says it is a test."""
    return {
        "version": "4",
        "groupKey": '{}:{alertname="LinepushTest"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "linepush",
        "groupLabels": {"alertname": "LinepushTest"},
        "commonLabels": {"alertname": "LinepushTest", "severity": "info"},
        "commonAnnotations": {"summary": "A test alert from linepush: alerts reach this chat."},
        "externalURL": "",
        "alerts": [
            {
                "status": status,
                "labels": {"alertname": "LinepushTest", "severity": "info"},
                "annotations": {"summary": "A test alert from linepush: alerts reach this chat."},
                "startsAt": starts_at,
                "endsAt": ends_at,
                "generatorURL": "",
                "fingerprint": "0000000000000000",
            }
        ],
    }
