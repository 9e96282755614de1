"""A LINE channel's credentials, and every setting resolved from flags, the environment and linepush.toml."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from linepush._secret import Secret, masked_url
from linepush.errors import ConfigurationError

__all__ = [
    "CONFIG_ENV",
    "ENV_VARS",
    "PROFILE_ENV",
    "SETTINGS_ENV_VARS",
    "SETTING_NAMES",
    "Channel",
    "Settings",
    "default_config_paths",
    "exposed_key_file",
    "load_config_file",
    "masked_store_url",
    "resolve_settings",
]

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


# --- Resolved settings: flags over environment over a TOML file --------------------------------------------

#: The environment variables :func:`resolve_settings` reads besides :data:`ENV_VARS`, by setting.
SETTINGS_ENV_VARS: Mapping[str, str] = {
    "to": "LINEPUSH_TO",
    "store": "LINEPUSH_STORE",
    "api_base": "LINEPUSH_API_BASE",
    "quota_warning": "LINEPUSH_QUOTA_WARNING",
}
#: Names the profile (``[channels.NAME]``) when ``--channel`` is not given.
PROFILE_ENV = "LINEPUSH_CHANNEL"
#: Names the configuration file when ``--config`` is not given.
CONFIG_ENV = "LINEPUSH_CONFIG"
CONFIG_FILE_NAME = "linepush.toml"

#: Every setting, in the order `linepush config show` lists them.
SETTING_NAMES: tuple[str, ...] = (*ENV_VARS, "to", "store", "api_base", "quota_warning")
SECRET_SETTINGS: frozenset[str] = frozenset({"channel_secret", "access_token"})
_FILE_ONLY_KEYS = frozenset({"default_channel", "channels", "recipients", "alerts"})


@dataclass(frozen=True)
class Settings:
    """Everything a command needs, resolved, with where each value came from.

    ``sources`` maps each set setting to "flag --channel-id", "env LINE_CHANNEL_ID" or
    "file PATH [channels.NAME]". ``to`` is the default recipient (one id, or several for a multicast).
    """

    channel: Channel
    profile: str | None = None
    profile_source: str | None = None
    to: tuple[str, ...] = ()
    store: str | None = None
    api_base: str | None = None
    #: Warn when this much of the month's message limit is used: a percentage ("80", "80%"); default 80.
    quota_warning: str | None = None
    config_file: Path | None = None
    #: The files looked for when none was named, in order (for "no configuration file found" messages).
    searched: tuple[Path, ...] = ()
    profiles: tuple[str, ...] = ()
    sources: Mapping[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    #: ``[recipients]`` of the file: names for ids, usable wherever an id is (``--to``, routes).
    recipients: Mapping[str, str] = field(default_factory=dict)
    #: ``[alerts]`` of the file, as written; `linepush serve` checks it.
    alerts: Mapping[str, Any] = field(default_factory=dict)

    def value(self, name: str) -> Any:
        """A setting by name; secrets stay :class:`Secret`."""
        if name in ENV_VARS:
            return getattr(self.channel, name)
        return getattr(self, name)

    @property
    def quota_warning_share(self) -> float:
        """The quota warning threshold as a share of the limit (0.8 for "80")."""
        if self.quota_warning is None:
            from linepush.api.messaging import DEFAULT_QUOTA_WARNING

            return DEFAULT_QUOTA_WARNING
        text = self.quota_warning.strip().removesuffix("%").strip()
        try:
            percent = float(text)
        except ValueError:
            percent = -1.0
        if not 0 <= percent <= 100:
            source = self.sources.get("quota_warning", "quota_warning")
            raise ConfigurationError(
                f"quota_warning ({source}) must be a percentage from 0 to 100, like 80, not "
                f"{self.quota_warning!r}"
            )
        return percent / 100

    def require_to(self) -> tuple[str, ...]:
        if not self.to:
            raise ConfigurationError(
                'no recipient: pass --to U…, set LINEPUSH_TO, or put to = "U…" in '
                f"{self._where()} (the user, group or room id to send to)"
            )
        return self.to

    def _where(self) -> str:
        place = str(self.config_file) if self.config_file else CONFIG_FILE_NAME
        return f"{place} [channels.{self.profile}]" if self.profile else place


def default_config_paths(cwd: Path | None = None, user_config_dir: Path | None = None) -> tuple[Path, ...]:
    """Where a configuration file is looked for, first found wins: ./linepush.toml, then the user's
    config directory (e.g. ~/.config/linepush/linepush.toml)."""
    if user_config_dir is None:
        import platformdirs

        user_config_dir = Path(platformdirs.user_config_dir("linepush", appauthor=False))
    return ((cwd or Path.cwd()) / CONFIG_FILE_NAME, user_config_dir / CONFIG_FILE_NAME)


def load_config_file(path: Path) -> dict[str, Any]:
    """Read and check a linepush.toml; raises ConfigurationError naming the file and the problem."""
    import tomllib

    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigurationError(f"configuration file {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigurationError(f"configuration file {path} is a directory") from None
    except OSError as exc:
        raise ConfigurationError(f"configuration file {path} cannot be read: {exc.strerror}") from None
    try:
        parsed = tomllib.loads(data.decode("utf-8-sig"))  # a byte-order mark in front is read past
    except UnicodeDecodeError:
        raise ConfigurationError(f"configuration file {path} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"configuration file {path} is not valid TOML: {exc}") from None
    _check_table(parsed, path, "top level", top=True)
    channels = parsed.get("channels", {})
    if not isinstance(channels, dict):
        raise ConfigurationError(f"{path}: 'channels' must be a table of [channels.NAME] tables")
    for name, table in channels.items():
        if not isinstance(table, dict):
            raise ConfigurationError(f"{path}: channels.{name} must be a table ([channels.{name}])")
        _check_table(table, path, f"[channels.{name}]", top=False)
    _check_recipients(parsed.get("recipients", {}), path)
    if not isinstance(parsed.get("alerts", {}), dict):
        raise ConfigurationError(f"{path}: 'alerts' must be a table ([alerts])")
    default = parsed.get("default_channel")
    if default is not None and not isinstance(default, str):
        raise ConfigurationError(f"{path}: default_channel must be a string (a [channels.NAME] name)")
    return parsed


def _check_recipients(table: object, path: Path) -> None:
    from linepush.errors import ValidationError
    from linepush.store.base import check_recipient_name, recipient_type

    if not isinstance(table, dict):
        raise ConfigurationError(
            f"{path}: 'recipients' must be a table of names: [recipients] ops-room = \"C…\""
        )
    for name, recipient_id in table.items():
        try:
            check_recipient_name(name)
            recipient_type(recipient_id)
        except ValidationError as exc:
            raise ConfigurationError(f"{path} [recipients] {name!r}: {exc.property} {exc.reason}") from None


def resolve_recipient(value: str, names: Mapping[str, str]) -> str:
    """The id a ``--to`` value or a route means: an id as it is, a name as its id. Anything else is left as
    it is, for the id check to explain."""
    return names.get(value, value)


def _check_table(table: Mapping[str, Any], path: Path, where: str, *, top: bool) -> None:
    allowed = set(SETTING_NAMES) | (_FILE_ONLY_KEYS if top else set())
    for key, value in table.items():
        if key not in allowed:
            raise ConfigurationError(
                f"{path} {where}: unknown setting {key!r}; known settings: {', '.join(SETTING_NAMES)}"
            )
        if key in _FILE_ONLY_KEYS:
            continue
        if key == "to":
            ok = isinstance(value, str) or (
                isinstance(value, list) and value and all(isinstance(v, str) for v in value)
            )
            if not ok:
                raise ConfigurationError(f"{path} {where}: 'to' must be an id string or a list of ids")
        elif key == "channel_id":
            if not isinstance(value, str | int) or isinstance(value, bool):
                raise ConfigurationError(f"{path} {where}: 'channel_id' must be a string of digits")
        elif key == "quota_warning":
            if not isinstance(value, str | int | float) or isinstance(value, bool):
                raise ConfigurationError(f"{path} {where}: 'quota_warning' must be a percentage, like 80")
        elif not isinstance(value, str):
            raise ConfigurationError(f"{path} {where}: {key!r} must be a string")


def resolve_settings(
    flags: Mapping[str, Any] | None = None,
    *,
    profile: str | None = None,
    config_file: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    user_config_dir: Path | None = None,
) -> Settings:
    """Resolve every setting: ``flags`` (None or "" = not given) over ``env`` over the TOML file.

    The file is ``config_file``, else ``$LINEPUSH_CONFIG``, else the first of :func:`default_config_paths`
    that exists. Its top-level settings are defaults for every channel; the profile's ``[channels.NAME]``
    table (``profile``, else ``$LINEPUSH_CHANNEL``, else ``default_channel``, else a table named "default")
    overrides them. Relative paths in the file are relative to the file. Pure apart from reading the file.
    """
    flags = {k: v for k, v in (flags or {}).items() if v is not None and v != "" and v != ()}
    env = os.environ if env is None else env
    unknown = set(flags) - set(SETTING_NAMES)
    if unknown:
        raise ValueError(f"unknown settings {sorted(unknown)}")

    searched: tuple[Path, ...] = ()
    path: Path | None = None
    if config_file:
        path = Path(config_file).expanduser()
    elif env.get(CONFIG_ENV, "").strip():
        path = Path(env[CONFIG_ENV].strip()).expanduser()
    else:
        searched = default_config_paths(cwd, user_config_dir)
        path = next((p for p in searched if p.is_file()), None)
    data = load_config_file(path) if path is not None else {}
    tables: dict[str, Any] = data.get("channels", {})

    profile_source: str | None = None
    if profile:
        profile_source = "flag --channel"
    elif env.get(PROFILE_ENV, "").strip():
        profile, profile_source = env[PROFILE_ENV].strip(), f"env {PROFILE_ENV}"
    elif data.get("default_channel"):
        profile, profile_source = data["default_channel"], f"file {path} default_channel"
    elif "default" in tables:
        profile, profile_source = "default", f"file {path} [channels.default]"
    if profile is not None and profile not in tables:
        if path is None:
            raise ConfigurationError(
                f"no channel profile named {profile!r} ({profile_source}): no configuration file was found "
                f"(looked for {', '.join(str(p) for p in searched)}); a profile is a [channels.{profile}] "
                "table there"
            )
        known = ", ".join(sorted(tables)) or "none"
        raise ConfigurationError(
            f"no channel profile named {profile!r} ({profile_source}); profiles in {path}: {known}"
        )

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    layers: list[tuple[Mapping[str, Any], str]] = []
    if path is not None:
        layers.append(({k: v for k, v in data.items() if k in SETTING_NAMES}, f"file {path}"))
        if profile is not None:
            layers.append((tables[profile], f"file {path} [channels.{profile}]"))
    for layer, source in layers:
        for key, value in layer.items():
            if key == "assertion_key_file" or (key == "store" and "://" not in value):
                value = str((path.parent if path else Path()) / Path(value).expanduser())
            values[key], sources[key] = value, source
    for key, var in (*ENV_VARS.items(), *SETTINGS_ENV_VARS.items()):
        value = env.get(var, "").strip()
        if value:
            values[key], sources[key] = value, f"env {var}"
    flag_names = {
        "channel_id": "--channel-id",
        "assertion_key_file": "--key-file",
        "assertion_kid": "--kid",
        "to": "--to",
        "store": "--store",
        "api_base": "--api-base",
    }
    for key, value in flags.items():
        values[key], sources[key] = value, f"flag {flag_names.get(key, '--' + key.replace('_', '-'))}"

    to = values.pop("to", None)
    recipients: tuple[str, ...] = (to,) if isinstance(to, str) else tuple(to) if to else ()
    recipients = tuple(r.strip() for part in recipients for r in part.split(",") if r.strip())
    channel_fields = {k: values.pop(k) for k in list(values) if k in ENV_VARS}
    channel = Channel(
        **channel_fields,
        name=profile or "default",
        sources={k: v for k, v in sources.items() if k in ENV_VARS},
    )
    return Settings(
        channel=channel,
        profile=profile,
        profile_source=profile_source,
        to=recipients,
        store=values.get("store"),
        api_base=values.get("api_base"),
        quota_warning=None if values.get("quota_warning") is None else str(values["quota_warning"]),
        config_file=path,
        searched=searched,
        profiles=tuple(sorted(tables)),
        sources=sources,
        warnings=tuple(_warnings(sources, path, data, channel.assertion_key_file)),
        recipients=dict(data.get("recipients", {})),
        alerts=dict(data.get("alerts", {})),
    )


def masked_store_url(url: str) -> str:
    """A store URL fit to show: a password in it (``user:password@`` or ``?password=``) becomes "…"."""
    return masked_url(url)


def _holds_password(url: object) -> bool:
    return isinstance(url, str) and masked_store_url(url) != url


def exposed_key_file(path: Path | None) -> str | None:
    """What is wrong with private key file ``path`` if others can read or write it (on POSIX), else None.

    Whoever reads the key can get tokens for the channel: OpenSSH refuses such a key, and so does linepush.
    """
    if path is None or os.name != "posix":
        return None
    try:
        mode = path.stat().st_mode
    except OSError:
        return None  # a missing or unreadable file is reported when it is read
    if not stat.S_ISREG(mode) or not mode & 0o077:
        return None
    return (
        f"private key file {path} can be used by others (mode {mode & 0o777:03o}): "
        f"whoever reads it can get tokens for the channel; run chmod 600 {path}"
    )


def _warnings(
    sources: Mapping[str, str], path: Path | None, data: Mapping[str, Any], key_file: Path | None
) -> list[str]:
    found: list[str] = []
    credentials = [k for k in ENV_VARS if k in sources]
    layers = {sources[k].split(" [")[0].split(" ")[0] for k in credentials}
    if len(layers) > 1:
        found.append(
            "the channel's settings come from more than one place ("
            + ", ".join(f"{k}: {sources[k]}" for k in credentials)
            + "): make sure they all belong to the same channel"
        )
    if path is not None and os.name == "posix":
        pairs = [(k, v) for t in (data, *data.get("channels", {}).values()) for k, v in t.items()]
        holds_secret = any(k in SECRET_SETTINGS or (k == "store" and _holds_password(v)) for k, v in pairs)
        try:
            loose = path.stat().st_mode & 0o077
        except OSError:
            loose = 0
        if holds_secret and loose:
            found.append(f"{path} holds a secret but others can read it: chmod 600 {path}")
    exposed = exposed_key_file(key_file)
    if exposed:
        found.append(exposed)
    return found
