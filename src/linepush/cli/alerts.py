"""The alert receivers' settings for `linepush serve`: flags over ``[alerts]`` in linepush.toml."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final

import typer

from linepush._secret import Secret
from linepush.cli import app
from linepush.cli._command import command
from linepush.cli.invocation import Invocation, fail
from linepush.errors import ConfigurationError
from linepush.service.store import gateway_store

if TYPE_CHECKING:
    from linepush.service.alert_templates import AlertTemplates
    from linepush.service.alerts import AlertReceivers, AlertsConfig, Hook

__all__ = ["GRAFANA_SECRET_ENV", "alerts_app", "alerts_config", "alerts_render", "alerts_test"]

#: Grafana's HMAC secret comes from the environment only: a flag would show it in `ps`.
GRAFANA_SECRET_ENV: Final = "LINEPUSH_GRAFANA_HMAC_SECRET"
_KEYS: Final = (
    "dedupe_window",
    "time_zone",
    "grafana_timestamp_header",
    "routes",
    "route_tables",
    "templates",
    "template",
    "hooks",
)


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
    from linepush.service.alert_routes import parse_route_tables, parse_routes
    from linepush.service.alerts import DEFAULT_DEDUPE_WINDOW, AlertsConfig

    settings = inv.settings
    table = dict(settings.alerts)
    where = f"{settings.config_file} [alerts]"
    unknown = set(table) - set(_KEYS)
    if unknown:
        raise ConfigurationError(f"{where}: unknown settings {sorted(unknown)}; known: {', '.join(_KEYS)}")
    names = dict(settings.recipients)
    wants_names = table.get("routes") or table.get("route_tables") or table.get("hooks")
    if wants_names and settings.channel.channel_id is not None:
        names = {**gateway_store(inv.store()).recipient_names(settings.channel.channel_id), **names}
    window = _setting(table, "dedupe_window", dedupe_window, (int, float), where)
    zone_name = _setting(table, "time_zone", time_zone, str, where) or "UTC"
    templates = _templates(table.get("templates"), zone_name, settings.config_file, where)
    known = templates.names if templates is not None else ()
    secret = os.environ.get(GRAFANA_SECRET_ENV, "")
    header = _setting(table, "grafana_timestamp_header", grafana_timestamp_header, str, where)
    return AlertsConfig(
        dedupe_window=DEFAULT_DEDUPE_WINDOW if window is None else float(window),
        time_zone=zone_name,
        grafana_secret=Secret(secret) if secret else None,
        grafana_timestamp_header=header or None,
        routes=parse_routes(table.get("routes"), names, known, where),
        route_tables=parse_route_tables(table.get("route_tables"), names, known, where),
        templates=templates,
        template=_setting(table, "template", None, str, where),
        hooks=_hooks(table.get("hooks"), names, known, where),
    )


def _templates(table: object, zone_name: str, config_file: Path | None, where: str) -> AlertTemplates | None:
    """``[alerts.templates]``: name = "file" (relative to linepush.toml), compiled now."""
    from linepush.service.alert_templates import AlertTemplates
    from linepush.service.alerts import AlertsConfig

    if table is None:
        return None
    if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
        raise ConfigurationError(f'{where} templates must be a table of name = "file"')
    base = config_file.parent if config_file is not None else Path()
    files = {name: base / Path(file).expanduser() for name, file in table.items()}
    return AlertTemplates.from_files(files, AlertsConfig(time_zone=zone_name).zone())


def _hooks(table: object, names: dict[str, str], templates: tuple[str, ...], where: str) -> dict[str, Hook]:
    """``[alerts.hooks.NAME]`` of ``POST /hooks/NAME``: its ``template`` and optionally ``to``."""
    from linepush.service.alert_routes import parse_routes
    from linepush.service.alerts import Hook

    if table is None:
        return {}
    if not isinstance(table, dict) or not all(isinstance(v, dict) for v in table.values()):
        raise ConfigurationError(f"{where} hooks must be tables: [alerts.hooks.NAME] with template = …")
    hooks = {}
    for name, entry in table.items():
        here = f"{where} hooks.{name}"
        template = entry.get("template")
        if not isinstance(template, str) or set(entry) - {"template", "to"}:
            raise ConfigurationError(f"{here}: needs template = NAME, and optionally to = recipients, only")
        to: tuple[str, ...] = ()
        if "to" in entry:
            [route] = parse_routes([{"to": entry["to"], "template": template}], names, templates, here)
            to = route.to
        hooks[name] = Hook(template, to)
    return hooks


# -- linepush alerts render | test ---------------------------------------------------------------------------

alerts_app = typer.Typer(
    name="alerts",
    help="Alert notifications (`linepush serve`'s /alertmanager, /grafana, /hooks): preview and test.",
    no_args_is_help=True,
)
app.add_typer(alerts_app)


def _receivers(inv: Invocation, template: str | None) -> AlertReceivers:
    from linepush.service.alerts import AlertReceivers

    config = alerts_config(inv, None, None, None)
    if template is not None:
        # Every route renders with the template asked for.
        routes = tuple(replace(route, template=None) for route in config.routes)
        tables = {
            name: replace(
                table,
                routes=tuple(replace(route, template=None) for route in table.routes),
                default=replace(table.default, template=None),
            )
            for name, table in config.route_tables.items()
        }
        config = replace(config, template=template, routes=routes, route_tables=tables)
    return AlertReceivers(inv.store(), inv.settings.channel.channel_id or "", config)


@command(alerts_app, "render")
def alerts_render(
    inv: Invocation,
    payload: Annotated[
        Path,
        typer.Option("--payload", metavar="FILE", help="An Alertmanager or Grafana webhook body (JSON)."),
    ],
    template: Annotated[
        str | None,
        typer.Option("--template", metavar="NAME", help="Render with this \\[alerts.templates] template."),
    ] = None,
    hook: Annotated[
        str | None,
        typer.Option("--hook", metavar="NAME", help="Render the file as the body of /hooks/NAME."),
    ] = None,
    to: Annotated[
        str | None,
        typer.Option("--to", metavar="ID", help="The gateway token's recipient (where unrouted alerts go)."),
    ] = None,
    routes: Annotated[
        str | None,
        typer.Option(
            "--routes",
            metavar="TABLE",
            help="Route as a token bound to \\[alerts.route_tables.TABLE] would (instead of --to).",
        ),
    ] = None,
) -> None:
    """Print what `linepush serve` would send for a payload: each recipient and its messages."""
    from linepush.service.alert_payloads import parse_alert_payload, parse_json, parse_json_body
    from linepush.service.notify_form import NotifyError

    try:
        body = payload.read_bytes()
    except OSError as exc:
        fail(f"--payload {payload}: cannot be read: {exc.strerror}")
    receivers = _receivers(inv, template)
    default_to = inv.resolve([to])[0] if to else "(the gateway token's recipient)"
    try:
        if hook is not None:
            if hook not in receivers.config.hooks:
                known = ", ".join(receivers.config.hooks) or "none"
                fail(f"--hook {hook!r}: no such hook in [alerts.hooks] (hooks: {known})")
            hooked = receivers.config.hooks[hook]
            planned = [(t, receivers.render_hook(hook, parse_json(body))) for t in hooked.to or (default_to,)]
        else:
            planned = receivers.plan(parse_alert_payload(parse_json_body(body)), default_to, routes)
    except NotifyError as exc:
        fail(f"--payload {payload}: {exc.message}")

    def render() -> None:
        for recipient, messages in planned:
            inv.out.print(f"→ {recipient}", markup=False)
            for message in messages:
                inv.out.print(message["text"], markup=False)
                inv.out.print("─" * 40, markup=False)

    inv.emit([{"to": recipient, "messages": messages} for recipient, messages in planned], render)


@command(alerts_app, "test")
def alerts_test(
    inv: Invocation,
    to: Annotated[str, typer.Option("--to", metavar="ID", help="The recipient (an id or a name).")],
    template: Annotated[
        str | None, typer.Option("--template", metavar="NAME", help="Render with this template.")
    ] = None,
) -> None:
    """Send a sample firing alert and its resolution to a recipient now, rendered as `serve` would."""
    from datetime import UTC, datetime, timedelta

    from linepush.service.alert_payloads import parse_alertmanager, sample_alertmanager_payload

    [recipient] = inv.resolve([to])
    receivers = _receivers(inv, template)
    now = datetime.now(UTC).replace(microsecond=0)
    started = (now - timedelta(minutes=5)).isoformat().replace("+00:00", "Z")
    firing = sample_alertmanager_payload("firing", started, "0001-01-01T00:00:00Z")
    resolved = sample_alertmanager_payload("resolved", started, now.isoformat().replace("+00:00", "Z"))
    client = inv.client()
    sent = []
    for sample in (firing, resolved):
        messages = receivers.render(parse_alertmanager(sample), template)
        result = client.push(recipient, messages)
        sent.append({"status": sample["status"], "to": recipient, "request_id": result.request_id})
    inv.emit(sent, lambda: inv.note(f"sent a firing and a resolved test alert to {recipient}"))
