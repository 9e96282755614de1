"""Routes of alerts to recipients by their labels: the first route whose labels all match an alert takes
it; an alert no route takes goes to the default (the gateway token's recipient). No I/O here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from linepush.digest import parse_window
from linepush.errors import ConfigurationError, ValidationError
from linepush.service.alert_payloads import Alert
from linepush.store.base import is_recipient_id

__all__ = ["AlertRoute", "parse_routes", "route_alerts"]


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
        template = entry.get("template")
        if template is not None and template not in templates:
            known = ", ".join(templates) or "none"
            raise ConfigurationError(f"{here}: no template named {template!r} (templates: {known})")
        digest = entry.get("digest")
        if digest is not None:
            try:
                digest = parse_window(digest, f"{here} digest")
            except ValidationError as exc:
                raise ConfigurationError(str(exc)) from None
        routes.append(AlertRoute(dict(match), _ids(entry.get("to"), names, here), template, digest))
    return tuple(routes)


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
