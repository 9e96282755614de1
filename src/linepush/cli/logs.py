"""How a long-running command (serve, worker) logs: one format for every line of the process, text for a
person or JSON (``--log-format json``) for a machine, the gateway's access lines and the start line included.

A record may carry fields of its own as ``extra={"fields": {...}}`` (the access log's are ``http``): JSON
lines hold them as keys, text lines show them after the message.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from typing import Any, Final

__all__ = ["LOG_FORMATS", "LOG_LEVELS", "configure_logging", "log_fields"]

LOG_LEVELS: Final = ("critical", "error", "warning", "info", "debug")
LOG_FORMATS: Final = ("text", "json")
#: The access log's logger (linepush.service.app.ACCESS_LOG), named here so that the worker need not import
#: the web stack to set up its logging.
_ACCESS_LOG: Final = "linepush.service.access"
#: Control characters but the tab (C0, DEL, C1).
_CONTROL: Final = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def log_fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = getattr(record, "fields", None) or getattr(record, "http", None)
    return dict(fields) if isinstance(fields, dict) else {}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = log_fields(record)
        line: dict[str, Any] = {
            "time": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
        }
        if record.name == _ACCESS_LOG and fields:
            line.update(fields)  # an access line is its fields ("event": "request", method, path…)
        else:
            line["message"] = record.getMessage()
            line.update(fields)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        fields = log_fields(record)
        if record.name == _ACCESS_LOG and fields:
            shown = dict(fields)
            record.message = (
                f"{shown.pop('method', '')} {shown.pop('path', '')} {shown.pop('status', '')} "
                f"{shown.pop('duration_ms', '')} ms"
            )
            shown.pop("event", None)
            shown.pop("time", None)
        else:
            shown = fields
        text = super().formatMessage(record) + "".join(f" {key}={value}" for key, value in shown.items())
        # One record, one line: what a client sent (a path with %0A) or LINE answered cannot forge a line of
        # its own, nor an escape sequence act on the terminal that shows the log. A traceback follows as is.
        return _CONTROL.sub(lambda found: f"\\x{ord(found.group()):02x}", text)


def configure_logging(level: str, log_format: str = "text", access_log: bool = True) -> None:
    """Every logger of the process to stderr in ``log_format``, at ``level`` (one of :data:`LOG_LEVELS`)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    access = logging.getLogger(_ACCESS_LOG)
    access.setLevel(logging.INFO if access_log else logging.WARNING)
    access.propagate = True
    for old in list(access.handlers):
        access.removeHandler(old)
