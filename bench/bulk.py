"""A 100,000-recipient announcement: multicast batching at LINE's 200 requests/s multicast limit.

Sent to nginx answering every request at once, so the figures are the client's: wall time (mostly the
limiter's pacing), requests made, client CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time


async def run(url: str, token: str, recipients: int) -> dict[str, float]:
    from linepush import AsyncLineClient

    ids = [f"U{i:032x}" for i in range(recipients)]
    client = AsyncLineClient(token=token, api_base=url)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    result = await client.multicast(ids, "Service notice: maintenance tonight at 23:00.")
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    await client.aclose()
    return {
        "recipients": result.recipients,
        "requests": len(result.chunks),
        "wall s": round(wall, 3),
        "client CPU s": round(cpu, 3),
    }


def main(argv: list[str] | None = None) -> dict[str, float]:
    from bench.stubs import nginx_stub

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with nginx_stub(install=not args.smoke) as stub:
        figures = asyncio.run(run(stub.url, stub.token, 1_000 if args.smoke else args.recipients))
    figures_out = {"stub": stub.description, **figures}
    if args.json:
        print(json.dumps(figures_out, indent=2))
    else:
        print("| bulk multicast | value |\n|---|---|")
        for name, value in figures_out.items():
            print(f"| {name} | {value} |")
    return figures


if __name__ == "__main__":
    main()
