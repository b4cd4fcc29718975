"""The training loop shared by every model, with exact resume.

A :class:`Task` knows its data and model; the :class:`Trainer` runs epochs of steps,
applies the optimiser, shows progress, validates, logs and checkpoints.

Exact resume: every random draw of a step comes from a generator seeded by
(seed, global step), and the batch order of an epoch from one seeded by (seed, epoch).
A run therefore needs no generator state in its checkpoint: resumed from the last
checkpoint, it repeats exactly the steps an uninterrupted run would have taken.

Nothing a run wrote is lost or spoiled: SIGINT and SIGTERM end it after the step in flight
with a checkpoint of that step (:mod:`.stop`), and a checkpoint is written only when every
parameter and optimiser value is finite, so ``last.npz`` always holds a state to go on from.
"""

from __future__ import annotations

import json
import math
import signal
import time
from pathlib import Path
from typing import Protocol

import numpy as np

from ..layers.base import Layer
from ..losses import BatchMean, whole_batch
from ..optim import Optimizer
from ..progress import progress_bar, say, use_bars
from .checkpoint import Checkpoint, CheckpointError, load_checkpoint, non_finite, save_checkpoint
from .cores import CoreError, CorePool
from .distributed import ShardRandom, SingleProcess, shard_rows
from .log import LOG_NAME, LogError, append_record, trim_log
from .stop import StopRequested, StopSignals


class TrainingError(RuntimeError):
    """Training cannot go on (a non-finite loss, a mismatched resume); one-line message."""


class RunStopped(Exception):
    """SIGINT or SIGTERM stopped the run; ``checkpoint`` holds the state to resume from (None: none yet)."""

    def __init__(self, signum: int, checkpoint: Path | None, where: str):
        self.signum, self.checkpoint = signum, checkpoint
        super().__init__(f"stopped by {signal.Signals(signum).name} {where}")


class Task(Protocol):
    """What the trainer needs from a model and its data."""

    name: str
    model: Layer

    def meta(self) -> dict:
        """JSON-serialisable description sufficient to rebuild the model (config, vocabulary)."""

    def epoch_batches(self, rng: np.random.Generator) -> list:
        """The training batches of one epoch, in order (usually arrays of example indices)."""

    def train_step(
        self, batch, rng: np.random.Generator, step: int, *, batch_mean: BatchMean = whole_batch
    ) -> dict[str, float]:
        """Forward and backward on one batch (gradients accumulate in the model).

        Returns the batch's metrics; "loss" is the quantity being minimised.  The loss is a mean over
        the batch's examples, except for the batch statistics its losses ask ``batch_mean`` for: then
        ``batch`` may be a shard of the step's batch (--distributed, and the split of a step across
        cores, :mod:`.cores`), and the shards' gradients, weighted by their share, give the batch's.
        """

    def validate(self) -> dict[str, float]:
        """Metrics on held-out data; one of them (``selection``) picks the best checkpoint."""


DEFAULT_SELECTION = ("val_loss", "min")  # a task may set ``selection = (metric, "min" | "max")``


def step_rng(seed: int, step: int) -> np.random.Generator:
    """The generator of all random draws (noise, dropout) of one global step."""
    return np.random.default_rng([seed, 2, step])


def epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    """The generator of one epoch's batch order."""
    return np.random.default_rng([seed, 1, epoch])


def epoch_learning_rate(lr: float, epoch: int, decay: float = 1.0, drop_at=(), drop_factor: float = 0.1) -> float:
    """The learning rate of epoch ``epoch`` (counted from 0):

        lr * drop_factor**n * decay**epoch,   n = the epochs of ``drop_at`` (counted from 1) <= epoch + 1

    an exponential decay, and step drops such as ``drop_at=(8,)``: epochs 8, 9, ... train at
    ``drop_factor`` times the rate they would have had (PyTorch's MultiStepLR, in epochs).
    """
    drops = sum(1 for e in drop_at if e <= epoch + 1)
    return lr * drop_factor**drops * decay**epoch


# Settings a checkpoint did not record yet when it was written, and the values it trained with.
UNSET_SETTINGS = {"lr_drop_at": [], "lr_drop_factor": None}

# A task's metadata keys that describe its data: a difference there means the data changed.
DATA_KEYS = ("data", "source", "vocab", "tokenizer", "binarize")
DIVERGENCE_CAUSES = (
    "likely causes: a learning rate too high (try a lower --lr, or a --clipnorm), a non-finite "
    "value in an input file (such as GloVe vectors), or the KL settings"
)


def _short(value) -> str:
    """A value for a one-line message: long lists and strings summarised."""
    if isinstance(value, list) and len(value) > 6:
        return f"[{len(value):,} items]"
    text = "off" if value is None else json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 40 else f"{text[:37]}..."


def differences(saved, expected: dict, prefix: str = "") -> list[str]:
    """``key was A, now B`` for each (nested) key whose value differs, sorted."""
    out = []
    for key in sorted(expected):
        was, now = saved.get(key) if isinstance(saved, dict) else None, expected[key]
        if was == now:
            continue
        if isinstance(was, dict) and isinstance(now, dict):
            out += differences(was, now, f"{prefix}{key}.")
        else:
            out.append(f"{prefix}{key} was {_short(was)}, now {_short(now)}")
    return out


def _time(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _figures(metrics: dict) -> str:
    return "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items())


class _NoSignals:
    """The stop policy of a distributed run: ranks cannot agree on a step to stop at, so none is kept."""

    signum = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def deferred(self):
        return self

    def check(self):
        pass


class Trainer:
    """Runs a task for ``epochs`` (or ``max_steps``), checkpointing into ``out_dir``.

    Files in ``out_dir``: ``last.npz`` (written every ``checkpoint_every`` steps, at each epoch
    end, at the end and when a stop signal arrives), ``best.npz`` (the best validation so far by
    the task's ``selection``, by default the lowest val_loss: at an epoch end, or where
    ``max_steps`` stopped the run), ``metrics.jsonl`` (strict JSON, one object per
    ``log_every``-th step and per epoch; an epoch's ``train_<metric>`` is the mean over its
    batches, ``seconds`` its time since it started or since the run resumed; see :mod:`.log`).

    Output (rank 0): with ``progress`` on a terminal, a tqdm bar per epoch and one for
    validation; otherwise one line per epoch, and one every ``print_every`` steps if it is set (see
    :mod:`.progress`).  The expected time of an epoch is printed once its first steps are timed.

    Stopping: SIGINT and SIGTERM (through ``stop_signals``, see :mod:`.stop`) end the run after
    the step in flight; it writes ``last.npz`` and raises :class:`RunStopped`.  A non-finite loss,
    gradient or parameter stops it with a :class:`TrainingError` naming the checkpoint that holds
    the last good state: only finite parameters and optimiser state are ever written, and a
    non-finite validation figure never becomes best.

    The learning rate is a function of the epoch alone (see :func:`epoch_learning_rate`):
    ``lr_decay`` multiplies it after every epoch, and each epoch of ``lr_drop_at`` (counted
    from 1) multiplies it by ``lr_drop_factor`` from then on.  Needing no state, it resumes
    exactly.

    A checkpoint records the settings that shape every later step (optimiser, learning rate,
    its decay, clipping, seed; the task's own in ``task.meta()``), and :meth:`resume`
    refuses to go on with others: a resumed run is the run it continues.  ``epochs`` and
    ``max_steps`` may change (to extend a run), as may threads and backend (same results to
    rounding).

    With a ``comm`` of several ranks (see :mod:`.distributed`) each rank trains on its
    shard of every batch and gradients are summed across ranks before the update; rank 0
    alone validates, logs and writes files.  With ``cores`` > 1 each step's batch (each
    rank's shard) is split further across that many cores of this machine (see
    :mod:`.cores`): the same gradients to rounding, independent of timing.
    """

    def __init__(
        self,
        task: Task,
        optimizer: Optimizer,
        out_dir: str | Path,
        *,
        epochs: int = 1,
        max_steps: int | None = None,
        seed: int = 0,
        checkpoint_every: int = 200,
        log_every: int = 20,
        progress: bool = True,
        comm=None,
        lr_decay: float = 1.0,
        lr_drop_at: tuple[int, ...] = (),
        lr_drop_factor: float = 0.1,
        stop_signals: StopSignals | None = None,
        print_every: int | None = None,
        cores: int = 1,
    ):
        if any(e < 1 for e in lr_drop_at) or not 0.0 < lr_drop_factor <= 1.0:
            raise ValueError(
                f"lr_drop_at must hold epochs >= 1 and lr_drop_factor be in (0, 1], "
                f"got {lr_drop_at} and {lr_drop_factor}"
            )
        self.task, self.optimizer = task, optimizer
        self.base_lr, self.lr_decay = optimizer.learning_rate, lr_decay
        self.lr_drop_at, self.lr_drop_factor = sorted(set(lr_drop_at)), lr_drop_factor
        self.selection, mode = getattr(task, "selection", DEFAULT_SELECTION)
        self.sign = {"min": 1.0, "max": -1.0}[mode]  # self.best is sign * metric: lower is better
        self.out_dir = Path(out_dir)
        self.epochs, self.max_steps, self.seed = epochs, max_steps, seed
        self.comm = comm if comm is not None else SingleProcess()
        self.is_main = self.comm.rank == 0
        self.checkpoint_every, self.log_every, self.print_every = checkpoint_every, log_every, print_every
        self.progress = progress and self.is_main
        self.stop_signals = stop_signals if stop_signals is not None else StopSignals()
        self.cores = CorePool(task, cores)
        self.epoch, self.batch_index, self.global_step = 0, 0, 0
        self.epoch_sums: dict[str, list] = {}  # metric -> [sum, batches] over this epoch so far
        self.best = math.inf
        self.best_record: dict | None = None  # where best.npz was written and its validation figures
        self.last_good: tuple[Path, int] | None = None  # the checkpoint of the latest finite state, its step
        self.last_validation: dict[str, float] = {}
        self.settings = {
            "optimizer": type(optimizer).__name__.lower(),
            "lr": self.base_lr,
            "lr_decay": lr_decay,
            "lr_drop_at": self.lr_drop_at,
            "lr_drop_factor": lr_drop_factor if lr_drop_at else None,
            "clipnorm": optimizer.global_clipnorm,
            "seed": seed,
        }

    # ------------------------------------------------------------------ files
    @property
    def last_path(self) -> Path:
        return self.out_dir / "last.npz"

    @property
    def best_path(self) -> Path:
        return self.out_dir / "best.npz"

    def _kept(self) -> str:
        """Where the last good state is, for messages."""
        if self.last_good is None:
            return "no checkpoint was written yet"
        path, step = self.last_good
        return f"the last good checkpoint is {path} (written after step {step})"

    def _log(self, record: dict) -> None:
        if not self.is_main:
            return
        try:
            append_record(self.out_dir / LOG_NAME, record)
        except LogError as exc:
            raise LogError(f"{exc}; free disk space or choose another --out ({self._kept()})") from None

    def _checkpoint(self, path: Path, best_record: dict | None = None) -> None:
        """Write the current state to ``path``, if every value in it is finite (TrainingError otherwise)."""
        if not self.is_main:
            return
        params, optim = self.task.model.state_dict(), self.optimizer.state_dict()
        bad = non_finite(params) + [f"optimiser {k}" for k in non_finite(optim)]
        if bad:
            raise self._diverged(f"non-finite values in {', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''}")
        record = best_record if best_record is not None else self.best_record
        meta = {
            "task": self.task.name,
            **self.task.meta(),
            "training": self.settings,
            "progress": {
                "epoch": self.epoch,
                "batch": self.batch_index,
                "global_step": self.global_step,
                "best": self.best,
                "seed": self.seed,
                "epoch_sums": self.epoch_sums,
                "best_record": record,
            },
        }
        save_checkpoint(path, Checkpoint(params, meta, optim))
        if path == self.last_path:
            self.last_good = (path, self.global_step)

    def _diverged(self, what: str) -> TrainingError:
        return TrainingError(
            f"{what} at epoch {self.epoch + 1}, step {self.global_step}; training stopped, "
            f"{self._kept()}; {DIVERGENCE_CAUSES}"
        )

    def resume(self, ckpt: Checkpoint | None = None) -> bool:
        """Load ``last.npz`` (or ``ckpt``, read from it) if there is one; returns whether training resumes."""
        if ckpt is None:
            if not self.last_path.exists():
                return False
            ckpt = load_checkpoint(self.last_path)
        task = ckpt.meta.get("task")
        if task is not None and task != self.task.name:
            raise TrainingError(
                f"{self.last_path} is a run of the {task!r} task, not {self.task.name!r}: resume "
                f"it with 'train {task} ... --resume', or choose another --out for this one"
            )
        expected = json.loads(json.dumps(self.task.meta()))
        saved = {k: ckpt.meta.get(k) for k in expected}
        if saved != expected:
            differing = sorted(k for k in expected if saved[k] != expected[k])
            cause = (
                "the data changed (an edited or another data file, or other data flags)"
                if any(k in DATA_KEYS for k in differing)
                else "other model or data flags were given"
            )
            raise TrainingError(
                f"{self.last_path} was trained with different settings ({', '.join(differing)}): "
                f"{'; '.join(differences(saved, expected)[:4])}; {cause}: resume with the original "
                "flags and data, or start a new run with --overwrite or another --out"
            )
        self._check_settings(ckpt.meta.get("training"))
        bad = non_finite(ckpt.params) + non_finite(ckpt.optim)
        if bad:
            raise TrainingError(
                f"{self.last_path} holds non-finite values ({', '.join(bad[:3])}): it cannot be "
                "resumed; start a new run with --overwrite (and a lower --lr)"
            )
        try:
            self.task.model.load_state_dict(ckpt.params)
            self.optimizer.load_state_dict(ckpt.optim)
            progress = ckpt.meta["progress"]
            self.epoch, self.batch_index = progress["epoch"], progress["batch"]
            self.global_step, self.best = progress["global_step"], progress["best"]
        except (KeyError, ValueError, TypeError) as exc:
            raise CheckpointError(
                f"{self.last_path} does not fit this model or lacks its progress ({exc}); it "
                "is damaged: start a new run with --overwrite or another --out"
            ) from None
        self.epoch_sums = dict(progress.get("epoch_sums", {}))  # absent before they were kept
        self.best_record = progress.get("best_record")
        self.last_good = (self.last_path, self.global_step)
        if self.is_main:
            trim_log(self.out_dir / LOG_NAME, self.global_step)  # the steps after it are logged again
        return True

    def _check_settings(self, saved: dict | None) -> None:
        """Refuses a resume whose optimiser settings or seed differ from the checkpoint's."""
        if saved is None:  # written before checkpoints recorded them
            return
        saved = {**UNSET_SETTINGS, **saved}  # settings added since the checkpoint was written
        changed = [k for k, v in self.settings.items() if saved.get(k) != v]
        if changed:

            def text(value):
                if isinstance(value, list):
                    return " ".join(map(str, value)) or "none"
                return "off" if value is None else str(value)

            was = ", ".join(f"--{k.replace('_', '-')} {text(saved.get(k))}" for k in changed)
            now = ", ".join(text(self.settings[k]) for k in changed)
            raise TrainingError(
                f"{self.last_path} was trained with {was} (given {now}); resume with "
                "the flags it was trained with, or start a new run with --overwrite or a new --out"
            )

    # ------------------------------------------------------------------ loop
    def _done(self) -> bool:
        return self.max_steps is not None and self.global_step >= self.max_steps

    def finished(self) -> bool:
        """Whether there is nothing left to train (all epochs, or ``max_steps``, done)."""
        return self.epoch >= self.epochs or self._done()

    def epoch_size(self) -> tuple[int, int]:
        """(examples, steps) of one epoch."""
        batches = self.task.epoch_batches(epoch_rng(self.seed, self.epoch))
        return sum(len(b) for b in batches), len(batches)

    def _train_step(self, batch) -> dict[str, float]:
        """Gradients of one global batch in the model; returns the batch's metrics."""
        try:
            return self._split_step(batch)
        except CoreError as exc:
            raise TrainingError(
                f"{exc} at epoch {self.epoch + 1}, step {self.global_step}; training stopped, "
                f"{self._kept()}; --threads 1 trains on one core, without worker processes"
            ) from None

    def _split_step(self, batch) -> dict[str, float]:
        """The step's batch over the ranks (``comm``), each rank's shard over its cores."""
        rng = step_rng(self.seed, self.global_step)
        if self.comm.size == 1:
            return self.cores.step(batch, rng, self.global_step)
        if len(batch) < self.comm.size:
            raise TrainingError(
                f"a batch of {len(batch)} examples cannot be shared by {self.comm.size} ranks; "
                "use a --batch-size of at least the number of ranks"
            )
        rows = shard_rows(len(batch), self.comm.rank, self.comm.size)
        weight = (rows.stop - rows.start) / len(batch)  # every loss is a mean over the batch
        backend = self.task.model.backend

        def across_ranks(x):  # the batch's mean: the ranks' means weighted by their shares
            host = np.atleast_1d(backend.to_numpy(x)) * weight
            return backend.asarray(self.comm.allreduce_sum(host).reshape(np.shape(x)), dtype=host.dtype)

        metrics = self.cores.step(batch[rows], ShardRandom(rng, rows, len(batch)), self.global_step, across_ranks)
        self.comm.allreduce_gradients(self.task.model.gradients(), weight)
        keys = sorted(metrics)
        totals = self.comm.allreduce_sum(np.array([metrics[k] * weight for k in keys]))
        return dict(zip(keys, totals.tolist()))

    def _say(self, text: str) -> None:
        if self.is_main:
            say(text)

    def fit(self) -> dict[str, float]:
        """Train to the end; returns the last validation metrics (rank 0's; {} elsewhere).

        Raises :class:`RunStopped` after a stop signal (``last.npz`` then holds the step it
        stopped after) and :class:`TrainingError` when the run diverges.
        """
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.comm.broadcast_parameters(self.task.model.parameters())
        stop = self._stop = self.stop_signals if self.comm.size == 1 else _NoSignals()
        self._consistent = True  # False while a step is half done: then there is no state to write
        self._started = time.perf_counter()
        with stop, np.errstate(all="ignore"), self.cores:  # non-finite values are caught below, not warned
            try:  # about; the cores' workers end with the run
                return self._fit(stop)
            except StopRequested as exc:
                if self._consistent:
                    try:
                        with stop.deferred():
                            self._checkpoint(self.last_path)
                    except StopRequested:  # a second signal while it was written: stop at once
                        pass
                    else:
                        raise RunStopped(
                            exc.signum,
                            self.last_path,
                            f"at epoch {self.epoch + 1}, step "
                            f"{self.global_step}; checkpoint written to {self.last_path}",
                        ) from None
                raise RunStopped(
                    exc.signum, self.last_good and self.last_good[0], f"at once (a second signal); {self._kept()}"
                ) from None

    def _fit(self, stop) -> dict[str, float]:
        model = self.task.model
        val: dict[str, float] = {}
        timed = False
        while self.epoch < self.epochs and not self._done():
            batches = self.task.epoch_batches(epoch_rng(self.seed, self.epoch))
            self.optimizer.learning_rate = epoch_learning_rate(
                self.base_lr, self.epoch, self.lr_decay, self.lr_drop_at, self.lr_drop_factor
            )
            bar = progress_bar(
                total=len(batches),
                initial=self.batch_index,
                progress=self.progress,
                leave=True,
                desc=f"epoch {self.epoch + 1}/{self.epochs}",
            )
            lines = not use_bars(self.progress)
            running: dict[str, float] = {}  # exponential running means, for the bar and the lines
            t0 = time.perf_counter()
            first_step_done, first_step_index = None, self.batch_index
            while self.batch_index < len(batches) and not self._done():
                stop.check()
                with stop.deferred():
                    self._consistent = False
                    model.zero_grad()
                    metrics = self._train_step(batches[self.batch_index])
                    bad = [k for k, v in metrics.items() if not math.isfinite(v)]
                    if bad:
                        raise self._diverged(f"non-finite {', '.join(bad)}")
                    self.cores.on_one_thread(self.optimizer.step)
                    self.global_step += 1
                    self.batch_index += 1
                    for k, v in metrics.items():
                        running[k] = v if k not in running else 0.95 * running[k] + 0.05 * v
                        total = self.epoch_sums.setdefault(k, [0.0, 0])  # some metrics skip some batches
                        total[0], total[1] = total[0] + v, total[1] + 1
                    self._consistent = True
                    grad_norm = self.optimizer.last_grad_norm
                    if grad_norm is not None and not math.isfinite(grad_norm):
                        raise self._diverged("a non-finite gradient norm")
                    bar.set_postfix({k: f"{v:.4g}" for k, v in running.items()}, refresh=False)
                    bar.update()
                    if self.global_step % self.log_every == 0:
                        self._log(
                            {
                                "event": "step",
                                "epoch": self.epoch,
                                "step": self.global_step,
                                "grad_norm": grad_norm,
                                **metrics,
                            }
                        )
                    if lines and self.print_every and self.global_step % self.print_every == 0:
                        self._say(
                            f"epoch {self.epoch + 1}/{self.epochs}  step {self.batch_index}/{len(batches)}"
                            f"  {_figures(running)}"
                        )
                    if self.global_step % self.checkpoint_every == 0:
                        self._checkpoint(self.last_path)
                now = time.perf_counter()
                if first_step_done is None:
                    first_step_done = now  # the first step compiles kernels: time the ones after it
                elif not timed and (now - first_step_done > 10 or self.batch_index - first_step_index > 20):
                    timed = True
                    per_step = (now - first_step_done) / (self.batch_index - first_step_index - 1)
                    self._say(
                        f"timing: {per_step:.3g} s a step, about {_time(per_step * len(batches))} an epoch "
                        f"of {len(batches):,} steps"
                    )
            bar.close()
            if self.batch_index < len(batches):  # stopped by max_steps inside the epoch
                val = self._validate_at_stop()
                break
            stop.check()  # a signal during the epoch's last step: stop before validating
            val = self.task.validate() if self.is_main else {}
            with stop.deferred():
                self._consistent = False  # until the epoch's log line and checkpoints are written
                train = {f"train_{k}": total / n for k, (total, n) in self.epoch_sums.items()}
                self.epoch, self.batch_index, self.epoch_sums = self.epoch + 1, 0, {}
                seconds = time.perf_counter() - t0
                self._log(
                    {
                        "event": "epoch",
                        "epoch": self.epoch,
                        "step": self.global_step,
                        "seconds": round(seconds, 3),
                        "lr": self.optimizer.learning_rate,
                        **train,
                        **val,
                    }
                )
                self._say(
                    f"epoch {self.epoch}/{self.epochs}  {len(batches):,} steps  {_time(seconds)}  "
                    f"{_figures({**train, **val})}"
                )
                score = self.sign * val[self.selection] if self.selection in val else math.inf
                if math.isfinite(score) and score < self.best:  # a non-finite figure is never best
                    self.best = score
                    self.best_record = {"epoch": self.epoch, "step": self.global_step, **val}
                    self._checkpoint(self.best_path)
                self._checkpoint(self.last_path)
                self._consistent = True
        if self._done():
            with stop.deferred():
                self._checkpoint(self.last_path)
        self.last_validation = val
        return val

    def _validate_at_stop(self) -> dict[str, float]:
        """Validation where ``max_steps`` stopped the run mid-epoch; best.npz if it is the best yet.

        ``self.best`` (the best epoch end) is left as it is, so a run resumed from here picks
        the same best epochs as one never stopped.
        """
        val = self.task.validate() if self.is_main else {}
        self._say(
            f"stopped at --max-steps {self.max_steps} (epoch {self.epoch + 1}, step {self.batch_index} of "
            f"the epoch)  {_figures(val)}"
        )
        score = self.sign * val[self.selection] if self.selection in val else math.inf
        if math.isfinite(score) and score < self.best and self.is_main:
            batches = len(self.task.epoch_batches(epoch_rng(self.seed, self.epoch)))
            record = {
                "epoch": self.epoch + 1,
                "step": self.global_step,
                "batch": self.batch_index,
                "batches": batches,
                **val,
            }
            with self._stop.deferred():
                self._checkpoint(self.best_path, best_record=record)
            self.best_record = record
        return val

    def summary(self) -> list[str]:
        """The end of a run in a few lines: time, best validation, checkpoint files, next command."""
        lines = [
            f"done: {self.epoch} epoch{'' if self.epoch == 1 else 's'}, {self.global_step:,} steps"
            + (f" ({_time(time.perf_counter() - self._started)} this session)" if hasattr(self, "_started") else "")
        ]
        if self.best_record is not None:
            r = dict(self.best_record)
            epoch, step, batch, batches = r.pop("epoch"), r.pop("step"), r.pop("batch", None), r.pop("batches", None)
            where = (
                f"epoch {epoch}"
                if batch is None
                else f"step {step} (where --max-steps stopped, {batch} of the {batches} steps of epoch {epoch})"
            )
            lines.append(f"best ({self.selection}): {where}  {_figures(r)}")
        files = [p for p in (self.last_path, self.best_path) if p.exists()]
        lines.append("checkpoints: " + ", ".join(str(p) for p in files) if files else "checkpoints: none written")
        target = self.best_path if self.best_path.exists() else self.last_path
        if target.exists():
            lines.append(f"next: python -m scratchvae.evaluate {target}")
        return lines
