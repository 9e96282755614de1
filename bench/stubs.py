"""Servers the benchmarks send to: nginx answering a fixed push response, or the linepush emulator.

Both run as separate processes on 127.0.0.1, so the client's CPU time is measured alone.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from linepush import Channel

PUSH_RESPONSE = json.dumps({"sentMessages": [{"id": "461230966842064897", "quoteToken": "IStG5h1Tz7b"}]})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.02)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def find_nginx(install: bool) -> str | None:
    path = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if path or not install or os.geteuid() != 0:
        return path
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "nginx-core"], env=env, capture_output=True, check=False
    )
    return shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)


NGINX_CONF = """
worker_processes 1;
daemon off;
error_log {dir}/error.log warn;
pid {dir}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    {limit_zone}
    server {{
        listen 127.0.0.1:{port};
        {limit}
        location / {{
            default_type application/json;
            add_header x-line-request-id 0b8a7b4c-1c2f-4f6e-9a43-0d7c0e5e2f10 always;
            return 200 '{body}';
        }}
    }}
}}
"""


@dataclass(frozen=True)
class Stub:
    url: str
    description: str
    #: A bearer token the stub accepts.
    token: str


@contextlib.contextmanager
def nginx_stub(install: bool = True, rate: int | None = None, burst: int = 50) -> Iterator[Stub]:
    """Yields the stub. Falls back to the emulator when nginx cannot be had, and says so.

    With ``rate`` nginx answers 429 above that many requests per second (its leaky bucket, ``burst`` deep),
    as LINE does above its documented rate.
    """
    binary = find_nginx(install)
    if binary is None:
        with emulator_server(rate_limits=rate is not None) as url:
            yield Stub(url, "emulator (nginx could not be had: fell back to it)", emulator_token(url))
        return
    port = free_port()
    limit_zone = limit = ""
    description = "nginx (fixed push response)"
    if rate is not None:
        limit_zone = f"limit_req_zone $server_name zone=line:1m rate={rate}r/s; limit_req_status 429;"
        limit = f"limit_req zone=line burst={burst} nodelay;"
        description = f"nginx (fixed push response, 429 above {rate}/s, burst {burst})"
    with tempfile.TemporaryDirectory(prefix="linepush-bench-nginx-") as tmp:
        conf = Path(tmp) / "nginx.conf"
        conf.write_text(
            NGINX_CONF.format(dir=tmp, port=port, body=PUSH_RESPONSE, limit_zone=limit_zone, limit=limit)
        )
        proc = subprocess.Popen([binary, "-c", str(conf), "-p", tmp], stderr=subprocess.DEVNULL)
        try:
            wait_for_port(port)
            yield Stub(f"http://127.0.0.1:{port}", description, "bench-token")
        finally:
            proc.send_signal(signal.SIGQUIT)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()


@contextlib.contextmanager
def emulator_server(rate_limits: bool = False) -> Iterator[str]:
    """`linepush emulator` in a subprocess on a free port; rate limits off unless asked (throughput runs)."""
    port = free_port()
    flags = [] if rate_limits else ["--no-rate-limits"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "linepush", "emulator", "--port", str(port), *flags],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[Any], timeout: float = 5.0) -> None:
    """Ask a server to stop (SIGTERM); kill it if it has not within ``timeout`` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()


def emulator_channel(url: str, directory: Path) -> Channel:
    """A new channel at the emulator at ``url`` with a registered assertion key, written to ``directory``."""
    from linepush import Channel, generate_key_pair

    created: Any = admin(url, "POST", "/_emulator/channels", {"name": "bench"})
    key = generate_key_pair()
    kid: Any = admin(url, "POST", f"/_emulator/channels/{created['channel_id']}/keys", key.public_jwk())
    key_file = directory / "key.json"
    key.write_private_jwk(key_file)
    return Channel(created["channel_id"], created["channel_secret"], key_file, kid["kid"])


def emulator_token(url: str) -> str:
    """A long-lived token of a new channel at the emulator at ``url``."""
    created: Any = admin(url, "POST", "/_emulator/channels", {"name": "bench"})
    token: Any = admin(url, "POST", f"/_emulator/channels/{created['channel_id']}/long-lived-token", {})
    return str(token["access_token"])


def admin(url: str, method: str, path: str, body: object | None = None) -> object:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as response:  # loopback only
        return json.loads(response.read() or b"{}")
