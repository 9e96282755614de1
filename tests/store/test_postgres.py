"""Only on PostgreSQL: URLs and schemas, lost connections, migrations, the claim's plan, batch settling."""

from __future__ import annotations

import gc
import multiprocessing
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from tests.support.pg import PG_URL, admin_connect, fresh_schema, schema_url
from tests.support.tcpproxy import TcpProxy

from linepush.errors import ConfigurationError, ValidationError
from linepush.store import NewMessage, StoreCorruptError, StoreError, StoreFullError, open_store
from linepush.store import postgres as pg_backend
from linepush.store.base import OutboxMessage, Settlement
from linepush.store.postgres import PostgresStore

PAYLOAD: dict[str, Any] = {"to": "U" + "0" * 32, "messages": [{"type": "text", "text": "hi"}]}


@pytest.fixture
def schema() -> Iterator[str]:
    with fresh_schema() as name:
        yield name


@pytest.fixture
def store(schema: str) -> Iterator[PostgresStore]:
    with PostgresStore(PG_URL, schema=schema) as opened:
        yield opened


def _with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    netloc = f"{parts.username or 'postgres'}:{password}@{parts.hostname}:{parts.port or 5432}"
    return parts._replace(netloc=netloc).geturl()


def _via(proxy: TcpProxy, url: str = PG_URL) -> str:
    parts = urlsplit(url)
    netloc = f"{parts.username or 'postgres'}@127.0.0.1:{proxy.port}"
    return parts._replace(netloc=netloc).geturl()


def _pg_target() -> tuple[str, int]:
    parts = urlsplit(PG_URL)
    return parts.hostname or "127.0.0.1", parts.port or 5432


# -- URLs, schemas, secrets


def test_open_store_takes_a_postgresql_url_and_its_schema_parameter(schema: str) -> None:
    with open_store(schema_url(schema)) as store:
        assert isinstance(store, PostgresStore)
        assert store.schema == schema
        assert store.schema_version == len(pg_backend.MIGRATIONS)
        store.enqueue([NewMessage("1000", "push", PAYLOAD)], now=1.0)
    with admin_connect() as conn:
        tables = {
            row[0] for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,))
        }
        assert {"tokens", "locks", "outbox", "rate_limits", "linepush_migrations"} <= tables
        assert conn.execute(f'SELECT count(*) FROM "{schema}".outbox').fetchone() == (1,)


def test_postgres_scheme_spelling_is_accepted(schema: str) -> None:
    url = schema_url(schema).replace("postgresql://", "postgres://", 1)
    with open_store(url) as store:
        assert isinstance(store, PostgresStore)


def test_the_password_never_shows(schema: str) -> None:
    # Trust authentication ignores the password, so the store opens and every text it makes can be checked.
    secret = "hunter2-" + uuid.uuid4().hex
    with open_store(schema_url(schema, _with_password(PG_URL, secret))) as store:
        assert secret not in repr(store)
        with admin_connect() as conn:
            conn.execute(f'DROP TABLE "{schema}".outbox CASCADE')  # the digests' table refers to it
        with pytest.raises(StoreError, match="outbox") as caught:
            store.list_messages()
        assert secret not in str(caught.value)
        store.close()
        with pytest.raises(StoreError, match="closed") as closed:
            store.counts()
        assert secret not in str(closed.value)


def test_an_unreachable_server_is_a_clear_store_error_without_the_password() -> None:
    with TcpProxy(_pg_target()) as proxy:
        proxy.cut()
        url = _with_password(_via(proxy), "hunter22")
        with pytest.raises(
            StoreError, match=r"cannot connect to the PostgreSQL store at postgresql://"
        ) as caught:
            PostgresStore(url, connect_timeout=2)
    assert "hunter22" not in str(caught.value)


@pytest.mark.parametrize("name", ['x"; DROP TABLE y; --', "1abc", "a" * 64, "", "sch-ema"])
def test_schema_names_must_be_plain(name: str) -> None:
    with pytest.raises(ConfigurationError, match="schema"):
        PostgresStore(PG_URL, schema=name)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:hun%zzter22@127.0.0.1/db",
        "postgresql://u:hunter22@127.0.0.1/db?unheard_of=1",
        "postgresql://[u:hunter22@127.0.0.1/db",
    ],
)
def test_an_unreadable_url_is_a_clear_error_without_the_password(url: str) -> None:
    with pytest.raises(
        ConfigurationError, match=r"cannot read the PostgreSQL store URL .*postgresql://user"
    ) as caught:
        open_store(url)
    assert "hunter22" not in str(caught.value) and "zzter" not in str(caught.value)


@pytest.mark.parametrize(
    "url", ["postgresql://u:hun@ter22@127.0.0.1/db", "postgresql://u@x:hun@ter22@127.0.0.1/db?schema=s"]
)
def test_an_at_sign_left_in_the_password_is_named_and_the_password_not_shown(url: str) -> None:
    """libpq would read "ter22@127.0.0.1" as the host, and its error would quote that part of the password."""
    with pytest.raises(ConfigurationError, match=r"percent-encode an '@'.* as %40") as caught:
        open_store(url)
    assert "ter22" not in str(caught.value) and "hun" not in str(caught.value)


def test_one_schema_per_url() -> None:
    with pytest.raises(ConfigurationError, match="more than one schema"):
        open_store(PG_URL + "?schema=a&schema=b")


def test_libpq_parameters_pass_through_beside_the_schema(schema: str) -> None:
    name = f"linepush-test-{uuid.uuid4().hex[:8]}"
    options = "options=-c%20statement_timeout%3D4321"
    with open_store(f"{PG_URL}?application_name={name}&schema={schema}&{options}") as store:
        assert isinstance(store, PostgresStore)
        assert store._read("SHOW statement_timeout") == [("4321ms",)]
        with admin_connect() as conn:
            found = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (name,))
            assert found.fetchone() == (1,)


# -- connections


def test_a_connection_killed_by_the_server_is_replaced_and_the_call_runs_once(schema: str) -> None:
    name = f"linepush-victim-{uuid.uuid4().hex[:8]}"
    with PostgresStore(f"{PG_URL}?application_name={name}", schema=schema) as store:
        store.enqueue([NewMessage("1000", "push", PAYLOAD)], now=1.0)
        with admin_connect() as conn:
            # With a timeout, pg_terminate_backend returns once the session is gone, not merely signalled.
            killed = conn.execute(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 10000)) FROM pg_stat_activity"
                " WHERE application_name = %s",
                (name,),
            ).fetchone()
        assert killed == (1,)

        store.enqueue([NewMessage("1000", "push", PAYLOAD)], now=2.0)

        assert store.counts()["queued"] == 2


def test_a_new_connection_killed_before_its_first_statement_is_replaced_too(
    schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sessions killed in a sweep (pg_terminate_backend of every session of the application, a pooler or a
    failover) may take the connection opened to replace a dead one before it has set its search path; the
    call failed then, instead of opening another and running once."""
    name = f"linepush-sweep-{uuid.uuid4().hex[:8]}"
    real_connect = pg_backend.psycopg.connect
    killed: list[int] = []

    def kill(application: str) -> int:
        with real_connect(PG_URL, autocommit=True, connect_timeout=5) as conn:
            row = conn.execute(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 10000)) FROM pg_stat_activity"
                " WHERE application_name = %s",
                (application,),
            ).fetchone()
        return int(row[0])

    def connect_then_die(*args: Any, **kwargs: Any) -> Any:
        conn = real_connect(*args, **kwargs)
        if not killed:
            killed.append(0)
            killed[0] = kill(name)  # the first replacement dies before it says anything
        return conn

    with PostgresStore(f"{PG_URL}?application_name={name}", schema=schema) as store:
        store.enqueue([NewMessage("1000", "push", PAYLOAD)], now=1.0)
        assert kill(name) == 1
        monkeypatch.setattr(pg_backend.psycopg, "connect", connect_then_die)

        store.enqueue([NewMessage("1000", "push", PAYLOAD)], now=2.0)

        assert killed == [1]
        assert store.counts()["queued"] == 2


def test_losing_the_server_is_a_clear_store_error_and_the_store_recovers_when_it_is_back(
    schema: str,
) -> None:
    with (
        TcpProxy(_pg_target()) as proxy,
        PostgresStore(_via(proxy), schema=schema, connect_timeout=2) as store,
    ):
        store.enqueue([NewMessage("1000", "push", PAYLOAD)], now=1.0)
        proxy.cut()

        with pytest.raises(StoreError, match=r"PostgreSQL store at postgresql://postgres@127\.0\.0\.1"):
            store.claim("w", 10, 30.0, now=2.0)
        with pytest.raises(StoreError, match="cannot connect"):
            store.counts()

        proxy.restore()
        (row,) = store.claim("w", 10, 30.0, now=3.0)
        assert row.attempts == 1  # the claim that failed never happened


def test_every_thread_has_its_own_connection(store: PostgresStore) -> None:
    import threading

    pids: list[int] = []

    def work() -> None:
        pids.append(store._read("SELECT pg_backend_pid()")[0][0])
        pids.append(store._read("SELECT pg_backend_pid()")[0][0])

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(pids)) == 3


def _use_in_child(store: PostgresStore, out: Any) -> None:
    store.enqueue([NewMessage("1000", "push", PAYLOAD)], now=5.0)
    out.put(store.counts()["queued"])
    store.close()
    # What an exiting interpreter would do: free every object, inherited connections included.
    del store
    gc.collect()


def test_a_forked_child_opens_its_own_connection_and_leaves_the_parents_alone(store: PostgresStore) -> None:
    store.enqueue([NewMessage("1000", "push", PAYLOAD)], now=1.0)
    session = store._read("SELECT pg_backend_pid()")
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    child = ctx.Process(target=_use_in_child, args=(store, out))
    child.start()
    assert out.get(timeout=30) == 2
    child.join(30)
    assert child.exitcode == 0
    # The parent's session survived the child's close and exit (a new one would have another pid).
    assert store._read("SELECT pg_backend_pid()") == session
    assert store.counts()["queued"] == 2


def test_transactions_are_not_left_open_between_calls(store: PostgresStore) -> None:
    store.counts()
    pid = store._read("SELECT pg_backend_pid()")[0][0]
    with admin_connect() as conn:
        found = conn.execute("SELECT state, application_name FROM pg_stat_activity WHERE pid = %s", (pid,))
        assert found.fetchone() == ("idle", "linepush")


# -- migrations


def test_migrations_are_recorded_once_each(store: PostgresStore, schema: str) -> None:
    with admin_connect() as conn:
        versions = [row[0] for row in conn.execute(f'SELECT version FROM "{schema}".linepush_migrations')]
    assert sorted(versions) == list(range(1, len(pg_backend.MIGRATIONS) + 1))
    with PostgresStore(PG_URL, schema=schema) as again:
        assert again.schema_version == len(pg_backend.MIGRATIONS)


def test_a_schema_newer_than_the_code_is_refused(store: PostgresStore, schema: str) -> None:
    with admin_connect() as conn:
        conn.execute(f'INSERT INTO "{schema}".linepush_migrations (version) VALUES (99)')
    with pytest.raises(ConfigurationError, match="schema version 99, newer"):
        PostgresStore(PG_URL, schema=schema)


# -- the claim's plan


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


@pytest.fixture
def big_outbox(store: PostgresStore, schema: str) -> PostgresStore:
    """200,000 rows as a busy outbox has them: most delivered long ago, 2,000 queued, 200 in flight."""
    with admin_connect() as conn:
        conn.execute(
            f'INSERT INTO "{schema}".outbox (channel_id, kind, payload, retry_key, state, attempts,'
            " not_before, lease_owner, lease_expires_at, created_at, updated_at)"
            " SELECT (1000 + n % 10)::text, 'push', '{}'::json, gen_random_uuid()::text,"
            " CASE WHEN n % 100 = 0 THEN 'queued' WHEN n % 1000 = 1 THEN 'sending' ELSE 'delivered' END,"
            " 1, n, CASE WHEN n % 1000 = 1 THEN 'w' END, CASE WHEN n % 1000 = 1 THEN n + 60 END, n, n"
            " FROM generate_series(1, 200000) AS n"
        )
        conn.execute(f'ANALYZE "{schema}".outbox')
    return store


@pytest.mark.parametrize(
    ("channel", "index"),
    [(None, "outbox_queued"), ("1000", "outbox_queued_by_channel")],
    ids=["all-channels", "one-channel"],
)
def test_claim_walks_its_index_and_stops_at_the_limit(
    big_outbox: PostgresStore, schema: str, channel: str | None, index: str
) -> None:
    # The rows a claim considers (it locks them here), as SQLStore._claim_candidates reads them.
    sql = pg_backend._percent_marks(
        pg_backend.CLAIM_CANDIDATES_SQL.format(channel="" if channel is None else " AND channel_id = ?")
    )
    now, limit, by = 300_000.0, 50, [] if channel is None else [channel]
    params = [now, *by, limit, now, *by, limit, limit]
    with admin_connect() as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        # EXPLAIN ANALYZE runs the claim, with the statistics a real outbox has; then it is undone.
        with conn.transaction(force_rollback=True):
            (plan,) = conn.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params).fetchone()
    nodes = list(_nodes(plan[0]["Plan"]))

    assert "Seq Scan" not in {node["Node Type"] for node in nodes}
    (walk,) = [node for node in nodes if node.get("Index Name") == index]
    assert walk["Node Type"] == "Index Scan"
    # Of the 2,000 queued rows (200 of this channel) it read only as many as the limit, in due order.
    assert walk["Actual Rows"] == 50
    assert [node.get("Index Name") for node in nodes].count("outbox_leases") == 1
    claimed = big_outbox.claim("w2", 100, 30.0, now=300_000.0)
    assert len(claimed) == 100
    assert [m.not_before for m in claimed] == sorted(m.not_before for m in claimed)


# -- batch settling


def test_settle_writes_many_outcomes_as_the_single_calls_would(store: PostgresStore) -> None:
    rows = store.enqueue([NewMessage("1000", "push", PAYLOAD) for _ in range(5)], now=100.0)
    store.claim("w1", 4, 30.0, now=100.0)
    a, b, c, d, e = (r.id for r in rows)

    ok = store.settle(
        "w1",
        110.0,
        [
            Settlement(a, "delivered", "rid-a", {"sentMessages": []}),
            Settlement(b, "retry", error={"status": 500}, not_before=200.0),
            Settlement(c, "failed", error={"status": 400}),
            Settlement(d, "retry", error={"status": 429}),
            Settlement(e, "delivered", "rid-e", {}),  # never claimed
        ],
    )

    assert ok == [True, True, True, True, False]
    got = {i: _row(store, i) for i in (a, b, c, d, e)}
    assert (got[a].state, got[a].request_id, got[a].result) == ("delivered", "rid-a", {"sentMessages": []})
    assert (got[a].delivered_at, got[a].lease_owner) == (110.0, None)
    assert (got[b].state, got[b].not_before, got[b].last_error) == ("queued", 200.0, {"status": 500})
    assert (got[c].state, got[c].last_error) == ("failed", {"status": 400})
    assert (got[d].state, got[d].not_before) == ("queued", 110.0)
    assert got[e].state == "queued"


def _row(store: PostgresStore, message_id: int) -> OutboxMessage:
    row = store.get_message(message_id)
    assert row is not None
    return row


def test_settle_needs_a_live_lease_like_the_single_calls(store: PostgresStore) -> None:
    rows = store.enqueue([NewMessage("1000", "push", PAYLOAD) for _ in range(2)], now=100.0)
    store.claim("w1", 2, 30.0, now=100.0)
    assert store.settle("w2", 110.0, [Settlement(rows[0].id, "delivered")]) == [False]
    assert store.settle("w1", 130.0, [Settlement(rows[1].id, "delivered")]) == [False]
    assert store.settle("w1", 110.0, []) == []
    with pytest.raises(ValidationError, match="delivered, retry or failed") as caught:
        store.settle("w1", 110.0, [Settlement(rows[0].id, "delivered"), Settlement(rows[1].id, "lost")])  # type: ignore[arg-type]
    assert caught.value.property == "items[1].outcome"
    with pytest.raises(ValidationError, match="Settlement"):
        store.settle("w1", 110.0, [rows[0].id])  # type: ignore[list-item]
    assert store.counts()["sending"] == 2


def test_settle_applies_a_row_named_twice_once_as_the_single_calls_would(store: PostgresStore) -> None:
    (row,) = store.enqueue([NewMessage("1000", "push", PAYLOAD)], now=100.0)
    store.claim("w1", 1, 30.0, now=100.0)
    ok = store.settle(
        "w1", 110.0, [Settlement(row.id, "failed", error={"n": 1}), Settlement(row.id, "delivered")]
    )
    assert ok == [True, False]
    got = store.get_message(row.id)
    assert got is not None and (got.state, got.last_error) == ("failed", {"n": 1})


def test_linepush_store_may_name_a_postgresql_store(schema: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINEPUSH_STORE", schema_url(schema))
    with open_store() as store:
        assert isinstance(store, PostgresStore) and store.schema == schema


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.enqueue([NewMessage("1000", "push", {"text": "a\ud800b"})], now=1.0),
        lambda s: s.enqueue([NewMessage("10\x0000", "push", PAYLOAD)], now=1.0),
        lambda s: s.save_token("1000", "v2.1", "token\ud800", None, 1.0, 2.0),
        lambda s: s.save_token("1000", "v2.1", "tok\x00en", None, 1.0, 2.0),
        lambda s: s.try_lock("refresh\x00", "a", 1.0, 1.0),
    ],
    ids=["surrogate-payload", "nul-channel", "surrogate-token", "nul-token", "nul-lock"],
)
def test_text_the_database_cannot_hold_is_a_validation_error_and_stores_nothing(
    store: PostgresStore, call: Any
) -> None:
    with pytest.raises(ValidationError, match="cannot be stored") as caught:
        call(store)
    assert "token" not in str(caught.value) and "\ud800" not in str(caught.value)
    assert sum(store.counts().values()) == 0 and store.list_tokens("1000") == []


def test_webhooks_recording_the_same_ids_at_once_neither_deadlock_nor_lose_a_sighting(
    store: PostgresStore,
) -> None:
    import threading

    from linepush.service.store import RecipientSighting, gateway_store

    ids = [f"U{n:032x}" for n in range(20)]
    barrier = threading.Barrier(8)
    failures: list[BaseException] = []

    def record(n: int) -> None:
        # Each thread names the same ids in another order (the order that deadlocks naive upserts).
        order = ids[n:] + ids[:n] if n % 2 else list(reversed(ids))
        barrier.wait()
        try:
            for _ in range(5):
                gateway_store(store).record_recipients(
                    "1000", [RecipientSighting(i, "message") for i in order], now=100.0
                )
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=record, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert {r.recipient_id: r.sightings for r in gateway_store(store).list_recipients("1000")} == {
        i: 40 for i in ids
    }


# -- failures named for what they are


@pytest.mark.parametrize(
    ("errcode", "expected", "retryable"),
    [("disk_full", StoreFullError, True), ("data_corrupted", StoreCorruptError, False)],
)
def test_server_failures_are_named_for_what_they_are(
    store: PostgresStore, schema: str, errcode: str, expected: type[StoreError], retryable: bool
) -> None:
    with admin_connect() as conn:
        # The server's own error, as it raises it when its disk is full or a page fails its checksum.
        conn.execute(
            f'CREATE FUNCTION "{schema}".fail() RETURNS trigger LANGUAGE plpgsql AS '
            f"$$BEGIN RAISE EXCEPTION 'simulated' USING ERRCODE = '{errcode}'; END$$"
        )
        conn.execute(
            f'CREATE TRIGGER fail BEFORE INSERT ON "{schema}".outbox'
            f' FOR EACH ROW EXECUTE FUNCTION "{schema}".fail()'
        )
    with pytest.raises(expected) as caught:
        store.enqueue([NewMessage("1000", "push", PAYLOAD)], now=1.0)
    assert caught.value.retryable is retryable
    assert store.counts()["queued"] == 0


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"path": "/linepush_no_such_database"}, 'database "linepush_no_such_database" does not exist'),
        ({"netloc_user": "linepush_no_such_role"}, 'role "linepush_no_such_role" does not exist'),
        ({"query": "sslmode=bogus"}, "sslmode"),
    ],
)
def test_a_wrong_setting_is_a_configuration_error_not_a_transient_one(
    change: dict[str, str], says: str
) -> None:
    """What only a change of settings mends is not worth retrying (exit 2), unlike a server that is down."""
    parts = urlsplit(PG_URL)
    netloc = parts.netloc
    if "netloc_user" in change:
        netloc = change["netloc_user"] + "@" + netloc.rsplit("@", 1)[-1]
    url = parts._replace(
        netloc=netloc, path=change.get("path", parts.path), query=change.get("query", parts.query)
    ).geturl()
    with pytest.raises(ConfigurationError, match="cannot connect to the PostgreSQL store") as caught:
        PostgresStore(url, connect_timeout=5)
    assert says in str(caught.value)
    assert isinstance(caught.value, StoreError) and not caught.value.retryable


def test_the_command_line_calls_a_missing_database_a_usage_error(tmp_path: Path) -> None:
    import subprocess
    import sys

    url = urlsplit(PG_URL)._replace(path="/linepush_no_such_database").geturl()
    done = subprocess.run(
        [sys.executable, "-m", "linepush", "queue", "status", "--store", url],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "XDG_CONFIG_HOME": str(tmp_path), "XDG_STATE_HOME": str(tmp_path)},
    )
    assert done.returncode == 2, done.stderr
    assert 'database "linepush_no_such_database" does not exist' in done.stderr
    assert "transient" not in done.stderr
