"""Whole-process start-up: `linepush --version`, `linepush send` with a warm token store (the token it needs
already stored) to the emulator, beside `python -c pass`, an interpreter that only imports urllib3 (the HTTP
library a send uses) and the official SDK pushing the same message in a script. Each is started `--runs`
times, interleaved so that load from elsewhere hits all alike; medians."""

from __future__ import annotations

import argparse
import compileall
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SRC = Path(__file__).resolve().parents[1] / "src"
USER = "U" + "0" * 31 + "1"

SDK_SCRIPT = """
import os
from linebot.v3.messaging import ApiClient, Configuration, MessagingApi, PushMessageRequest, TextMessage

configuration = Configuration(host=os.environ["BENCH_API_BASE"], access_token=os.environ["BENCH_TOKEN"])
with ApiClient(configuration) as api_client:
    MessagingApi(api_client).push_message(
        PushMessageRequest(to=os.environ["BENCH_USER"], messages=[TextMessage(text="start-up bench")])
    )
"""


def wall(command: list[str], env: dict[str, str], cwd: str) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd, check=False)
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{command[2:4]} failed: {done.stderr[-500:]}")
    return took


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from bench.stubs import admin, emulator_channel, emulator_server

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="a tiny run that only proves the bench works")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--before", metavar="SRC", help="also time the linepush of this src folder")
    args = parser.parse_args(argv)
    runs = 2 if args.smoke else max(args.runs, 10)
    # An installed linepush has its byte code (pip compiles a package as it installs it), as the official
    # SDK it is compared with has; a checkout does not, and where PYTHONDONTWRITEBYTECODE is set (as on CI
    # machines) every run would compile each module again, timing the compiler rather than the command.
    for source in [SRC, *([Path(args.before)] if args.before else [])]:
        compileall.compile_dir(str(source / "linepush"), quiet=1)
    with tempfile.TemporaryDirectory() as home, emulator_server() as url:
        channel = emulator_channel(url, Path(home))
        store = f"sqlite:///{Path(home) / 'bench.db'}"
        channel_path = f"/_emulator/channels/{channel.require_id()}"
        sdk_token: Any = admin(url, "POST", f"{channel_path}/long-lived-token", {})
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("LINE_", "LINEPUSH_"))},
            "PYTHONPATH": str(SRC),
            "XDG_CONFIG_HOME": home,
            "LINE_CHANNEL_ID": channel.require_id(),
            "LINE_CHANNEL_SECRET": channel.require_secret().reveal(),
            "LINE_ASSERTION_KEY_FILE": str(channel.assertion_key_file),
            "LINE_ASSERTION_KID": str(channel.assertion_kid),
            "LINEPUSH_API_BASE": url,
            "LINEPUSH_STORE": store,
            "BENCH_API_BASE": url,
            "BENCH_TOKEN": sdk_token["access_token"],
            "BENCH_USER": USER,
        }
        linepush = str(Path(sys.executable).with_name("linepush"))
        launcher = [linepush] if Path(linepush).exists() else [sys.executable, "-m", "linepush"]
        send = [*launcher, "send", "--to", USER, "start-up bench"]
        commands = {
            "python -c pass": ([sys.executable, "-c", "pass"], env),
            # What no send over HTTP can go below: the sync HTTP library it sends with, imported alone.
            "python -c 'import urllib3'": ([sys.executable, "-c", "import urllib3"], env),
            "linepush --version": ([*launcher, "--version"], env),
            "linepush send (warm store)": (send, env),
            "official SDK script": ([sys.executable, "-c", SDK_SCRIPT], env),
        }
        if args.before:
            # A store of its own: the newer linepush may have migrated the other one past what it knows.
            before = {
                **env,
                "PYTHONPATH": str(Path(args.before).resolve()),
                "LINEPUSH_STORE": f"sqlite:///{Path(home) / 'before.db'}",
            }
            wall(send, before, home)
            commands["linepush --version (before)"] = ([*launcher, "--version"], before)
            commands["linepush send (warm store, before)"] = (send, before)
        wall(send, env, home)  # issues and stores the token: the store is warm from now on
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(runs):
            for name, (command, command_env) in commands.items():
                times[name].append(wall(command, command_env, home))
    figures: dict[str, Any] = {f"{name} s": round(statistics.median(t), 4) for name, t in times.items()}
    figures["runs"] = runs
    print(json.dumps(figures, indent=2))
    return figures


if __name__ == "__main__":
    sys.path.insert(0, str(SRC.parent))
    main()
