"""A burst of notifications to one chat: `--calls` POST /api/notify calls with one gateway token, through
`linepush serve --worker` (SQLite store), against the emulator; each a process of its own on 127.0.0.1.
LINE counts a push as one message per recipient whatever its number of message objects (FACTS §3.8), so the
pushes are what the burst costs of the monthly quota.

Measured: the time from the last answer to the last delivery, how many pushes the emulator received for the
burst's messages, and whether they arrived in queue order (the outbox's id order). `--before SRC` measures
the gateway of another checkout's src folder too (main, say), in the same run, and gives the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SRC = Path(__file__).resolve().parents[1] / "src"
USER = "U" + "b" * 32


async def _notify(url: str, token: str, calls: int, concurrency: int) -> float:
    """Send the calls (``concurrency`` at a time); returns when (time.time()) the last answer came."""
    import aiohttp

    order = iter(range(calls))
    last = 0.0
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:

        async def caller() -> None:
            nonlocal last
            for i in order:
                async with http.post(f"{url}/api/notify", data={"message": f"burst {i}"}) as response:
                    body = await response.text()
                    if response.status != 200:
                        raise RuntimeError(f"/api/notify answered {response.status}: {body[:200]}")
                last = max(last, time.time())

        await asyncio.gather(*(caller() for _ in range(concurrency)))
    return last


def run(src: Path, calls: int, concurrency: int, timeout: float) -> dict[str, Any]:
    from bench.stubs import admin, emulator_server, free_port, stop, wait_for_port

    with tempfile.TemporaryDirectory() as home, emulator_server() as api:
        created: Any = admin(api, "POST", "/_emulator/channels", {"name": "burst"})
        channel_id = created["channel_id"]
        access: Any = admin(api, "POST", f"/_emulator/channels/{channel_id}/long-lived-token", {})
        db = Path(home) / "burst.db"
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("LINE_", "LINEPUSH_"))},
            "PYTHONPATH": str(src),
            "XDG_CONFIG_HOME": home,
            "LINE_CHANNEL_ID": channel_id,
            "LINE_CHANNEL_ACCESS_TOKEN": access["access_token"],
            "LINEPUSH_API_BASE": api,
            "LINEPUSH_STORE": str(db),
        }
        linepush = [sys.executable, "-m", "linepush"]
        made = subprocess.run(
            [*linepush, "gateway", "token", "create", "--to", USER, "--json"],
            env=env,
            cwd=home,
            capture_output=True,
            text=True,
            check=True,
        )
        token = json.loads(made.stdout)["token"]
        port = free_port()
        serve = subprocess.Popen(
            [*linepush, "serve", "--worker", "--port", str(port), "--rate-limit", str(calls * 10)],
            env=env,
            cwd=home,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port(port)
            started = time.time()
            last_answer = asyncio.run(_notify(f"http://127.0.0.1:{port}", token, calls, concurrency))
            deliveries: list[dict[str, Any]] = []
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                got: Any = admin(api, "GET", f"/_emulator/deliveries?channel_id={channel_id}")
                deliveries = got["deliveries"]
                if sum(len(d["messages"]) for d in deliveries) >= calls:
                    break
                time.sleep(0.05)
            cpu = _cpu_seconds(serve.pid)
        finally:
            stop(serve, 10.0)
        texts = [m["text"] for d in deliveries for m in d["messages"]]
        queued = _queue_order(src, db, env)
    delivered = len(texts)
    figures: dict[str, Any] = {
        "calls": calls,
        "concurrency": concurrency,
        "answers s": round(last_answer - started, 3),
        "delivered": delivered,
        "pushes": len(deliveries),
        "last delivery after last answer s": (
            round(max(d["time"] for d in deliveries) - last_answer, 3) if delivered >= calls else None
        ),
        "order kept": texts == [t for t in queued if t in set(texts)] and delivered == calls,
        "serve CPU s": round(cpu, 2),
    }
    return figures


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system) the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _queue_order(src: Path, db: Path, env: dict[str, str]) -> list[str]:
    """The burst's texts in queue order (outbox ids), read by the gateway's own code (its schema)."""
    script = (
        "import json, sys\n"
        "from linepush.store import open_store\n"
        "with open_store(sys.argv[1]) as s:\n"
        "    rows = s.list_messages(None, None, 1000000)\n"
        "print(json.dumps([m['text'] for r in rows for m in r.payload['messages']]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(db)], env=env, capture_output=True, text=True, check=True
    )
    texts: list[str] = json.loads(done.stdout)
    return [t.split("\n", 1)[-1].strip() for t in texts]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="a tiny run that only proves the bench works")
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=60.0, help="how long to wait for the deliveries")
    parser.add_argument("--before", type=Path, help="also measure the gateway of this linepush src folder")
    args = parser.parse_args(argv)
    calls = 20 if args.smoke else args.calls
    concurrency = min(args.concurrency, calls)
    figures = run(SRC, calls, concurrency, args.timeout)
    if args.before:
        before = run(args.before.resolve(), calls, concurrency, args.timeout)
        figures.update({f"{name} (before)": value for name, value in before.items() if name != "calls"})
        figures["pushes, after / before"] = round(figures["pushes"] / max(before["pushes"], 1), 3)
        after_s, before_s = (
            figures["last delivery after last answer s"],
            before["last delivery after last answer s"],
        )
        if after_s is not None and before_s:
            figures["last delivery after last answer, after / before"] = round(after_s / before_s, 3)
    print(json.dumps(figures, indent=2))
    return figures


if __name__ == "__main__":
    sys.path.insert(0, str(SRC.parent))
    main()
