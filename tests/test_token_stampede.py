"""Many callers at once: 200 asyncio tasks, 20 threads and 4 processes share one store and one emulator.

On an empty store exactly one token is issued; with a stale token exactly one refresh runs and nobody waits
for it. The emulator runs on a loopback port so the other processes can reach it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from linepush.client import LineClient
from linepush.config import Channel
from linepush.keys import PrivateKey
from linepush.store import open_store
from linepush.tokens import TokenManager
from tests.conftest import Emulator, make_channel
from tests.support.stampede import Children

V21_ISSUE = "/oauth2/v2.1/token"
TASKS, THREADS, PROCESSES = 200, 20, 4


def stampede(emulator: Emulator, channel: Channel, store_url: str) -> list[str]:
    """Everyone asks for a token at the same moment; returns every answer."""
    assert emulator.url is not None
    children = Children(channel, store_url, emulator.url, PROCESSES)

    client = LineClient(channel, api_base=emulator.url)
    manager = TokenManager(channel, store_url, client=client, refresh_window=900)
    answers: list[str] = []
    lock = threading.Lock()
    start = threading.Event()

    def in_thread() -> None:
        start.wait()
        token = manager.get_token()
        with lock:
            answers.append(token)

    async def in_tasks() -> list[str]:
        return list(await asyncio.gather(*(manager.aget_token() for _ in range(TASKS))))

    threads = [threading.Thread(target=in_thread) for _ in range(THREADS)]
    for t in threads:
        t.start()
    children.go.set()
    start.set()
    answers.extend(asyncio.run(in_tasks()))
    for t in threads:
        t.join(30)
    answers.extend(children.answers())
    manager.join_background(30)
    manager.close()
    client.close()
    assert len(answers) == TASKS + THREADS + PROCESSES
    return answers


@pytest.mark.slow
def test_an_empty_store_gets_exactly_one_token(
    live_emulator: Emulator, assertion_key: PrivateKey, tmp_path: Path
) -> None:
    channel = make_channel(live_emulator, assertion_key, tmp_path)
    answers = stampede(live_emulator, channel, f"sqlite:///{tmp_path / 'shared.db'}")
    assert len(set(answers)) == 1
    assert live_emulator.admin.count(V21_ISSUE, status=200) == 1


@pytest.mark.slow
def test_a_stale_token_gets_exactly_one_refresh_and_nobody_waits(
    live_emulator: Emulator, assertion_key: PrivateKey, tmp_path: Path
) -> None:
    channel = make_channel(live_emulator, assertion_key, tmp_path)
    store_url = f"sqlite:///{tmp_path / 'shared.db'}"
    with LineClient(channel, api_base=live_emulator.url) as issuer:
        stale = issuer.issue_v21_token(token_exp=3600)
    now = time.time()
    with open_store(store_url) as store:
        # Issued 50 minutes ago as far as the store knows: inside the 15-minute refresh window, still valid.
        store.save_token(
            channel.require_id(), "v2.1", stale.access_token.reveal(), stale.key_id, now - 3000, now + 600
        )
    # The refresh is slow: anyone who waited for it would get the new token instead of the stale one.
    live_emulator.admin.fault(path=V21_ISSUE, mode="latency", latency_ms=300, count=5)
    before = live_emulator.admin.count(V21_ISSUE, status=200)
    answers = stampede(live_emulator, channel, store_url)
    assert set(answers) == {stale.access_token.reveal()}
    assert live_emulator.admin.count(V21_ISSUE, status=200) - before == 1
    with open_store(store_url) as store:
        states = sorted(r.state for r in store.list_tokens(channel.require_id(), "v2.1"))
    assert states == ["active", "superseded"]
    live_emulator.admin.clear_faults()
