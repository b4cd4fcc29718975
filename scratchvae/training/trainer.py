"""The training loop shared by every model, with exact resume.

A :class:`Task` knows its data and model; the :class:`Trainer` runs epochs of steps,
applies the optimiser, shows progress, validates, logs and checkpoints.

Exact resume: every random draw of a step comes from a generator seeded by
(seed, global step), and the batch order of an epoch from one seeded by (seed, epoch).
A run therefore needs no generator state in its checkpoint: resumed from the last
checkpoint, it repeats exactly the steps an uninterrupted run would have taken.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Protocol

import numpy as np
from tqdm.auto import tqdm

from ..layers.base import Layer
from ..optim import Optimizer
from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from .distributed import ShardRandom, SingleProcess, shard_rows
from .log import LOG_NAME, trim_log


class TrainingError(RuntimeError):
    """Training cannot go on (a non-finite loss, a mismatched resume); one-line message."""


class Task(Protocol):
    """What the trainer needs from a model and its data."""

    name: str
    model: Layer

    def meta(self) -> dict:
        """JSON-serialisable description sufficient to rebuild the model (config, vocabulary)."""

    def epoch_batches(self, rng: np.random.Generator) -> list:
        """The training batches of one epoch, in order (usually arrays of example indices)."""

    def train_step(self, batch, rng: np.random.Generator, step: int) -> dict[str, float]:
        """Forward and backward on one batch (gradients accumulate in the model).

        Returns the batch's metrics; "loss" is the quantity being minimised.
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
    return lr * drop_factor ** drops * decay ** epoch


# Settings a checkpoint did not record yet when it was written, and the values it trained with.
UNSET_SETTINGS = {"lr_drop_at": [], "lr_drop_factor": None}


class Trainer:
    """Runs a task for ``epochs`` (or ``max_steps``), checkpointing into ``out_dir``.

    Files in ``out_dir``: ``last.npz`` (written every ``checkpoint_every`` steps and at
    each epoch end), ``best.npz`` (the best epoch by the task's ``selection``, by default
    the lowest val_loss), ``metrics.jsonl`` (one JSON object per logged step and per epoch;
    an epoch's ``train_<metric>`` is the mean over its batches, ``seconds`` its time since it
    started or since the run resumed; see :mod:`.log`).

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
    alone validates, logs and writes files.
    """

    def __init__(self, task: Task, optimizer: Optimizer, out_dir: str | Path, *, epochs: int = 1,
                 max_steps: int | None = None, seed: int = 0, checkpoint_every: int = 200,
                 log_every: int = 20, progress: bool = True, comm=None, lr_decay: float = 1.0,
                 lr_drop_at: tuple[int, ...] = (), lr_drop_factor: float = 0.1):
        if any(e < 1 for e in lr_drop_at) or not 0.0 < lr_drop_factor <= 1.0:
            raise ValueError(f"lr_drop_at must hold epochs >= 1 and lr_drop_factor be in (0, 1], "
                             f"got {lr_drop_at} and {lr_drop_factor}")
        self.task, self.optimizer = task, optimizer
        self.base_lr, self.lr_decay = optimizer.learning_rate, lr_decay
        self.lr_drop_at, self.lr_drop_factor = sorted(set(lr_drop_at)), lr_drop_factor
        self.selection, mode = getattr(task, "selection", DEFAULT_SELECTION)
        self.sign = {"min": 1.0, "max": -1.0}[mode]  # self.best is sign * metric: lower is better
        self.out_dir = Path(out_dir)
        self.epochs, self.max_steps, self.seed = epochs, max_steps, seed
        self.comm = comm if comm is not None else SingleProcess()
        self.is_main = self.comm.rank == 0
        self.checkpoint_every, self.log_every = checkpoint_every, log_every
        self.progress = progress and self.is_main
        self.epoch, self.batch_index, self.global_step = 0, 0, 0
        self.epoch_sums: dict[str, list] = {}    # metric -> [sum, batches] over this epoch so far
        self.best = math.inf
        self.settings = {"optimizer": type(optimizer).__name__.lower(), "lr": self.base_lr,
                         "lr_decay": lr_decay, "lr_drop_at": self.lr_drop_at,
                         "lr_drop_factor": lr_drop_factor if lr_drop_at else None,
                         "clipnorm": optimizer.global_clipnorm, "seed": seed}

    # ------------------------------------------------------------------ files
    @property
    def last_path(self) -> Path:
        return self.out_dir / "last.npz"

    @property
    def best_path(self) -> Path:
        return self.out_dir / "best.npz"

    def _log(self, record: dict) -> None:
        if not self.is_main:
            return
        with open(self.out_dir / LOG_NAME, "a") as f:
            f.write(json.dumps(record) + "\n")

    def _checkpoint(self, path: Path) -> None:
        if not self.is_main:
            return
        meta = {"task": self.task.name, **self.task.meta(), "training": self.settings,
                "progress": {"epoch": self.epoch, "batch": self.batch_index,
                             "global_step": self.global_step, "best": self.best, "seed": self.seed,
                             "epoch_sums": self.epoch_sums}}
        save_checkpoint(path, Checkpoint(self.task.model.state_dict(), meta, self.optimizer.state_dict()))

    def resume(self) -> bool:
        """Load ``last.npz`` if there is one; returns whether training resumes from it."""
        if not self.last_path.exists():
            return False
        ckpt = load_checkpoint(self.last_path)
        expected = json.loads(json.dumps(self.task.meta()))
        saved = {k: ckpt.meta.get(k) for k in expected}
        if saved != expected:
            differing = sorted(k for k in expected if saved[k] != expected[k])
            raise TrainingError(f"{self.last_path} was trained with different settings ({', '.join(differing)}); "
                                "rerun with the original flags or a new --out")
        self._check_settings(ckpt.meta.get("training"))
        self.task.model.load_state_dict(ckpt.params)
        self.optimizer.load_state_dict(ckpt.optim)
        progress = ckpt.meta["progress"]
        self.epoch, self.batch_index = progress["epoch"], progress["batch"]
        self.global_step, self.best = progress["global_step"], progress["best"]
        self.epoch_sums = dict(progress.get("epoch_sums", {}))  # absent before they were kept
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
            raise TrainingError(f"{self.last_path} was trained with {was} (given {now}); resume with "
                                "the flags it was trained with, or start a new run with a new --out")

    # ------------------------------------------------------------------ loop
    def _done(self) -> bool:
        return self.max_steps is not None and self.global_step >= self.max_steps

    def _train_step(self, batch) -> dict[str, float]:
        """Gradients of one global batch in the model; returns the batch's metrics."""
        rng = step_rng(self.seed, self.global_step)
        if self.comm.size == 1:
            return self.task.train_step(batch, rng, self.global_step)
        if len(batch) < self.comm.size:
            raise TrainingError(f"a batch of {len(batch)} examples cannot be shared by {self.comm.size} ranks; "
                                "use a --batch-size of at least the number of ranks")
        rows = shard_rows(len(batch), self.comm.rank, self.comm.size)
        metrics = self.task.train_step(batch[rows], ShardRandom(rng, rows, len(batch)), self.global_step)
        weight = (rows.stop - rows.start) / len(batch)  # every loss is a mean over the batch
        self.comm.allreduce_gradients(self.task.model.gradients(), weight)
        keys = sorted(metrics)
        totals = self.comm.allreduce_sum(np.array([metrics[k] * weight for k in keys]))
        return dict(zip(keys, totals.tolist()))

    def fit(self) -> dict[str, float]:
        """Train to the end; returns the last validation metrics (rank 0's; {} elsewhere)."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        model = self.task.model
        self.comm.broadcast_parameters(model.parameters())
        val: dict[str, float] = {}
        while self.epoch < self.epochs and not self._done():
            batches = self.task.epoch_batches(epoch_rng(self.seed, self.epoch))
            self.optimizer.learning_rate = epoch_learning_rate(
                self.base_lr, self.epoch, self.lr_decay, self.lr_drop_at, self.lr_drop_factor)
            bar = tqdm(total=len(batches), initial=self.batch_index, disable=not self.progress,
                       desc=f"epoch {self.epoch + 1}/{self.epochs}", dynamic_ncols=True, leave=True)
            running: dict[str, float] = {}  # exponential running means, for the bar
            t0 = time.perf_counter()
            while self.batch_index < len(batches) and not self._done():
                model.zero_grad()
                metrics = self._train_step(batches[self.batch_index])
                bad = {k: v for k, v in metrics.items() if not math.isfinite(v)}
                if bad:
                    raise TrainingError(
                        f"non-finite {', '.join(bad)} at epoch {self.epoch + 1}, step {self.global_step}; "
                        f"training stopped, last good checkpoint kept at {self.last_path} "
                        "(try a lower --lr or --clipnorm)")
                self.optimizer.step()
                self.global_step += 1
                self.batch_index += 1
                for k, v in metrics.items():
                    running[k] = v if k not in running else 0.95 * running[k] + 0.05 * v
                    total = self.epoch_sums.setdefault(k, [0.0, 0])  # some metrics skip some batches
                    total[0], total[1] = total[0] + v, total[1] + 1
                bar.set_postfix({k: f"{v:.4g}" for k, v in running.items()}, refresh=False)
                bar.update()
                if self.global_step % self.log_every == 0:
                    self._log({"event": "step", "epoch": self.epoch, "step": self.global_step,
                               "grad_norm": self.optimizer.last_grad_norm, **metrics})
                if self.global_step % self.checkpoint_every == 0:
                    self._checkpoint(self.last_path)
            bar.close()
            if self.batch_index < len(batches):  # stopped by max_steps inside the epoch
                break
            val = self.task.validate() if self.is_main else {}
            train = {f"train_{k}": total / n for k, (total, n) in self.epoch_sums.items()}
            self.epoch, self.batch_index, self.epoch_sums = self.epoch + 1, 0, {}
            self._log({"event": "epoch", "epoch": self.epoch, "step": self.global_step,
                       "seconds": round(time.perf_counter() - t0, 3), "lr": self.optimizer.learning_rate,
                       **train, **val})
            if self.progress:
                print("  ".join(f"{k} {v:.4g}" for k, v in val.items()))
            score = self.sign * val[self.selection] if self.selection in val else math.inf
            if score < self.best:
                self.best = score
                self._checkpoint(self.best_path)
            self._checkpoint(self.last_path)
        if self._done():
            self._checkpoint(self.last_path)
        return val
