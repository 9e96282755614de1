"""`linepush config show`: the resolved configuration, secrets masked, and where each value came from."""

from __future__ import annotations

from typing import Any

import typer
from rich.markup import escape

from linepush._secret import Secret, masked_url
from linepush.cli import app
from linepush.cli._command import command
from linepush.cli.invocation import Invocation
from linepush.config import (
    ENV_VARS,
    SETTING_NAMES,
    SETTINGS_ENV_VARS,
    Settings,
    exposed_key_file,
    masked_store_url,
)

config_app = typer.Typer(name="config", help="The configuration linepush resolved.", no_args_is_help=True)
app.add_typer(config_app)

_ENV_OF = {**ENV_VARS, **SETTINGS_ENV_VARS}


def _shown(value: Any) -> Any:
    if isinstance(value, Secret):
        return value.masked
    if isinstance(value, tuple):
        return list(value) if value else None
    return None if value is None else str(value)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return ", ".join(value) if isinstance(value, list) else str(value)


def _quota(inv: Invocation, threshold: float) -> tuple[dict[str, Any] | None, str | None]:
    """The month's quota of a channel that can get a token (one quick try: `config show` must not hang
    when LINE cannot be reached), and the warning when it is past the threshold."""
    from linepush.cli.cost import quota_warning, usage_record
    from linepush.errors import LinePushError
    from linepush.retry import RetryPolicy

    channel = inv.settings.channel
    if not channel.channel_id or not (
        channel.access_token or channel.channel_secret or channel.assertion_key_file
    ):
        return None, None
    if exposed_key_file(channel.assertion_key_file):
        return None, None  # the warnings say why this key is not used
    try:
        usage = inv.client(retry=RetryPolicy(max_attempts=1, deadline=5.0)).monthly_usage()
    except LinePushError as exc:
        return {"error": str(exc)}, None
    return usage_record(usage, threshold), quota_warning(channel.channel_id, usage, threshold)


def _row(settings: Settings, name: str) -> dict[str, Any]:
    value, source = settings.value(name), settings.sources.get(name)
    if name == "store":
        if value is None:
            from linepush.store import default_store_url

            value, source = default_store_url(), "default"
        value = masked_store_url(value)
    elif name == "api_base" and isinstance(value, str):
        value = masked_url(value)  # refused when it holds credentials, and shown without their password
    return {"setting": name, "value": _shown(value), "source": source, "env": _ENV_OF.get(name)}


@command(config_app, "show")
def show(inv: Invocation) -> None:
    """Print every setting (secrets and passwords masked) and where it came from: flag, env VAR, file PATH
    or the default."""
    from linepush.store import exposed_store_files

    settings = inv.settings
    # A malformed threshold is refused as the configuration error it is, with or without a channel to check.
    threshold = settings.quota_warning_share
    rows = [_row(settings, name) for name in SETTING_NAMES]
    warnings = [*settings.warnings, *exposed_store_files(settings.store)]
    quota, over = _quota(inv, threshold)
    if over is not None:
        warnings.append(over)
    data = {
        "config_file": str(settings.config_file) if settings.config_file else None,
        "searched": [str(p) for p in settings.searched],
        "profile": settings.profile,
        "profile_source": settings.profile_source,
        "profiles": list(settings.profiles),
        "settings": rows,
        "warnings": warnings,
        "quota": quota,
    }

    def render() -> None:
        if settings.config_file is not None:
            inv.out.print(f"configuration file: {settings.config_file}", markup=False)
        else:
            looked = ", ".join(str(p) for p in settings.searched)
            inv.out.print(f"configuration file: none (looked for {looked})", markup=False)
        if settings.profile:
            inv.out.print(f"channel profile: {settings.profile} ({settings.profile_source})", markup=False)
        if settings.profiles:
            inv.out.print(f"profiles in the file: {', '.join(settings.profiles)}", markup=False)
        inv.table(
            None,
            ["setting", "value", "from"],
            [[r["setting"], _cell(r["value"]), r["source"] or f"not set ({r['env']})"] for r in rows],
        )
        if quota is not None and "error" in quota:
            inv.note(f"the month's message quota could not be read: {escape(quota['error'])}")
        for warning in warnings:
            inv.note(f"[yellow]warning:[/] {escape(warning)}")

    inv.emit(data, render)
