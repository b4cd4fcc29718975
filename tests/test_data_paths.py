"""Data-directory resolution, writability and the one-line DataError."""

import pytest

from scratchvae.data.errors import DataError
from scratchvae.data.paths import ENV_VAR, find_data, resolve_data_dir, search_dirs, user_cache_dir, writable_dir


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    """Point the per-user cache at a temporary folder and clear SCRATCHVAE_DATA."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv(ENV_VAR, raising=False)
    return tmp_path / "xdg" / "scratchvae"


def test_precedence_is_argument_then_env_then_cache(cache_home, tmp_path, monkeypatch):
    assert resolve_data_dir() == cache_home
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env"))
    assert resolve_data_dir() == tmp_path / "env"
    assert resolve_data_dir(tmp_path / "flag") == tmp_path / "flag"


def test_cache_falls_back_to_home_without_xdg(tmp_path, monkeypatch):
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert user_cache_dir() == tmp_path / ".cache" / "scratchvae"


def test_search_dirs_lists_the_cache_once(cache_home, tmp_path):
    assert search_dirs(tmp_path) == [tmp_path, cache_home]
    assert search_dirs() == [cache_home]


def test_find_data_prefers_the_data_dir_then_the_name_order(cache_home, tmp_path):
    cache_home.mkdir(parents=True)
    (cache_home / "a").touch()
    assert find_data(("a", "b"), tmp_path) == cache_home / "a"
    (tmp_path / "b").touch()
    assert find_data(("a", "b"), tmp_path) == tmp_path / "b"
    (tmp_path / "a").touch()
    assert find_data(("a", "b"), tmp_path) == tmp_path / "a"
    assert find_data(("c",), tmp_path) is None


def test_read_only_dir_redirects_writes_to_the_cache(cache_home, tmp_path):
    read_only = tmp_path / "shared"
    read_only.mkdir()
    read_only.chmod(0o555)
    try:
        assert writable_dir(read_only) == cache_home
        assert writable_dir(read_only / "not" / "yet") == cache_home
    finally:
        read_only.chmod(0o755)
    assert writable_dir(tmp_path) == tmp_path
    assert writable_dir(tmp_path / "new") == tmp_path / "new"


def test_data_error_message_is_one_line():
    error = DataError("first line\n  second line")
    assert str(error) == "first line second line"
    assert isinstance(error, ValueError)
