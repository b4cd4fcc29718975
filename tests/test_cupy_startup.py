"""The cupy backend's start-up check and its GPU-only import errors: one line, naming the fix,
before any data is read."""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
from conftest import REAL_CUPY_REASON

from scratchvae.backend import BackendError
from scratchvae.backend.cupy_backend import CupyBackend
from scratchvae.testing import fake_cupy

ROOT = Path(__file__).resolve().parents[1]


def _module_with(**broken):
    """The stand-in with some names replaced (a machine where that part of CUDA is missing)."""
    module = types.ModuleType("cupy")
    module.__dict__.update({k: v for k, v in vars(fake_cupy).items() if not k.startswith("__")})
    module.__dict__.update(broken)
    return module


def _raise(message):
    def fail(*args, **kwargs):
        raise RuntimeError(message)

    return fail


def test_a_machine_without_nvrtc_fails_at_start_up_naming_the_fix():
    with pytest.raises(BackendError) as exc:
        CupyBackend(cupy_module=_module_with(RawModule=_raise("libnvrtc.so.12: cannot open shared object file\nmore")))
    message = str(exc.value)
    assert message == (
        "the cupy backend cannot compile its CUDA kernels (RuntimeError: libnvrtc.so.12: cannot "
        "open shared object file); pip install 'scratchvae[gpu]' (cupy-cuda12x[ctk]; cupy-cuda13x[ctk] "
        "for CUDA 13) brings NVRTC, or use --backend numba"
    )


def test_a_gpu_that_cannot_run_the_check_fails_at_start_up():
    with pytest.raises(
        BackendError,
        match=r"cannot run on this GPU \(RuntimeError: CUBLAS_STATUS_NOT_INITIALIZED\); "
        r"pip install 'scratchvae\[gpu\]'.* brings cuBLAS, or use --backend numba",
    ):
        CupyBackend(cupy_module=_module_with(full=_raise("CUBLAS_STATUS_NOT_INITIALIZED")))


def test_a_wrong_result_of_the_check_is_refused():
    with pytest.raises(BackendError, match="computed 518.0 for a check worth 128"):
        CupyBackend(cupy_module=_module_with(full=lambda shape, value, dtype=None: fake_cupy.ones(shape, dtype)))


@pytest.mark.skipif(REAL_CUPY_REASON is None, reason="CuPy and a GPU work here: nothing to refuse")
def test_train_without_cupy_is_one_line_before_the_data_is_read(tmp_path, capsys):
    from scratchvae import train

    assert (
        train.main(
            [
                "imdb",
                "--backend",
                "cupy",
                "--data-dir",
                str(tmp_path / "nowhere"),
                "--no-download",
                "--out",
                str(tmp_path / "run"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err.startswith("error: the cupy backend needs CuPy: pip install 'scratchvae[gpu]'") and err.count("\n") == 1


def test_distributed_cupy_without_nccl_is_one_line(tmp_path):
    pytest.importorskip("mpi4py")
    script = (
        "import sys\nfrom scratchvae.testing import fake_cupy\nfake_cupy.install()\n"
        "from scratchvae import train\nsys.exit(train.main(sys.argv[1:]))\n"
    )
    from test_mnist_model import write_synthetic_mnist

    write_synthetic_mnist(tmp_path, n_train=40, n_test=20)
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            "mnist",
            "--backend",
            "cupy",
            "--distributed",
            "--data-dir",
            str(tmp_path),
            "--out",
            str(tmp_path / "run"),
            "--no-progress",
        ],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr == (
        "error: --distributed with --backend cupy needs NCCL, which this CuPy cannot load: "
        "pip install nvidia-nccl-cu12 (cu13 for CUDA 13)\n"
    )


@pytest.mark.skipif(REAL_CUPY_REASON is None, reason="CuPy and a GPU work here: nothing to refuse")
def test_evaluate_and_sample_without_cupy_are_one_line(tmp_path, capsys):
    from test_mnist_model import write_synthetic_mnist

    from scratchvae import evaluate, train

    write_synthetic_mnist(tmp_path, n_train=40, n_test=20)
    assert (
        train.main(
            [
                "mnist",
                "--data-dir",
                str(tmp_path),
                "--out",
                str(tmp_path / "run"),
                "--max-steps",
                "1",
                "--batch-size",
                "20",
                "--hidden",
                "8",
                "--backend",
                "numpy",
                "--no-progress",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert (
        evaluate.main(
            [str(tmp_path / "run" / "last.npz"), "--backend", "cupy", "--data-dir", str(tmp_path / "nowhere")]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err.startswith("error: the cupy backend needs CuPy: pip install 'scratchvae[gpu]'") and err.count("\n") == 1
