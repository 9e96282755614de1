"""A LINE channel's credentials, from arguments or the environment."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from linepush._secret import Secret
from linepush.errors import ConfigurationError

__all__ = ["ENV_VARS", "Channel"]

_CHANNEL_ID = re.compile(r"[0-9]{1,20}\Z")

#: The environment variables :meth:`Channel.from_env` reads, by field.
ENV_VARS: Mapping[str, str] = {
    "channel_id": "LINE_CHANNEL_ID",
    "channel_secret": "LINE_CHANNEL_SECRET",
    "assertion_key_file": "LINE_ASSERTION_KEY_FILE",
    "assertion_kid": "LINE_ASSERTION_KID",
    "access_token": "LINE_CHANNEL_ACCESS_TOKEN",
}


def _as_secret(value: str | Secret | None) -> Secret | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, Secret) else Secret(value)


@dataclass(frozen=True)
class Channel:
    """What linepush needs to know of one channel.

    - ``channel_id`` and ``channel_secret``: from the console's Basic settings. The secret enables short-lived
      and stateless tokens by id + secret, revoking v2.1 tokens, and checking webhook signatures.
    - ``assertion_key_file`` and ``assertion_kid``: the private key whose public JWK was registered in the
      console, and the kid the console showed; they enable v2.1 and stateless tokens by JWT.
    - ``access_token``: a token you manage yourself (e.g. a long-lived one); used as is.

    Secrets are held as :class:`~linepush._secret.Secret`, so the channel's repr shows none of them.
    """

    channel_id: str | None = None
    channel_secret: Secret | None = None
    assertion_key_file: Path | None = None
    assertion_kid: str | None = None
    access_token: Secret | None = None
    name: str = "default"
    #: Where each field came from (e.g. "env LINE_CHANNEL_ID"), for `linepush config show`.
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    def __init__(
        self,
        channel_id: str | int | None = None,
        channel_secret: str | Secret | None = None,
        assertion_key_file: str | os.PathLike[str] | None = None,
        assertion_kid: str | None = None,
        access_token: str | Secret | None = None,
        *,
        name: str = "default",
        sources: Mapping[str, str] | None = None,
    ) -> None:
        if channel_id is not None and channel_id != "":
            channel_id = str(channel_id).strip()
            if not _CHANNEL_ID.match(channel_id):
                raise ConfigurationError(
                    f"channel id {channel_id!r} is not a LINE channel id (digits only, as shown under "
                    "Basic settings in the LINE Developers Console)"
                )
        else:
            channel_id = None
        object.__setattr__(self, "channel_id", channel_id)
        object.__setattr__(self, "channel_secret", _as_secret(channel_secret))
        object.__setattr__(
            self, "assertion_key_file", Path(assertion_key_file).expanduser() if assertion_key_file else None
        )
        object.__setattr__(self, "assertion_kid", assertion_kid or None)
        object.__setattr__(self, "access_token", _as_secret(access_token))
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "sources", dict(sources or {}))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, name: str = "default") -> Channel:
        """A channel from LINE_CHANNEL_ID, LINE_CHANNEL_SECRET, LINE_ASSERTION_KEY_FILE, LINE_ASSERTION_KID
        and LINE_CHANNEL_ACCESS_TOKEN. Unset variables stay None."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        for key, var in ENV_VARS.items():
            value = env.get(var, "").strip()
            if value:
                values[key] = value
                sources[key] = f"env {var}"
        return cls(**values, name=name, sources=sources)

    @property
    def has_assertion_key(self) -> bool:
        return self.assertion_key_file is not None and self.assertion_kid is not None

    def require_id(self) -> str:
        if self.channel_id is None:
            raise ConfigurationError(f"no channel id: set {ENV_VARS['channel_id']} or pass channel_id")
        return self.channel_id

    def require_secret(self) -> Secret:
        if self.channel_secret is None:
            raise ConfigurationError(
                f"no channel secret: set {ENV_VARS['channel_secret']} or pass channel_secret"
            )
        return self.channel_secret

    def __repr__(self) -> str:
        parts = [f"name={self.name!r}", f"channel_id={self.channel_id!r}"]
        if self.channel_secret:
            parts.append("channel_secret=…")
        if self.assertion_key_file:
            parts.append(f"assertion_key_file={str(self.assertion_key_file)!r}")
        if self.assertion_kid:
            parts.append(f"assertion_kid={self.assertion_kid!r}")
        if self.access_token:
            parts.append("access_token=…")
        return f"Channel({', '.join(parts)})"
