"""The default rendering of an alert notification: texts that read well on a phone, and that always fit in
one push (at most 5 message objects of at most 5,000 UTF-16 code units, FACTS §5). No I/O here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, tzinfo
from typing import Final

from linepush.messages import utf16_len
from linepush.service.alert_payloads import Alert, AlertNotification

__all__ = ["MAX_TEXT", "MAX_TEXTS", "fit_texts", "render_default"]

#: LINE's limits: message objects per push, UTF-16 code units per text.
MAX_TEXTS: Final = 5
MAX_TEXT: Final = 5000
_SEVERITY_MARKS: Final = {
    "critical": "🔴",
    "page": "🔴",
    "error": "🔴",
    "high": "🔴",
    "warning": "🟠",
    "warn": "🟠",
    "medium": "🟠",
    "info": "🔵",
    "low": "🔵",
    "none": "⚪",
}
_ELLIPSIS: Final = "…"
#: A longer "more" URL is left out rather than crowd out the alerts.
_MAX_MORE_URL: Final = 1000
#: Labels that say nothing a reader needs once the alert's name is shown.
_QUIET_LABELS: Final = frozenset({"alertname", "__alert_rule_uid__", "grafana_folder", "__name__"})


def _severity(labels: Mapping[str, str]) -> str:
    severity = labels.get("severity", "")
    mark = _SEVERITY_MARKS.get(severity.lower())
    if mark is None:
        return severity
    return f"{mark} {severity}"


def _when(moment: float | None, zone: tzinfo) -> str:
    if moment is None:
        return ""
    return datetime.fromtimestamp(moment, zone).strftime("%Y-%m-%d %H:%M %Z").strip()


def _differing(alert: Alert, common: Mapping[str, str]) -> list[str]:
    return [
        f"{key}={value}"
        for key, value in sorted(alert.labels.items())
        if key not in _QUIET_LABELS and common.get(key) != value
    ]


def _alert_block(alert: Alert, notification: AlertNotification, zone: tzinfo) -> str:
    mark = "🔥" if alert.status == "firing" else "✅"
    lines = [f"{mark} {alert.name or 'alert'}"]
    differing = _differing(alert, notification.common_labels)
    if differing:
        lines.append(" ".join(differing))
    common = notification.common_annotations
    for key in ("summary", "description"):
        text = alert.annotations.get(key, "")
        if text and common.get(key) != text:
            lines.append(text)
    if alert.status == "firing":
        since = _when(alert.starts_at, zone)
        if since:
            lines.append(f"since {since}")
    else:
        ended = _when(alert.ends_at, zone)
        if ended:
            lines.append(f"resolved {ended}")
    for label, url in (
        ("source", alert.generator_url),
        ("dashboard", alert.dashboard_url),
        ("panel", alert.panel_url),
        ("silence", alert.silence_url),
        ("image", alert.image_url),
    ):
        if url:
            lines.append(f"{label}: {url}")
    return "\n".join(lines)


def _header(notification: AlertNotification) -> str:
    firing = sum(1 for a in notification.alerts if a.status == "firing")
    resolved = len(notification.alerts) - firing
    head = "🔥 FIRING" if notification.status == "firing" else "✅ RESOLVED"
    name = notification.common_labels.get("alertname") or notification.group_labels.get("alertname", "")
    parts = [head]
    severity = _severity(notification.common_labels)
    if severity:
        parts.append(severity)
    if name:
        parts.append(name)
    counts = []
    if firing:
        counts.append(f"{firing} firing")
    if resolved:
        counts.append(f"{resolved} resolved")
    lines = [" · ".join(parts) + f" ({', '.join(counts)})"]
    if notification.title and notification.title not in lines[0]:
        lines.append(notification.title)
    for key in ("summary", "description"):
        text = notification.common_annotations.get(key, "")
        if text:
            lines.append(text)
    return "\n".join(lines)


def render_default(notification: AlertNotification, zone: tzinfo) -> list[str]:
    """The notification as texts for one push: a header, firing alerts before resolved ones, and, when not
    all fit, a last line "… and N more" with the sender's URL."""
    ordered = sorted(notification.alerts, key=lambda a: a.status != "firing")
    blocks = [_alert_block(alert, notification, zone) for alert in ordered]
    return fit_texts(_header(notification), blocks, notification.truncated_alerts, notification.external_url)


def _cut(text: str, limit: int) -> str:
    """``text`` shortened to ``limit`` UTF-16 code units, with an ellipsis when cut (never half a pair)."""
    if utf16_len(text) <= limit:
        return text
    out: list[str] = []
    used = 0
    for char in text:
        size = 2 if ord(char) > 0xFFFF else 1
        if used + size > limit - 1:
            break
        out.append(char)
        used += size
    return "".join(out) + _ELLIPSIS


def fit_texts(
    header: str,
    blocks: Sequence[str],
    left_out: int = 0,
    more_url: str = "",
    *,
    max_texts: int = MAX_TEXTS,
    max_text: int = MAX_TEXT,
) -> list[str]:
    """Pack ``header`` and ``blocks`` (separated by blank lines) into at most ``max_texts`` texts of at most
    ``max_text`` UTF-16 code units. Blocks that do not fit, and ``left_out`` more the sender did not send,
    are told in a last line "… and N more" followed by ``more_url``."""

    url = more_url if utf16_len(more_url) <= _MAX_MORE_URL else ""

    def more_line(count: int) -> str:
        line = f"{_ELLIPSIS} and {count} more"
        return f"{line}\n{url}" if url else line

    # Room kept in the last text for the "and N more" line (its count has at most 6 digits here).
    reserve = utf16_len(more_line(999_999)) + 2
    pieces = [_cut(header, max_text - reserve), *(_cut(b, max_text - reserve) for b in blocks)]
    texts: list[str] = []
    current = ""
    placed = 0
    for piece in pieces:
        candidate = f"{current}\n\n{piece}" if current else piece
        last = len(texts) == max_texts - 1
        if utf16_len(candidate) <= max_text - (reserve if last else 0):
            current = candidate
            placed += 1
            continue
        if last:
            break
        texts.append(current)
        current = piece
        placed += 1
    # The header is not an alert: what is left out is counted in blocks.
    missing = len(pieces) - placed + left_out
    if missing:
        current = f"{current}\n\n{more_line(missing)}"
    texts.append(current)
    return [text for text in texts if text]
