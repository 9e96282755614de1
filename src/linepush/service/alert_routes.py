"""Routes of alerts to recipients by their labels: the first route whose labels all match an alert takes
it; an alert no route takes goes to the default. For a gateway token bound to one recipient the routes are
``[[alerts.routes]]`` and the default is that recipient; a token bound to a route table
(``[alerts.route_tables.NAME]``) has that table's routes and default. No I/O here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from linepush.digest import parse_window
from linepush.errors import ConfigurationError, ValidationError
from linepush.service.alert_payloads import Alert
from linepush.service.store import check_route_table_name
from linepush.store.base import is_recipient_id

__all__ = ["AlertRoute", "RouteTable", "parse_route_tables", "parse_routes", "route_alerts"]


@dataclass(frozen=True, slots=True)
class AlertRoute:
    """Alerts whose labels include every pair of ``match`` go to ``to`` (ids), rendered with ``template``
    (a configured template's name; None: the default). With ``digest`` (seconds), the notifications that
    come to each of ``to`` within that window merge into one push."""

    match: Mapping[str, str]
    to: tuple[str, ...]
    template: str | None = None
    digest: float | None = None

    def takes(self, alert: Alert) -> bool:
        return all(alert.labels.get(key) == value for key, value in self.match.items())


@dataclass(frozen=True, slots=True)
class RouteTable:
    """A named route table: ``routes`` tried in order (the first whose labels match takes an alert), and
    ``default`` for alerts none takes."""

    name: str
    routes: tuple[AlertRoute, ...]
    default: AlertRoute

    @property
    def templates(self) -> tuple[str | None, ...]:
        return (*(r.template for r in self.routes), self.default.template)


def _ids(value: object, names: Mapping[str, str], where: str) -> tuple[str, ...]:
    given = [value] if isinstance(value, str) else value
    if not isinstance(given, list) or not given or not all(isinstance(v, str) for v in given):
        raise ConfigurationError(f"{where}: 'to' must be a recipient (a name or an id) or a list of them")
    ids = []
    for item in given:
        found = names.get(item, item)
        if not is_recipient_id(found):
            known = ", ".join(sorted(names)) or "none"
            raise ConfigurationError(
                f"{where}: {item!r} is neither a recipient id (U…, C…, R…) nor a name (names: {known})"
            )
        ids.append(found)
    return tuple(dict.fromkeys(ids))


def _template(template: object, templates: Sequence[str], where: str) -> str | None:
    if template is None:
        return None
    if not isinstance(template, str) or template not in templates:
        known = ", ".join(templates) or "none"
        raise ConfigurationError(f"{where}: no template named {template!r} (templates: {known})")
    return template


def _digest(window: object, where: str) -> float | None:
    if window is None:
        return None
    try:
        return parse_window(window, f"{where} digest")
    except ValidationError as exc:
        raise ConfigurationError(str(exc)) from None


def parse_routes(
    table: object, names: Mapping[str, str], templates: Sequence[str], where: str = "[alerts]"
) -> tuple[AlertRoute, ...]:
    """``[[alerts.routes]]`` of linepush.toml: each with ``match`` (a table of label = value; none: every
    alert), ``to``, an optional ``template`` and an optional ``digest`` window ("30s", or seconds). Names in
    ``to`` become ids through ``names``."""
    if table is None:
        return ()
    if not isinstance(table, list) or not all(isinstance(r, dict) for r in table):
        raise ConfigurationError(f"{where} routes must be an array of tables ([[alerts.routes]])")
    routes = []
    for index, entry in enumerate(table):
        here = f"{where} routes[{index}]"
        unknown = set(entry) - {"match", "to", "template", "digest"}
        if unknown:
            raise ConfigurationError(
                f"{here}: unknown keys {sorted(unknown)}; known: match, to, template, digest"
            )
        match: Any = entry.get("match", {})
        if not isinstance(match, dict) or not all(isinstance(v, str) for v in match.values()):
            raise ConfigurationError(f"{here}: 'match' must be a table of label = \"value\"")
        template = _template(entry.get("template"), templates, here)
        digest = _digest(entry.get("digest"), here)
        routes.append(AlertRoute(dict(match), _ids(entry.get("to"), names, here), template, digest))
    return tuple(routes)


def parse_route_tables(
    table: object, names: Mapping[str, str], templates: Sequence[str], where: str = "[alerts]"
) -> dict[str, RouteTable]:
    """``[alerts.route_tables.NAME]`` of linepush.toml: each with ``routes`` (as ``[[alerts.routes]]``) and
    ``default``: the recipients of alerts no route takes (a name or an id, or a list of them), or a table
    ``{to = …, template = …}``. A table without a default would lose alerts, so it is refused."""
    if table is None:
        return {}
    if not isinstance(table, dict) or not all(isinstance(v, dict) for v in table.values()):
        raise ConfigurationError(
            f"{where} route_tables must be tables: [alerts.route_tables.NAME] with routes = […] and "
            "default = …"
        )
    tables = {}
    for name, entry in table.items():
        here = f"{where} route_tables.{name}"
        try:
            check_route_table_name(name)
        except ValidationError as exc:
            raise ConfigurationError(f"{here}: the name {exc.reason}") from None
        unknown = set(entry) - {"routes", "default"}
        if unknown:
            raise ConfigurationError(f"{here}: unknown keys {sorted(unknown)}; known: routes, default")
        if "default" not in entry:
            raise ConfigurationError(
                f"{here}: needs default = recipients (a name, an id or a list): where the alerts that no "
                "route takes go"
            )
        default: Any = entry["default"]
        if not isinstance(default, dict):
            default = {"to": default}
        if set(default) - {"to", "template", "digest"}:
            raise ConfigurationError(
                f"{here}: default must be recipients, or a table of to, template and digest"
            )
        template = _template(default.get("template"), templates, f"{here} default")
        digest = _digest(default.get("digest"), f"{here} default")
        fallback = AlertRoute({}, _ids(default.get("to"), names, f"{here} default"), template, digest)
        routes = parse_routes(entry.get("routes", []), names, templates, here)
        tables[name] = RouteTable(name, routes, fallback)
    return tables


def route_alerts(
    alerts: Sequence[Alert], routes: Sequence[AlertRoute], default: AlertRoute
) -> list[tuple[AlertRoute, list[Alert]]]:
    """The alerts by the route that takes them, in the routes' order (the default last)."""
    taken: dict[int, list[Alert]] = {}
    for alert in alerts:
        index = next((i for i, r in enumerate(routes) if r.takes(alert)), len(routes))
        taken.setdefault(index, []).append(alert)
    chosen = [*routes, default]
    return [(chosen[index], taken[index]) for index in sorted(taken)]
