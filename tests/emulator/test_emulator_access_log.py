"""`linepush emulator --access-log`: a line per request, and never a token or an assertion in it (the verify
and key-id endpoints take them in the query string, as LINE's do)."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from tests.emulator.emulator_process import SECRET, emulator_process, v3_token

pytestmark = pytest.mark.e2e


def test_the_access_log_shows_requests_without_their_secrets(tmp_path: Path) -> None:
    log = tmp_path / "emulator.log"
    with emulator_process(log, "--access-log") as base:
        token = v3_token(base)
        query = urllib.parse.urlencode({"access_token": token})
        with urllib.request.urlopen(f"{base}/oauth2/v2.1/verify?{query}", timeout=5) as answer:
            assert answer.status == 200
        assertion = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJl"
        query = urllib.parse.urlencode({"client_assertion_type": "x", "client_assertion": assertion})
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"{base}/oauth2/v2.1/tokens/kid?{query}", timeout=5)
    logged = log.read_text()
    assert '"POST /oauth2/v3/token HTTP/1.1" 200' in logged, logged
    assert "GET /oauth2/v2.1/verify?access_token=" in logged, logged
    assert "/oauth2/v2.1/tokens/kid?client_assertion_type=x&client_assertion=" in logged, logged
    assert token not in logged and token[:20] not in logged
    assert assertion not in logged and assertion[:20] not in logged
    assert SECRET not in logged
