"""Resumable, verified file downloads over HTTP(S) with the standard library.

Bytes stream into ``<dest>.part``. An interrupted download leaves that file behind and
the next call resumes it with an HTTP ``Range`` request (starting over when the server
ignores the range). Only a complete file that passes the size and checksum checks is
moved to ``dest``, atomically, so ``dest`` is never half-written.
"""

from __future__ import annotations

import http.client
import os
import re
import sys
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from ..progress import use_bars
from .errors import DataError
from .paths import PathLike
from .pins import file_sha256

CHUNK_BYTES = 1 << 16
_CONTENT_RANGE = re.compile(r"bytes (\d+)-\d+/(?:\d+|\*)")


def download(
    url: str,
    dest: PathLike,
    expected_size: int | None = None,
    sha256: str | None = None,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Download ``url`` to ``dest`` and return ``dest`` as a Path.

    Args:
        url: the address to fetch.
        dest: the final file; its directory is created if needed.
        expected_size: the file's size in bytes, checked when the download completes.
        sha256: the file's hex SHA-256 digest, checked when the download completes.
        progress: show a tqdm progress bar (on a terminal: :func:`scratchvae.progress.use_bars`;
            elsewhere one line on stderr saying what is downloaded where).
        timeout: seconds to wait on the connection before giving up.

    Raises:
        DataError: the server cannot be reached, the transfer breaks off (the partial
            file is kept, and calling again resumes it), or the finished file has the
            wrong size or checksum (the partial file is deleted).
    """
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    if expected_size is not None and _size(part) > expected_size:
        part.unlink()
    if expected_size is None or _size(part) < expected_size:
        if progress and not use_bars(progress):  # no bar to watch (piped): say what is being waited for
            print(f"downloading {url} to {dest}", file=sys.stderr, flush=True)
        try:
            _fetch(url, part, progress, timeout)
        except (OSError, http.client.HTTPException) as error:
            resume = " (the partial file is kept and the next try resumes it)" if part.exists() else ""
            raise DataError(
                f"could not download {url}: {_reason(error)}{resume}; "
                f"check the connection, or download the file yourself and put it at {dest}"
            ) from error
    _verify(part, url, dest, expected_size, sha256)
    os.replace(part, dest)
    return dest


def _fetch(url: str, part: Path, progress: bool, timeout: float) -> None:
    """Complete ``part`` from ``url``, resuming it if possible; start over if the server refuses the range."""
    try:
        _stream(url, part, progress, timeout)
    except urllib.error.HTTPError as error:
        if error.code != 416 or not part.exists():  # 416: Range Not Satisfiable
            raise
        part.unlink()
        _stream(url, part, progress, timeout)


def _stream(url: str, part: Path, progress: bool, timeout: float) -> None:
    """Append the rest of ``url`` to ``part`` (or rewrite it when the server sends the whole file)."""
    offset = _size(part)
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        if response.status == 206 and not _starts_at(response, offset):
            raise ConnectionError("the server sent a byte range that was not asked for")
        if response.status != 206:
            offset = 0  # the server ignored the range: take the whole file from the start
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        with (
            open(part, "ab" if offset else "wb") as out,
            tqdm(
                total=total,
                initial=offset,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=part.name.removesuffix(".part"),
                disable=not use_bars(progress),
            ) as bar,
        ):
            while chunk := response.read(CHUNK_BYTES):
                out.write(chunk)
                bar.update(len(chunk))
    if total is not None and _size(part) < total:
        raise ConnectionError(f"the connection closed after {_size(part)} of {total} bytes")


def _starts_at(response: http.client.HTTPResponse, offset: int) -> bool:
    """Whether the partial ``response`` holds the file's bytes from ``offset`` on."""
    match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", ""))
    return match is not None and int(match.group(1)) == offset


def _verify(part: Path, url: str, dest: Path, expected_size: int | None, sha256: str | None) -> None:
    """Check the finished download's size and digest; delete it if either is wrong."""
    problem = None
    if expected_size is not None and _size(part) != expected_size:
        problem = f"{_size(part)} bytes instead of {expected_size}"
    elif sha256 is not None and file_sha256(part) != sha256.lower():
        problem = "a SHA-256 digest that does not match"
    if problem:
        part.unlink()
        raise DataError(
            f"the download of {url} has {problem} and was deleted; "
            f"try again, or download the file yourself and put it at {dest}"
        )


def _size(path: Path) -> int:
    """Return the size of ``path`` in bytes, 0 if it does not exist."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _reason(error: BaseException) -> str:
    """A short human description of a network error."""
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return str(error.reason)
    return str(error) or type(error).__name__
