"""The two designs of a batch-split training step, measured against each other (issue 23).

    python bench/cores.py                         # every model case, all cores
    python bench/cores.py --only imdb-default --repeats 5
    python bench/cores.py --quick                 # tiny sizes: a smoke test, not a measurement

Times the full training step of bench/cases.py's model cases (forward + backward + Adam,
float32, numba) four ways on the same K cores:

* ``1 thread``: the whole batch in one process on one thread (what a split saves against);
* ``K threads``: the whole batch in one process, BLAS and numba on K threads (before #23);
* ``(a) K threads, replicas``: the batch split across K Python threads, each with a replica
  of the model (the parameters shared, its own gradients and layer caches), the products
  and kernels releasing the GIL (:class:`ThreadSplit`, here only);
* ``(b) K processes``: the batch split across K forked processes, parameters and gradients
  in shared memory (scratchvae.training.cores.CorePool, what training uses).

Prints the median and the best seconds per step, the spread, and the speed-ups over one thread
(of the medians, and of the best steps: on a shared machine the best step is the one least
disturbed by other work).  What
was measured, and why (b) was chosen, is in scratchvae/training/cores.py's docstring.
"""

from __future__ import annotations

import argparse
import copy
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))

import scratchvae  # noqa: E402, F401  before NumPy (cases imports it): the spin limits of the thread pools


class ThreadSplit:
    """Design (a): core i's shard on a Python thread, with a replica of the task's model sharing its parameters.

    The replica is a deep copy of the model whose parameter arrays are rebound to the original's and whose
    gradients are its own; the task is a shallow copy holding the replica.  Each thread computes on one thread
    (BLAS at one thread for the whole step, the numba kernels serial), the shards' gradients are summed in core
    order, as in CorePool."""

    def __init__(self, task, cores: int):
        import numpy as np

        from scratchvae.training.cores import _rebind

        self.task, self.cores = task, cores
        model = task.model
        self.replicas = []
        for _ in range(cores - 1):
            clone = copy.deepcopy(model, {id(model.backend): model.backend, id(np): np})
            _rebind(clone, model.parameters(), {k: np.zeros_like(g) for k, g in model.gradients().items()})
            replica = copy.copy(task)
            replica.model = clone
            self.replicas.append(replica)
        self.pool = ThreadPoolExecutor(max(cores - 1, 1), thread_name_prefix="replica")

    def on_one_thread(self, call):
        return self.task.model.backend.on_threads(1, call)

    def step(self, batch, rng, step):
        from scratchvae.backend.threads import blas_threads
        from scratchvae.training.cores import _weighted_metrics
        from scratchvae.training.distributed import ShardRandom, shard_rows

        k = min(self.cores, len(batch))
        if k == 1:
            return self.task.train_step(batch, rng, step)
        shards = [shard_rows(len(batch), i, k) for i in range(k)]
        backend = self.task.model.backend

        def run(task, rows, draws):
            if task is not self.task:
                task.model.zero_grad()
            return backend._with_threads(
                1, lambda: task.train_step(batch[rows], ShardRandom(draws, rows, len(batch)), step)
            )

        tasks = [self.task, *self.replicas[: k - 1]]
        with blas_threads(1):
            futures = [self.pool.submit(run, t, rows, copy.deepcopy(rng)) for t, rows in zip(tasks[1:], shards[1:])]
            metrics = [run(tasks[0], shards[0], copy.deepcopy(rng))] + [f.result() for f in futures]
        weights = [(s.stop - s.start) / len(batch) for s in shards]
        for name, g in self.task.model.gradients().items():
            g *= weights[0]
            for t, w in zip(tasks[1:], weights[1:]):
                g += w * t.model.gradients()[name]
        return _weighted_metrics(metrics, weights)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes, 2 cores, 2 rounds (a smoke test)")
    p.add_argument("--only", default=None, help="the model cases whose name contains this text")
    p.add_argument("--cores", type=int, default=None, help="K (default: every CPU; 2 with --quick)")
    p.add_argument("--repeats", type=int, default=None, help="timed rounds (default 7; 2 with --quick)")
    args = p.parse_args(argv)
    import cases
    import measure
    import numpy as np

    from scratchvae.backend import get_backend
    from scratchvae.backend.threads import core_count, limit_threads

    cores = args.cores or (2 if args.quick else core_count())
    repeats = args.repeats or (2 if args.quick else 7)
    limit_threads(cores)
    backend = get_backend("numba")
    models = [c for c in cases.all_cases(args.quick, ["numba"], "cpu", cores) if c.kind == "model"]
    models = [c for c in models if not args.only or args.only in c.name]
    print(f"# batch-split designs on {cores} cores, numba, float32; load {measure.load_average()[0]:.1f}")
    print(
        "| case | design | s / step | best | spread | speed-up over 1 thread | best over best |\n"
        "|---|---|--:|--:|--:|--:|--:|"
    )
    for case in models:
        runners = {
            "1 thread": _single(cases, case, backend),
            f"{cores} threads": _built(cases, case, _Whole),
            f"(a) {cores} threads, replicas": _built(cases, case, ThreadSplit),
            f"(b) {cores} processes": _built(cases, case, None),
        }
        times = measure.time_interleaved(runners, warmup=2, repeats=repeats)
        base, best = float(np.median(times["1 thread"])), min(times["1 thread"])
        for name, samples in times.items():
            s = measure.summarize(samples)
            print(
                f"| {case.name} | {name} | {s['median_s']:.4f} | {min(samples):.4f} | {100 * s['spread']:.0f}% | "
                f"{base / s['median_s']:.2f}x | {best / min(samples):.2f}x |",
                flush=True,
            )
        del runners
    return 0


def _built(cases, case, split):
    """The case's numba training step, split across its cores by ``split`` (None: CorePool)."""
    cases.STEP_SPLIT = split
    try:
        return case.builders["numba"]()
    finally:
        cases.STEP_SPLIT = None


def _single(cases, case, backend):
    """The whole batch in this process on one thread."""
    runner = _built(cases, case, _Whole)
    return cases.Runner(lambda: backend.on_threads(1, runner.step), runner.prepare)


class _Whole:
    """No split: the task's own step on the whole batch."""

    def __init__(self, task, cores):
        self.task = task

    def on_one_thread(self, call):
        return call()

    def step(self, batch, rng, step):
        return self.task.train_step(batch, rng, step)


if __name__ == "__main__":
    sys.exit(main())
