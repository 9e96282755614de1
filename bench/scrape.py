"""A `/metrics` scrape of the gateway with 100,000 rows in the outbox (SQLite, and PostgreSQL when given):
the whole request, from the ASGI app in-process (the collectors read the store at each scrape). Medians."""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from linepush.store import Store

PAYLOAD = {"to": "U" + "0" * 32, "messages": [{"type": "text", "text": "hi"}]}


def scrape_ms(store: Store, rows: int, scrapes: int) -> float:
    from starlette.testclient import TestClient

    from linepush.config import Channel
    from linepush.service import create_gateway_app
    from linepush.store import NewMessage

    with store:
        batch = [NewMessage("1234567890", "push", PAYLOAD)] * 5_000
        now = time.time()
        for i in range(rows // len(batch)):
            store.enqueue(batch, now=now - 3600 + i)
        store.claim("bench", 100, 600.0, now, "1234567890")
        with TestClient(create_gateway_app(store, Channel("1234567890"))) as http:
            http.get("/metrics")
            took = []
            for _ in range(scrapes):
                started = time.perf_counter()
                assert http.get("/metrics").status_code == 200
                took.append(time.perf_counter() - started)
    return statistics.median(took) * 1e3


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--pg", help="a PostgreSQL URL to measure too (a throwaway schema is used)")
    args = parser.parse_args(argv)
    rows, scrapes = (5_000, 3) if args.smoke else (100_000, 30)
    figures: dict[str, Any] = {"rows": rows}
    from linepush.store import SQLiteStore

    with tempfile.TemporaryDirectory() as tmp:
        figures["scrape ms SQLite"] = round(scrape_ms(SQLiteStore(Path(tmp) / "scrape.db"), rows, scrapes), 2)
    if args.pg:
        try:
            figures["scrape ms PostgreSQL"] = round(_pg(args.pg, rows, scrapes), 2)
        except Exception as exc:  # no server here: say so rather than fail the whole run
            figures["scrape ms PostgreSQL"] = f"not measured: {type(exc).__name__}"
    print(json.dumps(figures, indent=2))
    return figures


def _pg(url: str, rows: int, scrapes: int) -> float:
    import uuid

    import psycopg

    from linepush.store.postgres import PostgresStore

    schema = f"bench_scrape_{uuid.uuid4().hex[:8]}"
    try:
        return scrape_ms(PostgresStore(url, schema=schema), rows, scrapes)
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
