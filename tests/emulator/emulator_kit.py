"""Helpers shared by the emulator tests: a fake clock, signed assertions, ids."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

START = 1_800_000_000.0  # 2027-01-15, mid-month so that month boundaries are crossed only on purpose
AUD = "https://api.line.me/"
JWT_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class FakeClock:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Channel:
    channel_id: str
    channel_secret: str
    kid: str


def public_jwk(key: rsa.RSAPrivateKey) -> dict[str, Any]:
    # Shaped like LINE's documented example: kty, alg, e, n and use (PyJWT adds key_ops; dropped here).
    jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {"kty": "RSA", "alg": "RS256", "e": jwk["e"], "n": jwk["n"], "use": "sig"}


def assertion(
    key: Any,
    kid: str | None,
    channel_id: str,
    now: float,
    *,
    algorithm: str = "RS256",
    **claims: Any,
) -> str:
    payload: dict[str, Any] = {
        "iss": channel_id,
        "sub": channel_id,
        "aud": AUD,
        "exp": int(now) + 600,
        "token_exp": 86400,
    }
    payload.update(claims)
    payload = {k: v for k, v in payload.items() if v is not None}
    headers = {"kid": kid} if kid is not None else {}
    return jwt.encode(payload, key, algorithm=algorithm, headers=headers)


def unsigned_assertion(header: dict[str, Any], payload: dict[str, Any], signature: str = "c2ln") -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part(header)}.{part(payload)}.{signature}"


async def short_lived(client: httpx.AsyncClient, channel: Channel) -> str:
    response = await client.post(
        "/v2/oauth/accessToken",
        data={
            "grant_type": "client_credentials",
            "client_id": channel.channel_id,
            "client_secret": channel.channel_secret,
        },
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def user_id(n: int = 0) -> str:
    return "U" + f"{n:032x}"


def retry_key() -> str:
    return str(uuid.uuid4())


class LoopbackBot:
    """A bot on a loopback socket that records each webhook and answers with the next status given."""

    def __init__(self, statuses: tuple[int, ...] = (200,), on_event: Any = None) -> None:
        import http.server
        import threading

        self.received: list[tuple[dict[str, str], bytes]] = []
        self._statuses = list(statuses)
        bot = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                bot.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                if on_event is not None:
                    on_event(dict(self.headers.items()), body)
                status = bot._statuses.pop(0) if len(bot._statuses) > 1 else bot._statuses[0]
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/callback"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> LoopbackBot:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
