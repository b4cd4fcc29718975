"""Batch-split training steps: the examples of a batch shared by the cores of this machine.

One step on K cores computes what one core computes on the whole batch, the way
``--distributed`` does across ranks (:mod:`.distributed`, whose sharding this reuses):
core i takes the rows ``shard_rows(N, i, K)`` of the batch, draws its random numbers
through :class:`~.distributed.ShardRandom` (the draws of the whole batch, sliced: every
example gets the numbers it gets on one core), and runs the task's forward and backward
on them; the weight gradients, each scaled by its shard's share n_i / N (every loss is a
mean over the batch's examples), are then summed in the order of the cores, 0, 1, ...,
K - 1, whatever order they finish in, and the trainer takes one optimiser step.  A loss
that needs a statistic of the whole batch (free bits' batch-mean KL of each latent unit,
the batch's count of labelled reviews) asks the step's ``batch_mean`` for it in the middle
of its forward pass (see :mod:`scratchvae.losses`): each worker sends its shard's mean,
the trainer averages them by the shards' shares, in the order of the cores, and sends the
batch's mean back to every worker.  The result equals the one-core step to rounding
(1e-12 in float64, tested per model) and does not depend on timing: a run resumed after
kill -9 is bit-identical.

Design: worker processes, forked.  Core 0 is the trainer's own process, on its own model;
cores 1 .. K-1 are worker processes forked at the first step, each holding the task and a
copy of its model (the fork's copy: data, model and task state come for free, no replica
code).  The parameters live in one shared-memory block (an anonymous ``mmap``, shared
with the children and freed with the last process that maps it: nothing is left in
/dev/shm after a kill -9); each step the trainer copies its parameters into it, and the
workers' models compute on views of it (their parameter arrays are rebound to those
views once, after the fork).  Each worker's gradients are views of its own shared block,
which the trainer sums into its model's gradients.  A step's work travels through one
pipe per worker: (batch, the step's generator, step, rows) out, then a ("mean", x) for
each batch mean asked and the batch's mean back, then ("ok", metrics) or ("error", exc).

Every process computes on one thread (BLAS at one thread, the numba kernels serial:
``backend.on_threads(1, ...)``), so K cores run K threads and none is oversubscribed. A
worker must not use numba's OpenMP thread pool at all (once a parent has used GNU
OpenMP, numba's omp layer refuses to run in its forked children: it signals the child
and skips the kernel's work), which is why the numba backend runs every kernel serially
at one thread. The task's random draws must have the batch as first axis (ShardRandom
checks). A batch with fewer examples than cores (an epoch's last) is split over as many
cores as it has examples; a batch of one runs in the trainer's process on every core,
where a BiLSTM's two directions still run side by side (``backend.concurrently``).

Workers die with the trainer: each asks the kernel for SIGKILL when its parent dies
(``prctl(PR_SET_PDEATHSIG)``, Linux), and leaves when its pipe closes.  They block SIGINT
and SIGTERM (Ctrl-C reaches the whole process group): the trainer alone decides, between
steps, to stop (:mod:`.stop`), and the workers finish the step in flight with it.  A
blocked SIGTERM a worker sent itself is numba's OpenMP guard (see above): that step fails
with a one-line error instead of returning the numbers of a kernel that did not run.

Why processes and not threads.  Design (a) was threads, each with a replica of the model
(the parameters shared, its own gradients and layer caches), relying on BLAS and the numba
kernels releasing the GIL; (b), this module, worker processes.  ``python bench/cores.py``
times both on the same cores (full training steps, numba, float32; 1 thread is the whole
batch in one process on one thread, 2 threads the same on two as before the split).  On
the 2-core machine they were written on, shared with other jobs (load 2.2 to 4.8: every
figure is noisy, the 2-thread one most of all), median seconds a step and speed-up over
1 thread, best step over best step in brackets:

    =========================  ===========  ============  ==============  ==============
    case                       1 thread     2 threads     (a) threads     (b) processes
    =========================  ===========  ============  ==============  ==============
    imdb-seed (batch 10)       3.17         1.84 (1.75x)  1.75 (1.84x)    1.72 (1.86x)
    imdb-repeat (batch 32)     3.11         17.5 (0.42x)  3.64 (0.96x)    3.44 (0.94x)
    ptb-sentence (batch 32)    0.364        1.59 (0.39x)  0.422 (0.95x)   0.390 (1.14x)
    mnist (batch 100)          0.120        0.236 (0.27x) 0.128 (0.71x)   0.128 (0.90x)
    =========================  ===========  ============  ==============  ==============

(imdb-seed ran at load 2.2, spreads 4 % for (b) and 77 % for (a); the other rows at load
4 and more, where no split can gain: they show only that neither design suffers from the
load as the 2-thread step does.  A second run at load 2.7-2.9, best over best: mnist (a)
0.80x, (b) 0.69x; ptb-sentence (a) 0.89x, (b) 0.95x: the designs are within the noise of
each other here, and a quiet machine must decide the figures.)  The processes were chosen
because

* they are at least as fast wherever the figures say anything, and steadier (the seed
  preset's spread 4 % against 77 %); where a shard's products are small (PTB, MNIST) the
  threads take turns at the GIL, held by the Python of every layer call and recurrent
  step, while the processes meet once a step.  On the same machine 2 MPI ranks of one
  thread ran the IMDB default step 1.76x faster than one process on 2 threads (issue 23);
* a fork copies the task, its data and its model as they are: no replica code, nothing
  a model or task must support (threads need deep copies of models whose layers share
  the backend, rebinding of their parameters, and copies of the task pointing at them);
* each process has its own thread-local state (numba's thread counts, the BLAS limits,
  ``backend.concurrently``'s share), so none of it is contended.

Their costs, paid here: a copy of the parameters into shared memory and a sum of K - 1
gradient blocks each step in the trainer's process (about 0.4 ms for MNIST's 404k
parameters; an estimated 1-2 % of a seed step), a pipe round trip per worker, and the OpenMP rule
above.  One more finding: the trainer's optimiser step must run on one thread too
(:meth:`CorePool.on_one_thread`): numba's OpenMP threads, left spinning by a parallel
Adam kernel, held the workers' cores and made MNIST steps 46 ms instead of 6.
"""

from __future__ import annotations

import atexit
import ctypes
import mmap
import multiprocessing
import os
import signal
import sys
import weakref

import numpy as np

from ..losses import BatchMean, whole_batch
from .distributed import ShardRandom, shard_rows

PR_SET_PDEATHSIG = 1
ALIGN = 64  # bytes: every array of a shared block starts on a cache line
BACKENDS = ("numpy", "numba")  # the CPU backends; a GPU step is not split


class CoreError(RuntimeError):
    """A worker process of a batch-split step failed or died; one-line message."""


def cores_for(backend, cores: int | None) -> int:
    """The cores a training step is split over: ``cores`` (default: every core) on a CPU backend under Linux
    (the workers need fork, prctl and sigtimedwait), 1 otherwise."""
    from ..backend.threads import core_count

    if backend.name not in BACKENDS or not sys.platform.startswith("linux"):
        return 1
    return core_count() if cores is None else cores


class _Block:
    """Arrays shaped like ``like`` ({name: array}) in one anonymous shared mapping (inherited by forks)."""

    def __init__(self, like: dict):
        offsets, size = {}, 0
        for name, a in like.items():
            offsets[name] = size
            size += -(-a.nbytes // ALIGN) * ALIGN
        self.memory = mmap.mmap(-1, max(size, 1))  # MAP_SHARED | MAP_ANONYMOUS
        self.arrays = {
            name: np.frombuffer(self.memory, dtype=a.dtype, count=a.size, offset=offsets[name]).reshape(a.shape)
            for name, a in like.items()
        }


def _rebind(model, params: dict, grads: dict) -> None:
    """Point the model's parameter and gradient arrays at ``params`` and ``grads`` (same paths), in place.

    Layers read ``self.params[name]`` and add into ``self.grads[name]`` when they compute, so the
    dictionaries' entries are all there is to change; the check after it makes sure."""

    def walk(layer, prefix):
        for name in layer.params:
            layer.params[name], layer.grads[name] = params[prefix + name], grads[prefix + name]
        for child_name, child in layer.children.items():
            walk(child, prefix + child_name + "/")

    walk(model, "")
    if any(p is not params[k] for k, p in model.parameters().items()) or any(
        g is not grads[k] for k, g in model.gradients().items()
    ):
        raise CoreError("the model's parameters could not be shared with the worker processes")


def _die_with_parent(parent: int) -> None:
    """SIGKILL this process when its parent dies (Linux), and leave now if it already has."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the closed pipe still ends the worker
        pass
    if os.getppid() != parent:
        os._exit(1)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
OPENMP = (
    "a numba kernel with parallel=True ran in a worker process, where numba's OpenMP layer skips its work "
    "(GNU OpenMP cannot run in a child forked after its parent used it); the numba backend must run it "
    "serially at one thread (see scratchvae/training/cores.py)"
)


def _signalled_itself() -> bool:
    """Whether this worker sent itself SIGTERM since the last look, dropping every pending stop signal.

    numba's OpenMP layer does that in a forked child that launches a parallel kernel, then returns without
    running it: the results would be wrong.  SIGINT and SIGTERM from elsewhere (Ctrl-C reaches the whole
    process group) are for the trainer, which stops between steps: a worker drops them."""
    itself = False
    while (info := signal.sigtimedwait(STOP_SIGNALS, 0)) is not None:
        itself = itself or (info.si_signo == signal.SIGTERM and info.si_pid == os.getpid())
    return itself


class _PoolClosed(BaseException):
    """The trainer closed the pool while this worker waited for a batch mean: the step is abandoned.
    A BaseException, so that a task's ``except Exception`` cannot hold it."""


def _worker_batch_mean(conn) -> BatchMean:
    """A worker's ``batch_mean``: its shard's mean to the trainer, the batch's back (see the module docstring)."""

    def batch_mean(x):
        try:
            conn.send(("mean", x))
            mean = conn.recv()
        except (EOFError, OSError):
            raise _PoolClosed from None
        if mean is None:
            raise _PoolClosed
        return mean

    return batch_mean


def _shard_step(task, batch, rng, step: int, rows: slice, batch_mean: BatchMean) -> dict[str, float]:
    """``task.train_step`` on the rows ``rows`` of ``batch``, on one thread (every core runs one)."""
    return task.model.backend.on_threads(
        1, lambda: task.train_step(batch[rows], ShardRandom(rng, rows, len(batch)), step, batch_mean=batch_mean)
    )


def _serve(conn, task, params: dict, grads: dict, parent: int) -> None:
    """A worker's life: steps of its shards until the pipe closes (or says None).

    SIGINT and SIGTERM stay blocked (as the fork left them, see :meth:`CorePool._start`): they wait, pending,
    until :func:`_signalled_itself` looks after each step."""
    for s in STOP_SIGNALS:
        signal.signal(s, signal.SIG_DFL)  # not the trainer's handlers: they are never run here
    _die_with_parent(parent)
    model = task.model
    _rebind(model, params, grads)
    batch_mean = _worker_batch_mean(conn)
    while True:
        try:
            work = conn.recv()
        except (EOFError, OSError):
            return
        if work is None:
            return
        batch, rng, step, rows = work
        try:
            model.zero_grad()
            metrics = _shard_step(task, batch, rng, step, rows, batch_mean)
            weight = (rows.stop - rows.start) / len(batch)
            for g in grads.values():
                g *= weight
            reply = ("ok", metrics)
        except _PoolClosed:
            return
        except Exception as exc:  # noqa: BLE001 - sent to the trainer, which raises it
            reply = ("error", exc)
        if _signalled_itself():
            reply = ("error", CoreError(OPENMP))
        try:
            try:
                conn.send(reply)
            except (BrokenPipeError, OSError):  # the trainer has gone, or closed the pool
                return
            except Exception:  # noqa: BLE001 - an exception that does not pickle: its text
                conn.send(("error", RuntimeError(f"{type(reply[1]).__name__}: {reply[1]}")))
        except (BrokenPipeError, OSError):
            return


class CorePool:
    """Splits each training step of ``task`` over ``cores`` cores: :meth:`step`; :meth:`close` ends it.

    The worker processes start at the first step that needs them (forked then, so they hold
    the task as it is at that moment) and end with :meth:`close`, the trainer's process, or a
    failed step.  ``task.train_step`` must depend on nothing but the parameters, its arguments
    and the task's state when the workers started (every task of this package does).
    """

    def __init__(self, task, cores: int):
        if cores < 1:
            raise ValueError(f"cores must be at least 1, got {cores}")
        self.task, self.cores = task, cores
        self.workers: list = []  # (process, connection, gradient arrays) of cores 1 .. K-1
        self.params: dict | None = None  # the shared parameter arrays the workers compute with
        self._finalizer = None

    # ------------------------------------------------------------------ lifetime
    def _start(self) -> None:
        model = self.task.model
        self.params = _Block(model.parameters()).arrays
        context = multiprocessing.get_context("fork")
        workers, parent = [], os.getpid()
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)  # in the children for good, here for the fork
        try:
            for _ in range(self.cores - 1):
                grads = _Block(model.gradients()).arrays
                mine, theirs = context.Pipe()
                process = context.Process(
                    target=_serve,
                    args=(theirs, self.task, self.params, grads, parent),
                    daemon=True,
                    name="scratchvae-core",
                )
                process.start()
                theirs.close()
                workers.append((process, mine, grads))
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
            self.workers = workers
        self._finalizer = weakref.finalize(self, _stop_workers, workers)
        # At exit the workers must be stopped before multiprocessing's own exit handler runs: it would
        # SIGTERM them (they block that signal) and join them for ever.  atexit runs the last registered
        # first, and multiprocessing registered its handler when the first worker started.
        atexit.register(self._finalizer)

    def close(self) -> None:
        """End the worker processes (a later step starts new ones)."""
        if self._finalizer is not None:
            atexit.unregister(self._finalizer)
            self._finalizer()
        self.workers, self.params, self._finalizer = [], None, None

    def __enter__(self) -> CorePool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def on_one_thread(self, call):
        """call() on one thread while steps are split (the other cores are the workers'), else as it is: the
        trainer's optimiser step.  Many threads here would leave their spinning thread pools (OpenMP's)
        on the cores the workers need: MNIST steps took 46 ms instead of 5."""
        if self.cores == 1:
            return call()
        return self.task.model.backend.on_threads(1, call)

    # ------------------------------------------------------------------ a step
    def step(self, batch, rng, step: int, batch_mean: BatchMean = whole_batch) -> dict[str, float]:
        """The gradients of ``batch`` in the task's model (as ``task.train_step`` leaves them, to rounding),
        the batch's metrics returned; ``rng`` gives the step's random draws for the whole batch, and
        ``batch_mean`` the means over a larger batch this one is a shard of (another rank's rows)."""
        model = self.task.model
        k = min(self.cores, len(batch))
        if k == 1:
            return self.task.train_step(batch, rng, step, batch_mean=batch_mean)
        if not self.workers:
            self._start()
        try:
            return self._split_step(model, batch, rng, step, k, batch_mean)
        except BaseException:
            self.close()  # a step half done (an error, a second Ctrl-C): its workers' state is unknown
            raise

    def _split_step(self, model, batch, rng, step: int, k: int, outer: BatchMean) -> dict[str, float]:
        for name, p in model.parameters().items():
            self.params[name][...] = p
        shards = [shard_rows(len(batch), i, k) for i in range(k)]
        weights = [(s.stop - s.start) / len(batch) for s in shards]
        used = self.workers[: k - 1]
        for (process, conn, _), rows in zip(used, shards[1:]):
            try:
                conn.send((batch, rng, step, rows))
            except (BrokenPipeError, OSError):
                raise CoreError(self._died(process)) from None

        def batch_mean(x):  # core 0's: the shards' means by their shares, in the order of the cores
            total = weights[0] * x
            for (process, conn, _), weight in zip(used, weights[1:]):
                total = total + weight * self._receive(process, conn, "mean")
            total = outer(total)
            for process, conn, _ in used:
                try:
                    conn.send(total)
                except (BrokenPipeError, OSError):
                    raise CoreError(self._died(process)) from None
            return total

        # an error in core 0's shard ends the step, and step() the workers, whatever they were doing
        metrics = [_shard_step(self.task, batch, rng, step, shards[0], batch_mean)]
        metrics += [self._receive(process, conn, "ok") for process, conn, _ in used]
        for name, g in model.gradients().items():  # in the order of the cores, whatever the timing
            g *= weights[0]
            for _, _, grads in used:
                g += grads[name]
        return _weighted_metrics(metrics, weights)

    def _receive(self, process, conn, expected: str):
        """A worker's next message, which must be ``expected`` ("mean" or "ok"): its value; raises the
        worker's error, or a CoreError when it died or its calls to batch_mean differ from core 0's."""
        try:
            status, value = conn.recv()
        except (EOFError, OSError):
            raise CoreError(self._died(process)) from None
        if status == "error":
            raise value
        if status != expected:
            raise CoreError(
                "the shards of a batch-split step asked for different batch means (a task's calls to "
                "batch_mean must not depend on its rows); --threads 1 trains on one core"
            )
        return value

    @staticmethod
    def _died(process) -> str:
        process.join(timeout=1)
        code = process.exitcode
        how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited (code {code})"
        return f"a worker process of the batch-split step {how} (out of memory?)"


def _weighted_metrics(metrics: list[dict], weights: list[float]) -> dict[str, float]:
    """The batch's metrics from its shards': each the mean over the shards reporting it, by their shares."""
    out = {}
    for key in dict.fromkeys(k for m in metrics for k in m):
        reporting = [(m[key], w) for m, w in zip(metrics, weights) if key in m]
        total = sum(w * value for value, w in reporting)
        out[key] = total if len(reporting) == len(metrics) else total / sum(w for _, w in reporting)
    return out


def _stop_workers(workers: list) -> None:
    for _, conn, _ in workers:
        try:
            conn.send(None)
        except (BrokenPipeError, OSError):
            pass
        conn.close()
    for process, _, _ in workers:
        process.join(timeout=5)
        if process.is_alive():
            process.kill()
            process.join()


__all__ = ["CoreError", "CorePool", "cores_for"]
