"""Serving the gateway with uvicorn: in the foreground (``linepush serve``, optionally with the delivery
worker in the same event loop), or in a background thread on a loopback port for tests."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import resource
import signal
import socket
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Final

import uvicorn
from starlette.applications import Starlette
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from linepush.errors import ConfigurationError

__all__ = [
    "ConnectionLimits",
    "RunningGateway",
    "WorkerLoop",
    "listening_socket",
    "serve",
    "serving",
    "uvicorn_config",
]

log = logging.getLogger("linepush.service")

_STARTUP_TIMEOUT: Final = 10.0
_SHUTDOWN_TIMEOUT: Final = 10.0

#: Something that delivers the outbox until its ``stop`` event is set (a Worker's ``run``).
WorkerLoop = Callable[[asyncio.Event], Coroutine[Any, Any, Any]]


#: Connections taken from the listening socket at once. asyncio's accept loop takes up to this many before
#: any of them reaches the protocol (and the cap below), and those refused there give their descriptor back
#: only on the next turn of the loop, while a new batch comes in: two batches need descriptors at once.
_BACKLOG: Final = 64
#: Descriptors kept free under the process's limit: two accept batches, and the store, logs and images.
#: A burst can still have a third batch in flight; running out is then logged in one line (below) and
#: asyncio tries accepting again a second later.
_SPARE_FILES: Final = 2 * _BACKLOG + 64
_BUSY: Final = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 19\r\nconnection: close\r\n\r\nService Unavailable"
)


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """What one client may hold of the gateway: seconds to send a request's headers (from connecting, or
    from the previous answer) and then its body, the bytes of its request line and headers, and how many
    connections are open at once (further ones are answered 503 and closed at once)."""

    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_header_bytes: int = 16 * 1024
    max_connections: int = 1000

    def __post_init__(self) -> None:
        if not (self.header_timeout > 0 and self.body_timeout > 0):
            raise ConfigurationError("the header and body timeouts must be positive numbers of seconds")
        if self.max_header_bytes < 1024 or self.max_connections < 1:
            raise ConfigurationError("allow at least 1 KiB of headers and 1 connection")

    def connection_cap(self) -> int:
        """``max_connections``, lowered to fit the process's descriptor limit: running out of descriptors
        fails every request (the accept loop then only logs), a 503 fails only the excess ones."""
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY:
            return self.max_connections
        return max(1, min(self.max_connections, soft - _SPARE_FILES))


class _HeadersTooLarge(Exception):
    pass


class _GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with what it lacks against slow or greedy clients.

    uvicorn times out only idle keep-alive connections, caps requests (``limit_concurrency``) only once their
    headers are in, and (with httptools) takes headers of any size. So a client that sends its headers or
    its body a byte at a time, or never finishes them, holds a descriptor for ever, and a few hundred of them
    exhaust the process's. Here one timer per connection bounds each stage of a request (headers, then
    body); when it fires the connection is closed, as uvicorn's keep-alive timeout does (an app waiting on
    the body sees a disconnect). Headers past the limit end parsing, which uvicorn answers with a 400.
    """

    limits: ClassVar[ConnectionLimits]
    cap: ClassVar[int]
    _last_busy_warning: ClassVar[float] = float("-inf")

    _timer: asyncio.TimerHandle | None = None
    _header_bytes = 0
    # Bytes received while a request's headers are not complete: httptools calls back only once a header
    # line has ended, and buffers a line that never ends however long it grows.
    _in_headers = True
    _head_bytes = 0

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._in_headers and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > self.limits.max_header_bytes:
                self.send_400_response("Request headers too large.")

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.cap:
            now = time.monotonic()
            if now - _GuardedProtocol._last_busy_warning > 60:
                _GuardedProtocol._last_busy_warning = now
                log.warning("%d connections are open, the most allowed: new ones get 503", self.cap)
            transport.write(_BUSY)
            transport.close()
            return
        self._arm(self.limits.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._timer = self.loop.call_later(seconds, self._too_slow)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _too_slow(self) -> None:
        self._timer = None
        if not self.transport.is_closing():
            log.debug("closed a connection whose request did not arrive in time")
            self.transport.close()

    def _count(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > self.limits.max_header_bytes:
            raise _HeadersTooLarge

    def on_message_begin(self) -> None:
        self._header_bytes = 0
        self._in_headers, self._head_bytes = True, 0
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._arm(self.limits.body_timeout)
        # The body is read when the app asks for it (uvicorn's receive resumes reading), not before: an app
        # that refuses the request from its headers alone never holds its body.
        self.flow.pause_reading()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        # Answered early (before its body was read): the next request's headers are now awaited.
        if self.cycle is not None and self.cycle.response_complete:
            self._arm(self.limits.header_timeout)
        else:
            self._disarm()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        cycle = self.cycle
        if self.transport.is_closing() or cycle is None or not cycle.response_complete:
            return  # closing, or a pipelined request (its headers already in) is being answered
        if cycle.more_body:
            # Answered before its body was read: what came of it is of no use, and the rest is dropped.
            cycle.body = bytearray()
        else:
            self._arm(self.limits.header_timeout)


def _protocol(limits: ConnectionLimits) -> type[asyncio.Protocol]:
    return type("GatewayProtocol", (_GuardedProtocol,), {"limits": limits, "cap": limits.connection_cap()})


def uvicorn_config(
    app: Starlette, *, log_level: str = "warning", limits: ConnectionLimits | None = None
) -> uvicorn.Config:
    limits = limits or ConnectionLimits()
    return uvicorn.Config(
        app,
        log_level=log_level,
        # The gateway writes its own access lines (without query strings, which uvicorn's would show).
        access_log=False,
        # uvicorn must not reconfigure the host process's logging; the CLI sets logging up.
        log_config=None,
        lifespan="off",
        server_header=False,
        http=_protocol(limits),
        backlog=_BACKLOG,
        # Requests still being answered, counted by uvicorn; its count includes the asking connection.
        limit_concurrency=limits.connection_cap() + 1,
    )


#: What asyncio reports when ``accept`` fails for want of descriptors or memory; it then stops accepting for
#: a second and tries again.
_ACCEPT_STARVED: Final = "socket.accept() out of system resource"
_STARVED_ERRNOS: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_last_starved_warning = float("-inf")


def _loop_errors(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """The event loop's error handler: running out of descriptors while accepting is one warning line a
    minute that says what to do (asyncio's own report is a traceback per second); the rest as asyncio has
    it."""
    global _last_starved_warning
    exc = context.get("exception")
    if context.get("message") != _ACCEPT_STARVED or not (
        isinstance(exc, OSError) and exc.errno in _STARVED_ERRNOS
    ):
        loop.default_exception_handler(context)
        return
    now = time.monotonic()
    if now - _last_starved_warning > 60:
        _last_starved_warning = now
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        shown = "unlimited" if soft == resource.RLIM_INFINITY else str(soft)
        log.warning(
            "new connections wait: the process is out of descriptors (%s; open files limit %s). Raise the "
            "limit: ulimit -n, or LimitNOFILE= in a systemd unit",
            exc.strerror or exc,
            shown,
        )


class _Server(uvicorn.Server):
    """uvicorn, minus one habit: after a SIGTERM or SIGINT stopped it, uvicorn raises the signal again, which
    would end the process before the delivery worker gives back the rows it holds. Here the signal only
    stops the server; the caller then stops the worker and returns normally."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        original = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        loop = asyncio.get_running_loop()
        if loop.get_exception_handler() is None:
            loop.set_exception_handler(_loop_errors)
        await super().serve(sockets)


def serve(
    app: Starlette,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    worker: WorkerLoop | None = None,
    log_level: str = "warning",
    limits: ConnectionLimits | None = None,
    sock: socket.socket | None = None,
) -> None:
    """Serve ``app`` until interrupted (Ctrl+C or SIGTERM); with ``worker``, run it alongside in the same
    event loop, and stop it (letting it finish what it holds) when the server stops. ``sock`` is a socket
    bound already (:func:`listening_socket`), else ``host`` and ``port`` are bound."""
    config = uvicorn_config(app, log_level=log_level, limits=limits)
    config.host, config.port = host, port
    asyncio.run(_serve(_Server(config), worker, None if sock is None else [sock]))


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` as uvicorn binds one, so that a port in use is known (an OSError)
    before anything is announced."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


async def _serve(
    server: uvicorn.Server, worker: WorkerLoop | None, sockets: list[socket.socket] | None = None
) -> None:
    if worker is None:
        await server.serve(sockets)
        return
    stop = asyncio.Event()
    delivering: asyncio.Task[Any] = asyncio.create_task(worker(stop), name="linepush-worker")

    def worker_ended(task: asyncio.Task[Any]) -> None:
        # A worker that dies takes the server down with it: a gateway that only queues would look healthy.
        if not task.cancelled() and task.exception() is not None:
            log.error("the delivery worker stopped: %s", task.exception())
        server.should_exit = True

    delivering.add_done_callback(worker_ended)
    try:
        await server.serve(sockets)
    finally:
        stop.set()
        await delivering


@dataclass(frozen=True)
class RunningGateway:
    """A gateway served on a loopback port: its base ``url`` and the ASGI ``app``."""

    url: str
    app: Starlette
    host: str
    port: int


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def serving(app: Starlette, *, host: str = "127.0.0.1", port: int = 0) -> Iterator[RunningGateway]:
    """Serve ``app`` on ``host`` (a free port by default) in a background thread until the block ends."""
    sock = listening_socket(host, port)
    bound: int = sock.getsockname()[1]
    server = _Server(uvicorn_config(app))
    failure: list[BaseException] = []

    def run() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # surfaced to the caller below, not lost in the thread
            failure.append(exc)

    thread = threading.Thread(target=run, name=f"linepush-gateway-{bound}", daemon=True)
    thread.start()
    deadline = time.monotonic() + _STARTUP_TIMEOUT
    try:
        while not (server.started and _accepts(host, bound)):
            if failure or not thread.is_alive():
                raise RuntimeError("the gateway server stopped during start-up") from (
                    failure[0] if failure else None
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"the gateway did not start within {_STARTUP_TIMEOUT:.0f} s")
            thread.join(0.005)
        shown = f"[{host}]" if ":" in host else host
        yield RunningGateway(url=f"http://{shown}:{bound}", app=app, host=host, port=bound)
    finally:
        server.should_exit = True
        thread.join(_SHUTDOWN_TIMEOUT)
        sock.close()
