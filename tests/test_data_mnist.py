"""The MNIST loader on tiny hand-built files (and the real mnist.npz if present)."""

import functools
import hashlib
import os
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from cli import run_cli

from scratchvae.data.errors import DataError
from scratchvae.data.mnist import MNIST_NAME, load_mnist, read_mnist
from scratchvae.data.paths import ENV_VAR


def images(n: int) -> np.ndarray:
    """``n`` uint8 28x28 images; image i is filled with the byte value 50 * i."""
    return np.full((n, 28, 28), 50 * np.arange(n)[:, None, None], dtype=np.uint8)


def tiny_arrays() -> dict[str, np.ndarray]:
    """Keras-layout arrays: 4 training and 2 test images."""
    return {
        "x_train": images(4),
        "y_train": np.arange(4, dtype=np.uint8),
        "x_test": images(2),
        "y_test": np.array([7, 8], dtype=np.uint8),
    }


def write_mnist(folder: Path, **overrides: np.ndarray) -> Path:
    """Write a tiny mnist.npz into ``folder``, with arrays replaced or (when None) left out."""
    arrays = {**tiny_arrays(), **overrides}
    np.savez(folder / MNIST_NAME, **{name: a for name, a in arrays.items() if a is not None})
    return folder / MNIST_NAME


@pytest.fixture(autouse=True)
def cache_home(tmp_path, monkeypatch):
    """Isolate the per-user cache (searched for datasets) from the real one."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))


def test_images_are_flat_floats_in_the_unit_interval(tmp_path):
    write_mnist(tmp_path)
    data = load_mnist(tmp_path, download=False)
    assert data.x_train.shape == (4, 784) and data.x_test.shape == (2, 784)
    assert data.x_train.dtype == np.float32
    np.testing.assert_allclose(data.x_train[:, 0], [0, 50 / 255, 100 / 255, 150 / 255], rtol=1e-6)
    assert data.y_train.tolist() == [0, 1, 2, 3] and data.y_test.tolist() == [7, 8]
    assert data.y_train.dtype == np.int64


def test_binarisation_thresholds_at_one_half(tmp_path):
    data = read_mnist(
        write_mnist(
            tmp_path, x_train=np.full((2, 28, 28), [[[127]], [[128]]], np.uint8), y_train=np.zeros(2, np.uint8)
        ),
        binarize=True,
        dtype=np.float64,
    )
    assert data.x_train.dtype == np.float64
    assert data.x_train[0].max() == 0 and data.x_train[1].min() == 1


@pytest.mark.parametrize(
    "overrides, problem",
    [
        ({"y_test": None}, "no x_test / y_test"),
        ({"x_train": np.zeros((4, 28, 28), np.float32)}, "expected uint8"),
        ({"x_train": np.zeros((4, 784), np.uint8)}, "expected uint8"),
        ({"y_train": np.arange(3)}, "must hold 4 integer digits"),
        ({"y_train": np.array([0, 1, 2, 10])}, "must hold 4 integer digits"),
        ({"y_train": np.zeros(4)}, "must hold 4 integer digits"),
        ({"x_test": images(0), "y_test": np.zeros(0, np.uint8)}, "x_test holds no images"),
        ({"x_train": images(0), "y_train": np.zeros(0, np.uint8)}, "x_train holds no images"),
    ],
)
def test_a_malformed_file_is_a_data_error(tmp_path, overrides, problem):
    with pytest.raises(DataError, match=problem):
        read_mnist(write_mnist(tmp_path, **overrides))


def test_a_file_that_is_not_npz_is_a_data_error(tmp_path):
    (tmp_path / MNIST_NAME).write_bytes(b"<html>not found</html>")
    with pytest.raises(DataError, match=r"not a readable \.npz"):
        read_mnist(tmp_path / MNIST_NAME)


def test_missing_data_without_download_says_where_to_put_it(tmp_path):
    with pytest.raises(DataError) as error:
        load_mnist(tmp_path, download=False)
    assert "\n" not in str(error.value) and str(tmp_path) in str(error.value)


@pytest.fixture
def file_server(tmp_path):
    """Serve ``tmp_path / 'served'`` over HTTP on 127.0.0.1; yields (folder, base URL)."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield folder, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_missing_data_is_downloaded_and_checked(tmp_path, file_server):
    folder, base = file_server
    digest = hashlib.sha256(write_mnist(folder).read_bytes()).hexdigest()
    with pytest.raises(DataError, match="SHA-256"):
        load_mnist(tmp_path / "data", url=f"{base}/{MNIST_NAME}", sha256="0" * 64, progress=False)
    data = load_mnist(tmp_path / "data", url=f"{base}/{MNIST_NAME}", sha256=digest, progress=False)
    assert data.x_train.shape == (4, 784)
    assert (tmp_path / "data" / MNIST_NAME).is_file()


REAL_DATA = os.environ.get(ENV_VAR)


@pytest.mark.skipif(
    not REAL_DATA or not (Path(REAL_DATA) / MNIST_NAME).is_file(), reason=f"needs {ENV_VAR}/{MNIST_NAME}"
)
def test_real_mnist():
    data = read_mnist(Path(REAL_DATA) / MNIST_NAME)
    assert data.x_train.shape == (60_000, 784) and data.x_test.shape == (10_000, 784)
    assert data.x_train.min() == 0 and data.x_train.max() == 1
    assert np.bincount(data.y_train).tolist()[:3] == [5923, 6742, 5958]


def test_training_on_an_empty_test_split_is_refused_before_it_starts(tmp_path):
    write_mnist(tmp_path, x_test=images(0), y_test=np.zeros(0, np.uint8))
    proc = run_cli(
        "train",
        "mnist",
        "--data-dir",
        tmp_path,
        "--out",
        tmp_path / "run",
        "--epochs",
        "1",
        "--hidden",
        "4",
        "--backend",
        "numpy",
        "--no-progress",
        env={"XDG_CACHE_HOME": str(tmp_path / "xdg")},
    )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "x_test holds no images" in proc.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "run" / "last.npz").exists()
