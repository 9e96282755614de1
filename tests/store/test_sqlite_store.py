"""SQLite specifics: a private file, WAL with synchronous=FULL, migrations, locking and connections."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from linepush.errors import ConfigurationError
from linepush.store import NewMessage, SQLiteStore, StoreCorruptError, StoreError, StoreFullError
from linepush.store import sqlite as sqlite_backend


def _push(text: str) -> NewMessage:
    return NewMessage("1000", "push", {"to": "U" + "0" * 32, "messages": [{"type": "text", "text": text}]})


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def test_store_file_and_sidecars_are_private_even_with_a_permissive_umask(
    tmp_path: Path, permissive_umask: None
) -> None:
    path = tmp_path / "state" / "linepush" / "linepush.db"
    with SQLiteStore(path) as store:
        store.enqueue([_push("a")], now=1.0)
        assert _mode(path.parent) == 0o700
        assert _mode(path) == 0o600
        sidecars = [path.with_name(path.name + suffix) for suffix in ("-wal", "-shm")]
        assert all(p.exists() for p in sidecars)
        assert [_mode(p) for p in sidecars] == [0o600, 0o600]


def test_an_existing_directory_keeps_its_mode(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    with SQLiteStore(tmp_path / "s.db"):
        pass
    assert _mode(tmp_path) == 0o755


def _pragmas(store: SQLiteStore) -> tuple[str, int, int, int]:
    conn = store._connection()
    return (
        conn.execute("PRAGMA journal_mode").fetchone()[0],
        conn.execute("PRAGMA synchronous").fetchone()[0],
        conn.execute("PRAGMA foreign_keys").fetchone()[0],
        conn.execute("PRAGMA busy_timeout").fetchone()[0],
    )


def test_every_connection_uses_wal_and_synchronous_full(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "s.db", busy_timeout=7.5) as store:
        seen = [_pragmas(store)]
        thread = threading.Thread(target=lambda: seen.append(_pragmas(store)))
        thread.start()
        thread.join()
    # synchronous 2 is FULL; the busy timeout is in milliseconds.
    assert seen == [("wal", 2, 1, 7500), ("wal", 2, 1, 7500)]


def test_a_fresh_empty_file_is_migrated_and_reopening_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    path.touch()
    latest = len(sqlite_backend.MIGRATIONS)
    with SQLiteStore(path) as store:
        assert store.schema_version == latest
        (row,) = store.enqueue([_push("kept")], now=1.0)
        store.save_token("1000", "v3", "token-value-0123456789", None, 1.0, 901.0)
    for _ in range(2):
        with SQLiteStore(path) as store:
            assert store.schema_version == latest
            assert store.get_message(row.id) == row
            assert len(store.list_tokens("1000")) == 1
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == latest
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"tokens", "locks", "outbox"} <= tables


def test_a_failing_migration_leaves_the_schema_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "s.db"
    with SQLiteStore(path):
        pass
    known = sqlite_backend.MIGRATIONS
    monkeypatch.setattr(sqlite_backend, "MIGRATIONS", (*known, ("CREATE TABLE extra (x)", "THIS IS NOT SQL")))
    with pytest.raises(ConfigurationError, match="not a usable linepush store"):
        SQLiteStore(path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(known)
        assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'extra'").fetchone()[0] == 0

    monkeypatch.setattr(sqlite_backend, "MIGRATIONS", (*known, ("CREATE TABLE extra (x)",)))
    with SQLiteStore(path) as store:
        assert store.schema_version == len(known) + 1


def test_a_store_from_a_newer_linepush_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with SQLiteStore(path):
        pass
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 999")
    with pytest.raises(ConfigurationError, match=r"schema version 999.*upgrade linepush"):
        SQLiteStore(path)


def test_a_file_that_is_not_a_database_is_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"these are not the pages you are looking for\n" * 200)
    with pytest.raises(ConfigurationError, match=r"notes\.txt.*not a database"):
        SQLiteStore(path)


def test_a_store_that_cannot_be_created_is_a_configuration_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigurationError, match="cannot create the store file"):
        SQLiteStore(blocker / "sub" / "s.db")


def test_writes_give_up_with_store_error_while_readers_carry_on(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with SQLiteStore(path, busy_timeout=0.05) as store:
        store.save_token("1000", "v3", "token-value-0123456789", None, 1.0, 901.0)
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            with pytest.raises(StoreError, match="locked"):
                store.enqueue([_push("a")], now=2.0)
            assert store.current_token("1000", "v3", now=2.0) is not None
            other.execute("ROLLBACK")
        finally:
            other.close()
        assert len(store.enqueue([_push("a")], now=3.0)) == 1


def test_connections_of_finished_threads_are_closed(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "s.db") as store:
        threads = [threading.Thread(target=store.counts) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # The dead threads' connections are closed when the next one is opened.
        late = threading.Thread(target=store.counts)
        late.start()
        late.join()
        assert [thread for thread, _ in store._connections] == [threading.main_thread(), late]


def _enqueue_in_child(store: SQLiteStore, text: str) -> None:
    store.enqueue([_push(text)], now=2.0)
    store.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_opens_its_own_connection(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "s.db") as store:
        store.enqueue([_push("parent")], now=1.0)
        child = multiprocessing.get_context("fork").Process(target=_enqueue_in_child, args=(store, "child"))
        child.start()
        child.join(timeout=20)
        assert child.exitcode == 0
        assert [m.payload["messages"][0]["text"] for m in store.list_messages()] == ["parent", "child"]
        assert store.counts()["queued"] == 2


@pytest.mark.parametrize("channel", [None, "1000"], ids=["all-channels", "one-channel"])
def test_claim_reads_through_the_indexes_not_the_whole_table(tmp_path: Path, channel: str | None) -> None:
    # The rows a claim considers, as SQLStore._claim_candidates reads them.
    sql = sqlite_backend._CLAIM_CANDIDATES.format(channel="" if channel is None else " AND channel_id = ?")
    by = [] if channel is None else [channel]
    params = [1.0, *by, 10, 1.0, *by, 10, 10]
    with SQLiteStore(tmp_path / "s.db") as store:
        plan = " | ".join(row[3] for row in store._connection().execute("EXPLAIN QUERY PLAN " + sql, params))
    assert "INDEX outbox_due (state=? AND not_before<?)" in plan
    assert "INDEX outbox_leases (lease_expires_at<?)" in plan
    assert "SCAN outbox" not in plan


def test_a_store_file_others_can_read_is_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "s.db"
    with SQLiteStore(path) as store:
        store.enqueue([_push("a")], now=1.0)
        assert store.exposed_files() == []
    path.chmod(0o644)
    with caplog.at_level("WARNING", logger="linepush.store"), SQLiteStore(path) as store:
        # SQLite gives the -wal and -shm files the database file's mode: all three are open to others.
        assert store.exposed_files() == [
            f"the store file {name} holds channel access tokens but others can read it: chmod 600 {name}"
            for name in (path, f"{path}-wal", f"{path}-shm")
        ]
    assert f"chmod 600 {path}\n" in caplog.text + "\n"


def test_a_damaged_store_says_how_to_check_and_restore_it(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with SQLiteStore(path) as store:
        store.enqueue([_push("x" * 500) for _ in range(200)], now=1.0)
    with sqlite3.connect(path) as conn:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    with path.open("r+b") as f:  # the outbox's pages, overwritten: what a failing disk or a bad copy leaves
        f.seek(page_size * 4)
        f.write(b"\xa5" * page_size * 8)
    with pytest.raises(StoreCorruptError) as caught:
        with SQLiteStore(path) as store:
            store.list_messages(limit=1000)
    assert not caught.value.retryable
    assert "PRAGMA integrity_check" in str(caught.value) and f"{path}-wal" in str(caught.value)


def test_sqlite_failures_are_named_for_what_they_are() -> None:
    def failure(code: int, name: str) -> sqlite3.Error:
        exc = sqlite3.OperationalError(name.lower())
        exc.sqlite_errorcode = code  # type: ignore[attr-defined]
        exc.sqlite_errorname = name  # type: ignore[attr-defined]
        return exc

    path = "/var/lib/linepush/linepush.db"
    full = sqlite_backend.store_error(failure(13, "SQLITE_FULL"), path)
    assert isinstance(full, StoreFullError) and full.retryable and "full" in str(full)
    io = sqlite_backend.store_error(failure(10 | (4 << 8), "SQLITE_IOERR_WRITE"), path)
    assert type(io) is StoreError and io.retryable and "SQLITE_IOERR_WRITE" in str(io)
    busy = sqlite_backend.store_error(failure(5, "SQLITE_BUSY"), path)
    assert type(busy) is StoreError and "locked" in str(busy)
    corrupt = sqlite_backend.store_error(failure(11, "SQLITE_CORRUPT"), path)
    assert isinstance(corrupt, StoreCorruptError) and not corrupt.retryable
    readonly = sqlite_backend.store_error(failure(8, "SQLITE_READONLY"), path)
    assert isinstance(readonly, ConfigurationError)


def test_a_store_on_a_read_only_file_system_says_so() -> None:
    """SQLite makes the -wal and -shm files beside the store even to read it: on a read-only mount the
    error names that, not only SQLite's 'unable to open database file'."""
    import subprocess

    from tests.support.disk import small_disk

    with small_disk("1m") as disk:
        with SQLiteStore(disk / "outbox.db") as store:
            assert store.counts()["queued"] == 0
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        try:
            with pytest.raises(ConfigurationError, match="is on a read-only file system, and SQLite writes"):
                SQLiteStore(disk / "outbox.db")
        finally:
            subprocess.run(["mount", "-o", "remount,rw", str(disk)], check=True)


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_store_file_deleted_or_replaced_under_an_open_store_is_said_and_not_written(
    tmp_path: Path, how: str
) -> None:
    """SQLite would go on writing to the old file, which no other process sees: a message queued by a
    gateway after the file was moved away would be answered as accepted and never sent."""
    path = tmp_path / "outbox.db"
    with SQLiteStore(path) as store:
        store.enqueue([NewMessage("1000", "push", {"to": "U" + "a" * 32, "messages": []})], now=1.0)
        for name in (path, tmp_path / "outbox.db-wal", tmp_path / "outbox.db-shm"):
            name.unlink(missing_ok=True)
        if how == "replaced":
            with SQLiteStore(tmp_path / "other.db"):
                pass
            (tmp_path / "other.db").rename(path)
        with pytest.raises(
            StoreError, match=f"the store file {path} was {how} while this process had it open"
        ):
            store.enqueue([NewMessage("1000", "push", {"to": "U" + "b" * 32, "messages": []})], now=2.0)
        with pytest.raises(StoreError, match="restart this process"):
            store.counts()
    with SQLiteStore(path) as again:  # a process opening it now gets the file that is there
        assert again.counts()["queued"] == 0
