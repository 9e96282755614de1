"""Test helpers around the emulator: its admin API, and one facade over the sync and async clients."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from linepush.api._base import ApiRequest
from linepush.transport import SyncTransport

TEXT = [{"type": "text", "text": "Hello, world1"}]


class Admin:
    """The emulator's admin API (``/_emulator/…``), called through a sync transport."""

    def __init__(self, transport: SyncTransport) -> None:
        self.transport = transport

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = ApiRequest(method, path, "admin", data, "application/json" if data is not None else None)
        response = self.transport.send(request, None)
        if response.status >= 400:
            raise AssertionError(f"admin {method} {path} -> {response.status} {response.body!r}")
        return response.json()

    def create_channel(self, monthly_quota: int | None = None) -> tuple[str, str]:
        body: dict[str, Any] = {"name": "test"}
        if monthly_quota is not None:
            body["monthly_quota"] = monthly_quota
        created = self.call("POST", "/_emulator/channels", body)
        return created["channel_id"], created["channel_secret"]

    def register_key(self, channel_id: str, jwk: dict[str, Any]) -> str:
        return str(self.call("POST", f"/_emulator/channels/{channel_id}/keys", jwk)["kid"])

    def long_lived_token(self, channel_id: str) -> str:
        return str(
            self.call("POST", f"/_emulator/channels/{channel_id}/long-lived-token", {})["access_token"]
        )

    def recipient(self, channel_id: str, user_id: str, state: str) -> None:
        self.call("POST", f"/_emulator/channels/{channel_id}/recipients", {"id": user_id, "state": state})

    def deliveries(self, channel_id: str | None = None, to: str | None = None) -> list[dict[str, Any]]:
        query = "&".join(f"{k}={v}" for k, v in (("channel_id", channel_id), ("to", to)) if v)
        return list(self.call("GET", "/_emulator/deliveries" + (f"?{query}" if query else ""))["deliveries"])

    def retry_keys(self, channel_id: str | None = None) -> list[dict[str, Any]]:
        """Per retry key the emulator saw: requests (how many carried it) and bodies (how many different)."""
        query = f"?channel_id={channel_id}" if channel_id else ""
        return list(self.call("GET", "/_emulator/retry-keys" + query)["retry_keys"])

    def count(self, path: str, method: str = "POST", status: int | None = None) -> int:
        counts = self.call("GET", "/_emulator/requests")["counts"]
        return sum(
            c["count"]
            for c in counts
            if c["path"] == path and c["method"] == method and (status is None or c["status"] == status)
        )

    def fault(self, **spec: Any) -> None:
        self.call("POST", "/_emulator/faults", spec)

    def clear_faults(self) -> None:
        self.call("DELETE", "/_emulator/faults")

    def advance(self, seconds: float) -> None:
        self.call("POST", "/_emulator/clock", {"advance_seconds": seconds})

    def tokens(self, channel_id: str) -> list[dict[str, Any]]:
        data = self.call("GET", f"/_emulator/tokens?channel_id={channel_id}")
        return list(data["tokens"] if isinstance(data, dict) else data)


class Facade:
    """Calls a LineClient directly, or an AsyncLineClient on a private event loop, with one spelling.

    Lets one test body cover both clients: ``line.push(...)`` returns the result either way.
    """

    def __init__(self, client: Any, runner: asyncio.Runner | None) -> None:
        self.client = client
        self._runner = runner

    @property
    def is_async(self) -> bool:
        return self._runner is not None

    def __getattr__(self, name: str) -> Callable[..., Any]:
        attr = getattr(self.client, name)
        if self._runner is None or not callable(attr):
            return attr  # type: ignore[no-any-return]
        runner = self._runner

        def call(*args: Any, **kwargs: Any) -> Any:
            result = attr(*args, **kwargs)
            if asyncio.iscoroutine(result):
                return runner.run(result)
            return result

        return call

    def close(self) -> None:
        if self._runner is None:
            self.client.close()
        else:
            self._runner.run(self.client.aclose())
            self._runner.close()
