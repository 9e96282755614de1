"""A token stampede across 8 processes sharing one PostgreSQL store: exactly one issue request reaches LINE.

The single flight holds because the refresh lock is a lease row in PostgreSQL, which every process (and, in
production, every host) sees; the emulator runs on a loopback port so the processes can reach it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import Emulator, make_channel
from tests.support.pg import fresh_schema, schema_url
from tests.support.stampede import Children

from linepush.client import LineClient
from linepush.config import Channel
from linepush.keys import PrivateKey
from linepush.store import open_store

V21_ISSUE = "/oauth2/v2.1/token"
PROCESSES = 8


@pytest.fixture
def store_url() -> Iterator[str]:
    with fresh_schema() as schema:
        url = schema_url(schema)
        with open_store(url):
            pass  # migrated before the stampede: the children race for the token, not for the schema
        yield url


def stampede(emulator: Emulator, channel: Channel, store_url: str) -> list[str]:
    """Every process asks for a token at the same moment; returns every answer."""
    assert emulator.url is not None
    children = Children(channel, store_url, emulator.url, PROCESSES)
    children.go.set()
    return children.answers()


@pytest.mark.slow
def test_an_empty_postgresql_store_gets_exactly_one_token(
    live_emulator: Emulator, assertion_key: PrivateKey, tmp_path: Path, store_url: str
) -> None:
    channel = make_channel(live_emulator, assertion_key, tmp_path)

    answers = stampede(live_emulator, channel, store_url)

    assert len(answers) == PROCESSES and len(set(answers)) == 1
    assert live_emulator.admin.count(V21_ISSUE, status=200) == 1
    with open_store(store_url) as store:
        (record,) = store.list_tokens(channel.require_id(), "v2.1")
    assert record.access_token.reveal() == answers[0]


@pytest.mark.slow
def test_a_stale_token_gets_exactly_one_refresh_across_processes_and_nobody_waits(
    live_emulator: Emulator, assertion_key: PrivateKey, tmp_path: Path, store_url: str
) -> None:
    channel = make_channel(live_emulator, assertion_key, tmp_path)
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

    assert answers == [stale.access_token.reveal()] * PROCESSES
    assert live_emulator.admin.count(V21_ISSUE, status=200) - before == 1
    with open_store(store_url) as store:
        states = sorted(r.state for r in store.list_tokens(channel.require_id(), "v2.1"))
    assert states == ["active", "superseded"]
    live_emulator.admin.clear_faults()
