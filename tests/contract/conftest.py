"""The `store` fixture: every contract test runs once per storage backend.

To add a backend, add its name to BACKENDS and a branch to `_open`; the tests stay as they are.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from linepush.store import SQLiteStore, Store

BACKENDS = ["sqlite"]


def _open(backend: str, tmp_path: Path) -> Store:
    if backend == "sqlite":
        return SQLiteStore(tmp_path / "contract.db")
    raise AssertionError(f"unknown backend {backend}")


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    opened = _open(request.param, tmp_path)
    with opened:
        yield opened
