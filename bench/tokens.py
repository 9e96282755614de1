"""Token costs: a cached get, a cold v2.1 issue (key load, JWT signing, request), and cross-process pick-up.

Issuing goes to the linepush emulator on a loopback port. Run `python bench/tokens.py --help`.
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

PICKUP_CHILD = """
import time
from linepush import Channel, LineClient, TokenManager
channel = Channel.from_env()
client = LineClient(channel)
manager = TokenManager(channel, client=client)
start = time.perf_counter()
manager.get_token()
took = time.perf_counter() - start
print(took, manager.issued)
"""


def per_call_ns(func: Any, n: int) -> float:
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter_ns()
        for _ in range(n):
            func()
        best = min(best, (time.perf_counter_ns() - start) / n)
    return best


def main(argv: list[str] | None = None) -> dict[str, float]:
    from bench.stubs import emulator_channel, emulator_server
    from linepush import LineClient, TokenManager, load_private_key
    from linepush.keys import AssertionSigner

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="a tiny run that only proves the bench works")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    n = 1_000 if args.smoke else 1_000_000
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp, emulator_server() as url:
        channel = emulator_channel(url, Path(tmp))
        key_file = channel.assertion_key_file
        assert key_file is not None and channel.assertion_kid is not None
        store_url = f"sqlite:///{Path(tmp) / 'bench.db'}"

        # A cold v2.1 issue, in its parts: load the key, sign the assertion, make the request.
        start = time.perf_counter()
        loaded = load_private_key(key_file, cache=False)
        figures["key load ms"] = (time.perf_counter() - start) * 1e3
        signer = AssertionSigner(channel.require_id(), channel.assertion_kid, loaded)
        start = time.perf_counter()
        signer.assertion(time.time(), token_exp=86_400)
        figures["assertion signing ms"] = (time.perf_counter() - start) * 1e3
        with LineClient(channel, api_base=url) as client:
            manager = TokenManager(channel, store_url, client=client)
            start = time.perf_counter()
            manager.get_token()
            figures["cold v2.1 issue ms (load + sign + request + store)"] = (
                time.perf_counter() - start
            ) * 1e3

            figures["cached get_token ns"] = per_call_ns(manager.get_token, n)

            async def aget() -> float:
                calls = n // 10
                start = time.perf_counter_ns()
                for _ in range(calls):
                    await manager.aget_token()
                return (time.perf_counter_ns() - start) / calls

            figures["cached aget_token ns"] = asyncio.run(aget())
            manager.close()

        # Another process on the same store picks the token up instead of issuing one.
        env = {
            **os.environ,
            "LINE_CHANNEL_ID": channel.require_id(),
            "LINE_CHANNEL_SECRET": channel.require_secret().reveal(),
            "LINE_ASSERTION_KEY_FILE": str(key_file),
            "LINE_ASSERTION_KID": channel.assertion_kid,
            "LINEPUSH_API_BASE": url,
            "LINEPUSH_STORE": store_url,
        }
        done = subprocess.run(
            [sys.executable, "-c", PICKUP_CHILD], env=env, capture_output=True, text=True, check=True
        )
        took, issued = done.stdout.split()
        figures["cross-process pick-up ms"] = float(took) * 1e3
        figures["issues by the second process"] = float(issued)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print("| token figure | value |\n|---|---|")
        for name, value in figures.items():
            print(f"| {name} | {value:,.3f} |")
    return figures


if __name__ == "__main__":
    main()
