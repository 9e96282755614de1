"""The service layer: the LINE Notify–compatible gateway and webhook receiver, and serving them.

It sits above the library (client, outbox, store, config); nothing in the library imports it. In short::

    store = open_store()
    token, _ = create_gateway_token(store, channel.channel_id, "U…", "alerts", time.time())
    app = create_gateway_app(store, channel, GatewayConfig(public_url="https://gw.example.com",
                                                           image_dir="/var/lib/linepush/images"))
    serve(app, "127.0.0.1", 8080)      # or: with serving(app) as server: … server.url …

and a LINE Notify script changes ``https://notify-api.line.me`` to the gateway's URL and its token to
``token.reveal()``. Notifications are queued in the outbox; the delivery worker sends them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from linepush.service.app import create_gateway_app
    from linepush.service.gateway import GatewayConfig
    from linepush.service.gateway_tokens import create_gateway_token, hash_gateway_token
    from linepush.service.notify_limits import DEFAULT_RATE_LIMITS, RateLimits
    from linepush.service.server import RunningGateway, serve, serving
    from linepush.service.webhook import signature

__all__ = [
    "DEFAULT_RATE_LIMITS",
    "GatewayConfig",
    "RateLimits",
    "RunningGateway",
    "create_gateway_app",
    "create_gateway_token",
    "hash_gateway_token",
    "serve",
    "serving",
    "signature",
]

# Loaded on first use: the CLI's token commands must not pay for starlette's and uvicorn's import.
_WHERE = {
    "DEFAULT_RATE_LIMITS": "linepush.service.notify_limits",
    "GatewayConfig": "linepush.service.gateway",
    "RateLimits": "linepush.service.notify_limits",
    "RunningGateway": "linepush.service.server",
    "create_gateway_app": "linepush.service.app",
    "create_gateway_token": "linepush.service.gateway_tokens",
    "hash_gateway_token": "linepush.service.gateway_tokens",
    "serve": "linepush.service.server",
    "serving": "linepush.service.server",
    "signature": "linepush.service.webhook",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'linepush.service' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
