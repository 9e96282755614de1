"""A child process of the token stampede tests: one manager, one get_token at the given moment."""

from __future__ import annotations

from typing import Any


def child(channel_args: dict[str, Any], store_url: str, api_base: str, go: Any, ready: Any, out: Any) -> None:
    from linepush.client import LineClient
    from linepush.config import Channel
    from linepush.tokens import TokenManager

    channel = Channel(**channel_args)
    client = LineClient(channel, api_base=api_base)
    manager = TokenManager(channel, store_url, client=client, refresh_window=900)
    ready.put(1)
    go.wait(30)
    try:
        out.put(("ok", manager.get_token()))
    except Exception as exc:  # reported to the parent, which fails the test with it
        out.put(("error", repr(exc)))
    manager.join_background(30)
    manager.close()
    client.close()
