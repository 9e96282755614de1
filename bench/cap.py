"""Pushing at LINE's cap: 2,000 push/s held for a while with the client's rate limiter on.

Sent to nginx configured to answer 429 above 2,000 requests/s (a small burst allowed for network jitter),
so any burst over LINE's documented rate shows up as a 429; the emulator enforces the same limits but is
too slow on two cores to be the judge at this rate. Reports the achieved rate, the 429s seen and the
client's share of one core.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

USER = "U" + "a" * 32


async def run(url: str, token: str, seconds: float, concurrency: int) -> dict[str, float]:
    from linepush import AsyncLineClient, RateLimitError, RetryPolicy

    client = AsyncLineClient(token=token, api_base=url, retry=RetryPolicy(max_attempts=1))
    sent = rejected = other = 0
    stop_at = 0.0

    async def worker() -> None:
        nonlocal sent, rejected, other
        while time.perf_counter() < stop_at:
            try:
                await client.push(USER, "at the cap")
                sent += 1
            except RateLimitError:
                rejected += 1
            except Exception:
                other += 1

    stop_at = time.perf_counter() + 0.5  # warm the pool up
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    sent = rejected = other = 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    stop_at = wall0 + seconds
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    await client.aclose()
    return {
        "seconds": round(wall, 2),
        "push/s": round(sent / wall, 1),
        "429s": rejected,
        "other errors": other,
        "client share of one core": round(cpu / wall, 3),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from bench.stubs import nginx_stub

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    seconds = 0.3 if args.smoke else args.seconds
    with nginx_stub(install=not args.smoke, rate=2000) as stub:
        figures: dict[str, Any] = {"stub": stub.description}
        figures.update(asyncio.run(run(stub.url, stub.token, seconds, args.concurrency)))
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print("| at the cap | value |\n|---|---|")
        for name, value in figures.items():
            print(f"| {name} | {value} |")
    return figures


if __name__ == "__main__":
    main()
