"""open_store: which URLs name which store, and the default place of the store file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from linepush.errors import ConfigurationError
from linepush.store import SQLiteStore, StoreError, default_store_url, open_store


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("LINEPUSH_STORE", raising=False)
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    return home


def _path_of(url: str | None) -> str:
    with open_store(url) as store:
        assert isinstance(store, SQLiteStore)
        return store.path


def test_sqlite_url_with_three_slashes_is_relative(tmp_path: Path) -> None:
    assert _path_of("sqlite:///data/q.db") == str(tmp_path / "data" / "q.db")
    assert (tmp_path / "data" / "q.db").is_file()


def test_sqlite_url_with_four_slashes_is_absolute(tmp_path: Path) -> None:
    target = tmp_path / "abs" / "q.db"
    assert _path_of("sqlite:///" + str(target)) == str(target)
    assert _path_of("SQLite:///" + str(target)) == str(target)


def test_a_bare_path_is_an_sqlite_file(tmp_path: Path, clean_env: Path) -> None:
    assert _path_of("plain.db") == str(tmp_path / "plain.db")
    assert _path_of(str(tmp_path / "x" / "y.db")) == str(tmp_path / "x" / "y.db")
    assert _path_of("~/in-home.db") == str(clean_env / "in-home.db")


def test_default_url_is_in_the_users_state_directory(clean_env: Path) -> None:
    expected = clean_env / ".local" / "state" / "linepush" / "linepush.db"
    assert default_store_url() == "sqlite:///" + str(expected)
    assert _path_of(None) == str(expected)
    assert stat.S_IMODE(expected.parent.stat().st_mode) == 0o700


def test_default_url_follows_xdg_state_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert default_store_url() == "sqlite:///" + str(tmp_path / "xdg" / "linepush" / "linepush.db")


def test_a_relative_xdg_state_home_is_ignored_as_the_spec_says(
    monkeypatch: pytest.MonkeyPatch, clean_env: Path
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", "relative/state")
    assert default_store_url() == "sqlite:///" + str(
        clean_env / ".local" / "state" / "linepush" / "linepush.db"
    )


def test_linepush_store_variable_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("LINEPUSH_STORE", "sqlite:///from-env.db")
    assert default_store_url() == "sqlite:///from-env.db"
    assert _path_of(None) == os.path.join(str(tmp_path), "from-env.db")


@pytest.mark.parametrize(
    "url",
    ["postgresql://linepush:hunter22@127.0.0.1:1/linepush", "postgres://127.0.0.1:1/x?connect_timeout=2"],
)
def test_an_unreachable_postgresql_store_is_a_clear_error_without_the_password(url: str) -> None:
    with pytest.raises(
        StoreError, match=r"cannot connect to the PostgreSQL store at postgresql://"
    ) as caught:
        open_store(url)
    assert "hunter22" not in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "",
        "   ",
        "mysql://root:hunter22@localhost/db",
        "sqlite://relative.db",
        "sqlite:///",
        "sqlite:///dir/",
        "sqlite:///:memory:",
        ":memory:",
        "sqlite:///file:x.db?mode=memory",
    ],
)
def test_bad_urls_say_which_forms_are_accepted(url: str) -> None:
    with pytest.raises(ConfigurationError, match=r"sqlite:///relative/path\.db") as caught:
        open_store(url)
    assert "hunter22" not in str(caught.value)
