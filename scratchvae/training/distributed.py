"""Data-parallel training: each process (rank) takes a shard of every global batch.

Launch with MPI, e.g. ``mpirun -n 2 python -m scratchvae.train mnist --distributed``.
One step on K ranks computes exactly what one process computes on the global batch:

* the same start: rank 0's initial parameters are broadcast to every rank;
* the same randomness: a step's random draws are made for the *global* batch and each
  rank keeps the rows of its shard (:class:`ShardRandom`), so the noise an example gets
  does not depend on how many ranks there are;
* the same gradient: every loss is a mean over the examples of a batch, so the global
  gradient is sum_r (n_r / N) g_r; each rank scales its gradient by n_r / N and one
  MPI Allreduce (sum) of a single flat buffer adds them up (NCCL between GPUs);
* the same update: every rank then runs the same optimiser step on the same numbers.

Rank 0 alone writes checkpoints, logs and progress.  A rank that fails aborts the whole
job (MPI Abort), so the others stop instead of waiting forever in the next Allreduce.
"""

from __future__ import annotations

import sys

import numpy as np


class ShardRandom:
    """A step's random draws, made for the global batch, restricted to this rank's rows.

    Every draw whose ``size`` has the batch as its first axis (the convention of all
    tasks: ``rng.standard_normal((len(batch), Z))``) is drawn at the global batch size
    from the step's generator and sliced, so all ranks consume the same stream and each
    example gets the numbers it would get in a single process.
    """

    def __init__(self, rng: np.random.Generator, rows: slice, global_size: int):
        self.rng, self.rows, self.global_size = rng, rows, global_size
        self.local_size = rows.stop - rows.start

    def _draw(self, method, size, *args):
        size = tuple(np.atleast_1d(size))
        if size[0] != self.local_size:
            raise ValueError(
                f"random draws in a distributed step must have the batch as first axis "
                f"({self.local_size} rows here), got size {size}"
            )
        return getattr(self.rng, method)(*args, size=(self.global_size, *size[1:]))[self.rows]

    def standard_normal(self, size):
        return self._draw("standard_normal", size)

    def random(self, size):
        return self._draw("random", size)

    def normal(self, loc=0.0, scale=1.0, size=None):
        return self._draw("normal", size, loc, scale)

    def uniform(self, low=0.0, high=1.0, size=None):
        return self._draw("uniform", size, low, high)

    def integers(self, low, high=None, size=None):
        return self._draw("integers", size, low, high)


def shard_rows(n: int, rank: int, size: int) -> slice:
    """The contiguous rows of an n-example batch that ``rank`` of ``size`` ranks takes."""
    base, extra = divmod(n, size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (rank < extra))


class SingleProcess:
    """The communicator of an ordinary, one-process run: every operation is the identity."""

    rank, size, local_size = 0, 1, 1

    def broadcast_parameters(self, params: dict) -> None:
        pass

    def allreduce_gradients(self, grads: dict, weight: float) -> None:
        pass

    def allreduce_sum(self, values: np.ndarray) -> np.ndarray:
        return values

    def abort(self, message: str) -> None:
        pass


class MPICommunicator:
    """Gradients summed with one MPI Allreduce of a flat buffer (NCCL for CuPy arrays)."""

    def __init__(self, backend):
        try:
            from mpi4py import MPI
        except ImportError as exc:
            from .trainer import TrainingError

            raise TrainingError(
                "--distributed needs mpi4py and an MPI: pip install mpi4py mpich, "
                "then launch with mpirun -n K python -m scratchvae.train ..."
            ) from exc
        self.MPI, self.comm = MPI, MPI.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.local_size = self.comm.Split_type(MPI.COMM_TYPE_SHARED).Get_size()  # the ranks on this machine
        self.backend = backend
        self.nccl = self._nccl() if backend.name == "cupy" else None
        self._flat = None

    def _nccl(self):
        """An NCCL communicator over the same ranks, one GPU per rank (rank mod device count)."""
        try:
            from cupy.cuda import nccl
        except ImportError as exc:
            from .trainer import TrainingError

            raise TrainingError(
                "--distributed with --backend cupy needs NCCL, which this CuPy cannot load: "
                "pip install nvidia-nccl-cu12 (cu13 for CUDA 13)"
            ) from exc
        cp = self.backend.xp
        cp.cuda.Device(self.rank % cp.cuda.runtime.getDeviceCount()).use()
        uid = self.comm.bcast(nccl.get_unique_id() if self.rank == 0 else None, root=0)
        return nccl.NcclCommunicator(self.size, uid, self.rank)

    # ------------------------------------------------------------------ collectives
    def broadcast_parameters(self, params: dict) -> None:
        """Overwrite every rank's parameters with rank 0's."""
        for p in params.values():
            host = self.backend.to_numpy(p).copy()
            self.comm.Bcast(host, root=0)
            p[...] = self.backend.asarray(host, dtype=p.dtype)

    def allreduce_gradients(self, grads: dict, weight: float) -> None:
        """grads <- sum over ranks of weight_r * grads_r, through one flat buffer."""
        xp = self.backend.xp
        arrays = list(grads.values())
        total = sum(g.size for g in arrays)
        if self._flat is None or self._flat.size != total or self._flat.dtype != arrays[0].dtype:
            self._flat = xp.empty(total, dtype=arrays[0].dtype)
        flat, offset = self._flat, 0
        for g in arrays:
            flat[offset : offset + g.size] = g.reshape(-1)
            offset += g.size
        flat *= weight
        if self.nccl is not None:
            from cupy.cuda import nccl

            dtype = nccl.NCCL_FLOAT64 if flat.dtype == np.float64 else nccl.NCCL_FLOAT32
            stream = xp.cuda.get_current_stream().ptr
            self.nccl.allReduce(flat.data.ptr, flat.data.ptr, total, dtype, nccl.NCCL_SUM, stream)
        else:
            self.comm.Allreduce(self.MPI.IN_PLACE, flat, op=self.MPI.SUM)
        offset = 0
        for g in arrays:
            g[...] = flat[offset : offset + g.size].reshape(g.shape)
            offset += g.size

    def allreduce_sum(self, values: np.ndarray) -> np.ndarray:
        """Elementwise sum of a small host vector over ranks (metrics, counts)."""
        out = np.empty_like(values)
        self.comm.Allreduce(values, out, op=self.MPI.SUM)
        return out

    def abort(self, message: str) -> None:
        """Stop every rank: print why, then MPI Abort (the others would wait forever otherwise)."""
        print(f"error: rank {self.rank}: {message}; stopping all {self.size} ranks", file=sys.stderr, flush=True)
        self.comm.Abort(1)
