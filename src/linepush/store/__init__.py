"""Storage backends behind one interface, and :func:`open_store`, which picks one from a URL.

Accepted URLs: ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` (everything after
``sqlite:///`` is the file path), a bare file path, or ``postgresql://user:password@host:port/dbname`` (also
``postgres://``; libpq's query parameters apply, plus ``schema=name`` for the tables' schema), which needs the
``postgres`` extra (psycopg 3).
"""

from __future__ import annotations

import os

from linepush.errors import ConfigurationError
from linepush.store.base import (
    MESSAGE_KINDS,
    MESSAGE_STATES,
    REVOCABLE_KINDS,
    TOKEN_KINDS,
    TOKEN_STATES,
    MessageKind,
    MessageState,
    NewMessage,
    OutboxMessage,
    Store,
    StoreCorruptError,
    StoreError,
    StoreFullError,
    StoreSettingsError,
    TokenKind,
    TokenRecord,
    TokenState,
)
from linepush.store.shared_ratelimit import SharedRateLimiter
from linepush.store.sqlite import SQLiteStore, _exposed_files

__all__ = [
    "MESSAGE_KINDS",
    "MESSAGE_STATES",
    "REVOCABLE_KINDS",
    "STORE_ENV",
    "TOKEN_KINDS",
    "TOKEN_STATES",
    "MessageKind",
    "MessageState",
    "NewMessage",
    "OutboxMessage",
    "SQLiteStore",
    "SharedRateLimiter",
    "Store",
    "StoreCorruptError",
    "StoreError",
    "StoreFullError",
    "StoreSettingsError",
    "TokenKind",
    "TokenRecord",
    "TokenState",
    "default_store_url",
    "exposed_store_files",
    "open_store",
    "sqlite_store_file",
]

#: The environment variable that names the store when no URL is given.
STORE_ENV = "LINEPUSH_STORE"

_SQLITE_PREFIX = "sqlite:///"
_ACCEPTED = (
    "use sqlite:///relative/path.db, sqlite:////absolute/path.db, a plain file path "
    "or postgresql://user@host:port/dbname"
)


def default_store_url() -> str:
    """``$LINEPUSH_STORE`` if set, else the SQLite file ``linepush.db`` in the user's state directory
    (``$XDG_STATE_HOME/linepush``, else ``~/.local/state/linepush``)."""
    configured = os.environ.get(STORE_ENV, "").strip()
    if configured:
        return configured
    # The XDG spec says a relative XDG_STATE_HOME is invalid and must be ignored.
    state_home = os.environ.get("XDG_STATE_HOME", "")
    if not os.path.isabs(state_home):
        state_home = os.path.join(os.path.expanduser("~"), ".local", "state")
    return _SQLITE_PREFIX + os.path.join(state_home, "linepush", "linepush.db")


def open_store(url: str | None = None) -> Store:
    """Open (creating if needed) the store named by ``url``, or by :func:`default_store_url` when None."""
    if url is None:
        url = default_store_url()
    if not isinstance(url, str) or not url.strip():
        raise ConfigurationError(f"the store URL is empty; {_ACCEPTED}")
    url = url.strip()
    scheme = url.split("://", 1)[0].lower() if "://" in url else None
    if scheme is None:
        return SQLiteStore(_sqlite_path(url, url))
    if scheme in ("postgresql", "postgres"):
        try:
            from linepush.store.postgres import PostgresStore
        except ImportError as exc:
            if exc.name is None or not exc.name.startswith("psycopg"):
                raise
            raise ConfigurationError(
                "a PostgreSQL store needs psycopg 3: pip install 'linepush[postgres]'"
            ) from None
        return PostgresStore(url)
    if scheme == "sqlite":
        if not url.lower().startswith(_SQLITE_PREFIX):
            raise ConfigurationError(f"cannot read the SQLite store URL {url!r}; {_ACCEPTED}")
        return SQLiteStore(_sqlite_path(url[len(_SQLITE_PREFIX) :], url))
    # Only the scheme is shown: the rest of a URL may hold a password.
    raise ConfigurationError(f"unknown store URL scheme {scheme!r}; {_ACCEPTED}")


def exposed_store_files(url: str | None = None) -> list[str]:
    """For a SQLite store, its files that others may read (tokens are in them), each with the ``chmod`` that
    mends it; nothing is opened or created. Empty for PostgreSQL, a file not made yet, or a URL that does not
    parse (opening the store says what is wrong with it)."""
    path = sqlite_store_file(url)
    return [] if path is None else _exposed_files(path)


def sqlite_store_file(url: str | None = None) -> str | None:
    """The absolute path of the SQLite file ``url`` names (by :func:`default_store_url` when None), or None
    for PostgreSQL and for a URL that does not parse (opening the store says what is wrong with it)."""
    if url is None:
        url = default_store_url()
    url = url.strip()
    scheme = url.split("://", 1)[0].lower() if "://" in url else None
    try:
        if scheme is None:
            path = _sqlite_path(url, url)
        elif scheme == "sqlite" and url.lower().startswith(_SQLITE_PREFIX):
            path = _sqlite_path(url[len(_SQLITE_PREFIX) :], url)
        else:
            return None
    except ConfigurationError:
        return None
    return os.path.abspath(path)


def _sqlite_path(path: str, url: str) -> str:
    if not path or path.endswith(("/", os.sep)):
        raise ConfigurationError(f"the store URL {url!r} names no file; {_ACCEPTED}")
    if path == ":memory:" or path.startswith("file:"):
        # Every thread and process must see the same database, which an in-memory one cannot offer.
        raise ConfigurationError(f"the store must be a file, not {path!r}; {_ACCEPTED}")
    return os.path.expanduser(path)
