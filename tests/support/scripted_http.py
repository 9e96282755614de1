"""A loopback HTTP server in a thread, for tests that drive sync code (the command line, ``asyncio.run``)."""

from __future__ import annotations

import socket
import threading

PUSHED = b'{"sentMessages":[{"id":"461230966842064897","quoteToken":"q"}]}'


class Scripted:
    """A loopback HTTP server in a thread: it answers every push, or holds it unanswered."""

    def __init__(self, *, answer: bool, keep_alive: bool = False) -> None:
        self.answer = answer
        self.keep_alive = keep_alive
        self.request_lines: list[bytes] = []
        self.connections = 0
        self.release = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while True:
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                head, data = data.split(b"\r\n\r\n", 1)
                length = [
                    int(h.split(b":")[1])
                    for h in head.split(b"\r\n")
                    if h.lower().startswith(b"content-length")
                ]
                while len(data) < (length[0] if length else 0):
                    data += conn.recv(65536)
                data = data[length[0] if length else 0 :]
                self.request_lines.append(head.split(b"\r\n", 1)[0])
                if not self.answer:
                    self.release.wait(30)
                    return
                close = b"" if self.keep_alive else b"Connection: close\r\n"
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + close
                    + b"Content-Length: " + str(len(PUSHED)).encode() + b"\r\n\r\n" + PUSHED
                )  # fmt: skip
                if not self.keep_alive:
                    return

    def close(self) -> None:
        self.release.set()
        self.listener.close()
