"""MNIST handwritten digits from Keras's ``mnist.npz``, as flat float vectors in [0, 1].

The file (looked for in the data directory, then the per-user cache) holds ``x_train``
(60000, 28, 28) uint8, ``y_train`` (60000,), ``x_test`` (10000, 28, 28) uint8 and
``y_test`` (10000,). Any file with that layout is accepted, whatever its size or hash.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from .download import download as download_file
from .errors import DataError
from .paths import PathLike, find_data, resolve_data_dir, writable_dir

MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
#: SHA-256 of the file at :data:`MNIST_URL` (from Keras's ``mnist.load_data``), checked after downloading.
MNIST_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
MNIST_NAME = "mnist.npz"
IMAGE_SHAPE = (28, 28)
PIXELS = IMAGE_SHAPE[0] * IMAGE_SHAPE[1]


@dataclass(frozen=True)
class Mnist:
    """Images as ``(n, 784)`` float arrays in [0, 1] (row-major 28x28) and int64 digit labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def ensure_mnist(
    data_dir: PathLike | None = None,
    *,
    download: bool = True,
    url: str = MNIST_URL,
    sha256: str | None = MNIST_SHA256,
    progress: bool = True,
) -> Path:
    """Return the path of ``mnist.npz``, downloading it if it is not found.

    The file goes to the data directory, or to the per-user cache if that is read-only.
    ``sha256`` is checked after a download; pass None when ``url`` serves another file.

    Raises:
        DataError: the file is missing and ``download`` is False, or the download failed.
    """
    found = find_data((MNIST_NAME,), data_dir)
    if found is not None:
        return found
    home = resolve_data_dir(data_dir)
    if not download:
        raise DataError(
            f"{MNIST_NAME} is not in {home}: download {url} into it, "
            "or point --data-dir / SCRATCHVAE_DATA at the folder that holds it"
        )
    return download_file(url, writable_dir(home) / MNIST_NAME, sha256=sha256, progress=progress)


def load_mnist(
    data_dir: PathLike | None = None,
    *,
    binarize: bool = False,
    dtype: npt.DTypeLike = np.float32,
    download: bool = True,
    url: str = MNIST_URL,
    sha256: str | None = MNIST_SHA256,
    progress: bool = True,
) -> Mnist:
    """Find (or download) ``mnist.npz`` and read it: :func:`ensure_mnist` then :func:`read_mnist`."""
    path = ensure_mnist(data_dir, download=download, url=url, sha256=sha256, progress=progress)
    return read_mnist(path, binarize=binarize, dtype=dtype)


def read_mnist(path: PathLike, *, binarize: bool = False, dtype: npt.DTypeLike = np.float32) -> Mnist:
    """Read and validate a Keras-layout ``mnist.npz``.

    Args:
        path: the file.
        binarize: map pixels to exactly 0 or 1 by thresholding at 0.5, i.e. byte >= 128 (a fixed binarisation;
            for the stochastic kind, sample ``rng.random(x.shape) < x`` per batch instead).
        dtype: the floating dtype of the images.

    Raises:
        DataError: the file is unreadable or its arrays have the wrong names, shapes or dtypes.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise DataError(
            f"{path} is not a readable .npz file ({error}); delete it and download {MNIST_URL} again"
        ) from error
    x_train, y_train = _checked_split(arrays, "train", path)
    x_test, y_test = _checked_split(arrays, "test", path)
    return Mnist(_scaled(x_train, binarize, dtype), y_train, _scaled(x_test, binarize, dtype), y_test)


def _checked_split(arrays: dict[str, np.ndarray], split: str, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(x_<split>, y_<split>)`` with labels as int64, after checking names, shapes and dtypes."""
    fix = f"replace it with Keras's {MNIST_NAME} from {MNIST_URL}"
    x, y = arrays.get(f"x_{split}"), arrays.get(f"y_{split}")
    if x is None or y is None:
        raise DataError(f"{path} has no x_{split} / y_{split} arrays (it has {', '.join(arrays) or 'none'}); {fix}")
    if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != IMAGE_SHAPE:
        raise DataError(f"{path}: x_{split} is {x.dtype} {x.shape}, expected uint8 (n, 28, 28); {fix}")
    if len(x) == 0:
        raise DataError(f"{path}: x_{split} holds no images; {fix}")
    if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer) or (y.size and not 0 <= y.min() <= y.max() <= 9):
        raise DataError(f"{path}: y_{split} must hold {len(x)} integer digits 0-9, got {y.dtype} {y.shape}; {fix}")
    return x, y.astype(np.int64)


def _scaled(images: np.ndarray, binarize: bool, dtype: npt.DTypeLike) -> np.ndarray:
    """Flatten uint8 images to ``(n, 784)`` floats in [0, 1], optionally thresholded at 0.5."""
    flat = images.reshape(len(images), PIXELS)
    if binarize:
        return (flat >= 128).astype(dtype)
    scaled = flat.astype(dtype)
    scaled /= 255
    return scaled
