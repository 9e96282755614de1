"""The service layer: the LINE Notify–compatible gateway and webhook receiver, and serving them.

It sits above the library (client, outbox, store, config); nothing in the library imports it.
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
