"""Every benchmark runs once, tiny, so none of them can rot. Nothing here asserts a time."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_make_bench_runs_every_benchmark_in_smoke_mode() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--smoke"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for heading in ("## Push throughput", "## The async HTTP libraries", "## Other figures", "## Targets"):
        assert heading in done.stdout
    for client in ("linepush AsyncLineClient", "raw aiohttp", "official SDK async", "linepush LineClient"):
        assert client in done.stdout
    assert "cached token get" in done.stdout
    assert "raw aiohttp paced alike" in done.stdout
    assert "linepush send (warm store)" in done.stdout
    assert "1,000 notify calls to one chat" in done.stdout
