"""Data-parallel training over MPI: K ranks compute what one process computes.

The MPI tests launch real processes with ``mpirun`` (the ``mpich`` wheel provides it)
and skip where mpi4py or mpirun is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scratchvae.training import load_checkpoint
from scratchvae.training.distributed import ShardRandom, shard_rows

MPIRUN = shutil.which("mpirun") or shutil.which("mpiexec")
needs_mpi = pytest.mark.skipif(
    MPIRUN is None or __import__("importlib").util.find_spec("mpi4py") is None,
    reason="needs mpi4py and mpirun: pip install mpi4py mpich",
)


@given(n=st.integers(1, 200), size=st.integers(1, 8))
def test_shards_cover_the_batch_once_and_evenly(n, size):
    shards = [shard_rows(n, r, size) for r in range(size)]
    covered = np.concatenate([np.arange(n)[s] for s in shards])
    np.testing.assert_array_equal(covered, np.arange(n))
    lengths = [s.stop - s.start for s in shards]
    assert max(lengths) - min(lengths) <= 1


def test_shard_random_gives_each_example_its_single_process_numbers():
    full = np.random.default_rng(5).standard_normal((7, 3))
    parts = []
    for rank in range(3):
        rows = shard_rows(7, rank, 3)
        shard_rng = ShardRandom(np.random.default_rng(5), rows, 7)
        parts.append(shard_rng.standard_normal((rows.stop - rows.start, 3)))
    np.testing.assert_array_equal(np.concatenate(parts), full)


def test_shard_random_refuses_draws_that_are_not_per_example():
    shard_rng = ShardRandom(np.random.default_rng(5), shard_rows(7, 1, 3), 7)  # 2 rows
    with pytest.raises(ValueError, match="batch as first axis"):
        shard_rng.standard_normal((5, 2))


def _tiny_mnist(path, n_train=48, n_test=16):
    rng = np.random.default_rng(0)
    np.savez(
        path / "mnist.npz",
        x_train=rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        y_train=rng.integers(0, 10, n_train, dtype=np.uint8),
        x_test=rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        y_test=rng.integers(0, 10, n_test, dtype=np.uint8),
    )


def _env():
    env = dict(os.environ, NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([os.getcwd(), env.get("PYTHONPATH", "")])
    return env


def _train(tmp_path, out, ranks, extra=()):
    cmd = [
        sys.executable,
        "-m",
        "scratchvae.train",
        "mnist",
        "--data-dir",
        str(tmp_path),
        "--out",
        str(out),
        "--dtype",
        "float64",
        "--backend",
        "numpy",
        "--hidden",
        "8",
        "--batch-size",
        "10",
        "--epochs",
        "2",
        "--no-progress",
        "--optimizer",
        "adam",
        "--checkpoint-every",
        "3",
        *extra,
    ]
    if ranks:
        cmd = [MPIRUN, "-n", str(ranks), *cmd, "--distributed"]
    return subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=240)


@needs_mpi
@pytest.mark.parametrize("ranks", [2, 3])
def test_ranks_end_with_the_parameters_of_one_process(tmp_path, ranks):
    _tiny_mnist(tmp_path)
    single = _train(tmp_path, tmp_path / "single", 0)
    assert single.returncode == 0, single.stderr
    multi = _train(tmp_path, tmp_path / "multi", ranks)
    assert multi.returncode == 0, multi.stderr
    a, b = load_checkpoint(tmp_path / "single" / "last.npz"), load_checkpoint(tmp_path / "multi" / "last.npz")
    assert a.meta["progress"]["global_step"] == b.meta["progress"]["global_step"] == 10  # 5 batches x 2 epochs
    for k, v in a.params.items():
        np.testing.assert_allclose(b.params[k], v, rtol=0, atol=1e-12, err_msg=k)
        assert np.abs(v - b.params[k]).max() <= 1e-12 * max(np.abs(v).max(), 1.0)


@needs_mpi
def test_distributed_run_resumes(tmp_path):
    _tiny_mnist(tmp_path)
    full = _train(tmp_path, tmp_path / "full", 2)
    cut = _train(tmp_path, tmp_path / "cut", 2, ["--max-steps", "4"])
    resumed = _train(tmp_path, tmp_path / "cut", 2, ["--resume"])
    assert full.returncode == cut.returncode == resumed.returncode == 0, resumed.stderr
    a, b = load_checkpoint(tmp_path / "full" / "last.npz"), load_checkpoint(tmp_path / "cut" / "last.npz")
    for k, v in a.params.items():
        np.testing.assert_array_equal(b.params[k], v, err_msg=k)


FAILING_RANK = textwrap.dedent("""
    import os, signal, sys
    from scratchvae.training import trainer
    from mpi4py import MPI
    original = trainer.Trainer._train_step
    def step(self, batch):
        if MPI.COMM_WORLD.Get_rank() == 1 and self.global_step == 2:
            if sys.argv[1] == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            raise MemoryError("simulated failure")
        return original(self, batch)
    trainer.Trainer._train_step = step
    from scratchvae.train import main
    sys.exit(main(sys.argv[2:]))
""")


@needs_mpi
@pytest.mark.parametrize("how", ["raise", "kill"])
def test_a_failing_rank_stops_the_others(tmp_path, how):
    _tiny_mnist(tmp_path)
    script = tmp_path / "failing.py"
    script.write_text(FAILING_RANK)
    args = [
        "mnist",
        "--data-dir",
        str(tmp_path),
        "--out",
        str(tmp_path / "out"),
        "--hidden",
        "8",
        "--batch-size",
        "10",
        "--epochs",
        "50",
        "--no-progress",
        "--distributed",
    ]
    t0 = time.monotonic()
    proc = subprocess.run(
        [MPIRUN, "-n", "2", sys.executable, str(script), how, *args],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )  # a hang fails here
    assert proc.returncode != 0
    assert time.monotonic() - t0 < 100
    if how == "raise":
        assert "error: rank 1: MemoryError: simulated failure; stopping all 2 ranks" in proc.stderr


@needs_mpi
def test_bench_reports_one_and_two_ranks():
    proc = subprocess.run(
        [
            sys.executable,
            "bench/distributed.py",
            "--model",
            "mnist",
            "--batch",
            "8",
            "--steps",
            "1",
            "--warmup",
            "0",
            "--backend",
            "numpy",
        ],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| 1 |") or line.startswith("| 2 |")]
    assert len(rows) == 2 and "1.00x" in rows[0]
    split = [
        line for line in proc.stdout.splitlines() if line.startswith(f"| 1 ({os.cpu_count()} cores, batch split) |")
    ]
    assert len(split) == (os.cpu_count() > 1)
