"""Batch-split steps (training/cores.py): K cores compute what one core computes, for every model.

Each case trains a tiny float64 model a few Adam steps on one core and on K cores (worker
processes) and compares the parameters: equal to 1e-12, batches that do not divide evenly
(5 on 2 and 3 cores) included.  The kill -9 and signal tests of test_imdb_task.py and
test_run_safety.py run the command line, which splits every step across the machine's cores.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from test_imdb_task import TINY as IMDB_TINY
from test_imdb_task import make_archive
from test_mnist_model import write_synthetic_mnist
from tiny_data import sentences

from scratchvae import train
from scratchvae.optim import make_optimizer
from scratchvae.tasks import TASKS
from scratchvae.training import Trainer, TrainingError
from scratchvae.training.cores import CoreError, CorePool, cores_for

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("data")
    write_synthetic_mnist(folder, n_train=40, n_test=10)
    make_archive(folder)
    (folder / "sentences.txt").write_text("\n".join(sentences(40)) + "\n", encoding="utf-8")
    return folder


def case_flags(model: str, data: Path) -> list[str]:
    if model == "mnist":
        return ["mnist", "--data-dir", str(data), "--hidden", "6"]
    if model.startswith("imdb"):
        extra = ["--preset", model[5:]] if model != "imdb" else []  # seed: pre-padding, batches at random
        return ["imdb", "--data-dir", str(data), *extra, *[f for f in IMDB_TINY if f != "--no-progress"]]
    tied = ["--embedding-dim", "5", "--tie-embeddings"] if model == "text-tied" else ["--embedding-dim", "6"]
    return [
        "text",
        "--file",
        str(data / "sentences.txt"),
        *tied,
        "--encoder-units",
        "5",
        "--decoder-units",
        "5",
        "--latent-dim",
        "2",
        "--kl-schedule",
        "linear",
        "--kl-steps",
        "4",
        "--word-dropout",
        "0.3",
        "--decoder-dropout",
        "0.2",
        "--bidirectional",
    ]  # bucketed batches


def trained(model, data, tmp_path, cores, *, batch=5, steps=3, backend="numpy"):
    """The parameters after ``steps`` Adam steps of ``model`` with each batch split across ``cores``."""
    argv = [
        *case_flags(model, data),
        "--batch-size",
        str(batch),
        "--dtype",
        "float64",
        "--backend",
        backend,
        "--no-progress",
        "--out",
        str(tmp_path / f"{model}-{cores}"),
    ]
    args = train.resolve_settings(train.build_parser(argv[0]).parse_args(argv))
    task = importlib.import_module(TASKS[args.task]).build_task(args)
    optimizer = make_optimizer(
        "adam", task.model.parameters(), task.model.gradients(), learning_rate=0.01, backend=task.model.backend
    )
    trainer = Trainer(task, optimizer, args.out, max_steps=steps, progress=False, cores=cores, seed=3)
    trainer.fit()
    return task.model.state_dict()


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        scale = max(np.abs(a[k]).max(), 1.0)
        assert np.abs(a[k] - b[k]).max() <= 1e-12 * scale, k


@pytest.mark.parametrize("model", ["mnist", "imdb", "imdb-repeat", "imdb-seed", "text", "text-tied"])
@pytest.mark.parametrize("cores, batch", [(2, 5), (3, 5), (2, 6)])  # 6: the text shards' widths differ
def test_k_cores_end_with_the_parameters_of_one(model, cores, batch, data, tmp_path):
    one = trained(model, data, tmp_path, 1, batch=batch)
    split = trained(model, data, tmp_path, cores, batch=batch)
    assert_same(one, split)
    assert any(not np.array_equal(one[k], split[k]) for k in one) or cores == 1  # the shards' sums round


def test_numba_cores_end_with_the_parameters_of_one(data, tmp_path):
    """The numba kernels in forked workers: serial, and the same numbers as the reference's."""
    one = trained("imdb", data, tmp_path, 1, backend="numba")
    assert_same(one, trained("imdb", data, tmp_path, 2, backend="numba"))


def test_a_split_step_is_independent_of_timing(data, tmp_path):
    """The shards are summed in the order of the cores: two runs are bit-identical."""
    a = trained("text", data, tmp_path / "a", 2, steps=2)
    b = trained("text", data, tmp_path / "b", 2, steps=2)
    for k in a:
        assert np.array_equal(a[k], b[k]), k


def test_a_batch_smaller_than_the_cores_uses_as_many_cores_as_examples(data, tmp_path):
    one = trained("mnist", data, tmp_path, 1, batch=2, steps=2)
    assert_same(one, trained("mnist", data, tmp_path, 4, batch=2, steps=2))


class FailingTask:
    """A task whose step fails in the core that gets row ``bad`` (or kills that worker)."""

    name = "failing"

    def __init__(self, model, bad: int, how: str):
        self.model, self.bad, self.how = model, bad, how

    def train_step(self, batch, rng, step, *, batch_mean=None):
        if self.bad in batch:
            if self.how == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            raise ValueError(f"bad example {self.bad}")
        return {"loss": 1.0}


def _dense():
    from scratchvae.layers.dense import Dense

    return Dense(3, 2, rng=np.random.default_rng(0), dtype=np.float64)


@pytest.mark.parametrize("bad", [0, 3])  # in the trainer's own shard, in a worker's
def test_an_error_in_any_core_is_raised_and_the_pool_goes_on(bad):
    with CorePool(FailingTask(_dense(), bad, "raise"), 2) as pool:
        with pytest.raises(ValueError, match=f"bad example {bad}"):
            pool.step(np.arange(4), np.random.default_rng(0), 0)
        assert pool.step(np.arange(4) + 10, np.random.default_rng(0), 1) == {"loss": 1.0}


def test_a_killed_worker_is_a_one_line_training_error(tmp_path):
    from test_training import ToyTask

    task = ToyTask()
    original, trainer_pid = task.train_step, os.getpid()

    def step(batch, rng, step, *, batch_mean):
        if step == 1 and os.getpid() != trainer_pid:  # the second core's shard of step 1
            os.kill(os.getpid(), signal.SIGKILL)
        return original(batch, rng, step, batch_mean=batch_mean)

    task.train_step = step
    optimizer = make_optimizer("sgd", task.model.parameters(), task.model.gradients(), learning_rate=0.1)
    trainer = Trainer(task, optimizer, tmp_path, max_steps=3, progress=False, cores=2)
    message = (
        "a worker process of the batch-split step was killed by signal 9 (out of memory?) at epoch 1, "
        "step 1; training stopped"
    )
    with pytest.raises(TrainingError, match=re.escape(message)):
        trainer.fit()


PARENT = textwrap.dedent("""
    import os, sys, time
    import numpy as np
    from scratchvae.layers.dense import Dense
    from scratchvae.training.cores import CorePool
    class Task:
        model = Dense(3, 2, rng=np.random.default_rng(0))
        def train_step(self, batch, rng, step, *, batch_mean=None):
            return {"loss": 1.0}
    pool = CorePool(Task(), 3)
    pool.step(np.arange(6), np.random.default_rng(0), 0)
    print(" ".join(str(p.pid) for p, _, _ in pool.workers), flush=True)
    time.sleep(60)
""")


def test_workers_die_with_a_killed_parent():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", PARENT], env=env, stdout=subprocess.PIPE, text=True)
    pids = [int(p) for p in proc.stdout.readline().split()]
    assert len(pids) == 2
    proc.kill()
    proc.wait()
    deadline = __import__("time").monotonic() + 10
    alive = pids
    while alive and __import__("time").monotonic() < deadline:
        alive = [p for p in alive if Path(f"/proc/{p}").exists() and "Z" not in _state(p)]
    assert not alive, "workers outlived their parent"


NEVER_CLOSED = textwrap.dedent("""
    import weakref
    class Library:  # any library that made a weakref.finalize before the pool's workers started
        pass
    library = Library()
    weakref.finalize(library, print, "the library's finalizer ran")
    import numpy as np
    from scratchvae.layers.dense import Dense
    from scratchvae.training.cores import CorePool
    class Task:
        model = Dense(3, 2, rng=np.random.default_rng(0))
        def train_step(self, batch, rng, step, *, batch_mean=None):
            return {"loss": 1.0}
    pool = CorePool(Task(), 3)
    print(pool.step(np.arange(6), np.random.default_rng(0), 0), flush=True)
""")


def test_a_script_that_never_closes_its_pool_exits():
    # multiprocessing's exit handler SIGTERMs daemon workers and joins them; the workers block SIGTERM,
    # so unless the pool stops them first the script hangs at exit
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", NEVER_CLOSED], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["{'loss': 1.0}", "the library's finalizer ran"]


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return "Z"


def test_the_cores_of_a_run():
    from scratchvae.backend import get_backend
    from scratchvae.backend.threads import core_count

    assert cores_for(get_backend("numpy"), None) == core_count()
    assert cores_for(get_backend("numba"), 3) == 3
    with pytest.raises(ValueError, match="cores must be at least 1"):
        CorePool(None, 0)


def test_ctrl_c_to_the_process_group_stops_a_split_run_after_its_step(tmp_path):
    """Ctrl-C reaches the trainer and its workers: the workers finish the step, the trainer saves and stops,
    and the resumed run ends bit-identical to an uninterrupted one."""
    import time

    from test_run_safety import SLOW, cli, flags, params

    write_synthetic_mnist(tmp_path)
    reference = cli(flags(tmp_path, tmp_path / "reference", "--threads", 2))
    assert reference.returncode == 0, reference.stderr
    assert "2 cores (each batch split across them)" in reference.stdout
    args = flags(tmp_path, tmp_path / "stopped", "--threads", 2)
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW, *args],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    from scratchvae.training import load_checkpoint

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if load_checkpoint(tmp_path / "stopped" / "last.npz").meta["progress"]["global_step"] >= 15:
                break
        except Exception:  # noqa: BLE001 - not written yet
            pass
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does: the whole foreground process group
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "stopped by SIGINT at epoch 2" in stderr, stderr
    resumed = cli([*args, "--resume"])
    assert resumed.returncode == 0, resumed.stderr
    a, b = params(tmp_path / "reference" / "last.npz"), params(tmp_path / "stopped" / "last.npz")
    for k in a:
        assert np.array_equal(a[k], b[k]), k


@pytest.mark.parametrize(
    "model, extra",
    [
        ("imdb", ["--unlabelled"]),  # the review VAE: free bits (the default's 0.25) and unlabelled reviews
        ("imdb-repeat", ["--unlabelled"]),
        ("text", ["--free-bits", "0.02"]),
    ],
)
def test_batch_statistics_split_across_cores(model, extra, data, tmp_path, monkeypatch):
    """Free bits clamp each latent unit's batch-mean KL, and with unlabelled reviews the sentiment loss is a
    mean over the batch's labelled ones: the workers exchange those batch means mid-step (2 cores differed
    by 1e-2 from one core before they did), and the split still equals one core."""
    import test_cores

    original = test_cores.case_flags
    monkeypatch.setattr(test_cores, "case_flags", lambda m, d: [*original(m, d), *extra])
    assert_same(trained(model, data, tmp_path, 1, batch=7), trained(model, data, tmp_path, 3, batch=7))


class UnevenTask:
    """A task whose shards ask for different batch means: only the shard holding row 0 asks."""

    name = "uneven"

    def __init__(self, model):
        self.model = model

    def train_step(self, batch, rng, step, *, batch_mean=None):
        if 0 in batch:
            batch_mean(np.ones(2))
        return {"loss": 1.0}


@pytest.mark.parametrize("first", [0, 10])  # core 0 asks and waits, a worker asks and waits
def test_shards_that_ask_for_different_batch_means_fail_the_step(first):
    with CorePool(UnevenTask(_dense()), 2) as pool:
        batch = np.array([first, 1, 2, 0 if first else 10])
        with pytest.raises(CoreError, match="asked for different batch means"):
            pool.step(batch, np.random.default_rng(0), 0)


def test_ranks_times_cores_end_with_the_parameters_of_one_core(tmp_path):
    """--distributed composes with the split: 2 ranks x 2 cores (a rank's 5 rows as 3 + 2) equal one core."""
    from test_distributed import MPIRUN, _tiny_mnist, _train

    if MPIRUN is None or importlib.util.find_spec("mpi4py") is None:
        pytest.skip("needs mpi4py and mpirun: pip install mpi4py mpich")
    _tiny_mnist(tmp_path)
    single = _train(tmp_path, tmp_path / "single", 0, ["--threads", "1"])
    assert single.returncode == 0, single.stderr
    multi = _train(tmp_path, tmp_path / "multi", 2, ["--threads", "2"])
    assert multi.returncode == 0, multi.stderr
    assert "2 cores (each batch split across them), float64, 2 ranks" in multi.stdout
    from scratchvae.training import load_checkpoint

    assert_same(
        load_checkpoint(tmp_path / "single" / "last.npz").params,
        load_checkpoint(tmp_path / "multi" / "last.npz").params,
    )


def test_a_parallel_numba_kernel_in_a_worker_fails_the_step_instead_of_skipping_its_work():
    """GNU OpenMP in a forked child: numba signals the child and skips the kernel; the step must fail."""
    import numba

    from scratchvae.backend.numba.softmax import softmax_cross_entropy
    from scratchvae.training.cores import CoreError

    def kernel():
        logits = np.zeros((4, 3))
        softmax_cross_entropy(logits, np.zeros(4, np.int64), np.ones(4), np.empty(4))

    kernel()  # the parent's OpenMP pool is started
    if numba.threading_layer() != "omp":
        pytest.skip("the guard is GNU OpenMP's (numba's omp threading layer)")

    class Task:
        model = _dense()

        def train_step(self, batch, rng, step, *, batch_mean=None):
            kernel()
            return {"loss": 1.0}

    with CorePool(Task(), 2) as pool, pytest.raises(CoreError, match="a numba kernel with parallel=True ran"):
        pool.step(np.arange(4), np.random.default_rng(0), 0)


def test_a_stop_signal_sent_to_a_worker_is_dropped():
    """Ctrl-C reaches the workers too: they finish their steps and go on."""
    with CorePool(FailingTask(_dense(), -1, "raise"), 2) as pool:
        pool.step(np.arange(4), np.random.default_rng(0), 0)
        for signum in (signal.SIGINT, signal.SIGTERM):
            os.kill(pool.workers[0][0].pid, signum)
        assert pool.step(np.arange(4), np.random.default_rng(0), 1) == {"loss": 1.0}
        assert pool.workers[0][0].is_alive()


def test_the_serial_kernels_at_one_thread_compute_what_the_parallel_ones_do():
    """At one thread (a core of a split step) the numba backend runs its softmax and Adam kernels without
    numba's thread pool; the numbers are the same to the bit."""
    from scratchvae.backend import get_backend
    from scratchvae.backend.numba import adam, softmax

    backend = get_backend("numba")
    rng = np.random.default_rng(0)
    logits, targets, scale = rng.standard_normal((7, 50)), rng.integers(0, 50, 7), np.full(7, 1 / 7)
    outputs = []
    import numba

    for threads in (min(2, numba.config.NUMBA_NUM_THREADS), 1):
        buf = logits.copy()
        nll = backend.on_threads(threads, lambda: backend.softmax_cross_entropy(buf, targets, scale))  # noqa: B023
        p, g, m, v = (a.copy() for a in (logits, logits[::-1], np.zeros_like(logits), np.ones_like(logits)))
        backend.on_threads(threads, lambda: backend.adam_update(p, g, m, v, 1e-3, 0.9, 0.999, 1e-7))  # noqa: B023
        outputs.append((buf, nll, p, m, v))
    for a, b in zip(*outputs):
        assert np.array_equal(a, b)
    assert softmax.softmax_cross_entropy_serial.signatures and adam.adam_update_serial.signatures


def test_a_worker_does_not_hold_the_run_lock(tmp_path):
    """kill -9 of the trainer frees its run folder at once, even while its workers are still dying."""
    from scratchvae.training.run_dir import RunLock

    lock = RunLock(tmp_path).acquire()
    try:
        with CorePool(FailingTask(_dense(), -1, "raise"), 2) as pool:
            pool.step(np.arange(4), np.random.default_rng(0), 0)  # a worker forked while the lock is held
            lock.release()
            RunLock(tmp_path).acquire().release()  # free although the worker lives
            assert pool.workers[0][0].is_alive()
    finally:
        lock.release()
