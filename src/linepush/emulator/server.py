"""Serving the emulator with uvicorn: in a background thread for tests and demos, or in the foreground."""

from __future__ import annotations

import logging
import socket
import threading
import time
import urllib.parse
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


#: Query parameters that carry a credential: LINE's verify and key-id endpoints take them in the URL.
_SECRET_PARAMETERS = frozenset({"access_token", "client_assertion", "client_secret"})


def _masked(full_path: str) -> str:
    """``full_path`` with the values of credential parameters cut to their first 4 characters."""
    path, mark, query = full_path.partition("?")
    if not mark:
        return full_path
    parts = []
    for part in query.split("&"):
        name, equals, value = part.partition("=")
        if equals and value and urllib.parse.unquote_plus(name) in _SECRET_PARAMETERS:
            part = f"{name}={value[:4]}…"
        parts.append(part)
    return f"{path}?{'&'.join(parts)}"


class _NoSecretsInAccessLog(logging.Filter):
    """Mask the tokens and client assertions in the query strings of uvicorn's access lines (whose
    arguments are client, method, path with query, HTTP version and status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], _masked(args[2]), *args[3:])
        return True


def mask_access_log(*, enabled: bool) -> None:
    """Keep credentials out of the access log; and when it is asked for, show it whatever the log level
    (uvicorn's access lines are INFO, below the emulator's default level)."""
    logger = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, _NoSecretsInAccessLog) for f in logger.filters):
        logger.addFilter(_NoSecretsInAccessLog())
    if enabled and logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)


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
        # The Date header comes from the emulator's own clock, which the admin API can move.
        date_header=False,
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
    mask_access_log(enabled=access_log)
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
    mask_access_log(enabled=False)  # a host process may log uvicorn's access lines itself
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
