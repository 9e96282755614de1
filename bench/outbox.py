"""Outbox throughput: enqueue rate (one message per transaction, and batched) and the worker's drain rate
against nginx answering a fixed push response (the worker's own speed) and against the emulator (end to end),
each served on a loopback port in its own process.

    python bench/outbox.py            # the full run
    python bench/outbox.py --smoke    # a tiny run, to check that it works (make test)
    python bench/outbox.py --store postgresql://postgres@127.0.0.1:5432/test   # on PostgreSQL
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _user(i: int) -> str:
    return f"U{i:032x}"


def _store_for(directory: str, name: str, store_url: str | None) -> str:
    """Where one step keeps its outbox: an SQLite file in ``directory``, or a schema of its own in the
    PostgreSQL database ``store_url`` (created by the store, dropped by :func:`_drop_schemas`)."""
    if store_url is None:
        return os.path.join(directory, f"{name}.db")
    return f"{store_url}{'&' if '?' in store_url else '?'}schema={_schema(directory, name)}"


def _schema(directory: str, name: str) -> str:
    # The temporary directory's random suffix keeps concurrent runs apart.
    suffix = "".join(c for c in os.path.basename(directory) if c.isalnum())[-12:].lower()
    return f"linepush_bench_{suffix}_{name}"


def _drop_schemas(directory: str, store_url: str) -> None:
    import psycopg

    with psycopg.connect(store_url, autocommit=True) as conn:
        for name in ("enqueue", "claim", "drain", "drain_nginx"):
            conn.execute(f'DROP SCHEMA IF EXISTS "{_schema(directory, name)}" CASCADE')


def bench_enqueue(
    directory: str, single: int, batched: int, batch: int, store_url: str | None = None
) -> dict[str, float]:
    from linepush.outbox import Outbox, push_item
    from linepush.store import open_store

    with open_store(_store_for(directory, "enqueue", store_url)) as store:
        box = Outbox(store, "1234567890")
        start = time.perf_counter()
        for i in range(single):
            box.push(_user(i % 1000), f"message {i}")
        single_rate = single / (time.perf_counter() - start)
        start = time.perf_counter()
        for offset in range(0, batched, batch):
            box.enqueue(
                [
                    push_item(box.channel_id, _user(i % 1000), f"message {i}")
                    for i in range(offset, offset + batch)
                ]
            )
        batched_rate = batched / (time.perf_counter() - start)
    return {"enqueue single msgs/s": single_rate, "enqueue batched msgs/s": batched_rate}


def bench_claim_settle(
    directory: str, messages: int, batch: int, store_url: str | None = None
) -> dict[str, float]:
    """The store's own claim and settle, as the worker calls them (``batch`` rows a call), with no sending
    between: what each statement costs, the outbox's counts kept included."""
    from linepush.outbox import push_item
    from linepush.store import open_store
    from linepush.store.records import Settlement

    with open_store(_store_for(directory, "claim", store_url)) as store:
        now = time.time()
        for offset in range(0, messages, 5_000):
            items = [push_item("1234567890", _user(i % 1000), "m") for i in range(offset, offset + 5_000)]
            store.enqueue(items[: messages - offset], now - 60)
        claimed = settled = 0.0
        while True:
            start = time.perf_counter()
            rows = store.claim("bench", batch, 600.0, now)
            claimed += time.perf_counter() - start
            if not rows:
                break
            start = time.perf_counter()
            store.settle("bench", now, [Settlement(row.id, "delivered", request_id="r") for row in rows])
            settled += time.perf_counter() - start
    return {"claim msgs/s": messages / claimed, "settle msgs/s": messages / settled}


def emulator_channel(base: str) -> tuple[str, str]:
    """A new channel at the emulator: (channel id, long-lived token)."""
    from bench.stubs import admin

    created: Any = admin(base, "POST", "/_emulator/channels", {"name": "bench"})
    channel_id = created["channel_id"]
    issued: Any = admin(base, "POST", f"/_emulator/channels/{channel_id}/long-lived-token", {})
    return str(channel_id), str(issued["access_token"])


def bench_drain(
    directory: str,
    base: str,
    token: str,
    channel_id: str,
    messages: int,
    concurrency: int,
    store_url: str | None = None,
    name: str = "drain",
) -> dict[str, float]:
    from linepush.client import AsyncLineClient
    from linepush.config import Channel
    from linepush.outbox import Outbox, push_item
    from linepush.store import open_store
    from linepush.worker import WORKER_CALL_RETRY, Worker, WorkerConfig

    with open_store(_store_for(directory, name, store_url)) as store:
        box = Outbox(store, channel_id)
        for offset in range(0, messages, 1000):
            count = min(1000, messages - offset)
            box.enqueue(
                [push_item(channel_id, _user(i % 1000), f"m{i}") for i in range(offset, offset + count)]
            )

        async def drain() -> tuple[float, Any]:
            # No client-side pacing (the stubs run without rate limits too): this measures the worker.
            async with AsyncLineClient(
                Channel(channel_id), token=token, api_base=base, retry=WORKER_CALL_RETRY, rate_limits=None
            ) as client:
                worker = Worker(
                    store, client, channel_id=channel_id, config=WorkerConfig(concurrency=concurrency)
                )
                start = time.perf_counter()
                stats = await worker.run_until_idle()
                return time.perf_counter() - start, stats

        elapsed, stats = asyncio.run(drain())
        counts = store.counts(channel_id)
    if counts["delivered"] != messages:
        raise SystemExit(f"drain incomplete: {counts}")
    return {
        f"{name} msgs/s": messages / elapsed,
        f"{name} s": elapsed,
        f"{name} delivered": float(stats.delivered),
    }


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="a tiny run that only checks the bench works")
    parser.add_argument("--messages", type=int, default=20_000, help="messages to drain")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--store",
        metavar="URL",
        help="a postgresql:// database to run on (in schemas of this run's own, dropped afterwards); "
        "default: SQLite files in a temporary directory",
    )
    parser.add_argument(
        "--store-steps-only",
        action="store_true",
        help="only the steps that time the store itself (enqueue, claim, settle): no HTTP server",
    )
    args = parser.parse_args(argv)
    from bench.stubs import emulator_server, nginx_stub

    single, batched, drained = (50, 500, 200) if args.smoke else (2_000, 50_000, args.messages)
    with tempfile.TemporaryDirectory(prefix="linepush-bench-outbox-") as directory:
        try:
            results = bench_enqueue(directory, single, batched, 100 if args.smoke else 1_000, args.store)
            results |= bench_claim_settle(directory, drained, 100, args.store)
            if args.store_steps_only:
                print(json.dumps(results))
                return results
            with nginx_stub(install=not args.smoke) as stub:
                results |= bench_drain(
                    directory,
                    stub.url,
                    stub.token,
                    "1234567890",
                    drained,
                    args.concurrency,
                    args.store,
                    "drain_nginx",
                )
            with emulator_server() as base:
                channel_id, token = emulator_channel(base)
                results |= bench_drain(
                    directory, base, token, channel_id, drained, args.concurrency, args.store
                )
        finally:
            if args.store is not None:
                _drop_schemas(directory, args.store)
    if args.json:
        print(json.dumps(results))
    else:
        print(f"store: {'PostgreSQL' if args.store else 'SQLite'}")
        print(f"enqueue, one per transaction: {results['enqueue single msgs/s']:>10,.0f} messages/s")
        print(f"enqueue, batched:             {results['enqueue batched msgs/s']:>10,.0f} messages/s")
        print(f"claim, 100 a call:            {results['claim msgs/s']:>10,.0f} messages/s")
        print(f"settle, 100 a call:           {results['settle msgs/s']:>10,.0f} messages/s")
        print(
            f"drain to nginx:               {results['drain_nginx msgs/s']:>10,.0f} messages/s "
            f"({drained:,} in {results['drain_nginx s']:.2f} s, concurrency {args.concurrency})"
        )
        print(
            f"drain to the emulator:        {results['drain msgs/s']:>10,.0f} messages/s "
            f"({drained:,} in {results['drain s']:.2f} s, concurrency {args.concurrency})"
        )
    return results


if __name__ == "__main__":
    # Run from a checkout without installing: this process and the emulator's find linepush in src/.
    paths = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[1] / "src")]
    sys.path[:0] = paths
    os.environ["PYTHONPATH"] = os.pathsep.join([*paths, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    main()
