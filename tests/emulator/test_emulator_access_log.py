"""`linepush emulator --access-log`: a line per request, and never a token or an assertion in it (the verify
and key-id endpoints take them in the query string, as LINE's do)."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest

pytestmark = pytest.mark.e2e

CHANNEL_ID = "1234567890"
SECRET = "0123456789abcdef0123456789abcdef"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_access_log_shows_requests_without_their_secrets() -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "linepush", "emulator", "--port", str(port), "--access-log"),
            *("--channel-id", CHANNEL_ID, "--channel-secret", SECRET),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.communicate(timeout=5)
                time.sleep(0.02)
        form = urllib.parse.urlencode(
            {"grant_type": "client_credentials", "client_id": CHANNEL_ID, "client_secret": SECRET}
        ).encode()
        with urllib.request.urlopen(f"{base}/oauth2/v3/token", data=form, timeout=5) as answer:
            token = json.load(answer)["access_token"]
        query = urllib.parse.urlencode({"access_token": token})
        with urllib.request.urlopen(f"{base}/oauth2/v2.1/verify?{query}", timeout=5) as answer:
            assert answer.status == 200
        assertion = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJl"
        query = urllib.parse.urlencode({"client_assertion_type": "x", "client_assertion": assertion})
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"{base}/oauth2/v2.1/tokens/kid?{query}", timeout=5)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
    logged = out.decode() + err.decode()
    assert '"POST /oauth2/v3/token HTTP/1.1" 200' in logged, logged
    assert "GET /oauth2/v2.1/verify?access_token=" in logged, logged
    assert "/oauth2/v2.1/tokens/kid?client_assertion_type=x&client_assertion=" in logged, logged
    assert token not in logged and token[:20] not in logged
    assert assertion not in logged and assertion[:20] not in logged
    assert SECRET not in logged
