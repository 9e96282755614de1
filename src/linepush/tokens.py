"""``TokenManager``: always a valid channel access token, shared by every task, thread, process and host.

A held token is FRESH (use it), STALE (inside the refresh window before expiry: still used, and one refresh
starts in the background) or INVALID (expired, refused by LINE, or none yet: callers wait for one refresh).
Refresh is single-flight at every level: one future per event loop, one thread lock per process, and a lease
lock in the store across processes and hosts. Tokens live in the store, so a token one process issued is
picked up by the others instead of issuing another; superseded tokens are revoked after a grace period so the
channel never fills up LINE's cap of 30 v2.1 tokens.

:class:`TokenEndpoints` builds the token endpoints' operations for a channel, with its credentials (the
secret, and client assertions signed with its key); the manager runs them through the client that wires it,
so it depends only on what lies below it (the store, :mod:`linepush.api.tokens`, :mod:`linepush.keys`).
"""

from __future__ import annotations

import enum
import inspect
import logging
import math
import os
import socket
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol, TypeVar

from linepush._secret import Secret, mask
from linepush.api import tokens as token_api
from linepush.api._base import Operation
from linepush.config import Channel
from linepush.errors import (
    ConfigurationError,
    LineApiError,
    StoreError,
    TokenLimitError,
    TokenUnavailableError,
    TransportError,
)
from linepush.store import Store, TokenRecord, open_store

if TYPE_CHECKING:
    import asyncio

    from linepush.api.tokens import IssuedToken
    from linepush.keys import AssertionSigner

__all__ = [
    "DEFAULT_LIFETIMES",
    "Freshness",
    "TokenClient",
    "TokenEndpoints",
    "TokenEvent",
    "TokenManager",
    "TokenUnavailableError",
    "add_token_listener",
]

T = TypeVar("T")

log = logging.getLogger("linepush.tokens")

KindChoice = Literal["auto", "v2.1", "v3", "v2", "static"]
ManagedKind = Literal["v2.1", "v3", "v2", "static"]

#: Token lifetimes in seconds. LINE fixes v3 (15 min) and v2 (30 days); v2.1 is ours to choose. A day is
#: the default because a v2.1 token whose store is lost cannot be revoked and holds one of the channel's 30
#: slots until it expires; raise it (up to 30 days) where the store is durable.
DEFAULT_LIFETIMES: dict[str, float] = {"v2.1": 86_400.0, "v3": 900.0, "v2": 2_592_000.0}
MAX_V21_LIFETIME = 2_592_000

#: After meeting the v2.1 cap, how long v3 tokens are used before v2.1 is tried again (seconds).
_V21_RETRY_AFTER_CAP = 3600.0
#: The mark in the store (a lease) that tells every process sharing it that the channel met the v2.1 cap.
_CAP_PREFIX = "v21-cap:"
_CAP_OWNER = "v21-cap"

_TOKEN_KINDS: tuple[KindChoice, ...] = ("auto", "v2.1", "v3", "v2", "static")


@dataclass(frozen=True, slots=True)
class TokenEvent:
    """What a :class:`TokenManager` did with a token, for metrics and audits; never the token itself.

    ``what`` is "issued" (LINE issued a token to this manager), "refreshed" (the token held was replaced by
    a newer one before it ran out, issued here or found in the store) or "refused" (LINE answered 401 for
    the token held: it is dropped and another one obtained). ``kind`` is the token's: v2.1, v3, v2 or
    static.
    """

    what: Literal["issued", "refreshed", "refused"]
    channel_id: str
    kind: str


TokenListener = Callable[[TokenEvent], None]
# Weak references: a listener (a metrics registry's method, say) goes away with its owner.
_listeners: list[weakref.ref[TokenListener]] = []
_listeners_lock = threading.Lock()


def add_token_listener(listener: TokenListener) -> Callable[[], None]:
    """Call ``listener`` with every :class:`TokenEvent` of every TokenManager of this process (and a
    LineClient's own), in the thread that caused it; returns the function that removes it. The listener is
    held weakly (a bound method lives as long as its object): it must be quick and must not raise."""
    ref: weakref.ref[TokenListener] = (
        weakref.WeakMethod(listener) if inspect.ismethod(listener) else weakref.ref(listener)
    )
    with _listeners_lock:
        _listeners.append(ref)

    def remove() -> None:
        with _listeners_lock:
            if ref in _listeners:
                _listeners.remove(ref)

    return remove


def _tell(event: TokenEvent) -> None:
    with _listeners_lock:
        alive = [listener for listener in (ref() for ref in _listeners) if listener is not None]
        _listeners[:] = [ref for ref in _listeners if ref() is not None]
    for listener in alive:
        try:
            listener(event)
        except Exception:  # a listener must not break getting a token
            log.exception("a token listener failed")


def _kind_from_env() -> KindChoice:
    value = os.environ.get("LINEPUSH_TOKEN_KIND", "").strip().lower() or "auto"
    for kind in _TOKEN_KINDS:
        if value == kind:
            return kind
    raise ConfigurationError(
        f"LINEPUSH_TOKEN_KIND={value!r} is not a token kind: use auto, v2.1, v3, v2 or static"
    )


_ADVICE = (
    "Revoke tokens you no longer use (`linepush token list`, then `linepush token revoke`), wait for some to "
    "expire, set LINE_CHANNEL_SECRET so linepush can revoke the tokens it superseded, or use stateless "
    "tokens (--kind v3), which have no cap"
)


class Freshness(enum.Enum):
    FRESH = "fresh"
    STALE = "stale"
    INVALID = "invalid"


@dataclass(frozen=True, slots=True)
class _Held:
    value: str
    record_id: int | None
    key_id: str | None
    issued_at: float
    expires_at: float
    #: From here on the token is stale: still used, but a refresh is due.
    refresh_at: float
    #: From here on the token is not used any more (too close to expiry to survive a request).
    usable_until: float


def _default_window(lifetime: float) -> float:
    return max(60.0, min(lifetime * 0.25, 6 * 3600.0))


class TokenClient(Protocol):
    """What the manager needs of a client: run one operation of :mod:`linepush.api.tokens` and return its
    result, from any thread (a :class:`~linepush.client.LineClient` does)."""

    def run(self, op: Operation[T]) -> T: ...


class TokenEndpoints:
    """The token endpoints of one channel as operations, with the channel's own credentials unless others
    are given: its id and secret, and client assertions signed with its key (``signer``, else loaded from
    the channel's key file on first need). ``clock`` is UNIX time: the assertions' and the tokens' times."""

    def __init__(
        self,
        channel: Channel,
        *,
        signer: AssertionSigner | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.channel = channel
        self._signer = signer
        self._clock = clock

    def assertion(self, token_exp: int | None = None) -> str:
        """A client assertion signed with the channel's key."""
        signer = self._signer
        if signer is None:
            from linepush.keys import AssertionSigner, load_private_key

            channel = self.channel
            if channel.assertion_key_file is None or channel.assertion_kid is None:
                raise ConfigurationError(
                    "no assertion key: set LINE_ASSERTION_KEY_FILE and LINE_ASSERTION_KID "
                    "(create the key with `linepush keys generate`)"
                )
            signer = self._signer = AssertionSigner(
                channel.require_id(), channel.assertion_kid, load_private_key(channel.assertion_key_file)
            )
        return signer.assertion(self._clock(), token_exp=token_exp)

    def issue_v21(self, assertion: str | None = None, *, token_exp: int = 86_400) -> Operation[IssuedToken]:
        return token_api.issue_v21(assertion or self.assertion(token_exp), self._clock())

    def list_v21_key_ids(self, assertion: str | None = None) -> Operation[list[str]]:
        return token_api.list_v21_key_ids(assertion or self.assertion())

    def revoke_v21(
        self,
        access_token: str | Secret,
        channel_id: str | None = None,
        channel_secret: str | Secret | None = None,
    ) -> Operation[None]:
        cid = channel_id or self.channel.require_id()
        secret = channel_secret if channel_secret is not None else self.channel.require_secret()
        return token_api.revoke_v21(cid, secret, access_token)

    def issue_stateless(
        self, assertion: str | None = None, *, use_secret: bool = False
    ) -> Operation[IssuedToken]:
        """A v3 token: by the channel secret when asked (or when there is no key), else by an assertion."""
        now = self._clock()
        if use_secret or (assertion is None and not self.channel.has_assertion_key):
            return token_api.issue_stateless(
                now,
                channel_id=self.channel.require_id(),
                channel_secret=self.channel.require_secret().reveal(),
            )
        return token_api.issue_stateless(now, assertion=assertion or self.assertion())

    def issue_short_lived(
        self, channel_id: str | None = None, channel_secret: str | Secret | None = None
    ) -> Operation[IssuedToken]:
        cid = channel_id or self.channel.require_id()
        secret = channel_secret if channel_secret is not None else self.channel.require_secret()
        return token_api.issue_short_lived(cid, secret, self._clock())


class TokenManager:
    """Keeps a valid token of one kind for one channel.

    ``kind="auto"`` (or ``$LINEPUSH_TOKEN_KIND`` when set) picks v2.1 when an assertion key is configured,
    else stateless v3 when the channel secret is, else the static token. One exception, for stores that do
    not survive (CI jobs, containers without a volume): with an assertion key but no channel secret, and no
    v2.1 token of the channel in the store, it picks v3. Every v2.1 token a lost store leaves behind holds one
    of LINE's 30 slots until it expires, and without the secret not even a surviving store could revoke it;
    v3 tokens have no cap. Give ``lifetime`` or ``kind="v2.1"`` to have v2.1 anyway.

    When LINE refuses a v2.1 token because 30 are active and none can be revoked, the manager falls back to a
    v3 token from the same assertion key (``cap_fallback``), with a warning, rather than fail the call.

    ``lifetime`` applies to v2.1; ``refresh_window`` is how long before expiry a refresh starts;
    ``revoke_grace`` how long a superseded token stays usable (by processes that still hold it) before it is
    revoked. ``store`` is a Store or a store URL (default: ``$LINEPUSH_STORE`` or the embedded SQLite file).
    ``client`` runs the token endpoints' operations (a :class:`~linepush.client.LineClient`; a client made
    without a token wires its own manager), ``signer`` signs the client assertions (default: from the
    channel's key file).
    """

    def __init__(
        self,
        channel: Channel,
        store: Store | str | None = None,
        *,
        kind: KindChoice = "auto",
        lifetime: float | None = None,
        refresh_window: float | None = None,
        revoke_grace: float = 300.0,
        client: TokenClient | None = None,
        signer: AssertionSigner | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], object] = time.sleep,
        lock_ttl: float = 60.0,
        poll_interval: float = 0.05,
        background: bool = True,
        cap_fallback: bool = True,
    ) -> None:
        self.channel = channel
        if kind == "auto":
            kind = _kind_from_env()
        self.kind: ManagedKind = self._resolve_kind(channel, kind)
        if client is None and self.kind != "static":
            raise ConfigurationError(
                "a TokenManager calls LINE's token endpoints through a client: "
                "TokenManager(channel, store, client=LineClient(channel)), or let LineClient(channel) "
                "manage its tokens itself"
            )
        # A store given as an object is the caller's; one named by URL (or the default) is ours to close.
        self._owns_store = not isinstance(store, Store) and self.kind != "static"
        self._store: Store | None = (
            store if isinstance(store, Store) else None if self.kind == "static" else open_store(store)
        )
        if kind == "auto" and lifetime is None and self._v3_suits():
            self.kind = "v3"
        self.cap_fallback = cap_fallback
        if self.kind == "v2.1":
            self.lifetime = float(lifetime if lifetime is not None else DEFAULT_LIFETIMES["v2.1"])
            if not 60 <= self.lifetime <= MAX_V21_LIFETIME:
                raise ConfigurationError(
                    f"v2.1 token lifetime {lifetime!r} s is out of range: use 60 s to 30 days (2592000 s)"
                )
        elif self.kind == "static":
            self.lifetime = math.inf
        else:
            if lifetime is not None:
                raise ConfigurationError(
                    f"LINE fixes the lifetime of {self.kind} tokens; lifetime applies to v2.1"
                )
            self.lifetime = DEFAULT_LIFETIMES[self.kind]
        self.refresh_window = float(
            refresh_window if refresh_window is not None else _default_window(self.lifetime)
        )
        if not 0 < self.refresh_window < self.lifetime:
            raise ConfigurationError("refresh_window must be positive and shorter than the token lifetime")
        self.revoke_grace = revoke_grace
        self._client = client
        self._endpoints = TokenEndpoints(channel, signer=signer, clock=clock)
        self._clock = clock
        self._sleep = sleep
        self._lock_ttl = lock_ttl
        self._poll = poll_interval
        self._background = background
        self._nonce = uuid.uuid4().hex[:12]
        self._lock_name = f"refresh:{channel.channel_id}:{self.kind}"
        self._lock = threading.Lock()
        self._held: _Held | None = None
        # The fast path compares one number: the earliest time anything (refresh, revocation) is due.
        self._next_check = -math.inf
        self._revoke_at = math.inf
        self._bg_thread: threading.Thread | None = None
        self._bg_lock = threading.Lock()
        self._bg_retry_at = -math.inf
        self._bg_failures = 0
        self._inflight: asyncio.Future[str] | None = None
        # After LINE refused a token: stored tokens are no longer taken on trust (see invalidate).
        self._distrust_store = False
        # After the v2.1 cap was met: until then, v3 tokens are issued without asking for v2.1 first.
        self._v3_until = -math.inf
        self.issued = 0  # tokens this manager issued (for tests and metrics)
        if self.kind == "static":
            token = channel.access_token
            assert token is not None  # _resolve_kind checked it
            self._held = _Held(token.reveal(), None, None, -math.inf, math.inf, math.inf, math.inf)
            self._next_check = math.inf

    @property
    def _owner(self) -> str:
        """Who holds the refresh lock for this manager: this host and process (read at each use, so that a
        forked child never passes for its parent), and this manager."""
        return f"{_this_host()}:{os.getpid()}:{self._nonce}"

    def _v3_suits(self) -> bool:
        """v2.1 was picked for the key; v3 suits better when nothing could ever revoke what we issue."""
        if self.kind != "v2.1" or self.channel.channel_secret is not None or self._store is None:
            return False
        return not self._store.list_tokens(self.channel.require_id(), "v2.1")

    @staticmethod
    def _resolve_kind(channel: Channel, kind: KindChoice) -> ManagedKind:
        if kind not in ("auto", "v2.1", "v3", "v2", "static"):
            raise ConfigurationError(f"unknown token kind {kind!r}: use auto, v2.1, v3, v2 or static")
        if kind == "auto":
            if channel.has_assertion_key and channel.channel_id:
                return "v2.1"
            if channel.channel_secret and channel.channel_id:
                return "v3"
            if channel.access_token:
                return "static"
            raise ConfigurationError(
                "no way to get a channel access token: set LINE_CHANNEL_ID with LINE_ASSERTION_KEY_FILE and "
                "LINE_ASSERTION_KID (v2.1 tokens), or LINE_CHANNEL_ID with LINE_CHANNEL_SECRET (stateless "
                "tokens), or LINE_CHANNEL_ACCESS_TOKEN (a token you manage)"
            )
        if kind == "static":
            if not channel.access_token:
                raise ConfigurationError("token kind static needs LINE_CHANNEL_ACCESS_TOKEN")
            return "static"
        channel.require_id()
        if kind == "v2.1" and not channel.has_assertion_key:
            raise ConfigurationError(
                "v2.1 tokens need an assertion key: set LINE_ASSERTION_KEY_FILE and LINE_ASSERTION_KID"
            )
        if kind == "v2":
            channel.require_secret()
        if kind == "v3" and not (channel.has_assertion_key or channel.channel_secret):
            raise ConfigurationError(
                "stateless tokens need LINE_CHANNEL_SECRET or an assertion key (LINE_ASSERTION_KEY_FILE and "
                "LINE_ASSERTION_KID)"
            )
        return kind

    # -- the face the clients use ---------------------------------------------------------------------------

    @property
    def refreshable(self) -> bool:
        return self.kind != "static"

    def _from_memory(self) -> str | None:
        """The held token while it is usable (a stale one starts a background refresh), else None."""
        held = self._held
        if held is not None:
            now = self._clock()
            if now < self._next_check:
                return held.value
            if now < held.usable_until:
                self._start_background(now)
                return held.value
        return None

    def cached_token(self) -> str | None:
        """The token held in memory while it is usable (no I/O), else None: ask :meth:`get_token` then."""
        return self._from_memory()

    def get_token(self) -> str:
        """A valid token: from memory when fresh (microseconds), else after at most one refresh."""
        return self._from_memory() or self._acquire()

    async def aget_token(self) -> str:
        """:meth:`get_token` for async callers: waiting tasks share one refresh and never block the loop."""
        token = self._from_memory()
        if token is not None:
            return token
        import asyncio  # here: a sync caller (a one-shot command) never needs asyncio

        loop = asyncio.get_running_loop()
        future = self._inflight
        if future is None or future.done() or future.get_loop() is not loop:
            future = loop.run_in_executor(None, self._acquire)
            self._inflight = future
        return await asyncio.shield(future)

    def invalidate(self, token: str) -> None:
        """LINE refused ``token`` (401): never use it again, here or in any process sharing the store.

        A refusal rarely comes alone: tokens are revoked in bulk (in the console, by another tool) or the
        channel's keys were reset. So every stored token of this kind issued at or before the refused one is
        marked invalid too, and until a token works again a token found in the store is verified at LINE
        before it is used; the call that was refused gets a freshly issued (or freshly verified) token.
        """
        held = self._held
        if held is None or held.value != token or self.kind == "static":
            return
        self._tell("refused", self.kind)
        self._held = None
        self._next_check = -math.inf
        self._distrust_store = True
        if held.record_id is None or self._store is None:
            log.info("token %s was refused by LINE; a new one will be issued", mask(token))
            return
        now = self._clock()
        records = self._store.list_tokens(self.channel.require_id(), None, ["active", "superseded"])
        kind = next((r.kind for r in records if r.id == held.record_id), self.kind)
        older = [
            r for r in records if r.kind == kind and (r.id == held.record_id or r.issued_at <= held.issued_at)
        ]
        for record in older:
            self._store.set_token_state(record.id, "invalid", now)
        log.info(
            "token %s was refused by LINE; %d stored %s tokens issued up to it are no longer used, and the "
            "next one is verified or newly issued",
            mask(token),
            len(older),
            kind,
        )

    def freshness(self, now: float | None = None) -> Freshness:
        held = self._held
        now = self._clock() if now is None else now
        if held is None or now >= held.usable_until:
            return Freshness.INVALID
        return Freshness.FRESH if now < held.refresh_at else Freshness.STALE

    def current(self) -> Secret | None:
        """The token held in memory now, if any (no refresh, no I/O)."""
        held = self._held
        return Secret(held.value) if held is not None else None

    # -- refresh ---------------------------------------------------------------------------------------------

    def _acquire(self) -> str:
        with self._lock:
            held = self._held
            now = self._clock()
            if held is None or now >= held.usable_until:
                self._refresh(must=True)
            held = self._held
            assert held is not None
        now = self._clock()
        if now >= held.refresh_at:
            # What the store had was usable but already stale: serve it, refresh behind the caller's back.
            self._start_background(now)
        return held.value

    def _tell(self, what: Literal["issued", "refreshed", "refused"], kind: str) -> None:
        if _listeners:
            _tell(TokenEvent(what, self.channel.channel_id or "", kind))

    def _adopt(self, record: TokenRecord) -> str:
        if self._held is not None and self._held.record_id != record.id:
            self._tell("refreshed", record.kind)
        expires = record.expires_at if record.expires_at is not None else math.inf
        lifetime = expires - record.issued_at
        window = min(self.refresh_window, lifetime * 0.5)
        margin = min(30.0, window * 0.5)
        held = _Held(
            record.access_token.reveal(),
            record.id,
            record.key_id,
            record.issued_at,
            expires,
            expires - window,
            expires - margin,
        )
        self._held = held
        self._schedule()
        return held.value

    def _schedule(self) -> None:
        held = self._held
        self._next_check = min(held.refresh_at if held is not None else -math.inf, self._revoke_at)

    def _refresh(self, *, must: bool) -> str | None:
        """Get a better token than the one held: from the store if another process has one, else issue.

        With ``must`` false (a background refresh of a stale token) it gives up when another process is
        already refreshing: the stale token still works and that process's token will be picked up.
        """
        store = self._store
        assert store is not None
        channel_id = self.channel.require_id()
        deadline = self._clock() + 2 * self._lock_ttl
        while True:
            now = self._clock()
            found = self._from_store(now, must=must)
            if found is not None:
                return found
            if store.try_lock(self._lock_name, self._owner, self._lock_ttl, now) or self._take_from_dead(now):
                try:
                    found = self._from_store(self._clock(), must=must)
                    if found is not None:
                        return found
                    issued = self._issue()
                    self._distrust_store = False
                    now = self._clock()
                    kind = issued.kind.value  # v3 when the v2.1 cap was met
                    record = store.save_token(
                        channel_id,
                        kind,  # type: ignore[arg-type]
                        issued.access_token.reveal(),
                        issued.key_id,
                        now,
                        issued.expires_at,
                    )
                    self._tell("issued", kind)
                    superseded = store.supersede_others(channel_id, record.kind, record.id, now)
                    if superseded and self._may_revoke():
                        self._revoke_at = min(self._revoke_at, now + self.revoke_grace)
                    log.info(
                        "issued a %s token %s for channel %s, valid until %s",
                        kind,
                        mask(issued.access_token.reveal()),
                        channel_id,
                        time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(issued.expires_at)),
                    )
                    return self._adopt(record)
                finally:
                    store.unlock(self._lock_name, self._owner)
            if not must:
                return None
            if self._clock() > deadline:
                raise TokenUnavailableError(
                    f"another process has been issuing a token for channel {channel_id} for too long; "
                    "try again, or check that process"
                )
            self._sleep(self._poll)

    def _take_from_dead(self, now: float) -> bool:
        """Take the refresh lock from a process of this host that died holding it (killed with SIGKILL in
        the middle of a token request), rather than wait for its lease to run out."""
        store = self._store
        assert store is not None
        holder = store.lock_owner(self._lock_name, now)
        if holder is None or holder == self._owner or not _gone(holder):
            return False
        if not store.take_over_lock(self._lock_name, holder, self._owner, self._lock_ttl, now):
            return False
        log.info(
            "the process that was getting a token for channel %s (%s) is gone; this one gets it",
            self.channel.channel_id,
            holder,
        )
        return True

    def _at_cap(self, now: float) -> bool:
        """Whether v2.1 tokens are not to be asked for now: this manager, or another process sharing the
        store, met the channel's cap of 30 a short while ago (and uses v3 tokens meanwhile)."""
        if self.kind != "v2.1":
            return False
        if now < self._v3_until:
            return True
        store = self._store
        assert store is not None
        name = _CAP_PREFIX + self.channel.require_id()
        until = store.live_locks(name, now).get(name)
        if until is None:
            return False
        self._v3_until = until
        return True

    def _stored(self, now: float) -> TokenRecord | None:
        """The newest usable token in the store: of this manager's kind, or a v3 one while at the cap."""
        store = self._store
        assert store is not None
        channel_id = self.channel.require_id()
        record = store.current_token(channel_id, self.kind, now)
        if self._at_cap(now):
            fallback = store.current_token(channel_id, "v3", now)
            if fallback is not None and (record is None or fallback.issued_at > record.issued_at):
                return fallback
        return record

    def _from_store(self, now: float, *, must: bool) -> str | None:
        store = self._store
        assert store is not None
        while True:
            record = self._stored(now)
            if record is None or record.expires_at is None:
                return None
            held = self._held
            if held is not None and record.id == held.record_id:
                return None  # the one we already hold: not better
            expires = record.expires_at
            window = min(self.refresh_window, (expires - record.issued_at) * 0.5)
            if now >= expires - min(30.0, window * 0.5):
                return None
            if not must and now >= expires - window:
                return None  # as stale as ours
            if not self._distrust_store:
                return self._adopt(record)
            if self._still_valid(record):
                self._distrust_store = False
                return self._adopt(record)
            store.set_token_state(record.id, "invalid", self._clock())

    def _still_valid(self, record: TokenRecord) -> bool:
        """Whether LINE still accepts a stored token (asked only after LINE refused one of ours).

        LINE documents no verify endpoint for v3 tokens: those are never trusted then (a new one costs
        nothing, as v3 tokens have no cap). Any failure to verify counts as not valid: a new token is issued.
        """
        try:
            if record.kind == "v2.1":
                info = self._run(token_api.verify_v21(record.access_token))
            elif record.kind == "v2":
                info = self._run(token_api.verify_short_lived(record.access_token))
            else:
                return False
        except (LineApiError, TransportError) as exc:
            log.info("stored token %s is not used: %s", record.access_token.masked, _safe(exc))
            return False
        return info.client_id == self.channel.channel_id and info.expires_in > 0

    def _run(self, op: Operation[T]) -> T:
        assert self._client is not None  # only a static manager has none, and it never calls LINE
        return self._client.run(op)

    def _issue(self) -> IssuedToken:
        endpoints = self._endpoints
        self.issued += 1
        if self.kind == "v2.1":
            if self._at_cap(self._clock()):
                return self._run(endpoints.issue_stateless())
            try:
                return self._run(endpoints.issue_v21(token_exp=int(self.lifetime)))
            except TokenLimitError as exc:
                try:
                    return self._issue_at_cap(exc)
                except TokenLimitError as full:
                    if not self.cap_fallback:
                        raise
                    return self._issue_v3_at_cap(full)
        if self.kind == "v3":
            return self._run(endpoints.issue_stateless())
        return self._run(endpoints.issue_short_lived())

    def _issue_v3_at_cap(self, error: TokenLimitError) -> IssuedToken:
        """The channel's 30 v2.1 slots are taken and none could be freed: a v3 token from the same key has
        no cap. v2.1 is not asked again for a while (LINE may restrict issuance on many requests)."""
        log.warning(
            "%s; using stateless v3 tokens (15 minutes each, no cap) until v2.1 slots are free again",
            error,
        )
        now = self._clock()
        self._v3_until = now + _V21_RETRY_AFTER_CAP
        if self._store is not None:  # so that the other processes of the store do not ask again either
            name = _CAP_PREFIX + self.channel.require_id()
            try:
                self._store.try_lock(name, _CAP_OWNER, _V21_RETRY_AFTER_CAP, now)
            except StoreError as exc:
                log.warning("could not note in the store that the v2.1 cap was met: %s", exc)
        self.issued += 1
        return self._run(self._endpoints.issue_stateless())

    def _issue_at_cap(self, error: TokenLimitError) -> IssuedToken:
        """LINE refused a new v2.1 token: 30 are active. Revoke what we superseded, then try once more."""
        store = self._store
        assert store is not None
        channel_id = self.channel.require_id()
        listed: list[str] = self._run(self._endpoints.list_v21_key_ids())
        kids = set(listed)
        ours = [t for t in store.list_tokens(channel_id, "v2.1") if t.key_id in kids]
        if len(kids) > len(ours):
            log.warning(
                "LINE reports %d active v2.1 tokens for channel %s but the store holds %d of them: the "
                "others were issued elsewhere or by a store that was lost, and count against the cap until "
                "they expire",
                len(kids),
                channel_id,
                len(ours),
            )
        if self.channel.channel_secret is None:
            raise error.with_context(active=len(kids), advice=_ADVICE)
        now = self._clock()
        current = store.current_token(channel_id, "v2.1", now)
        held_id = self._held.record_id if self._held is not None else None
        victims = [t for t in ours if t.id not in (held_id, current.id if current else None)]
        revoked = 0
        for record in victims:
            if self._revoke(record, now):
                revoked += 1
        if revoked == 0:
            raise error.with_context(active=len(kids), advice=_ADVICE)
        log.info("revoked %d superseded v2.1 tokens of channel %s to make room", revoked, channel_id)
        self.issued += 1
        try:
            return self._run(self._endpoints.issue_v21(token_exp=int(self.lifetime)))
        except TokenLimitError as again:
            raise again.with_context(active=len(kids) - revoked, advice=_ADVICE) from None

    def _may_revoke(self) -> bool:
        return self.kind == "v2" or (self.kind == "v2.1" and self.channel.channel_secret is not None)

    def _revoke(self, record: TokenRecord, now: float) -> bool:
        store = self._store
        assert store is not None
        try:
            if record.kind == "v2.1":
                self._run(self._endpoints.revoke_v21(record.access_token))
            elif record.kind == "v2":
                self._run(token_api.revoke_short_lived(record.access_token))
            else:
                return False
        except (LineApiError, TransportError) as exc:
            log.warning("could not revoke token %s: %s", record.access_token.masked, exc)
            return False
        store.set_token_state(record.id, "revoked", now)
        return True

    def revoke_superseded(self, now: float | None = None) -> int:
        """Revoke the superseded tokens whose grace period is over; returns how many were revoked."""
        if not self._may_revoke() or self._store is None:
            return 0
        now = self._clock() if now is None else now
        due = self._store.tokens_due_for_revocation(self.channel.require_id(), now - self.revoke_grace, now)
        revoked = sum(1 for record in due if record.kind == self.kind and self._revoke(record, now))
        pending = [
            r.superseded_at
            for r in self._store.list_tokens(self.channel.require_id(), self.kind, ["superseded"])
            if r.superseded_at is not None and not r.expired(now)
        ]
        self._revoke_at = min((at + self.revoke_grace for at in pending), default=math.inf)
        if self._revoke_at <= now:
            self._revoke_at = (
                now + self.revoke_grace
            )  # a revocation failed: try again later, not on every call
        self._schedule()
        return revoked

    # -- background work -----------------------------------------------------------------------------------

    def _start_background(self, now: float) -> None:
        if not self._background or now < self._bg_retry_at:
            return
        with self._bg_lock:
            if self._bg_thread is not None and self._bg_thread.is_alive():
                return
            thread = threading.Thread(
                target=self._background_work, name="linepush-token-refresh", daemon=True
            )
            self._bg_thread = thread
        thread.start()

    def _background_work(self) -> None:
        try:
            now = self._clock()
            held = self._held
            if held is not None and now >= held.refresh_at and self._lock.acquire(blocking=False):
                try:
                    self._refresh(must=False)
                finally:
                    self._lock.release()
            if self._clock() >= self._revoke_at:
                self.revoke_superseded()
            self._bg_failures = 0
        except Exception as exc:
            # The stale token still works; try again a little later rather than on every call.
            self._bg_failures += 1
            self._bg_retry_at = self._clock() + min(60.0, 2.0**self._bg_failures)
            log.warning("background token refresh failed (will retry): %s", _safe(exc))

    def join_background(self, timeout: float | None = None) -> None:
        """Wait for a background refresh or revocation to finish (for tests and clean shutdown)."""
        thread = self._bg_thread
        if thread is not None:
            thread.join(timeout)

    def maintain(self) -> None:
        """Run due work now, in the caller's thread: refresh a stale token, revoke superseded ones."""
        self._background_work()

    def close(self) -> None:
        self.join_background(5)
        if self._owns_store and self._store is not None:
            self._store.close()

    def __repr__(self) -> str:
        return f"TokenManager(channel={self.channel.channel_id!r}, kind={self.kind!r})"


_host: tuple[int, str] | None = None


def _this_host() -> str:
    """This host, as the owner of a lock names it: its name, the id of this boot of it and, on Linux, its PID
    namespace, so that a process id is only ever looked up where it means the same process. The name alone
    would not do: hosts sharing a PostgreSQL store may all be called ``localhost``, and the first PID
    namespace has the same number on every Linux machine; the boot id is drawn anew at each boot."""
    global _host
    pid = os.getpid()
    if _host is not None and _host[0] == pid:
        return _host[1]
    parts = []
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as boot:
            parts.append(boot.read().strip().replace("-", "")[:16])
    except OSError:
        pass
    try:
        parts.append("".join(c for c in os.readlink("/proc/self/ns/pid") if c.isdigit()))
    except OSError:
        pass
    host = socket.gethostname().replace(":", "_").replace("/", "_")
    name = "/".join([host, *(p for p in parts if p)])
    _host = (pid, name)
    return name


def _gone(owner: str) -> bool:
    """Whether a lock's owner (``host:pid:nonce``, as a TokenManager names itself) is a process of this host
    that no longer runs. Any doubt (another host, another user's process, an owner named otherwise) says no:
    the lease then runs out as it would have."""
    host, _, rest = owner.partition(":")
    pid_text, _, _ = rest.partition(":")
    if host != _this_host() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid() or pid <= 1:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # it exists (PermissionError: another user's), or we cannot tell
    try:  # a killed process not yet reaped by its parent still answers os.kill
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rpartition(b")")[2].split()[:1] == [b"Z"]
    except OSError:
        return False


def _safe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
