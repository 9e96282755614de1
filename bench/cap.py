"""Pushing at LINE's cap: 2,000 push/s held for a while with the client's rate limiter on.

Sent to nginx configured to answer 429 above 2,000 requests/s (a small burst allowed for network jitter),
so any burst over LINE's documented rate shows up as a 429; the emulator enforces the same limits but is
too slow on two cores to be the judge at this rate. Reports the achieved rate, the 429s seen and the
client's share of one core.

Beside it, in the same run: raw aiohttp sending the same pushes at the same rate with the least pacing
there is (every 5 ms, one timer starts that tick's 10 requests), so the table shows what the HTTP library
alone takes of a core on the machine measured.
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


async def raw_aiohttp(url: str, token: str, seconds: float, rate: int = 2000) -> dict[str, float]:
    import aiohttp

    from bench.push import BODY, headers

    tick = 0.005
    per_tick = round(rate * tick)
    target = url + "/v2/bot/message/push"
    sent_headers = headers(token)
    session = aiohttp.ClientSession()
    counts = {"sent": 0, "429s": 0, "other errors": 0}

    async def one() -> None:
        try:
            async with session.post(target, data=BODY, headers=sent_headers) as response:
                await response.read()
                status = response.status
                key = "sent" if status == 200 else "429s" if status == 429 else "other errors"
        except Exception:
            key = "other errors"
        counts[key] += 1

    loop = asyncio.get_running_loop()
    running: set[asyncio.Task[None]] = set()

    async def paced(until: float) -> None:
        due = loop.time()
        while due < until:
            for _ in range(per_tick):
                task = asyncio.create_task(one())
                running.add(task)
                task.add_done_callback(running.discard)
            due += tick
            await asyncio.sleep(max(due - loop.time(), 0))
        await asyncio.gather(*running)

    await paced(loop.time() + 0.5)  # warm the pool up
    counts.update({"sent": 0, "429s": 0, "other errors": 0})
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await paced(loop.time() + seconds)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    await session.close()
    return {
        "push/s": round(counts["sent"] / wall, 1),
        "429s": counts["429s"],
        "other errors": counts["other errors"],
        "share of one core": round(cpu / wall, 3),
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
        raw = asyncio.run(raw_aiohttp(stub.url, stub.token, seconds))
        figures.update({f"raw aiohttp paced: {name}": value for name, value in raw.items()})
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print("| at the cap | value |\n|---|---|")
        for name, value in figures.items():
            print(f"| {name} | {value} |")
    return figures


if __name__ == "__main__":
    main()
