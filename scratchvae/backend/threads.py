"""Sharing the CPU's threads between independent calls: what ``backend.concurrently`` runs on.

The two directions of a bidirectional LSTM read the same input and nothing of each
other.  On a CPU they can each take a share of the cores instead of both taking turns on
all of them: a recurrent step at batch 10 and 500 units (~0.2 ms) is too short to split
across threads without losing time to the hand-over, while two directions side by side
keep every core busy.  BLAS and the compiled step kernels release the GIL, so the Python
loops over time overlap too.  Nothing about the arithmetic changes: each call computes
exactly what it computes alone.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, wait
from typing import Callable, Sequence

from threadpoolctl import ThreadpoolController

_controller: ThreadpoolController | None = None
_pool: ThreadPoolExecutor | None = None
_pool_size = 0


def _threadpools() -> ThreadpoolController:
    global _controller
    if _controller is None:
        _controller = ThreadpoolController()   # finds the loaded libraries once (~ms): NumPy's BLAS
    return _controller


def blas_thread_count() -> int:
    """The threads BLAS may use now (the largest count among the loaded BLAS libraries)."""
    return max((lib.num_threads for lib in _threadpools().select(user_api="blas").lib_controllers), default=1)


def blas_threads(n: int):
    """A context in which BLAS (OpenBLAS, MKL, ...) uses n threads; the counts before come back after."""
    return _threadpools().limit(limits=n, user_api="blas")


def limit_threads(n: int) -> None:
    """Use at most n CPU threads from now on: in BLAS (through threadpoolctl) and in numba's
    parallel kernels (what ``--threads N`` does)."""
    if n < 1:
        raise ValueError(f"--threads must be at least 1, got {n}")
    ThreadpoolController().limit(limits=n)   # every BLAS and OpenMP library loaded by now, until reset
    import numba
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))


def run_concurrently(calls: Sequence[Callable], share: int, run_one: Callable) -> list:
    """``run_one(call)`` for every call at the same time, BLAS at ``share`` threads per call:
    the first call on this thread, the others on worker threads.  Returns the results in
    order; an exception in any call is raised here, after every call has finished."""
    global _pool, _pool_size
    if _pool is None or _pool_size < len(calls) - 1:
        _pool, _pool_size = ThreadPoolExecutor(len(calls) - 1, thread_name_prefix="scratchvae"), len(calls) - 1
    with blas_threads(share):
        futures = [_pool.submit(run_one, call) for call in calls[1:]]
        try:
            first = run_one(calls[0])
        finally:
            wait(futures)
        return [first] + [f.result() for f in futures]
