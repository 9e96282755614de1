"""Push throughput: linepush's clients beside the official SDK and raw HTTP clients, on the same stub.

For each client and concurrency: requests/s, client CPU µs per request (this process's CPU time only: the
stub runs in another process) and p50 / p99 latency. Run `python bench/push.py --help`.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import statistics
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

USER = "U4af4980629" + "0" * 22
TEXT = "Hello, world1"
BODY = json.dumps({"to": USER, "messages": [{"type": "text", "text": TEXT}]}).encode()


def headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


@dataclass
class Result:
    client: str
    target: str
    concurrency: int
    requests: int
    seconds: float
    rps: float
    cpu_us: float
    p50_ms: float
    p99_ms: float
    errors: int


def summarize(
    client: str, target: str, concurrency: int, latencies: list[float], wall: float, cpu: float, errors: int
) -> Result:
    n = len(latencies)
    ordered = sorted(latencies)
    p99 = ordered[min(n - 1, int(n * 0.99))] if n else 0.0
    return Result(
        client,
        target,
        concurrency,
        n,
        round(wall, 3),
        round(n / wall, 1) if wall else 0.0,
        round(cpu / n * 1e6, 1) if n else 0.0,
        round(statistics.median(ordered) * 1e3, 3) if n else 0.0,
        round(p99 * 1e3, 3),
        errors,
    )


async def run_async(
    make: Callable[[], Awaitable[tuple[Callable[[], Awaitable[Any]], Callable[[], Awaitable[None]]]]],
    concurrency: int,
    duration: float,
    warmup: float,
) -> tuple[list[float], float, float, int]:
    send, close = await make()
    latencies: list[float] = []
    errors = 0
    measuring = False
    stop_at = 0.0

    async def worker() -> None:
        nonlocal errors
        while True:
            start = time.perf_counter()
            if start >= stop_at:
                return
            try:
                await send()
            except Exception:
                errors += 1
                continue
            if measuring:
                latencies.append(time.perf_counter() - start)

    stop_at = time.perf_counter() + warmup
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    measuring = True
    cpu0, wall0 = time.process_time(), time.perf_counter()
    stop_at = wall0 + duration
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    await close()
    return latencies, wall, cpu, errors


def run_threads(
    make: Callable[[], tuple[Callable[[], Any], Callable[[], None]]],
    threads: int,
    duration: float,
    warmup: float,
) -> tuple[list[float], float, float, int]:
    send, close = make()
    lock = threading.Lock()
    latencies: list[float] = []
    errors = [0]

    def worker(until: float, record: bool) -> None:
        mine: list[float] = []
        while True:
            start = time.perf_counter()
            if start >= until:
                break
            try:
                send()
            except Exception:
                errors[0] += 1
                continue
            if record:
                mine.append(time.perf_counter() - start)
        with lock:
            latencies.extend(mine)

    with ThreadPoolExecutor(threads) as pool:
        until = time.perf_counter() + warmup
        list(pool.map(lambda _: worker(until, False), range(threads)))
        cpu0, wall0 = time.process_time(), time.perf_counter()
        until = wall0 + duration
        list(pool.map(lambda _: worker(until, True), range(threads)))
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    close()
    return latencies, wall, cpu, errors[0]


# -- the clients -------------------------------------------------------------------------------------------


def linepush_async(url: str, token: str) -> Callable[[], Awaitable[Any]]:
    async def make() -> Any:
        from linepush import AsyncLineClient

        client = AsyncLineClient(token=token, api_base=url, rate_limits=None)
        return (lambda: client.push(USER, TEXT)), client.aclose

    return make


def aiohttp_raw(url: str, token: str) -> Callable[[], Awaitable[Any]]:
    async def make() -> Any:
        import aiohttp

        session = aiohttp.ClientSession()
        target = url + "/v2/bot/message/push"

        async def send() -> None:
            async with session.post(target, data=BODY, headers=headers(token)) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(response.status)

        return send, session.close

    return make


def pyreqwest_raw(url: str, token: str) -> Callable[[], Awaitable[Any]]:
    """Rust's reqwest and hyper through pyreqwest."""

    async def make() -> Any:
        from pyreqwest.client import ClientBuilder

        client = ClientBuilder().max_connections(256).no_proxy().build()
        target = url + "/v2/bot/message/push"
        sent = headers(token)

        async def send() -> None:
            response = await client.post(target).headers(sent).body_bytes(BODY).build().send()
            await response.bytes()
            if response.status != 200:
                raise RuntimeError(response.status)

        return send, client.close

    return make


def requests_like(
    url: str, token: str, open_session: Callable[[], Any], close: str, body: str = "data"
) -> Callable[[], Awaitable[Any]]:
    """A client whose ``await session.post(url, <body>=…, headers=…)`` returns a whole response with
    ``status_code`` (curl_cffi, niquests, httpx)."""

    async def make() -> Any:
        session = open_session()
        target = url + "/v2/bot/message/push"

        async def send() -> None:
            response = await session.post(target, headers=headers(token), **{body: BODY})
            if response.status_code != 200:
                raise RuntimeError(response.status_code)

        return send, getattr(session, close)

    return make


def curl_cffi_raw(url: str, token: str) -> Callable[[], Awaitable[Any]]:
    """libcurl through curl_cffi: one AsyncSession (its own multi handle and connection cache)."""

    def session() -> Any:
        from curl_cffi.requests import AsyncSession

        return AsyncSession(max_clients=256, trust_env=False)

    return requests_like(url, token, session, "close")


def niquests_raw(url: str, token: str) -> Callable[[], Awaitable[Any]]:
    """niquests (on urllib3-future): one AsyncSession."""

    def session() -> Any:
        import niquests

        opened = niquests.AsyncSession(pool_maxsize=256)
        opened.trust_env = False
        return opened

    return requests_like(url, token, session, "close")


def httpx_raw(url: str, token: str) -> Callable[[], Awaitable[Any]]:
    def session() -> Any:
        import httpx

        return httpx.AsyncClient(limits=httpx.Limits(max_connections=100))

    return requests_like(url, token, session, "aclose", body="content")


def sdk_async(url: str, token: str) -> Callable[[], Awaitable[Any]]:
    async def make() -> Any:
        from linebot.v3.messaging import (
            AsyncApiClient,
            AsyncMessagingApi,
            Configuration,
            PushMessageRequest,
            TextMessage,
        )

        api_client = AsyncApiClient(Configuration(host=url, access_token=token))
        api = AsyncMessagingApi(api_client)

        async def send() -> None:
            await api.push_message(PushMessageRequest(to=USER, messages=[TextMessage(text=TEXT)]))

        return send, api_client.close

    return make


def linepush_sync(url: str, token: str) -> Callable[[], Any]:
    def make() -> Any:
        from linepush import LineClient

        client = LineClient(token=token, api_base=url, rate_limits=None, pool_size=64)
        return (lambda: client.push(USER, TEXT)), client.close

    return make


def urllib3_raw(url: str, token: str) -> Callable[[], Any]:
    def make() -> Any:
        import urllib3

        pool = urllib3.PoolManager(maxsize=64)
        target = url + "/v2/bot/message/push"

        def send() -> None:
            response = pool.request("POST", target, body=BODY, headers=headers(token))
            if response.status != 200:
                raise RuntimeError(response.status)

        return send, pool.clear

    return make


def sdk_sync(url: str, token: str) -> Callable[[], Any]:
    def make() -> Any:
        from linebot.v3.messaging import (
            ApiClient,
            Configuration,
            MessagingApi,
            PushMessageRequest,
            TextMessage,
        )

        api_client = ApiClient(Configuration(host=url, access_token=token))
        api = MessagingApi(api_client)

        def send() -> None:
            api.push_message(PushMessageRequest(to=USER, messages=[TextMessage(text=TEXT)]))

        return send, api_client.close

    return make


ASYNC_CLIENTS = {
    "linepush AsyncLineClient": linepush_async,
    "raw aiohttp": aiohttp_raw,
    "raw curl_cffi": curl_cffi_raw,
    "raw pyreqwest": pyreqwest_raw,
    "raw niquests": niquests_raw,
    "official SDK async": sdk_async,
    "raw httpx": httpx_raw,
}
#: The candidate libraries, from the `bench` extra: a row says "not installed" rather than fail without it.
OPTIONAL = {"raw curl_cffi": "curl_cffi", "raw pyreqwest": "pyreqwest", "raw niquests": "niquests"}
SYNC_CLIENTS = {
    "linepush LineClient": linepush_sync,
    "raw urllib3": urllib3_raw,
    "official SDK sync": sdk_sync,
}


def measure(
    url: str,
    token: str,
    target: str,
    clients: list[str],
    concurrencies: list[int],
    duration: float,
    warmup: float,
    threads: list[int],
) -> list[Result]:
    results: list[Result] = []
    for name in clients:
        if name in OPTIONAL and importlib.util.find_spec(OPTIONAL[name]) is None:
            continue
        if name in ASYNC_CLIENTS:
            for c in concurrencies:
                lat, wall, cpu, err = asyncio.run(
                    run_async(ASYNC_CLIENTS[name](url, token), c, duration, warmup)
                )
                results.append(summarize(name, target, c, lat, wall, cpu, err))
        else:
            for t in threads:
                lat, wall, cpu, err = run_threads(SYNC_CLIENTS[name](url, token), t, duration, warmup)
                label = f"{name} ({t} thread{'s' if t > 1 else ''})"
                results.append(summarize(label, target, t, lat, wall, cpu, err))
    return results


def main(argv: list[str] | None = None) -> list[Result]:
    from bench.stubs import emulator_server, emulator_token, nginx_stub

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="a tiny run that only proves the bench works")
    parser.add_argument("--target", choices=["nginx", "emulator", "both"], default="emulator")
    parser.add_argument("--clients", nargs="*", default=["linepush AsyncLineClient"])
    parser.add_argument("--concurrency", type=int, nargs="*", default=[64])
    parser.add_argument("--threads", type=int, nargs="*", default=[1])
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    if args.smoke:
        args.duration, args.warmup = 0.1, 0.02
        args.concurrency = [min(c, 4) for c in args.concurrency]
    results: list[Result] = []
    targets = ["nginx", "emulator"] if args.target == "both" else [args.target]
    for target in targets:
        if target == "nginx":
            with nginx_stub(install=not args.smoke) as stub:
                results += measure(
                    stub.url,
                    stub.token,
                    stub.description,
                    args.clients,
                    args.concurrency,
                    args.duration,
                    args.warmup,
                    args.threads,
                )
        else:
            with emulator_server() as url:
                results += measure(
                    url,
                    emulator_token(url),
                    "emulator",
                    args.clients,
                    args.concurrency,
                    args.duration,
                    args.warmup,
                    args.threads,
                )
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=2))
    else:
        columns = [
            "client",
            "target",
            "concurrency",
            "requests/s",
            "client CPU µs/request",
            "p50 ms",
            "p99 ms",
        ]
        print("| " + " | ".join([*columns, "errors"]) + " |")
        print("|---|---|---|---|---|---|---|---|")
        for r in results:
            print(
                f"| {r.client} | {r.target} | {r.concurrency} | {r.rps:,.0f} | {r.cpu_us:,.0f} "
                f"| {r.p50_ms} | {r.p99_ms} | {r.errors} |"
            )
    return results


if __name__ == "__main__":
    main()
