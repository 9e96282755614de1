"""The gateway under hostile clients: `linepush serve` on a loopback port, against real sockets that send
slowly, hold bodies open or go away halfway. Counts and waits are bounded; every bound is generous."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from linepush.service.webhook import signature
from tests.service.conftest import CHANNEL_ID, SECRET
from tests.service.serve_process import ServeProcess, linepush_serve

pytestmark = pytest.mark.e2e

#: Looks like a signature (Base64 of 32 bytes) but is nobody's.
FORGED = "A" * 43 + "="


def env(home: Path) -> dict[str, str]:
    return {
        "LINEPUSH_STORE": str(home / "gw.db"),
        "LINE_CHANNEL_ID": CHANNEL_ID,
        "LINE_CHANNEL_SECRET": SECRET,
    }


@contextmanager
def clients() -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    try:
        yield opened
    finally:
        for sock in opened:
            sock.close()


def connect(served: ServeProcess, data: bytes, opened: list[socket.socket]) -> socket.socket:
    """A client that sends ``data`` (as much as the server takes within a second) and then waits."""
    sock = socket.create_connection(("127.0.0.1", served.port), timeout=5)
    opened.append(sock)
    sock.settimeout(1)
    try:
        sock.sendall(data)
    except OSError:  # the server stopped reading, or answered and closed: both are its choice
        pass
    return sock


def closed_by_server(sock: socket.socket, deadline: float) -> bool:
    """Whether the server ends the connection (after any answer) before ``deadline`` (monotonic)."""
    while True:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            if not sock.recv(65536):
                return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False


def get(url: str, timeout: float = 5.0) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def rss_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def test_half_sent_headers_are_timed_out_and_the_cap_keeps_descriptors_free(tmp_path: Path) -> None:
    """300 clients that never finish their headers, against a descriptor limit of 256: each is closed once
    the header timeout passes, and a normal request is answered throughout, never left hanging."""
    with (
        linepush_serve(tmp_path, env(tmp_path), "--header-timeout", "1", max_open_files=256) as served,
        clients() as opened,
    ):
        slow = [connect(served, b"POST /api/notify HTTP/1.1\r\nHost: gw\r\n", opened) for _ in range(300)]
        # While they hold their connections: an answer (a 503 at worst), not a hang.
        assert get(f"{served.url}/healthz") in (200, 503)
        deadline = time.monotonic() + 20
        assert all(closed_by_server(sock, deadline) for sock in slow)
        assert get(f"{served.url}/healthz") == 200
    assert len(served.stderr) < 50_000, served.stderr[-2000:]
    assert "Traceback" not in served.stderr


def test_running_out_of_descriptors_is_one_line_and_the_gateway_recovers(tmp_path: Path) -> None:
    """A burst that asyncio accepts in one go, beyond the descriptors the process has left: the gateway
    says so in one line with what to do (not a traceback), and answers again once the burst is gone."""
    with (
        linepush_serve(tmp_path, env(tmp_path), "--header-timeout", "1", max_open_files=64) as served,
        clients() as opened,
    ):
        # Stopped, the gateway accepts nothing: the burst waits whole in the listening queue (64 deep).
        os.kill(served.process.pid, signal.SIGSTOP)
        try:
            burst = [connect(served, b"POST /api/notify HTTP/1.1\r\nHost: gw\r\n", opened) for _ in range(60)]
        finally:
            os.kill(served.process.pid, signal.SIGCONT)
        deadline = time.monotonic() + 20
        assert all(closed_by_server(sock, deadline) for sock in burst)
        assert get(f"{served.url}/healthz") == 200
    assert "Traceback" not in served.stderr, served.stderr[-3000:]
    warnings = [line for line in served.stderr.splitlines() if "out of descriptors" in line]
    assert len(warnings) == 1, served.stderr[-3000:]
    assert "open files limit 64" in warnings[0] and "ulimit -n" in warnings[0]


def test_a_body_that_stops_coming_is_timed_out(tmp_path: Path) -> None:
    head = (
        f"POST /webhook HTTP/1.1\r\nHost: gw\r\nContent-Length: 1000\r\nX-Line-Signature: {FORGED}".encode()
    )
    with (
        linepush_serve(tmp_path, env(tmp_path), "--body-timeout", "1") as served,
        clients() as opened,
    ):
        held = [connect(served, head + b"\r\n\r\n" + b"{" * 10, opened) for _ in range(20)]
        deadline = time.monotonic() + 20
        assert all(closed_by_server(sock, deadline) for sock in held)
        assert get(f"{served.url}/healthz") == 200
    assert "Traceback" not in served.stderr and "500" not in served.stderr


def test_oversized_headers_are_refused(tmp_path: Path) -> None:
    # A header timeout far beyond the wait below: only the size limit can close this connection in time.
    with linepush_serve(tmp_path, env(tmp_path), "--header-timeout", "120") as served, clients() as opened:
        huge = b"GET /healthz HTTP/1.1\r\nHost: gw\r\n" + b"X-Junk: " + b"a" * 100_000
        sock = connect(served, huge, opened)
        assert closed_by_server(sock, time.monotonic() + 60)
        assert get(f"{served.url}/healthz") == 200


def test_held_webhook_bodies_do_not_grow_the_process(tmp_path: Path) -> None:
    """Unauthenticated clients that send all but the last byte of a large body and wait: what the gateway
    holds for them together stays bounded."""
    with linepush_serve(tmp_path, env(tmp_path)) as served, clients() as opened:
        assert get(f"{served.url}/healthz") == 200
        before = rss_kib(served.process.pid, "VmRSS")
        for size in (1024 * 1024, 256 * 1024):  # the old limit, then the new one
            head = (
                f"POST /webhook HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
                f"Content-Length: {size}\r\nX-Line-Signature: {FORGED}\r\n\r\n"
            ).encode()
            for _ in range(150):
                connect(served, head + b" " * (size - 1), opened)
        time.sleep(1)  # let the server take in what it will
        grown_mib = (rss_kib(served.process.pid, "VmHWM") - before) / 1024
        assert grown_mib < 40, f"the gateway grew by {grown_mib:.0f} MiB"
        assert get(f"{served.url}/healthz") == 200


def test_a_client_that_goes_away_mid_body_is_one_quiet_line(tmp_path: Path) -> None:
    body = json.dumps({"destination": "U" + "0" * 32, "events": []}).encode().ljust(1000)
    head = (
        f"POST /webhook HTTP/1.1\r\nHost: gw\r\nContent-Length: {len(body)}\r\n"
        f"X-Line-Signature: {signature(SECRET, body)}\r\n\r\n"
    ).encode()
    with linepush_serve(tmp_path, env(tmp_path), "--log-format", "json") as served:
        for _ in range(20):
            with socket.create_connection(("127.0.0.1", served.port), timeout=5) as sock:
                sock.sendall(head + body[:500])
        assert get(f"{served.url}/healthz") == 200
    lines = [line for line in served.stderr.splitlines() if '"path": "/webhook"' in line]
    assert len(lines) == 20, served.stderr[-3000:]
    assert all(json.loads(line)["status"] == 499 for line in lines)
    assert "Traceback" not in served.stderr and "ERROR" not in served.stderr


def test_a_keep_alive_client_is_served_request_after_request(tmp_path: Path) -> None:
    """The per-stage timers and the early answers leave a well-behaved connection usable: GETs, a webhook
    refused before its body was read, and a GET again, all on one connection."""
    import http.client

    with linepush_serve(tmp_path, env(tmp_path)) as served:
        conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
        try:
            for _ in range(2):
                conn.request("GET", "/healthz")
                answer = conn.getresponse()
                assert (answer.status, answer.read()) == (200, b'{"status":"ok"}')
            conn.request("POST", "/webhook", body=b"{" * 50_000, headers={"X-Line-Signature": "nope"})
            answer = conn.getresponse()
            assert (answer.status, json.loads(answer.read())["message"]) == (401, "Invalid signature")
            conn.request("GET", "/healthz")
            answer = conn.getresponse()
            assert (answer.status, answer.read()) == (200, b'{"status":"ok"}')
        finally:
            conn.close()
