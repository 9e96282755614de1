"""What each candidate HTTP library costs before it sends anything: version, install size, import time.

Install size counts the files of the distribution and of every distribution it requires (transitively), as
installed here. Import time is the median of fresh interpreters importing the module, minus one that imports
nothing.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from importlib import metadata

#: distribution name -> the module a program imports
CANDIDATES = {
    "aiohttp": "aiohttp",
    "curl_cffi": "curl_cffi.requests",
    "pyreqwest": "pyreqwest.client",
    "niquests": "niquests",
    "httpx": "httpx",
    "urllib3": "urllib3",
}


def _requirements(name: str) -> list[str]:
    out = []
    for spec in metadata.requires(name) or []:
        if "extra ==" in spec:
            continue
        match = re.match(r"[A-Za-z0-9_.\-]+", spec)
        if match:
            out.append(match.group(0))
    return out


def install_bytes(name: str) -> int:
    seen: set[str] = set()
    todo = [name]
    total = 0
    while todo:
        current = todo.pop()
        key = current.lower().replace("_", "-")
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(current)
        except metadata.PackageNotFoundError:
            continue
        for file in dist.files or []:
            try:
                total += file.locate().stat().st_size
            except OSError:
                pass
        todo += _requirements(current)
    return total


def import_ms(module: str, runs: int) -> float:
    def once(code: str) -> float:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
        return time.perf_counter() - start

    base = statistics.median(once("pass") for _ in range(runs))
    return round((statistics.median(once(f"import {module}") for _ in range(runs)) - base) * 1000, 1)


def main(argv: list[str] | None = None) -> dict[str, dict[str, object]]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    runs = 1 if args.smoke else 5
    results: dict[str, dict[str, object]] = {}
    for name, module in CANDIDATES.items():
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            results[name] = {"version": "not installed"}
            continue
        results[name] = {
            "version": version,
            "install MB (with its dependencies)": round(install_bytes(name) / 1e6, 1),
            "import ms": import_ms(module, runs),
        }
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
