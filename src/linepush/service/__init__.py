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

from linepush.service.app import create_gateway_app
from linepush.service.gateway import DEFAULT_RATE_LIMITS, GatewayConfig, RateLimits
from linepush.service.gateway_tokens import create_gateway_token, hash_gateway_token
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
