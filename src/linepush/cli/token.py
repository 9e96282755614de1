"""`linepush token`: issue, verify, revoke and list channel access tokens of every kind; v2.1 key ids."""

from __future__ import annotations

import sys
import time
from enum import StrEnum
from typing import Annotated, Any

import typer

from linepush._secret import Secret
from linepush.cli import app
from linepush.cli._command import command
from linepush.cli.invocation import Invocation, fail, when
from linepush.config import Channel
from linepush.store import Store, TokenRecord

token_app = typer.Typer(
    name="token",
    help="Channel access tokens: issue, verify, revoke, list; LINE's valid v2.1 key ids.",
    no_args_is_help=True,
)
app.add_typer(token_app)


class Kind(StrEnum):
    V21 = "v2.1"
    V3 = "v3"
    V2 = "v2"


class AnyKind(StrEnum):
    V21 = "v2.1"
    V3 = "v3"
    V2 = "v2"
    STATIC = "static"


KindOption = Annotated[
    Kind | None,
    typer.Option(
        "--kind",
        "-k",
        help="v2.1 (JWT, needs the assertion key), v3 (stateless, 15 min), v2 (short-lived, id + secret). "
        "Default: v2.1 when an assertion key is configured, else v3.",
        case_sensitive=False,
    ),
]
RevokedTokenArgument = Annotated[
    str | None,
    typer.Argument(
        help="The token, or - to read it from stdin (safer: arguments show in ps and shell history). "
        "Required unless --id names one: nothing is revoked by guess.",
        show_default=False,
        metavar="TOKEN",
    ),
]
TokenArgument = Annotated[
    str | None,
    typer.Argument(
        help="The token, or - to read it from stdin (safer: arguments show in ps and shell history). "
        "Default: the newest one in the store (or LINE_CHANNEL_ACCESS_TOKEN).",
        show_default=False,
        metavar="TOKEN",
    ),
]
StoredKindOption = Annotated[
    AnyKind | None,
    typer.Option("--kind", "-k", help="The token's kind, if not in the store.", case_sensitive=False),
]
IdOption = Annotated[
    int | None, typer.Option("--id", metavar="N", help="A token of the store, by the id `token list` shows.")
]


def default_kind(channel: Channel) -> Kind:
    if channel.has_assertion_key:
        return Kind.V21
    if channel.channel_secret is not None:
        return Kind.V3
    fail(
        "cannot issue a token: set LINE_ASSERTION_KEY_FILE and LINE_ASSERTION_KID (v2.1 or v3 tokens by "
        "JWT), "
        "or LINE_CHANNEL_SECRET (v3 or v2 tokens by channel secret)",
        hint="`linepush keys generate` makes the key; `linepush config show` shows what is set",
    )


@command(token_app, "issue")
def issue(
    inv: Invocation,
    kind: KindOption = None,
    show_token: Annotated[
        bool, typer.Option("--show-token", help="Print the token itself (otherwise only a masked prefix).")
    ] = False,
    lifetime: Annotated[
        int | None,
        typer.Option(
            "--lifetime", min=60, max=2_592_000, help="v2.1 only: seconds until it expires (default 1 day)."
        ),
    ] = None,
    keep: Annotated[
        bool,
        typer.Option(
            "--store/--no-store",
            help="Keep the token in the store, where linepush uses, lists and later revokes it. "
            "With --no-store "
            "it is yours alone: revoke it yourself.",
        ),
    ] = True,
) -> None:
    """Issue a new channel access token."""
    channel = inv.settings.channel
    channel.require_id()
    chosen = kind or default_kind(channel)
    if lifetime is not None and chosen is not Kind.V21:
        fail(f"--lifetime applies to v2.1 tokens only; LINE fixes the lifetime of {chosen} tokens")
    client = inv.client()
    if chosen is Kind.V21:
        issued = client.issue_v21_token(token_exp=lifetime or 86_400)
    elif chosen is Kind.V3:
        issued = client.issue_stateless_token()
    else:
        issued = client.issue_short_lived_token()
    record_id = None
    if keep:
        store = inv.store()
        record = store.save_token(
            channel.require_id(),
            chosen.value,
            issued.access_token,
            issued.key_id,
            time.time(),
            issued.expires_at,
        )
        record_id = record.id
    shown = issued.access_token.reveal() if show_token else issued.access_token.masked
    data = {
        "channel_id": channel.channel_id,
        "kind": chosen.value,
        "access_token": shown,
        "key_id": issued.key_id,
        "expires_in": issued.expires_in,
        "expires_at": when(issued.expires_at),
        "store_id": record_id,
    }

    def render() -> None:
        if show_token:
            # The value alone on stdout, so `TOKEN=$(linepush token issue --show-token)` works.
            inv.out.file.write(issued.access_token.reveal() + "\n")
            inv.out.file.flush()
        print_to = inv.err.print if show_token else inv.out.print
        print_to(
            f"issued a {chosen.value} token {issued.access_token.masked} for channel {channel.channel_id}, "
            f"valid until {when(issued.expires_at)}"
            + (f", key id {issued.key_id}" if issued.key_id else "")
            + (f" (store id {record_id})" if record_id is not None else " (not stored)")
        )
        if not show_token:
            inv.note("[dim]the token itself is not shown; add --show-token to print it[/]")

    inv.emit(data, render)


def _read_token(value: str | None) -> str | None:
    if value != "-":
        return value.strip() if value is not None else None
    text = sys.stdin.read().strip()
    if not text:
        fail("no token on stdin")
    return text


def _find(store: Store, channel_id: str, value: str) -> TokenRecord | None:
    return next((r for r in store.list_tokens(channel_id) if r.access_token.reveal() == value), None)


def _guess_kind(value: str) -> AnyKind:
    # v2.1 (and v3) tokens are JWS; short-lived and long-lived ones are opaque strings.
    return AnyKind.V21 if value.count(".") == 2 else AnyKind.V2


def _pick(
    inv: Invocation, token: str | None, record_id: int | None, kind: AnyKind | None
) -> tuple[Secret, AnyKind, TokenRecord | None, Store | None]:
    """The token a command is about: given, by store id, the configured static one, or the newest stored."""
    channel = inv.settings.channel
    value = _read_token(token)
    if value is not None and record_id is not None:
        fail("give either a token or --id, not both")
    store: Store | None = None
    if value is not None:
        if channel.channel_id is not None:
            store = inv.store()
            record = _find(store, channel.channel_id, value)
            if record is not None:
                return record.access_token, AnyKind(record.kind), record, store
        return Secret(value), kind or _guess_kind(value), None, store
    channel_id = channel.require_id()
    store = inv.store()
    if record_id is not None:
        record = next((r for r in store.list_tokens(channel_id) if r.id == record_id), None)
        if record is None:
            fail(
                f"no token with id {record_id} in the store for channel {channel_id}; "
                "see `linepush token list`"
            )
        return record.access_token, AnyKind(record.kind), record, store
    if channel.access_token is not None and kind in (None, AnyKind.STATIC):
        return channel.access_token, AnyKind.STATIC, None, store
    now = time.time()
    kinds = [kind.value] if kind is not None else ["v2.1", "v3", "v2"]
    candidates = [
        r
        for k in kinds
        for r in store.list_tokens(channel_id, k, ["active"])  # type: ignore[arg-type]
        if not r.expired(now)
    ]
    if not candidates:
        fail(
            f"no active token in the store for channel {channel_id}; give one (or - for stdin), or issue one "
            "with `linepush token issue`"
        )
    record = max(candidates, key=lambda r: (r.issued_at, r.id))
    return record.access_token, AnyKind(record.kind), record, store


@command(token_app, "verify")
def verify(
    inv: Invocation,
    token: TokenArgument = None,
    record_id: IdOption = None,
    kind: StoredKindOption = None,
) -> None:
    """Ask LINE whether a token is valid, for which channel, and for how long."""
    value, chosen, record, _ = _pick(inv, token, record_id, kind)
    client = inv.client()
    if chosen in (AnyKind.V21, AnyKind.V3):
        if chosen is AnyKind.V3:
            inv.note("[dim]LINE documents no verify endpoint for v3 tokens; asking the v2.1 one[/]")
        info = client.verify_v21_token(value)
    else:
        info = client.verify_short_lived_token(value)
    data = {
        "access_token": value.masked,
        "kind": chosen.value,
        "valid": True,
        "client_id": info.client_id,
        "expires_in": info.expires_in,
        "expires_at": when(time.time() + info.expires_in),
        "scope": info.scope,
        "store_id": record.id if record else None,
    }

    def render() -> None:
        inv.out.print(
            f"valid {chosen.value} token {value.masked} of channel {info.client_id}: expires in "
            f"{_duration(info.expires_in)} ({data['expires_at']})"
            + (f", scope {info.scope}" if info.scope else "")
        )

    inv.emit(data, render)


@command(token_app, "revoke")
def revoke(
    inv: Invocation,
    token: RevokedTokenArgument = None,
    record_id: IdOption = None,
    kind: StoredKindOption = None,
) -> None:
    """Revoke a token at LINE (v2.1 needs the channel secret; v3 tokens cannot be revoked)."""
    if token is None and record_id is None:
        fail("name the token to revoke: give it (or - for stdin), or --id from `linepush token list`")
    value, chosen, record, store = _pick(inv, token, record_id, kind)
    if chosen is AnyKind.V3:
        fail("v3 (stateless) tokens cannot be revoked; they expire 15 minutes after issue")
    client = inv.client()
    if chosen is AnyKind.V21:
        client.revoke_v21_token(value)
    else:
        client.revoke_short_lived_token(value)
    if record is not None and store is not None:
        store.set_token_state(record.id, "revoked", time.time())
    data = {
        "access_token": value.masked,
        "kind": chosen.value,
        "revoked": True,
        "store_id": record.id if record else None,
    }

    def render() -> None:
        if record is not None:
            inv.out.print(f"revoked {chosen.value} token {value.masked}")
        else:
            # LINE answers 200 to a revocation of any string: it cannot say whether the token was valid.
            inv.out.print(
                f"LINE accepted the revocation of {chosen.value} token {value.masked}; it answers the same "
                "for a token that was never valid, so this does not show the token was one"
            )

    inv.emit(data, render)


@command(token_app, "list")
def list_tokens(
    inv: Invocation,
    kind: Annotated[
        AnyKind | None, typer.Option("--kind", "-k", help="Only tokens of this kind.", case_sensitive=False)
    ] = None,
    show_all: Annotated[
        bool, typer.Option("--all", help="Also revoked, invalid and expired tokens.")
    ] = False,
) -> None:
    """The tokens in the store for this channel (masked)."""
    channel_id = inv.settings.channel.require_id()
    store = inv.store()
    now = time.time()
    states = None if show_all else ["active", "superseded"]
    records = [
        r
        for r in store.list_tokens(channel_id, kind.value if kind else None, states)  # type: ignore[arg-type]
        if show_all or not r.expired(now)
    ]
    rows = [_record_data(r, now) for r in records]

    def render() -> None:
        if not rows:
            inv.out.print(
                f"no tokens in the store for channel {channel_id}" + ("" if show_all else " (try --all)")
            )
            return
        inv.table(
            f"tokens of channel {channel_id}",
            ["id", "kind", "state", "token", "key id", "issued", "expires"],
            [
                [
                    r["id"],
                    r["kind"],
                    r["state"],
                    r["access_token"],
                    r["key_id"],
                    r["issued_at"],
                    r["expires_at"] or "never",
                ]
                for r in rows
            ],
        )

    inv.emit({"channel_id": channel_id, "tokens": rows}, render)


def _record_data(record: TokenRecord, now: float) -> dict[str, Any]:
    return {
        "id": record.id,
        "kind": record.kind,
        "state": "expired" if record.expired(now) and record.state == "active" else record.state,
        "access_token": record.access_token.masked,
        "key_id": record.key_id,
        "issued_at": when(record.issued_at),
        "expires_at": when(record.expires_at),
    }


@command(token_app, "kids")
def kids(inv: Invocation) -> None:
    """LINE's valid v2.1 key ids for this channel, compared with the tokens in the store."""
    channel_id = inv.settings.channel.require_id()
    client = inv.client()
    at_line = client.list_v21_key_ids()
    store = inv.store()
    now = time.time()
    stored = {r.key_id: r for r in store.list_tokens(channel_id, "v2.1") if r.key_id}
    rows: list[dict[str, Any]] = []
    for kid in at_line:
        record = stored.get(kid)
        rows.append(
            {
                "key_id": kid,
                "valid_at_line": True,
                "store_id": record.id if record else None,
                "store_state": record.state if record else None,
                "expires_at": when(record.expires_at) if record else None,
            }
        )
    for kid, record in stored.items():
        if kid not in at_line and record.state in ("active", "superseded") and not record.expired(now):
            rows.append(
                {
                    "key_id": kid,
                    "valid_at_line": False,
                    "store_id": record.id,
                    "store_state": record.state,
                    "expires_at": when(record.expires_at),
                }
            )
    unknown = sum(1 for r in rows if r["valid_at_line"] and r["store_id"] is None)
    gone = sum(1 for r in rows if not r["valid_at_line"])
    data = {
        "channel_id": channel_id,
        "valid_at_line": len(at_line),
        "cap": 30,
        "not_in_store": unknown,
        "stored_but_not_valid": gone,
        "kids": rows,
    }

    def render() -> None:
        inv.table(
            f"v2.1 key ids of channel {channel_id}",
            ["key id", "valid at LINE", "in store", "state", "expires"],
            [
                [
                    r["key_id"],
                    "yes" if r["valid_at_line"] else "no",
                    r["store_id"] or "-",
                    r["store_state"],
                    r["expires_at"],
                ]
                for r in rows
            ],
        )
        inv.out.print(
            f"{len(at_line)} of 30 v2.1 tokens in use at LINE; {len(at_line) - unknown} of them in the store"
        )
        if unknown:
            inv.note(
                f"{unknown} valid v2.1 tokens are not in this store "
                "(issued elsewhere, or by a store that was lost): "
                "they count against the cap of 30 until they expire, and only their holder can revoke them"
            )
        if gone:
            inv.note(f"{gone} tokens in the store are no longer valid at LINE (revoked elsewhere)")

    inv.emit(data, render)


def _duration(seconds: int) -> str:
    days, rest = divmod(int(seconds), 86_400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {rest % 60} s"
