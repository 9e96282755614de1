"""Serving the emulator with uvicorn: in a background thread for tests and demos, or in the foreground."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn
from starlette.applications import Starlette

from linepush.emulator.app import create_app
from linepush.emulator.state import EmulatorState

_STARTUP_TIMEOUT = 10.0
_SHUTDOWN_TIMEOUT = 10.0
_DROP_MESSAGE = "ASGI callable returned without completing response."


class _QuietDrops(logging.Filter):
    """Hide uvicorn's error line for a deliberately dropped answer (the drop_after_accept fault)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != _DROP_MESSAGE


def quiet_dropped_responses() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietDrops) for f in logger.filters):
        logger.addFilter(_QuietDrops())


def uvicorn_config(
    app: Any, *, log_level: str = "warning", access_log: bool = False, own_logging: bool = True
) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        log_level=log_level,
        access_log=access_log,
        # In a host process (tests, demo) uvicorn must not reconfigure the process's logging.
        log_config=uvicorn.config.LOGGING_CONFIG if own_logging else None,
        lifespan="off",
        # LINE's answers carry no uvicorn Server header; neither should the emulator's.
        server_header=False,
    )


def serve(
    app: Any,
    host: str,
    port: int,
    *,
    log_level: str = "warning",
    access_log: bool = False,
    sock: socket.socket | None = None,
) -> None:
    """Serve ``app`` in the foreground until interrupted (used by ``linepush emulator``); on ``sock`` when
    given (bound already), else on ``host`` and ``port``."""
    quiet_dropped_responses()
    config = uvicorn_config(app, log_level=log_level, access_log=access_log)
    config.host, config.port = host, port
    uvicorn.Server(config).run(sockets=None if sock is None else [sock])


@dataclass(frozen=True)
class RunningEmulator:
    """A served emulator: its base ``url``, the ASGI ``app`` and its ``state`` (admin methods)."""

    url: str
    app: Starlette
    state: EmulatorState
    host: str
    port: int


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@contextmanager
def running(
    app: Starlette | None = None, *, host: str = "127.0.0.1", port: int = 0
) -> Iterator[RunningEmulator]:
    """Serve ``app`` (a fresh emulator by default) on a loopback port in a background thread."""
    app = app if app is not None else create_app()
    quiet_dropped_responses()
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound_port: int = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn_config(app, own_logging=False))
    failure: list[BaseException] = []

    def run() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # surfaced to the caller below, not lost in the thread
            failure.append(exc)

    thread = threading.Thread(target=run, name=f"linepush-emulator-{bound_port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + _STARTUP_TIMEOUT
    try:
        while not (server.started and _accepts(host, bound_port)):
            if failure or not thread.is_alive():
                raise RuntimeError("the emulator server stopped during start-up") from (
                    failure[0] if failure else None
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"the emulator did not start within {_STARTUP_TIMEOUT:.0f} s")
            thread.join(0.005)
        shown = f"[{host}]" if ":" in host else host
        yield RunningEmulator(
            url=f"http://{shown}:{bound_port}", app=app, state=app.state.emulator, host=host, port=bound_port
        )
    finally:
        server.should_exit = True
        thread.join(_SHUTDOWN_TIMEOUT)
        sock.close()
