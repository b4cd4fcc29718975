"""Every command with ``--backend cupy``, end to end on tiny data: train each task, kill and resume,
evaluate, sample, interpolate, neighbours, export to Keras.

They run on real CuPy on a machine with a GPU and on the strict CPU stand-in elsewhere (see
conftest.py), so a host array reaching the device, or a device array leaving it implicitly, fails
here in CI.  Runs on the stand-in are bit-for-bit deterministic; on a GPU the scatter-adds are
atomic, so resumed runs are compared to within float32 rounding there.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import REAL_CUPY_REASON
from test_imdb_task import TINY as IMDB_TINY
from test_imdb_task import make_archive
from test_mnist_model import write_synthetic_mnist
from test_sentence_task import sentences

from scratchvae import evaluate, interpolate, neighbours, sample, train
from scratchvae.training import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
ON_STAND_IN = REAL_CUPY_REASON is not None
TEXT_TINY = [
    "--embedding-dim",
    "6",
    "--encoder-units",
    "5",
    "--decoder-units",
    "5",
    "--latent-dim",
    "2",
    "--batch-size",
    "8",
    "--backend",
    "cupy",
    "--no-progress",
]


def _ok(code, capsys):
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def _same_parameters(a_path, b_path):
    a, b = load_checkpoint(a_path).params, load_checkpoint(b_path).params
    assert a.keys() == b.keys()
    for k in a:
        if ON_STAND_IN:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
        else:
            np.testing.assert_allclose(a[k], b[k], rtol=1e-4, atol=1e-6, err_msg=k)


KILLABLE = textwrap.dedent("""
    import sys, time
    if sys.argv[1] == "fake":
        from scratchvae.testing import fake_cupy
        fake_cupy.install()          # import cupy: the stand-in, as with python -m scratchvae.testing.with_fake_cupy
    from scratchvae import train
    from scratchvae.tasks import imdb
    step = imdb.IMDBTask.train_step
    def slow(self, *a, **kw):            # slow enough to be killed mid-run
        time.sleep(0.05)
        return step(self, *a, **kw)
    imdb.IMDBTask.train_step = slow
    sys.exit(train.main(sys.argv[2:]))
""")


def test_imdb_trains_is_killed_resumes_evaluates_and_exports(cupy_backend_name, tmp_path, capsys):
    data = tmp_path / "data"
    make_archive(data, n=6, unsup=0)
    flags = [
        "imdb",
        "--data-dir",
        str(data),
        "--backend",
        "cupy",
        "--epochs",
        "3",
        "--checkpoint-every",
        "2",
        *IMDB_TINY,
        "--batch-size",
        "2",
    ]  # 4 steps an epoch
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    _ok(train.main([*flags, "--out", str(reference)]), capsys)

    env = {**os.environ, "PYTHONPATH": str(ROOT), "NUMBA_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLABLE, "fake" if ON_STAND_IN else "real", *flags, "--out", str(killed)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    progress, deadline = None, time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            progress = load_checkpoint(killed / "last.npz").meta["progress"]
        except Exception:  # not written yet
            progress = None
        if progress and progress["global_step"] >= 6 and progress["batch"] > 0:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, f"the run ended before it could be killed: {err.decode()[-2000:]}"
    _ok(train.main([*flags, "--out", str(killed), "--resume"]), capsys)
    _same_parameters(reference / "last.npz", killed / "last.npz")

    out = _ok(
        evaluate.main(
            [
                str(reference / "best.npz"),
                "--data-dir",
                str(data),
                "--backend",
                "cupy",
                "--no-progress",
                "--encode",
                "a wonderful film",
            ]
        ),
        capsys,
    )
    assert out.strip()

    pytest.importorskip("h5py")
    from scratchvae.backend import get_backend
    from scratchvae.interop import export_keras_weights
    from scratchvae.tasks.imdb import load_task

    task = load_task(load_checkpoint(reference / "best.npz"), get_backend("cupy"))
    mapping = export_keras_weights(task.model, tmp_path / "imdb.weights.h5")
    assert mapping and (tmp_path / "imdb.weights.h5").stat().st_size > 0


def test_text_and_ptb_train_resume_evaluate_sample_interpolate_neighbours(cupy_backend_name, tmp_path, capsys):
    text = tmp_path / "sentences.txt"
    text.write_text("\n".join(sentences(48)) + "\n", encoding="utf-8")
    # a fixed KL schedule: left unset, the text task scales it to each run's length (1 or 2 epochs here)
    args = ["text", "--file", str(text), *TEXT_TINY, "--word-dropout", "0.3", "--kl-x0", "10"]
    straight, split = tmp_path / "straight", tmp_path / "split"
    _ok(train.main([*args, "--out", str(straight), "--epochs", "2"]), capsys)
    _ok(train.main([*args, "--out", str(split), "--epochs", "1"]), capsys)
    _ok(train.main([*args, "--out", str(split), "--epochs", "2", "--resume"]), capsys)
    _same_parameters(straight / "last.npz", split / "last.npz")

    ckpt = str(straight / "best.npz")
    assert "NLL (IW, K=3)" in _ok(evaluate.main([ckpt, "--backend", "cupy", "--samples", "3"]), capsys)
    for method in ("greedy", "beam"):
        lines = _ok(sample.main([ckpt, "-n", "2", "--method", method, "--backend", "cupy"]), capsys).splitlines()
        assert len(lines) == 2
    lines = _ok(
        interpolate.main([ckpt, "the cat sat", "a dog ran", "--steps", "3", "--backend", "cupy"]), capsys
    ).splitlines()
    assert [line.split("  ")[0] for line in lines] == ["0.00", "0.50", "1.00"]
    lines = _ok(neighbours.main([ckpt, "the cat sat", "-k", "2", "--backend", "cupy"]), capsys).splitlines()
    assert len(lines) == 2

    root = tmp_path / "data"
    (root / "ptb").mkdir(parents=True)
    (root / "ptb" / "ptb.train.txt").write_text("\n".join(f" {s} " for s in sentences(24, 1)) + "\n")
    (root / "ptb" / "ptb.valid.txt").write_text("\n".join(f" {s} <unk> " for s in sentences(8, 2)) + "\n")
    ptb = tmp_path / "ptb"
    _ok(train.main(["ptb", "--data-dir", str(root), "--out", str(ptb), "--epochs", "1", *TEXT_TINY]), capsys)
    assert "NLL (IW, K=2)" in _ok(
        evaluate.main([str(ptb / "best.npz"), "--data-dir", str(root), "--backend", "cupy", "--samples", "2"]), capsys
    )


def test_mnist_trains_resumes_and_evaluates(cupy_backend_name, tmp_path, capsys):
    write_synthetic_mnist(tmp_path, n_train=60, n_test=20)
    args = [
        "mnist",
        "--data-dir",
        str(tmp_path),
        "--batch-size",
        "20",
        "--hidden",
        "8",
        "--backend",
        "cupy",
        "--no-progress",
    ]
    straight, split = tmp_path / "straight", tmp_path / "split"
    from scratchvae.backend import get_backend
    from scratchvae.testing import fake_cupy

    fake_cupy.counters.reset()
    _ok(train.main([*args, "--out", str(straight), "--epochs", "2"]), capsys)
    assert get_backend("cupy").xp is (fake_cupy if ON_STAND_IN else __import__("cupy"))
    assert (fake_cupy.counters.launches > 100) == ON_STAND_IN  # the run went through the stand-in
    _ok(train.main([*args, "--out", str(split), "--max-steps", "4"]), capsys)
    _ok(train.main([*args, "--out", str(split), "--epochs", "2", "--resume"]), capsys)
    _same_parameters(straight / "last.npz", split / "last.npz")
    out = _ok(
        evaluate.main([str(straight / "best.npz"), "--data-dir", str(tmp_path), "--backend", "cupy", "--no-progress"]),
        capsys,
    )
    assert "test negative ELBO" in out and "test IW-NLL, K=500" in out


@pytest.mark.skipif(not ON_STAND_IN, reason="the stand-in's own entry point; on a GPU the tests above use CuPy")
def test_a_command_run_with_the_stand_in_as_cupy(tmp_path):
    write_synthetic_mnist(tmp_path, n_train=40, n_test=20)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SCRATCHVAE_FAKE_CUPY_COUNTS": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "scratchvae.testing.with_fake_cupy",
            "scratchvae.train",
            "mnist",
            "--data-dir",
            str(tmp_path),
            "--out",
            str(tmp_path / "run"),
            "--max-steps",
            "2",
            "--batch-size",
            "20",
            "--hidden",
            "8",
            "--backend",
            "cupy",
            "--no-progress",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "fake_cupy counts: {'launches': " in proc.stderr
    assert (tmp_path / "run" / "last.npz").exists()
