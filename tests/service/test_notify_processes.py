"""Two `linepush serve` processes on one store share each token's Notify limits, and their X-RateLimit-*
headers say what both together left."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from linepush.service import create_gateway_token
from linepush.store import open_store
from tests.service.conftest import USER
from tests.service.serve_process import linepush_serve
from tests.support.pg import fresh_schema, schema_url

pytestmark = pytest.mark.e2e
CHANNEL = "1234567890"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'shared.db'}"
        return
    with fresh_schema() as schema:
        yield schema_url(schema)


def notify(base: str, token: str) -> tuple[int, dict[str, str]]:
    request = urllib.request.Request(
        f"{base}/api/notify",
        data=b"message=hi",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/x-www-form-urlencoded"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:  # loopback only
            return answer.status, {k.lower(): v for k, v in answer.headers.items()}
    except urllib.error.HTTPError as refused:
        return refused.code, {k.lower(): v for k, v in refused.headers.items()}


def test_two_gateways_on_one_store_share_the_limit(store_url: str, tmp_path: Path) -> None:
    with open_store(store_url) as store:
        token, _ = create_gateway_token(store, CHANNEL, USER, None, 0.0)
    env = {"LINEPUSH_STORE": store_url, "LINE_CHANNEL_ID": CHANNEL}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    limits = ("--rate-limit", "3", "--image-rate-limit", "0")
    with (
        linepush_serve(tmp_path / "a", env, *limits) as first,
        linepush_serve(tmp_path / "b", env, *limits) as second,
    ):
        answers = [notify(served.url, token.reveal()) for served in (first, second, first, second)]
        with urllib.request.urlopen(  # loopback only
            urllib.request.Request(
                f"{second.url}/api/status", headers={"Authorization": f"Bearer {token.reveal()}"}
            ),
            timeout=10,
        ) as status:
            remaining_by_status = status.headers["X-RateLimit-Remaining"]
    assert [status for status, _ in answers] == [200, 200, 200, 429]
    assert [headers["x-ratelimit-remaining"] for _, headers in answers] == ["2", "1", "0", "0"]
    assert {headers["x-ratelimit-limit"] for _, headers in answers} == {"3"}
    assert len({headers["x-ratelimit-reset"] for _, headers in answers}) == 1
    assert remaining_by_status == "0"
    with open_store(store_url) as store:
        assert store.counts(CHANNEL)["queued"] == 3
