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

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from threadpoolctl import ThreadpoolController

_controller: ThreadpoolController | None = None
_pool: ThreadPoolExecutor | None = None
_pool_size = 0


def _forget_pool() -> None:
    """In a forked child: the parent's worker threads do not exist there, so neither does its pool."""
    global _pool, _pool_size
    _pool, _pool_size = None, 0


os.register_at_fork(after_in_child=_forget_pool)


def core_count() -> int:
    """The CPU cores this process may run on (its affinity mask): what ``--threads`` defaults to."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _threadpools() -> ThreadpoolController:
    global _controller
    if _controller is None:
        from threadpoolctl import ThreadpoolController  # imported when threads are first shared

        _controller = ThreadpoolController()  # finds the loaded libraries once (~ms): NumPy's BLAS
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
    from threadpoolctl import ThreadpoolController

    ThreadpoolController().limit(limits=n)  # every BLAS and OpenMP library loaded by now, until reset
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


class ThreadSharing:
    """What a CPU backend does in ``backend.concurrently``: the threads, shared between the calls.

    A mixin of :class:`~scratchvae.backend.numpy_backend.NumpyBackend` (BLAS's threads) and,
    through it, of the numba backend (numba's threads: it overrides ``_all_threads``,
    ``_can_share`` and ``_with_threads``).
    """

    def __init__(self):
        self._local = threading.local()  # .threads: this thread's share inside concurrently()

    def concurrently(self, *calls):
        """Runs independent calls (the two directions of a bidirectional LSTM) at the same
        time, each with ``threads // len(calls)`` of the CPU threads, and returns their
        results in order.  The arithmetic is exactly that of running them one after
        another, which is what happens when there are fewer threads than calls, and inside
        a call that is itself running concurrently (no nesting: the worker threads are few).
        """
        nested = getattr(self._local, "threads", None) is not None
        if nested or len(calls) < 2:
            return [call() for call in calls]
        share = self._thread_count() // len(calls)
        if share < 1 or not self._can_share(share):
            return [call() for call in calls]
        return run_concurrently(calls, share, lambda call: self._with_threads(share, call))

    def on_threads(self, n: int, call):
        """call() with this thread's work on n CPU threads: BLAS's, this backend's kernels and
        :meth:`concurrently` (one thread: every kernel serial, no thread pool touched).  A core of a
        batch-split step runs its shard this way (:mod:`scratchvae.training.cores`)."""
        with blas_threads(n):
            return self._with_threads(n, call)

    def _thread_count(self) -> int:
        """The threads this thread may use: its share inside :meth:`concurrently`, else all."""
        share = getattr(self._local, "threads", None)
        return share if share is not None else self._all_threads()

    def _all_threads(self) -> int:
        """The threads this backend's work may use outside :meth:`concurrently`: BLAS's."""
        return blas_thread_count()

    def _can_share(self, share: int) -> bool:
        return True

    def _with_threads(self, share: int, call):
        """call() with this thread's work limited to ``share`` threads."""
        previous = getattr(self._local, "threads", None)
        self._local.threads = share
        try:
            return call()
        finally:
            self._local.threads = previous
