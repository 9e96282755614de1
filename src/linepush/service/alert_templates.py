"""User templates of alert messages: Jinja2 in its sandboxed environment, named in linepush.toml.

A template that does not load is a configuration error, with its file, line and reason, so that
`linepush serve` stops at start-up. One that fails on a payload at run time is logged, and the caller falls
back to the default rendering: an alert is never lost to a template. What a template renders is split on
blank lines and packed within LINE's limits as the default texts are.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any, Final

from jinja2 import StrictUndefined, TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from linepush.errors import ConfigurationError
from linepush.service.alert_format import fit_texts
from linepush.service.alert_payloads import AlertNotification, parse_time

__all__ = ["AlertTemplates", "alert_context"]

log = logging.getLogger("linepush.service.alerts")

#: A template's output beyond this many characters is not read: five texts hold 25,000 at most.
_MAX_OUTPUT: Final = 100_000
_MAX_TEMPLATE_BYTES: Final = 256 * 1024


def _environment(zone: tzinfo) -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False, trim_blocks=True
    )

    def localtime(value: object, fmt: str = "%Y-%m-%d %H:%M %Z") -> str:
        """An RFC 3339 time (as in payloads) or UNIX seconds, in the configured time zone."""
        moment = parse_time(value) if isinstance(value, str) else value
        if not isinstance(moment, int | float) or isinstance(moment, bool):
            return ""
        return datetime.fromtimestamp(moment, zone).strftime(fmt)

    env.filters["localtime"] = localtime
    return env


class AlertTemplates:
    """The configured templates by name, compiled once."""

    def __init__(self, sources: Mapping[str, tuple[str, str]], zone: tzinfo) -> None:
        """``sources``: name → (where it comes from, for errors; its text). Raises ConfigurationError for a
        template that does not compile, naming the place, the line and the reason."""
        self.zone = zone
        env = _environment(zone)
        self._templates = {}
        for name, (where, text) in sources.items():
            try:
                self._templates[name] = env.from_string(text)
            except TemplateSyntaxError as exc:
                raise ConfigurationError(
                    f"template {name!r} ({where}, line {exc.lineno}): {exc.message}"
                ) from None

    @classmethod
    def from_files(cls, files: Mapping[str, Path], zone: tzinfo) -> AlertTemplates:
        sources = {}
        for name, path in files.items():
            try:
                data = path.read_bytes()[: _MAX_TEMPLATE_BYTES + 1]
            except OSError as exc:
                raise ConfigurationError(
                    f"template {name!r} ({path}): cannot be read: {exc.strerror}"
                ) from None
            if len(data) > _MAX_TEMPLATE_BYTES:
                raise ConfigurationError(
                    f"template {name!r} ({path}): larger than {_MAX_TEMPLATE_BYTES} bytes"
                )
            try:
                sources[name] = (str(path), data.decode("utf-8-sig"))  # past a byte-order mark
            except UnicodeDecodeError:
                raise ConfigurationError(f"template {name!r} ({path}): is not UTF-8 text") from None
        return cls(sources, zone)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._templates)

    def render(self, name: str, context: Mapping[str, Any]) -> list[str] | None:
        """The texts of template ``name`` for ``context``; None (and a log line) when it fails or renders
        nothing, for the caller to fall back to the default."""
        template = self._templates[name]
        try:
            out: list[str] = []
            size = 0
            for chunk in template.generate(**context):
                out.append(chunk)
                size += len(chunk)
                if size > _MAX_OUTPUT:
                    break
            text = "".join(out)[:_MAX_OUTPUT].strip()
        except RecursionError:
            log.warning("template %r recursed too deep; the default rendering is used", name)
            return None
        except Exception as exc:  # whatever a template does wrong, the alert is still sent
            # Only the kind and message: a payload's values may be in the message, but never a secret.
            log.warning(
                "template %r failed (%s: %s); the default rendering is used", name, type(exc).__name__, exc
            )
            return None
        if not text:
            log.warning("template %r rendered nothing; the default rendering is used", name)
            return None
        head, *rest = [block.strip() for block in text.split("\n\n") if block.strip()]
        return fit_texts(head, rest)


def alert_context(notification: AlertNotification) -> dict[str, Any]:
    """What an alert template sees: the payload's own fields as the sender named them (``status``,
    ``alerts``, ``commonLabels``, ``externalURL``, …), plus ``source`` (alertmanager or grafana) and
    ``firing`` / ``resolved`` (the alerts of each status). ``alerts`` are those of the route rendered."""
    alerts = [dict(a.raw) for a in notification.alerts]
    return {
        **notification.raw,
        "alerts": alerts,
        "source": notification.source,
        "firing": [a for a in alerts if a.get("status") == "firing"],
        "resolved": [a for a in alerts if a.get("status") == "resolved"],
    }
