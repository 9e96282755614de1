"""A local LINE platform: an ASGI app that answers like api.line.me, with an admin API for tests.

It imports nothing from the rest of linepush: it is the other side of the wire.

    with running() as emulator:                      # uvicorn on a free loopback port
        channel = emulator.state.create_channel()    # or POST {emulator.url}/_emulator/channels
        kid = emulator.state.register_key(channel.channel_id, public_jwk)
        ...                                          # point a client at emulator.url

In-process: ``create_app(config, clock=...)`` and any ASGI transport; the state is ``app.state.emulator``.
A browser at ``{url}/_emulator/`` shows the inbox; ``POST /_emulator/channels/{id}/events`` makes a simulated
user send the bot a signed webhook.
"""

from __future__ import annotations

from linepush.emulator.app import create_app
from linepush.emulator.config import DOCUMENTED_RATE_LIMITS, EmulatorConfig, RateLimit
from linepush.emulator.server import RunningEmulator, running
from linepush.emulator.state import AdminError, EmulatorState

__all__ = [
    "DOCUMENTED_RATE_LIMITS",
    "AdminError",
    "EmulatorConfig",
    "EmulatorState",
    "RateLimit",
    "RunningEmulator",
    "create_app",
    "running",
]
