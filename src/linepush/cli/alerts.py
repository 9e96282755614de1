"""The alert receivers' settings for `linepush serve`."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Final

from linepush._secret import Secret

if TYPE_CHECKING:
    from linepush.service.alerts import AlertsConfig

__all__ = ["GRAFANA_SECRET_ENV", "alerts_config"]

#: Grafana's HMAC secret comes from the environment only: a flag would show it in `ps`.
GRAFANA_SECRET_ENV: Final = "LINEPUSH_GRAFANA_HMAC_SECRET"


def alerts_config(dedupe_window: float, time_zone: str, grafana_timestamp_header: str | None) -> AlertsConfig:
    from linepush.service.alerts import AlertsConfig

    secret = os.environ.get(GRAFANA_SECRET_ENV, "")
    return AlertsConfig(
        dedupe_window=dedupe_window,
        time_zone=time_zone,
        grafana_secret=Secret(secret) if secret else None,
        grafana_timestamp_header=grafana_timestamp_header or None,
    )
