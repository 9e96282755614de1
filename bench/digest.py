"""Digests against an alert storm: N LINE Notify calls to one chat through `linepush serve --worker`, to the
emulator, with a digest window on the token, against the same N calls through a token without one (the
baseline: one push per call) in the same process and run. Reported: the pushes each way, and whether every
notification's text arrived, once and in order.

The window is real time (the worker sends a digest when it closes), so the run lasts at least one window:
30 s by default, as a user would set it; ``--window`` shortens it (the smoke run uses 1 s).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.stubs import admin, emulator_channel, emulator_server, free_port, wait_for_port

SRC = Path(__file__).resolve().parents[1] / "src"
DIGESTED = "U" + "d1" * 16
BASELINE = "U" + "b0" * 16
_NUMBER = re.compile(r"alert (\d{4}):")


def _texts(deliveries: list[dict[str, Any]]) -> list[int]:
    return [
        int(n)
        for d in deliveries
        for m in d["messages"]
        if m.get("type") == "text"
        for n in _NUMBER.findall(m["text"])
    ]


def run(calls: int, window: float) -> dict[str, Any]:
    import httpx

    from linepush.service import create_gateway_token
    from linepush.service.store import gateway_store
    from linepush.store import SQLiteStore

    with tempfile.TemporaryDirectory() as home, emulator_server() as url:
        channel = emulator_channel(url, Path(home))
        assert channel.channel_id is not None
        db = Path(home) / "bench.db"
        with SQLiteStore(db) as store:
            digested, record = create_gateway_token(store, channel.channel_id, DIGESTED, None, time.time())
            gateway_store(store).set_gateway_token_digest(record.id, window)
            baseline, _ = create_gateway_token(store, channel.channel_id, BASELINE, None, time.time())
        port = free_port()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("LINE_", "LINEPUSH_"))},
            "PYTHONPATH": str(SRC),
            "LINEPUSH_STORE": str(db),
            "LINE_CHANNEL_ID": channel.channel_id,
            "LINE_CHANNEL_SECRET": channel.require_secret().reveal(),
            "LINE_ASSERTION_KEY_FILE": str(channel.assertion_key_file),
            "LINE_ASSERTION_KID": str(channel.assertion_kid),
            "XDG_CONFIG_HOME": home,
            "XDG_STATE_HOME": home,
        }
        command = [
            sys.executable, "-m", "linepush", "serve", "--worker", "--port", str(port), "--api-base", url,
            "--rate-limit", str(10 * calls), "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip
        serve = subprocess.Popen(
            command, env=env, cwd=home, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            wait_for_port(port)
            timings: dict[str, float] = {}
            refused = 0
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
                for name, token in (("digest", digested), ("baseline", baseline)):
                    started = time.perf_counter()
                    for n in range(calls):
                        answer = http.post(
                            "/api/notify",
                            data={"message": f"alert {n:04d}: disk usage above 90% on db{n % 7}"},
                            headers={"Authorization": f"Bearer {token.reveal()}"},
                        )
                        refused += answer.status_code != 200
                    timings[name] = time.perf_counter() - started
            deadline = time.monotonic() + window + 120
            with SQLiteStore(db) as store:
                while True:
                    counts = store.counts()
                    if not counts["queued"] and not counts["sending"]:
                        break
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"the outbox did not drain: {counts}")
                    time.sleep(0.2)
        finally:
            serve.terminate()
            _, errors = serve.communicate(timeout=20)
        if serve.returncode not in (0, -15):
            raise RuntimeError(f"linepush serve failed: {errors.decode()[-500:]}")
        got: Any = admin(url, "GET", f"/_emulator/deliveries?channel_id={channel.channel_id}&to={DIGESTED}")
        base: Any = admin(url, "GET", f"/_emulator/deliveries?channel_id={channel.channel_id}&to={BASELINE}")
    pushes, baseline_pushes = len(got["deliveries"]), len(base["deliveries"])
    return {
        "calls": calls,
        "window s": window,
        "refused calls": refused,
        "pushes with digest": pushes,
        "pushes without (baseline)": baseline_pushes,
        "pushes ratio to baseline": round(pushes / baseline_pushes, 4) if baseline_pushes else None,
        "every text arrived once, in order": _texts(got["deliveries"]) == list(range(calls)),
        "baseline texts arrived": _texts(base["deliveries"]) == list(range(calls)),
        "notify calls/s with digest": round(calls / timings["digest"], 1),
        "notify calls/s without": round(calls / timings["baseline"], 1),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--window", type=float, default=30.0, help="the digest window, in seconds")
    args = parser.parse_args(argv)
    figures = run(20, 1.0) if args.smoke else run(args.calls, args.window)
    print("| digest | value |\n|---|---|")
    for name, value in figures.items():
        print(f"| {name} | {value} |")
    return figures


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
