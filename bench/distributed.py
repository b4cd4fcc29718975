"""Throughput of data-parallel training with 1 and 2 MPI ranks on this machine.

    python bench/distributed.py [--model imdb|mnist] [--batch 32] [--steps 8]

Launches ``mpirun -n K`` for K = 1 and 2 with the same global batch, and one rank whose
step is split across the machine's cores (scratchvae/training/cores.py, what training
does by default), and reports examples per second, the speed-up, and the share of a step
spent in the gradient Allreduce.  Each rank runs the training step the trainer runs with ``--distributed``:
its shard of the batch forward and backward, one Allreduce of the flat gradient buffer,
the optimiser update.  With K ranks on a machine of C cores, each rank gets C / K BLAS
threads, so 1 and 2 ranks use the same cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import scratchvae  # noqa: E402, F401  before NumPy: the spin limits of the thread pools (every rank)

# isort: split
import numpy as np  # noqa: E402


def build(model: str, batch: int, backend: str):
    """(model, step(rows) -> None) for a fixed synthetic global batch."""
    rng = np.random.default_rng(0)
    if model == "imdb":
        from cases import imdb_model_batch

        net, ids, labels, eps = imdb_model_batch(
            batch,
            200,
            backend=backend,
            vocab_size=10000,
            embedding_dim=64,
            encoder_units=128,
            hidden_units=128,
            latent_dim=64,
            decoder_units=128,
            sentiment_units=32,
        )

        def step(rows):
            net.forward(ids[rows], labels[rows], eps[rows])
            net.backward()
    else:
        from scratchvae.models.mnist import DenseVAE

        net = DenseVAE(784, 256, 2, rng=rng, backend=backend)
        x = net.backend.asarray(rng.random((batch, 784)), dtype=net.dtype)
        eps = net.backend.asarray(rng.standard_normal((batch, 2)), dtype=net.dtype)

        def step(rows):
            net.forward(x[rows], eps[rows])
            net.backward()

    return net, step


class RowsTask:
    """A rank's step as the trainer's task: forward and backward on some rows of the batch (in a forked
    worker, ``step`` computes on the worker's copy of the model, the one its closure holds)."""

    def __init__(self, model, step):
        self.model, self._step = model, step

    def train_step(self, rows, rng, i, *, batch_mean=None):  # the bench's losses need no batch means
        self._step(rows)
        return {}


def worker(args) -> None:
    from scratchvae.backend import get_backend
    from scratchvae.optim import Adam
    from scratchvae.training.cores import CorePool
    from scratchvae.training.distributed import MPICommunicator, shard_rows

    comm = MPICommunicator(get_backend(args.backend))
    net, step = build(args.model, args.batch, args.backend)
    opt = Adam(net.parameters(), net.gradients(), backend=net.backend)
    rows = np.arange(args.batch)[shard_rows(args.batch, comm.rank, comm.size)]
    pool = CorePool(RowsTask(net, step), args.cores)  # --cores 1: the rank's rows in this process
    comm.broadcast_parameters(net.parameters())
    times, reduce_times = [], []
    for i in range(args.warmup + args.steps):
        comm.comm.Barrier()
        t0 = time.perf_counter()
        net.zero_grad()
        pool.step(rows, np.random.default_rng(0), i)
        t1 = time.perf_counter()
        comm.allreduce_gradients(net.gradients(), len(rows) / args.batch)
        t2 = time.perf_counter()
        pool.on_one_thread(opt.step)
        comm.comm.Barrier()
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
            reduce_times.append(t2 - t1)
    if comm.rank == 0:
        print(
            json.dumps(
                {
                    "ranks": comm.size,
                    "seconds_per_step": float(np.median(times)),
                    "allreduce_seconds": float(np.median(reduce_times)),
                }
            )
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=("imdb", "mnist"), default="imdb")
    parser.add_argument("--batch", type=int, default=32, help="global batch (split over the ranks)")
    parser.add_argument("--steps", type=int, default=8, help="timed steps (median reported)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--backend", default="numba")
    parser.add_argument("--cores", type=int, default=1, help=argparse.SUPPRESS)  # internal: a rank's batch split
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return 0

    mpirun = shutil.which("mpirun") or shutil.which("mpiexec")
    if mpirun is None:
        print("error: needs mpirun: pip install mpi4py mpich", file=sys.stderr)
        return 2
    cores = os.cpu_count() or 1
    rows = []
    for ranks, split in ((1, 1), (2, 1), *([(1, cores)] if cores > 1 else [])):
        threads = str(max(cores // ranks, 1))
        env = dict(
            os.environ,
            OMP_NUM_THREADS=threads,
            OPENBLAS_NUM_THREADS=threads,
            MKL_NUM_THREADS=threads,
            NUMBA_NUM_THREADS=threads,
        )
        cmd = [
            mpirun,
            "-n",
            str(ranks),
            sys.executable,
            __file__,
            "--worker",
            "--model",
            args.model,
            "--batch",
            str(args.batch),
            "--steps",
            str(args.steps),
            "--warmup",
            str(args.warmup),
            "--backend",
            args.backend,
            "--cores",
            str(split),
        ]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
        rows.append(
            {**json.loads(out.strip().splitlines()[-1]), "threads": 1 if split > 1 else int(threads), "split": split}
        )

    base = rows[0]["seconds_per_step"]
    print(f"data-parallel {args.model}, global batch {args.batch}, backend {args.backend}, {cores} cores\n")
    print("| ranks | threads/rank | s/step | examples/s | speed-up | allreduce share |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        s = r["seconds_per_step"]
        ranks = f"{r['ranks']} ({r['split']} cores, batch split)" if r["split"] > 1 else r["ranks"]
        print(
            f"| {ranks} | {r['threads']} | {s:.3f} | {args.batch / s:.1f} | {base / s:.2f}x | "
            f"{r['allreduce_seconds'] / s:.1%} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
