"""`linepush send --queue --to-file ids.txt` with 100,000 ids: the command as people run it, in its own
process, from start to the queued rows (reading, checking and de-duplicating the ids, one multicast row per
500 users, one transaction). Nothing is sent, so the figures are the command's own."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def run(recipients: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as home:
        ids = Path(home) / "ids.txt"
        ids.write_text("".join(f"U{i:032x}\n" for i in range(recipients)))
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("LINE_", "LINEPUSH_"))},
            "PYTHONPATH": str(SRC),
            "LINE_CHANNEL_ID": "1234567890",
            "LINEPUSH_STORE": str(Path(home) / "bench.db"),
            "XDG_CONFIG_HOME": home,
        }
        text = "Service notice: maintenance tonight at 23:00."
        command = [sys.executable, "-m", "linepush", "send", "--queue", "--to-file", str(ids), "-ojson", text]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=home, check=False)
        wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"linepush send failed: {done.stderr[-500:]}")
    return {"ids": recipients, "rows": len(json.loads(done.stdout)["queued"]), "wall s": round(wall, 3)}


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--recipients", type=int, default=100_000)
    args = parser.parse_args(argv)
    figures = run(1_000 if args.smoke else args.recipients)
    print("| send --to-file | value |\n|---|---|")
    for name, value in figures.items():
        print(f"| {name} | {value} |")
    return figures


if __name__ == "__main__":
    main()
