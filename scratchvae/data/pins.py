"""Pinning a data file: its size and SHA-256 recorded at training, checked whenever it is read again.

A model trained on a text file re-reads that file to find its held-out sentences (evaluate), its
training sentences (neighbours) or to go on training (resume). If the file changed in between, the
split made from it is another one: held-out sentences may be training sentences. :func:`file_pin`
describes a file as ``{"bytes": ..., "sha256": ...}`` and :func:`check_pin` refuses one that no longer
matches, with a one-line :class:`DataError` naming the file.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from .errors import DataError
from .paths import PathLike


def file_sha256(path: PathLike) -> str:
    """The hex SHA-256 digest of the file at ``path``, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while block := file.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def file_pin(path: PathLike) -> dict:
    """``{"bytes": size, "sha256": digest}`` of the file at ``path``; DataError if it cannot be read."""
    try:
        return {"bytes": Path(path).stat().st_size, "sha256": file_sha256(path)}
    except OSError as err:
        raise DataError(f"cannot read {path}: {err.strerror or err}; check the path") from None


def describe_pin(pin: dict) -> str:
    """``1,234 bytes, sha256 0123abcd...``: enough of a pin to tell two files apart in a message."""
    return f"{pin['bytes']:,} bytes, sha256 {pin['sha256'][:12]}..."


def check_pin(path: PathLike, pin: dict | None, fix: str) -> dict:
    """The pin of ``path`` now; DataError naming the file, then and now, and ``fix`` when it differs
    from ``pin`` (None: nothing was recorded, nothing to check)."""
    now = file_pin(path)
    if pin is not None and (now["bytes"], now["sha256"]) != (pin.get("bytes"), pin.get("sha256")):
        raise DataError(
            f"{path} has changed since the model was trained on it ({describe_pin(pin)} then, "
            f"{describe_pin(now)} now), so its split would not be the one trained on; {fix}"
        )
    return now
