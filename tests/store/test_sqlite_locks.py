"""SQLite's POSIX locks hold whatever a process does with the store: second opens, forks, rivals, kills.

A POSIX (fcntl) lock belongs to a process and an inode, and closing *any* descriptor of the file releases
every lock the process holds on it, while SQLite's own table goes on believing it holds them. These tests
read the kernel's lock table (/proc/locks) and count acknowledged writes after real processes were killed.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from linepush.store import NewMessage, SQLiteStore, open_store

pytestmark = pytest.mark.skipif(not Path("/proc/locks").exists(), reason="reads Linux's /proc/locks")


def _push(text: str) -> NewMessage:
    return NewMessage("1000", "push", {"to": "U" + "0" * 32, "messages": [{"type": "text", "text": text}]})


def held_locks(path: Path, pid: int | None = None) -> list[tuple[str, int, str]]:
    """The POSIX locks ``pid`` (default: this process) holds on ``path``: (type, start, end) each."""
    inode, owner = path.stat().st_ino, str(os.getpid() if pid is None else pid)
    found = []
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if fields[1] == "->":  # a waiter, listed under the lock it waits for
            fields = fields[1:]
        if fields[1] == "POSIX" and fields[4] == owner and int(fields[5].rsplit(":", 1)[1]) == inode:
            found.append((fields[3], int(fields[6]), fields[7]))
    return sorted(found)


def test_a_second_store_on_the_file_leaves_the_first_ones_locks_in_place(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with SQLiteStore(path) as first:
        first.enqueue([_push("a")], now=1.0)
        # In WAL mode an open connection keeps a read lock on the database file: that is how another
        # process knows, when it closes, that it is not the last user and must leave the -wal file alone.
        held = held_locks(path)
        assert held, "an open WAL connection holds a read lock on the database file"
        with open_store(str(path)) as second:
            assert held_locks(path) == held
            second.enqueue([_push("b")], now=2.0)
        assert held_locks(path) == held
        with SQLiteStore(path) as third:
            third.counts()
        assert held_locks(path) == held
        assert first.counts()["queued"] == 2


def test_stores_opened_on_one_file_in_one_process_share_its_connections(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with open_store(str(path)) as first, open_store(f"sqlite:///{path}") as second:
        first.counts()
        second.counts()
        assert first._connection() is second._connection()
        second.close()
        # One handle closed is one user gone: the others keep working.
        assert first.enqueue([_push("a")], now=1.0)[0].id == 1
    with pytest.raises(Exception, match="closed"):
        first.counts()


def _locks_in_child(store: SQLiteStore, path: str, answers: multiprocessing.Queue[object]) -> None:
    store.enqueue([_push("child")], now=2.0)
    answers.put(held_locks(Path(path)))
    store.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_holds_real_locks_of_its_own(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with SQLiteStore(path) as store:
        store.enqueue([_push("parent")], now=1.0)
        context = multiprocessing.get_context("fork")
        answers: multiprocessing.Queue[object] = context.Queue()
        child = context.Process(target=_locks_in_child, args=(store, str(path), answers))
        child.start()
        child_locks = answers.get(timeout=20)
        child.join(timeout=20)
        assert child.exitcode == 0
        # The child inherits SQLite's memory (which says "locked") but not the kernel's locks: it must have
        # taken its own, or another process could checkpoint and delete the -wal file under it.
        assert child_locks, "the child wrote without holding any lock on the database file"
        assert held_locks(path), "the child's exit took the parent's locks"
        assert [m.payload["messages"][0]["text"] for m in store.list_messages()] == ["parent", "child"]


# -- acknowledged writes survive a rival reader and a kill ---------------------------------------------------

WRITER = textwrap.dedent(
    """
    import sys
    from linepush.store import NewMessage, open_store

    path = sys.argv[1]
    # As an application does: an outbox on one store, a client whose token manager opens the same file again.
    outbox = open_store(path)
    tokens = open_store(path)
    n = 0
    while True:
        n += 1
        payload = {"to": "U" + "0" * 32, "messages": [{"type": "text", "text": str(n)}]}
        row = outbox.enqueue([NewMessage("1000", "push", payload)], now=float(n))[0]
        print(row.id, flush=True)  # acknowledged: the commit returned
        if n % 25 == 0:
            tokens.counts()
            open_store(path).close()  # a short-lived client opening and closing the default store
    """
)

READER = textwrap.dedent(
    """
    import sys
    from linepush.store import open_store

    # `linepush queue status` run again and again: each run opens the store, reads and closes its last
    # connection, which is when SQLite checkpoints and removes the -wal file if it believes nobody else is in.
    while True:
        store = open_store(sys.argv[1])
        store.counts()
        store.close()
    """
)


@pytest.mark.slow
def test_acknowledged_enqueues_survive_a_rival_reader_and_a_kill(tmp_path: Path) -> None:
    lost = 0
    for round_ in range(4):
        path = tmp_path / f"round{round_}.db"
        with SQLiteStore(path):
            pass  # created and migrated before the race starts
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True, env=env
        )
        reader = subprocess.Popen([sys.executable, "-c", READER, str(path)], env=env)
        acknowledged: list[int] = []
        try:
            assert writer.stdout is not None
            while len(acknowledged) < 400:
                line = writer.stdout.readline()
                assert line, "the writer died"
                acknowledged.append(int(line))
        finally:
            writer.send_signal(signal.SIGKILL)
            writer.wait(10)
            time.sleep(0.05)  # let the reader close and reopen a few more times after the kill
            reader.kill()
            reader.wait(10)
        with SQLiteStore(path) as store:
            kept = {m.id for m in store.list_messages(limit=100_000)}
        lost += len(set(acknowledged) - kept)
    assert lost == 0, f"{lost} acknowledged enqueues lost"


# -- many processes opening a new store at once --------------------------------------------------------------

OPENER = textwrap.dedent(
    """
    import os, sys, threading, time
    from linepush.store import NewMessage, open_store

    path, go = sys.argv[1], sys.argv[2]
    while not os.path.exists(go):
        time.sleep(0.001)
    failures = []

    def work(n):
        try:
            store = open_store(path)
            msg = {"to": "U" + "0" * 32, "messages": [{"type": "text", "text": str(n)}]}
            store.enqueue([NewMessage("1000", "push", msg)], now=1.0)
            store.close()
        except Exception as exc:
            failures.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("\\n".join(failures) or "ok", flush=True)
    """
)


@pytest.mark.slow
def test_processes_opening_a_new_store_at_once_all_succeed(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    failures: list[str] = []
    rows = 0
    for round_ in range(5):
        path, go = tmp_path / f"new{round_}.db", tmp_path / f"go{round_}"
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", OPENER, str(path), str(go)], stdout=subprocess.PIPE, text=True, env=env
            )
            for _ in range(8)
        ]
        time.sleep(0.3)  # let them all start and wait for the signal, so they open the file together
        go.touch()
        for proc in procs:
            out, _ = proc.communicate(timeout=60)
            if out.strip() != "ok":
                failures.append(out.strip())
        with SQLiteStore(path) as store:
            rows += store.counts()["queued"]
    assert failures == []
    assert rows == 5 * 8 * 10
