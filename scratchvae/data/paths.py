"""Where datasets and derived caches live on disk.

The data directory is chosen, in order of precedence, by

1. an explicit argument (the command line's ``--data-dir``),
2. the environment variable ``SCRATCHVAE_DATA``,
3. the per-user cache: ``$XDG_CACHE_HOME/scratchvae``, or ``~/.cache/scratchvae``.

The data directory may be read-only (a shared mount, for instance). Downloads go to it
when it is writable, else to the per-user cache, which is also searched when looking for
a dataset. Derived caches (the IMDB parse cache) always go to the per-user cache: the
package never writes them into a data directory.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

ENV_VAR = "SCRATCHVAE_DATA"

PathLike = str | os.PathLike[str]


def user_cache_dir() -> Path:
    """Return the per-user cache directory (it may not exist yet)."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "scratchvae"


def resolve_data_dir(data_dir: PathLike | None = None) -> Path:
    """Return the data directory: ``data_dir`` if given, else ``$SCRATCHVAE_DATA``, else the user cache."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    from_env = os.environ.get(ENV_VAR)
    if from_env:
        return Path(from_env).expanduser()
    return user_cache_dir()


def search_dirs(data_dir: PathLike | None = None) -> list[Path]:
    """Return the directories to search for a dataset: the data directory, then the user cache."""
    dirs = [resolve_data_dir(data_dir), user_cache_dir()]
    return dirs if dirs[0].resolve() != dirs[1].resolve() else dirs[:1]


def writable_dir(preferred: Path) -> Path:
    """Return ``preferred`` if it is writable, else the per-user cache directory.

    A directory counts as writable when we may write to it and its mode has a write bit:
    a folder marked read-only (``r-x``) is respected even by root, whom the operating
    system would let write anyway. A directory that does not exist yet is judged by its
    nearest existing ancestor.
    """
    existing = preferred.resolve()
    while not existing.exists():
        existing = existing.parent
    marked_writable = existing.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    return preferred if marked_writable and os.access(existing, os.W_OK) else user_cache_dir()


def find_data(names: tuple[str, ...], data_dir: PathLike | None = None) -> Path | None:
    """Return the first existing ``directory / name`` over :func:`search_dirs` and ``names``, or None.

    Each directory is searched for every name, in order, before the next directory.
    """
    for directory in search_dirs(data_dir):
        for name in names:
            if (directory / name).exists():
                return directory / name
    return None
