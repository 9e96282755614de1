"""Serving: the gateway and the worker in one event loop, and the loopback helper."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from linepush.config import Channel
from linepush.service import GatewayConfig, create_gateway_app, serving
from linepush.service.server import _serve
from linepush.store import Store


class FakeServer:
    """Stands in for uvicorn.Server: serves until should_exit is set."""

    def __init__(self, stop_after: float | None = None) -> None:
        self.should_exit = False
        self.stop_after = stop_after
        self.served = False

    async def serve(self, sockets: object = None) -> None:
        self.served = True
        waited = 0.0
        while not self.should_exit:
            await asyncio.sleep(0)
            waited += 1
            if self.stop_after is not None and waited >= self.stop_after:
                return


async def test_stopping_the_server_stops_the_worker_which_finishes_first() -> None:
    events: list[str] = []

    async def worker(stop: asyncio.Event) -> None:
        events.append("worker started")
        await stop.wait()
        await asyncio.sleep(0)
        events.append("worker gave back its rows")

    server = FakeServer(stop_after=5)
    await _serve(server, worker)  # type: ignore[arg-type]
    assert events == ["worker started", "worker gave back its rows"]


async def test_a_dying_worker_takes_the_server_down(caplog: pytest.LogCaptureFixture) -> None:
    async def worker(stop: asyncio.Event) -> None:
        raise RuntimeError("the store vanished")

    server = FakeServer()
    with pytest.raises(RuntimeError, match="the store vanished"):
        await _serve(server, worker)  # type: ignore[arg-type]
    assert server.should_exit
    assert "the delivery worker stopped: the store vanished" in caplog.text


async def test_without_a_worker_only_the_server_runs() -> None:
    server = FakeServer(stop_after=1)
    await _serve(server, None)  # type: ignore[arg-type]
    assert server.served


def test_serving_a_busy_port_fails_clearly(store: Store, channel: Channel) -> None:
    app: Any = create_gateway_app(store, channel, GatewayConfig())
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError), serving(app, port=port):
            pass
