"""The alert receivers' settings for `linepush serve`: flags over ``[alerts]`` in linepush.toml."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Final

from linepush._secret import Secret
from linepush.errors import ConfigurationError

if TYPE_CHECKING:
    from linepush.cli.invocation import Invocation
    from linepush.service.alerts import AlertsConfig

__all__ = ["GRAFANA_SECRET_ENV", "alerts_config"]

#: Grafana's HMAC secret comes from the environment only: a flag would show it in `ps`.
GRAFANA_SECRET_ENV: Final = "LINEPUSH_GRAFANA_HMAC_SECRET"
_KEYS: Final = ("dedupe_window", "time_zone", "grafana_timestamp_header", "routes")


def _setting(table: dict[str, Any], key: str, flag: Any, kind: type | tuple[type, ...], where: str) -> Any:
    if flag is not None:
        return flag
    value = table.get(key)
    if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
        raise ConfigurationError(f"{where}: {key!r} has the wrong type")
    return value


def alerts_config(
    inv: Invocation,
    dedupe_window: float | None,
    time_zone: str | None,
    grafana_timestamp_header: str | None,
) -> AlertsConfig:
    """The receivers' configuration: each flag given, else the file's ``[alerts]`` value, else the default.
    Route recipients may be names (``[recipients]`` of the file, then the store's)."""
    from linepush.service.alert_routes import parse_routes
    from linepush.service.alerts import DEFAULT_DEDUPE_WINDOW, AlertsConfig

    settings = inv.settings
    table = dict(settings.alerts)
    where = f"{settings.config_file} [alerts]"
    unknown = set(table) - set(_KEYS)
    if unknown:
        raise ConfigurationError(f"{where}: unknown settings {sorted(unknown)}; known: {', '.join(_KEYS)}")
    names = dict(settings.recipients)
    if table.get("routes") and settings.channel.channel_id is not None:
        names = {**inv.store().recipient_names(settings.channel.channel_id), **names}
    window = _setting(table, "dedupe_window", dedupe_window, (int, float), where)
    secret = os.environ.get(GRAFANA_SECRET_ENV, "")
    return AlertsConfig(
        dedupe_window=DEFAULT_DEDUPE_WINDOW if window is None else float(window),
        time_zone=_setting(table, "time_zone", time_zone, str, where) or "UTC",
        grafana_secret=Secret(secret) if secret else None,
        grafana_timestamp_header=_setting(
            table, "grafana_timestamp_header", grafana_timestamp_header, str, where
        )
        or None,
        routes=parse_routes(table.get("routes"), names, (), where),
    )
