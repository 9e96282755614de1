"""A loopback server playing LINE that takes a POST and never answers it, until the test ends: whatever the
test does next (a signal, a kill) surely comes while the request is at "LINE"."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Holding(BaseHTTPRequestHandler):
    """Reads a POST, says so through ``received``, and holds it unanswered until ``release`` is set."""

    received: threading.Event
    release: threading.Event

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        type(self).received.set()
        type(self).release.wait(30)

    def log_message(self, format: str, *args: object) -> None:
        return None


@contextlib.contextmanager
def holding_server(handler: type[Holding] = Holding) -> Iterator[tuple[str, threading.Event]]:
    """Serves ``handler`` on a free port; yields the base URL and the event set once a POST arrived."""
    bound = type("Handler", (handler,), {"received": threading.Event(), "release": threading.Event()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), bound)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", bound.received
    finally:
        bound.release.set()
        server.shutdown()
        server.server_close()
