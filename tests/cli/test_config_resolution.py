"""resolve_settings: flags over environment over linepush.toml, profiles, sources, and what is refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from linepush.config import Channel, resolve_settings
from linepush.errors import ConfigurationError

U1 = "U" + "1" * 32
U2 = "U" + "2" * 32

TOML = f"""
default_channel = "alerts"
store = "state.db"
api_base = "http://127.0.0.1:9"

[channels.alerts]
channel_id = "1111111111"
assertion_key_file = "keys/alerts.json"
assertion_kid = "kid-alerts"
to = "{U1}"

[channels.team]
channel_id = 2222222222
channel_secret = "s3cr3t-team-secret-value"
to = ["{U1}", "{U2}"]
"""


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "conf" / "linepush.toml"
    path.parent.mkdir()
    path.write_text(TOML)
    path.chmod(0o600)
    return path


def test_nothing_configured_gives_empty_settings_and_says_where_it_looked(tmp_path: Path) -> None:
    s = resolve_settings(env={}, cwd=tmp_path, user_config_dir=tmp_path / "user")
    assert s.channel == Channel()
    assert s.config_file is None
    assert s.searched == (tmp_path / "linepush.toml", tmp_path / "user" / "linepush.toml")
    assert s.sources == {}
    with pytest.raises(ConfigurationError, match="LINEPUSH_TO"):
        s.require_to()


def test_file_default_channel_profile_over_top_level(config_file: Path, tmp_path: Path) -> None:
    s = resolve_settings(config_file=config_file, env={})
    assert s.profile == "alerts"
    assert s.profile_source == f"file {config_file} default_channel"
    assert s.channel.channel_id == "1111111111"
    # Relative paths in the file are relative to the file, not to the current directory.
    assert s.channel.assertion_key_file == config_file.parent / "keys" / "alerts.json"
    assert s.store == str(config_file.parent / "state.db")
    assert s.to == (U1,)
    assert s.sources["channel_id"] == f"file {config_file} [channels.alerts]"
    assert s.sources["api_base"] == f"file {config_file}"
    assert s.channel.sources["assertion_kid"] == f"file {config_file} [channels.alerts]"
    assert s.profiles == ("alerts", "team")


def test_env_over_file_and_flags_over_env(config_file: Path) -> None:
    env = {
        "LINE_CHANNEL_ID": "3333333333",
        "LINE_ASSERTION_KID": "kid-env",
        "LINEPUSH_API_BASE": "http://env",
    }
    s = resolve_settings({"channel_id": "4444444444", "api_base": None}, config_file=config_file, env=env)
    assert s.channel.channel_id == "4444444444"
    assert s.sources["channel_id"] == "flag --channel-id"
    assert s.channel.assertion_kid == "kid-env"
    assert s.sources["assertion_kid"] == "env LINE_ASSERTION_KID"
    assert s.api_base == "http://env"  # a flag given as None is "not given"
    assert s.sources["api_base"] == "env LINEPUSH_API_BASE"
    # Settings from several places are allowed, but said.
    assert any("more than one place" in w for w in s.warnings)


def test_profile_by_flag_then_env(config_file: Path) -> None:
    s = resolve_settings(profile="team", config_file=config_file, env={"LINEPUSH_CHANNEL": "alerts"})
    assert (s.profile, s.profile_source) == ("team", "flag --channel")
    assert s.channel.channel_id == "2222222222"
    assert (
        s.channel.channel_secret is not None
        and s.channel.channel_secret.reveal() == "s3cr3t-team-secret-value"
    )
    assert s.to == (U1, U2)
    s = resolve_settings(config_file=config_file, env={"LINEPUSH_CHANNEL": "team"})
    assert (s.profile, s.profile_source) == ("team", "env LINEPUSH_CHANNEL")


def test_unknown_profile_names_the_known_ones(config_file: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"no channel profile named 'ops'.*alerts, team"):
        resolve_settings(profile="ops", config_file=config_file, env={})


def test_search_order_cwd_then_user_dir_and_env_names_a_file(tmp_path: Path) -> None:
    user = tmp_path / "user"
    user.mkdir()
    (user / "linepush.toml").write_text('channel_id = "5555555555"\n')
    s = resolve_settings(env={}, cwd=tmp_path, user_config_dir=user)
    assert s.channel.channel_id == "5555555555"
    (tmp_path / "linepush.toml").write_text('channel_id = "6666666666"\n')
    s = resolve_settings(env={}, cwd=tmp_path, user_config_dir=user)
    assert s.channel.channel_id == "6666666666"
    assert s.config_file == tmp_path / "linepush.toml"
    s = resolve_settings(
        env={"LINEPUSH_CONFIG": str(user / "linepush.toml")}, cwd=tmp_path, user_config_dir=user
    )
    assert s.channel.channel_id == "5555555555"


def test_a_table_named_default_is_used_without_default_channel(tmp_path: Path) -> None:
    path = tmp_path / "linepush.toml"
    path.write_text('[channels.default]\nchannel_id = "7777777777"\n')
    s = resolve_settings(config_file=path, env={})
    assert s.profile == "default" and s.channel.channel_id == "7777777777"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("channel_id = \n", "not valid TOML"),
        ('chanel_id = "1"\n', "unknown setting 'chanel_id'"),
        ("[channels.x]\nto = 5\n", "'to' must be"),
        ("[channels.x]\nassertion_kid = 5\n", "'assertion_kid' must be a string"),
        ("channels = 3\n", "must be a table"),
        ('channel_id = "12ab"\n', "not a LINE channel id"),
        ("quota_warning = true\n", "'quota_warning' must be a percentage"),
    ],
)
def test_bad_files_are_refused_with_the_reason(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "linepush.toml"
    path.write_text(text)
    with pytest.raises(ConfigurationError, match=message) as info:
        resolve_settings(config_file=path, env={})
    assert str(path) in str(info.value) or "channel id" in str(info.value)


@pytest.mark.parametrize(("written", "share"), [("80", 0.8), ("92.5", 0.925), ('"75%"', 0.75)])
def test_quota_warning_is_a_number_in_the_file(tmp_path: Path, written: str, share: float) -> None:
    """TOML users write a percentage as a number, as the README's default of 80 reads."""
    path = tmp_path / "linepush.toml"
    path.write_text(f"quota_warning = {written}\n")
    assert resolve_settings(config_file=path, env={}).quota_warning_share == pytest.approx(share)


def test_a_byte_order_mark_before_the_file_is_read_past(tmp_path: Path) -> None:
    path = tmp_path / "linepush.toml"
    path.write_bytes(b"\xef\xbb\xbf" + b'channel_id = "1234567890"\n')
    assert resolve_settings(config_file=path, env={}).channel.channel_id == "1234567890"


def test_a_named_file_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        resolve_settings(config_file=tmp_path / "nope.toml", env={})


@pytest.mark.skipif(os.name != "posix", reason="file modes")
def test_a_file_holding_a_secret_readable_by_others_is_warned_about(config_file: Path) -> None:
    config_file.chmod(0o644)
    s = resolve_settings(config_file=config_file, env={})
    assert any("chmod 600" in w for w in s.warnings)
    config_file.chmod(0o600)
    assert not any("chmod" in w for w in resolve_settings(config_file=config_file, env={}).warnings)


def test_to_accepts_commas_and_secrets_never_show_in_the_repr(config_file: Path) -> None:
    s = resolve_settings({"to": f"{U1}, {U2}"}, profile="team", config_file=config_file, env={})
    assert s.to == (U1, U2)
    assert s.sources["to"] == "flag --to"
    assert "s3cr3t" not in repr(s)


def test_config_and_channel_may_come_before_the_command(tmp_path: Path) -> None:
    """`linepush --config FILE queue status` reads FILE, as `linepush queue status --config FILE` does."""
    import os
    import subprocess
    import sys

    bad = tmp_path / "bad.toml"
    bad.write_text("channel_id = [\n")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("LINE_", "LINEPUSH_"))},
        "XDG_CONFIG_HOME": str(tmp_path),
        "XDG_STATE_HOME": str(tmp_path),
    }
    for argv in (["--config", str(bad), "queue", "status"], ["queue", "status", "--config", str(bad)]):
        done = subprocess.run(
            [sys.executable, "-m", "linepush", *argv], capture_output=True, text=True, env=env, timeout=60
        )
        assert done.returncode == 2, done.stderr
        assert "bad.toml" in done.stderr and "No such option" not in done.stderr
