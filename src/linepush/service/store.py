"""The gateway's own tables: gateway tokens (kept as hashes), recipients learnt from webhooks, their names.

They live in the library's store (its migrations create them), but only the service reads and writes them,
through :class:`GatewayStore`; :func:`gateway_store` gives the one on a store's database.
"""

# S608: the SQL here is assembled only from this module's constants and the backend's dialect; every value is
# bound.
# ruff: noqa: S608

from __future__ import annotations

import abc
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from linepush.errors import ConfigurationError, ValidationError
from linepush.store import Store
from linepush.store.base import MAX_DIGEST_WINDOW
from linepush.store.checks import RecipientType, check_name, check_recipient_name, check_time, recipient_type
from linepush.store.sql import SQLStore

__all__ = [
    "MAX_EVENT_TYPE",
    "MAX_GATEWAY_TOKEN_NAME",
    "MAX_ROUTE_TABLE_NAME",
    "GatewayStore",
    "GatewayToken",
    "NotifyUsage",
    "NotifyUse",
    "RecipientSighting",
    "SQLGatewayStore",
    "WebhookRecipient",
    "check_gateway_token",
    "check_route_table_name",
    "check_sightings",
    "check_token_binding",
    "gateway_store",
    "is_token_hash",
]

#: Longest gateway token name and webhook event type a store keeps.
MAX_GATEWAY_TOKEN_NAME: Final = 100
MAX_EVENT_TYPE: Final = 64
#: Longest name of a route table ([alerts.route_tables.NAME]) that a token may be bound to.
MAX_ROUTE_TABLE_NAME: Final = 64
_TOKEN_HASH = re.compile(r"[0-9a-f]{64}")
_ROUTE_TABLE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True, slots=True)
class GatewayToken:
    """A token of the LINE Notify–compatible gateway of one channel, bound either to one recipient
    (``recipient_id``) or to a route table of the configuration (``route_table``, ``[alerts.route_tables]``),
    never to both.

    Only ``token_hash`` is kept: the SHA-256 of the token, as 64 lowercase hex digits. The token itself is
    shown once, when created, and stored nowhere. ``revoked_at`` is None while the token works.
    """

    id: int
    channel_id: str
    token_hash: str
    recipient_id: str | None
    name: str | None
    created_at: float
    revoked_at: float | None
    route_table: str | None = None
    #: Seconds within which its notifications merge into one push (a digest); None: each is its own push.
    digest: float | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


@dataclass(frozen=True, slots=True)
class RecipientSighting:
    """A user (``U…``), group (``C…``) or room (``R…``) id seen in a webhook event of type ``event_type``."""

    recipient_id: str
    event_type: str


@dataclass(frozen=True, slots=True)
class WebhookRecipient:
    """A recipient id the webhook has seen: when first and last, in how many sightings, and the type of the
    last event it was seen in (``unfollow`` or ``leave`` there means messages will no longer reach it)."""

    channel_id: str
    recipient_id: str
    type: RecipientType
    first_seen_at: float
    last_seen_at: float
    last_event_type: str
    sightings: int


NotifyUse = Literal["calls", "images"]
_NOTIFY_COLUMNS: Final[dict[str, str]] = {"calls": "calls", "images": "images"}


@dataclass(frozen=True, slots=True)
class NotifyUsage:
    """What a gateway token used of the Notify API's limits in one window."""

    calls: int
    images: int


class GatewayStore(abc.ABC):
    """What the gateway keeps beside the outbox. Safe to call from many threads and processes; every method
    that depends on the time takes ``now`` (UNIX seconds) from the caller."""

    # -- gateway tokens --------------------------------------------------------------------------------------

    @abc.abstractmethod
    def create_gateway_token(
        self,
        channel_id: str,
        token_hash: str,
        recipient_id: str | None,
        name: str | None,
        now: float,
        *,
        route_table: str | None = None,
    ) -> GatewayToken:
        """Keep a new gateway token (created at ``now``, not revoked), bound to ``recipient_id`` or, when that
        is None, to the route table ``route_table``.

        Raises :class:`ValidationError` and stores nothing when ``token_hash`` is not 64 lowercase hex digits
        or is already stored, ``recipient_id`` is not a user, group or room id (``[UCR]`` + 32 lowercase hex
        digits), not exactly one of ``recipient_id`` and ``route_table`` is given, ``route_table`` is not 1 to
        :data:`MAX_ROUTE_TABLE_NAME` letters, digits, ``-``, ``_`` or ``.``, or ``name`` is neither None nor a
        string of 1 to :data:`MAX_GATEWAY_TOKEN_NAME` characters. Whether the configuration has the route
        table is not the store's to know.
        """

    @abc.abstractmethod
    def find_gateway_token(self, token_hash: str) -> GatewayToken | None:
        """The gateway token with this hash, revoked or not; None when there is none (or the hash is not
        64 lowercase hex digits)."""

    @abc.abstractmethod
    def list_gateway_tokens(
        self, channel_id: str | None = None, *, include_revoked: bool = True
    ) -> list[GatewayToken]:
        """Gateway tokens (of one channel, or of all), oldest first (``created_at``, then ``id``)."""

    @abc.abstractmethod
    def revoke_gateway_token(self, token_id: int, now: float) -> bool:
        """Revoke a gateway token: ``revoked_at`` becomes ``now``. True when it was working until now, False
        when it was already revoked (its ``revoked_at`` is kept). Raises LookupError for an unknown id."""

    # -- digests of gateway tokens ---------------------------------------------------------------------------

    @abc.abstractmethod
    def set_gateway_token_digest(self, token_id: int, window: float | None) -> None:
        """Merge the token's notifications that come within ``window`` seconds into one push (None: each is
        its own push again). Raises :class:`ValidationError` for a window that is not more than 0 seconds and
        at most a day, LookupError for an unknown token."""

    @abc.abstractmethod
    def gateway_token_digests(self, channel_id: str | None = None) -> dict[int, float]:
        """The digest windows of the gateway tokens that have one (of one channel, or of all): id →
        seconds."""

    def gateway_token_digest(self, token_id: int) -> float | None:
        """The token's digest window in seconds, or None when its notifications are pushed one by one."""
        return self.gateway_token_digests().get(token_id)

    # -- the Notify API's rate limits ------------------------------------------------------------------------

    @abc.abstractmethod
    def take_notify(
        self, token_id: int, window_start: float, what: NotifyUse, limit: int
    ) -> NotifyUsage | None:
        """Count one call (``what="calls"``) or image upload (``"images"``) of gateway token ``token_id`` in
        the window that starts at ``window_start``, in one statement, unless ``limit`` were counted already.
        Returns the window's counts with it, or None when the limit is reached (nothing counted). A window
        other than the stored one starts from nothing. Every process on the store shares the counts."""

    @abc.abstractmethod
    def notify_usage(self, token_id: int, window_start: float) -> NotifyUsage:
        """The counts of gateway token ``token_id`` in the window that starts at ``window_start``."""

    @abc.abstractmethod
    def give_back_notify(self, token_id: int, window_start: float, what: NotifyUse) -> None:
        """Take back one count of ``what`` (an upload that could not be kept), if that window still runs."""

    # -- recipients learnt from webhooks ---------------------------------------------------------------------

    @abc.abstractmethod
    def record_recipients(self, channel_id: str, sightings: Sequence[RecipientSighting], now: float) -> None:
        """Record ids seen by the webhook at ``now``, in one transaction.

        A new id gets ``first_seen_at = last_seen_at = now`` and ``sightings = 1``; a known one gets
        ``last_seen_at = max(last_seen_at, now)``, ``last_event_type`` of this sighting and ``sightings + 1``
        (an id repeated in ``sightings`` counts each time; the last one sets the event type). ``type`` follows
        the id's first letter (U user, C group, R room). Raises :class:`ValidationError` and records nothing
        when a sighting's id is malformed or its event type is not a string of 1 to :data:`MAX_EVENT_TYPE`
        characters.
        """

    @abc.abstractmethod
    def list_recipients(self, channel_id: str | None = None) -> list[WebhookRecipient]:
        """Recipients seen (of one channel, or of all), most recently seen first (``last_seen_at``
        descending, then ``channel_id`` and ``recipient_id``)."""

    # -- recipient names -------------------------------------------------------------------------------------

    @abc.abstractmethod
    def name_recipient(self, channel_id: str, name: str, recipient_id: str, now: float) -> None:
        """Give ``recipient_id`` the name ``name`` in ``channel_id`` (a name already given now names this id).

        Raises :class:`ValidationError` and stores nothing when the name is not 1 to
        :data:`~linepush.store.base.MAX_RECIPIENT_NAME` letters, digits, ``-``, ``_`` or ``.`` (or looks like
        an id), or the id is not a user, group or room id.
        """

    @abc.abstractmethod
    def unname_recipient(self, channel_id: str, name: str) -> bool:
        """Forget a name; False when there was no such name."""

    @abc.abstractmethod
    def recipient_names(self, channel_id: str) -> dict[str, str]:
        """The names of ``channel_id``'s recipients: name → id, in the names' byte order."""


def gateway_store(store: Store | GatewayStore) -> GatewayStore:
    """The gateway's tables in the database of ``store`` (a :class:`GatewayStore` is returned as it is)."""
    if isinstance(store, GatewayStore):
        return store
    if isinstance(store, SQLStore):
        return SQLGatewayStore(store)
    raise ConfigurationError(f"the gateway cannot keep its tables in {type(store).__name__}")


_GATEWAY_TOKEN_COLUMNS: Final = (
    "id, channel_id, token_hash, recipient_id, name, created_at, revoked_at, route_table"
)
# A token as it is read: with its digest window, so a request needs one look-up for both.
_GATEWAY_TOKEN_READ: Final = (
    "SELECT t.id, t.channel_id, t.token_hash, t.recipient_id, t.name, t.created_at, t.revoked_at,"
    " t.route_table, d.window_seconds FROM gateway_tokens AS t"
    " LEFT JOIN gateway_token_digests AS d ON d.token_id = t.id"
)
_RECIPIENT_COLUMNS: Final = (
    "channel_id, recipient_id, type, first_seen_at, last_seen_at, last_event_type, sightings"
)


class SQLGatewayStore(GatewayStore):
    """The gateway's tables on a SQL store's database (SQLite or PostgreSQL), through its statements."""

    def __init__(self, store: SQLStore) -> None:
        self._store = store

    def __repr__(self) -> str:
        return f"SQLGatewayStore({self._store!r})"

    def create_gateway_token(
        self,
        channel_id: str,
        token_hash: str,
        recipient_id: str | None,
        name: str | None,
        now: float,
        *,
        route_table: str | None = None,
    ) -> GatewayToken:
        check_name(channel_id, "channel_id")
        check_gateway_token(token_hash, recipient_id, name, route_table)
        moment = check_time(now, "now")
        rows = self._store.change_returning(
            "INSERT INTO gateway_tokens (channel_id, token_hash, recipient_id, name, created_at, route_table)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (token_hash) DO NOTHING"
            f" RETURNING {_GATEWAY_TOKEN_COLUMNS}",
            (channel_id, token_hash, recipient_id or "", name, moment, route_table),
        )
        if not rows:
            raise ValidationError("this token hash is already stored", property="token_hash")
        return _gateway_token(rows[0])

    def find_gateway_token(self, token_hash: str) -> GatewayToken | None:
        if not is_token_hash(token_hash):
            return None
        rows = self._store.select(f"{_GATEWAY_TOKEN_READ} WHERE t.token_hash = ?", (token_hash,))
        return _gateway_token(rows[0]) if rows else None

    def list_gateway_tokens(
        self, channel_id: str | None = None, *, include_revoked: bool = True
    ) -> list[GatewayToken]:
        sql = f"{_GATEWAY_TOKEN_READ} WHERE 1 = 1"
        params: list[Any] = []
        if channel_id is not None:
            sql += " AND t.channel_id = ?"
            params.append(channel_id)
        if not include_revoked:
            sql += " AND t.revoked_at IS NULL"
        return [
            _gateway_token(row) for row in self._store.select(sql + " ORDER BY t.created_at, t.id", params)
        ]

    def revoke_gateway_token(self, token_id: int, now: float) -> bool:
        moment = check_time(now, "now")
        token = self._store.row_id(token_id)
        if self._store.change(
            "UPDATE gateway_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (moment, token)
        ):
            return True
        # Gateway tokens are never deleted, so one not changed above either is revoked or never was.
        if not self._store.select("SELECT 1 FROM gateway_tokens WHERE id = ?", (token,)):
            raise LookupError(f"no gateway token has id {token_id!r}")
        return False

    def set_gateway_token_digest(self, token_id: int, window: float | None) -> None:
        token = self._store.row_id(token_id)
        if window is not None:
            window = _check_window(window)
        if not self._store.select("SELECT 1 FROM gateway_tokens WHERE id = ?", (token,)):
            raise LookupError(f"no gateway token has id {token_id!r}")
        if window is None:
            self._store.change("DELETE FROM gateway_token_digests WHERE token_id = ?", (token,))
            return
        self._store.change(
            "INSERT INTO gateway_token_digests (token_id, window_seconds) VALUES (?, ?)"
            " ON CONFLICT (token_id) DO UPDATE SET window_seconds = excluded.window_seconds",
            (token, window),
        )

    def gateway_token_digests(self, channel_id: str | None = None) -> dict[int, float]:
        sql = "SELECT d.token_id, d.window_seconds FROM gateway_token_digests AS d"
        params: tuple[Any, ...] = ()
        if channel_id is not None:
            sql += " JOIN gateway_tokens AS t ON t.id = d.token_id WHERE t.channel_id = ?"
            params = (channel_id,)
        return {int(token): float(window) for token, window in self._store.select(sql, params)}

    def gateway_token_digest(self, token_id: int) -> float | None:
        rows = self._store.select(
            "SELECT window_seconds FROM gateway_token_digests WHERE token_id = ?",
            (self._store.row_id(token_id),),
        )
        return float(rows[0][0]) if rows else None

    def take_notify(
        self, token_id: int, window_start: float, what: NotifyUse, limit: int
    ) -> NotifyUsage | None:
        window = check_time(window_start, "window_start")
        column = _NOTIFY_COLUMNS[what]
        other = "images" if column == "calls" else "calls"
        if limit < 1:
            return None
        # One statement: a new token or window starts at 1, a running window counts on below the limit.
        rows = self._store.change_returning(
            f"INSERT INTO notify_usage AS u (token_id, window_start, {column}, {other}) VALUES (?, ?, 1, 0)"
            " ON CONFLICT (token_id) DO UPDATE SET"
            f" {column} = CASE WHEN u.window_start = excluded.window_start THEN u.{column} + 1 ELSE 1 END,"
            f" {other} = CASE WHEN u.window_start = excluded.window_start THEN u.{other} ELSE 0 END,"
            " window_start = excluded.window_start"
            f" WHERE u.window_start <> excluded.window_start OR u.{column} < ?"
            " RETURNING calls, images",
            (self._store.row_id(token_id), window, limit),
        )
        return NotifyUsage(int(rows[0][0]), int(rows[0][1])) if rows else None

    def notify_usage(self, token_id: int, window_start: float) -> NotifyUsage:
        rows = self._store.select(
            "SELECT calls, images FROM notify_usage WHERE token_id = ? AND window_start = ?",
            (self._store.row_id(token_id), check_time(window_start, "window_start")),
        )
        return NotifyUsage(int(rows[0][0]), int(rows[0][1])) if rows else NotifyUsage(0, 0)

    def give_back_notify(self, token_id: int, window_start: float, what: NotifyUse) -> None:
        column = _NOTIFY_COLUMNS[what]
        self._store.change(
            f"UPDATE notify_usage SET {column} = {column} - 1"
            f" WHERE token_id = ? AND window_start = ? AND {column} > 0",
            (self._store.row_id(token_id), check_time(window_start, "window_start")),
        )

    def record_recipients(self, channel_id: str, sightings: Sequence[RecipientSighting], now: float) -> None:
        check_name(channel_id, "channel_id")
        checked = check_sightings(sightings)
        moment = check_time(now, "now")
        if not checked:
            return
        # One row per id (an upsert may not touch a row twice): how often it was seen, and its last event.
        seen: dict[str, tuple[RecipientType, str, int]] = {}
        for recipient_id, kind, event in checked:
            seen[recipient_id] = (kind, event, seen.get(recipient_id, (kind, event, 0))[2] + 1)
        # In a fixed order, so two webhooks recording the same ids at once cannot deadlock.
        self._store.change_many(
            "INSERT INTO webhook_recipients AS w (channel_id, recipient_id, type, first_seen_at,"
            " last_seen_at, last_event_type, sightings) VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (channel_id, recipient_id) DO UPDATE SET"
            f" last_seen_at = {self._store.greatest_sql}(w.last_seen_at, excluded.last_seen_at),"
            " last_event_type = excluded.last_event_type, sightings = w.sightings + excluded.sightings",
            [
                (channel_id, recipient_id, kind, moment, moment, event, count)
                for recipient_id, (kind, event, count) in sorted(seen.items())
            ],
        )

    def list_recipients(self, channel_id: str | None = None) -> list[WebhookRecipient]:
        where = "" if channel_id is None else " WHERE channel_id = ?"
        in_byte_order = self._store.byte_order_sql
        rows = self._store.select(
            f"SELECT {_RECIPIENT_COLUMNS} FROM webhook_recipients{where} ORDER BY last_seen_at DESC,"
            f" channel_id{in_byte_order}, recipient_id{in_byte_order}",
            () if channel_id is None else (channel_id,),
        )
        return [_recipient(row) for row in rows]

    def name_recipient(self, channel_id: str, name: str, recipient_id: str, now: float) -> None:
        check_name(channel_id, "channel_id")
        check_recipient_name(name)
        recipient_type(recipient_id)
        moment = check_time(now, "now")
        self._store.change(
            "INSERT INTO recipient_names (channel_id, name, recipient_id, named_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (channel_id, name) DO UPDATE SET recipient_id = excluded.recipient_id,"
            " named_at = excluded.named_at",
            (channel_id, name, recipient_id, moment),
        )

    def unname_recipient(self, channel_id: str, name: str) -> bool:
        deleted = self._store.change(
            "DELETE FROM recipient_names WHERE channel_id = ? AND name = ?", (channel_id, name)
        )
        return deleted == 1

    def recipient_names(self, channel_id: str) -> dict[str, str]:
        rows = self._store.select(
            "SELECT name, recipient_id FROM recipient_names WHERE channel_id = ?"
            f" ORDER BY name{self._store.byte_order_sql}",
            (channel_id,),
        )
        return {str(name): str(recipient_id) for name, recipient_id in rows}


# -- checks and records --------------------------------------------------------------------------------------


def is_token_hash(value: object) -> bool:
    return isinstance(value, str) and _TOKEN_HASH.fullmatch(value) is not None


def check_route_table_name(name: object) -> str:
    if not isinstance(name, str) or _ROUTE_TABLE_NAME.fullmatch(name) is None:
        raise ValidationError(
            f"must be 1 to {MAX_ROUTE_TABLE_NAME} letters, digits, '-', '_' or '.', starting with a letter "
            "or digit",
            property="route_table",
        )
    return name


def check_token_binding(recipient_id: object, route_table: object) -> None:
    """A token is bound to one recipient (a well-formed id) or to one route table (a well-formed name)."""
    if (recipient_id is None) == (route_table is None):
        raise ValidationError(
            "a gateway token is bound to one recipient or to one route table: give exactly one",
            property="recipient_id",
        )
    if route_table is not None:
        check_route_table_name(route_table)
    else:
        recipient_type(recipient_id)  # type: ignore[arg-type]


def check_gateway_token(
    token_hash: object, recipient_id: object, name: object, route_table: object = None
) -> None:
    if not is_token_hash(token_hash):
        raise ValidationError("must be a SHA-256 as 64 lowercase hex digits", property="token_hash")
    check_token_binding(recipient_id, route_table)
    if name is not None and (
        not isinstance(name, str) or not 1 <= len(name) <= MAX_GATEWAY_TOKEN_NAME or not name.isprintable()
    ):
        raise ValidationError(
            f"must be None or a string of 1 to {MAX_GATEWAY_TOKEN_NAME} printable characters", property="name"
        )


def check_sightings(sightings: Sequence[object]) -> list[tuple[str, RecipientType, str]]:
    """Each sighting as (recipient_id, type, event_type), or ValidationError naming the first bad one."""
    checked: list[tuple[str, RecipientType, str]] = []
    for index, sighting in enumerate(sightings):
        where = f"sightings[{index}]"
        if not isinstance(sighting, RecipientSighting):
            raise ValidationError("must be a RecipientSighting", property=where)
        try:
            kind = recipient_type(sighting.recipient_id)
        except ValidationError as exc:
            raise ValidationError(exc.reason, property=f"{where}.recipient_id") from None
        event = sighting.event_type
        if not isinstance(event, str) or not 1 <= len(event) <= MAX_EVENT_TYPE:
            raise ValidationError(
                f"must be a string of 1 to {MAX_EVENT_TYPE} characters", property=f"{where}.event_type"
            )
        checked.append((sighting.recipient_id, kind, event))
    return checked


def _check_window(window: object) -> float:
    if isinstance(window, bool) or not isinstance(window, int | float):
        raise ValidationError("must be a number of seconds", property="window")
    if not 0 < window <= MAX_DIGEST_WINDOW:
        raise ValidationError(
            f"must be more than 0 and at most {MAX_DIGEST_WINDOW:g} seconds (a day)", property="window"
        )
    return float(window)


def _gateway_token(row: tuple[Any, ...]) -> GatewayToken:
    return GatewayToken(
        id=row[0],
        channel_id=row[1],
        token_hash=row[2],
        recipient_id=row[3] or None,  # '' for a token bound to a route table
        name=row[4],
        created_at=float(row[5]),
        revoked_at=None if row[6] is None else float(row[6]),
        route_table=row[7],
        digest=float(row[8]) if len(row) > 8 and row[8] is not None else None,
    )


def _recipient(row: tuple[Any, ...]) -> WebhookRecipient:
    return WebhookRecipient(
        channel_id=row[0],
        recipient_id=row[1],
        type=row[2],
        first_seen_at=float(row[3]),
        last_seen_at=float(row[4]),
        last_event_type=row[5],
        sightings=row[6],
    )
