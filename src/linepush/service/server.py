"""Serving the gateway with uvicorn: in the foreground (``linepush serve``, optionally with the delivery
worker in the same event loop), or in a background thread on a loopback port for tests."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, Final

import uvicorn
from starlette.applications import Starlette

__all__ = ["RunningGateway", "WorkerLoop", "serve", "serving", "uvicorn_config"]

log = logging.getLogger("linepush.service")

_STARTUP_TIMEOUT: Final = 10.0
_SHUTDOWN_TIMEOUT: Final = 10.0

#: Something that delivers the outbox until its ``stop`` event is set (a Worker's ``run``).
WorkerLoop = Callable[[asyncio.Event], Coroutine[Any, Any, Any]]


def uvicorn_config(app: Starlette, *, log_level: str = "warning") -> uvicorn.Config:
    return uvicorn.Config(
        app,
        log_level=log_level,
        # The gateway writes its own access lines (without query strings, which uvicorn's would show).
        access_log=False,
        # uvicorn must not reconfigure the host process's logging; the CLI sets logging up.
        log_config=None,
        lifespan="off",
        server_header=False,
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


def serve(
    app: Starlette,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    worker: WorkerLoop | None = None,
    log_level: str = "warning",
) -> None:
    """Serve ``app`` until interrupted (Ctrl+C or SIGTERM); with ``worker``, run it alongside in the same
    event loop, and stop it (letting it finish what it holds) when the server stops."""
    config = uvicorn_config(app, log_level=log_level)
    config.host, config.port = host, port
    asyncio.run(_serve(_Server(config), worker))


async def _serve(server: uvicorn.Server, worker: WorkerLoop | None) -> None:
    if worker is None:
        await server.serve()
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
        await server.serve()
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
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound: int = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn_config(app))
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
