"""`linepush demo`: the whole flow against an in-process emulator, on a loopback port, in a few seconds."""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import urllib3

from linepush.cli import app
from linepush.cli._command import command
from linepush.cli.invocation import Invocation, print_error
from linepush.client import LineClient
from linepush.config import Channel
from linepush.errors import LineApiError
from linepush.keys import generate_key_pair
from linepush.tokens import TokenManager

__all__ = ["AdminClient", "run_demo"]

# Made-up recipients: the emulator treats any well-formed id as a friend unless told otherwise.
ALICE = "U" + "a1" * 16
BOB = "U" + "b2" * 16
CAROL = "U" + "c3" * 16
STRANGER = "U" + "0d" * 16


class AdminClient:
    """The emulator's admin API (``/_emulator/…``) over HTTP, as a test suite of your own would call it."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=2.0, read=10.0))

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        response = self._http.request(method, self.base_url + path, body=data, headers=headers)
        if response.status >= 400:
            raise RuntimeError(
                f"emulator admin {method} {path} answered {response.status}: {response.data[:200]!r}"
            )
        return json.loads(response.data or b"{}")

    def close(self) -> None:
        self._http.clear()


def run_demo(inv: Invocation, url: str) -> dict[str, Any]:
    """Walk through the flow against the emulator at ``url``; returns the summary it printed."""
    say = inv.out.print
    admin = AdminClient(url)
    workdir = Path(tempfile.mkdtemp(prefix="linepush-demo-"))
    # Registered first, so it runs last: after the store and clients using the directory are closed.
    inv.on_close(lambda: shutil.rmtree(workdir, ignore_errors=True))
    inv.on_close(admin.close)
    started = time.monotonic()

    say("\n[bold]1. A channel[/] (in the LINE Developers Console you would create a Messaging API channel)")
    created = admin.call("POST", "/_emulator/channels", {"name": "linepush demo"})
    channel_id = created["channel_id"]
    say(f"   channel id {channel_id}, channel secret {created['channel_secret'][:4]}… (kept secret)")

    say("\n[bold]2. An assertion key pair[/] (linepush keys generate)")
    key = generate_key_pair()
    key_file = key.write_private_jwk(workdir / "assertion-key.json")
    kid = admin.call("POST", f"/_emulator/channels/{channel_id}/keys", key.public_jwk())["kid"]
    say(f"   private key in {key_file} (mode 0600); public key registered, kid {kid}")

    channel = Channel(channel_id, created["channel_secret"], key_file, kid, name="demo")
    store_url = f"sqlite:///{workdir / 'linepush.db'}"

    say("\n[bold]3. A v2.1 channel access token by JWT[/], kept by a TokenManager in a store")
    token_client = LineClient(channel, api_base=url)
    inv.on_close(token_client.close)
    manager = TokenManager(channel, store_url, kind="v2.1", client=token_client)
    inv.on_close(manager.close)
    manager.get_token()
    held = manager.current()
    say(f"   issued {held.masked if held else '…'}; every later call reuses it until it needs refreshing")

    line = LineClient(channel, token=manager, api_base=url)
    inv.on_close(line.close)

    say('\n[bold]4. A push[/]: line.push(ALICE, "Hello, world1")')
    pushed = line.push(ALICE, "Hello, world1")
    ids = ", ".join(m.id for m in pushed.sent_messages)
    say(f"   sent, message id {ids}, request id {pushed.request_id}")

    say("\n[bold]5. A multicast[/] to three users, two messages")
    multi = line.multicast(
        [ALICE, BOB, CAROL], ["Deploy finished", {"type": "sticker", "packageId": "446", "stickerId": "1988"}]
    )
    say(f"   sent to {multi.recipients} users in {len(multi.chunks)} request(s)")

    say("\n[bold]6. Short-lived (v2) tokens[/]: issue with id + secret, verify, revoke")
    short = line.issue_short_lived_token()
    info = line.verify_short_lived_token(short.access_token)
    say(f"   issued {short.access_token.masked}; verify: channel {info.client_id}, {info.expires_in} s left")
    line.revoke_short_lived_token(short.access_token)
    try:
        line.verify_short_lived_token(short.access_token)
        say("   revoked; verify still accepts it")
    except LineApiError as exc:
        say(f"   revoked; verify now answers {exc.status}: {exc.error_description or exc.message}")

    say("\n[bold]7. An error, and how it reads[/]: a push to a user unknown to this channel")
    admin.call("POST", f"/_emulator/channels/{channel_id}/recipients", {"id": STRANGER, "state": "unknown"})
    try:
        line.push(STRANGER, "Are you there?")
        say("   (unexpectedly accepted)")
    except LineApiError as exc:
        _show_error(inv, exc)

    deliveries = admin.call("GET", f"/_emulator/deliveries?channel_id={channel_id}")["deliveries"]
    counts = admin.call("GET", "/_emulator/requests")["counts"]
    summary = {
        "emulator": url,
        "channel_id": channel_id,
        "deliveries": [
            {"endpoint": d["endpoint"], "to": d["to"], "messages": [_describe(m) for m in d["messages"]]}
            for d in deliveries
        ],
        "requests": [c for c in counts if not c["path"].startswith("/_emulator")],
        "seconds": round(time.monotonic() - started, 2),
    }
    say("\n[bold]8. What the emulator received[/] (GET /_emulator/deliveries and /_emulator/requests)")
    inv.table(
        "deliveries",
        ["endpoint", "to", "messages"],
        [
            [d["endpoint"], ", ".join(_short(t) for t in d["to"]), " | ".join(d["messages"])]
            for d in summary["deliveries"]
        ],
    )
    say("")
    by_path: Counter[tuple[str, str, int]] = Counter()
    for c in summary["requests"]:
        by_path[(c["method"], c["path"], c["status"])] += c["count"]
    inv.table(
        "requests",
        ["method", "path", "status", "count"],
        [[m, p, s, n] for (m, p, s), n in sorted(by_path.items())],
    )
    linepush, on_path = linepush_command()
    say(
        f"\ndone in {summary['seconds']} s. "
        f"Next: `{linepush} keys generate` for your real channel (see README.md)."
        + ("" if on_path else f" `source {Path(linepush).parent}/activate` puts `linepush` on your PATH.")
    )
    return summary


def linepush_command() -> tuple[str, bool]:
    """How to run this linepush from the current directory, and whether that is just `linepush` (on PATH).
    `make demo` runs .venv/bin/linepush without activating the virtual environment."""
    here = Path(sys.argv[0]).resolve()
    found = shutil.which("linepush")
    if here.name != "linepush" or (found is not None and Path(found).resolve() == here):
        return "linepush", True
    try:
        return str(here.relative_to(Path.cwd().resolve())), False
    except ValueError:
        return str(here), False


def _show_error(inv: Invocation, error: LineApiError) -> None:
    inv.out.print(f"   the library raises {type(error).__name__}; the CLI prints it as (exit code 1):")
    print_error(None, error, console=inv.out, indent="   ")


def _describe(message: dict[str, Any]) -> str:
    if message.get("type") == "text":
        return repr(message.get("text"))
    if message.get("type") == "sticker":
        return f"sticker {message.get('packageId')}/{message.get('stickerId')}"
    return str(message.get("type"))


def _short(user_id: str) -> str:
    return user_id[:9] + "…"


@command(app, "demo", config=False, data=False)
def demo(inv: Invocation) -> None:
    """Run the whole flow against a local LINE emulator (loopback only, a few seconds)."""
    from linepush.emulator import running

    with running() as server:
        inv.out.print(
            f"[bold]linepush demo[/]: a LINE emulator is serving on {server.url} (this process only)"
        )
        try:
            run_demo(inv, server.url)
        finally:
            inv.close()  # the clients must be closed before the server stops
