"""python -m scratchvae.train <task> [options]: train a model, with progress, logs and checkpoints.

Examples:
    python -m scratchvae.train imdb                      # the main job, on the default CPU backend
    python -m scratchvae.train imdb --backend cupy       # on a CUDA GPU
    python -m scratchvae.train imdb --preset seed --train-size 2000 --epochs 1
    python -m scratchvae.train ptb --epochs 30
    python -m scratchvae.train text --file questions.csv --column question1
    python -m scratchvae.train mnist --epochs 50
    python -m scratchvae.train imdb --out runs/imdb --resume     # continue where a run stopped
    mpirun -n 2 python -m scratchvae.train mnist --distributed   # data-parallel over 2 processes
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .backend import BACKENDS, BackendError, threads
from .data.errors import DataError
from .optim import OPTIMIZERS, make_optimizer
from .tasks import HELP, TASKS
from .tasks.flags import positive_int
from .training import CheckpointError, LogError, Trainer, TrainingError
from .training.distributed import MPICommunicator, SingleProcess

USER_ERRORS = (DataError, BackendError, TrainingError, CheckpointError, LogError)


def decay_factor(text: str) -> float:
    """argparse type: a learning-rate decay factor in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {value:g} (1 keeps the rate constant)")
    return value


def add_common_arguments(parser: argparse.ArgumentParser, defaults: dict) -> None:
    """The flags every task shares; ``defaults`` are the task's own defaults."""
    g = parser.add_argument_group("training")
    g.add_argument("--backend", choices=BACKENDS, default="numba",
                   help="numba: compiled CPU kernels (default); numpy: the plain reference; cupy: CUDA GPU")
    g.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    g.add_argument("--epochs", type=int, default=defaults.get("epochs", 10))
    g.add_argument("--batch-size", type=int, default=defaults.get("batch_size", 32))
    g.add_argument("--max-steps", type=int, default=None, help="stop after this many optimiser steps in all")
    g.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default=defaults.get("optimizer", "adam"))
    g.add_argument("--lr", type=float, default=defaults.get("lr", 1e-3), help="learning rate")
    g.add_argument("--lr-decay", type=decay_factor, default=defaults.get("lr_decay", 1.0), metavar="F",
                   help="multiply the learning rate by F after every epoch (epoch e trains at lr * F**e)")
    g.add_argument("--lr-drop-at", type=positive_int, nargs="+", default=None, metavar="E",
                   help="from each of these epochs (counted from 1) on, multiply the learning rate by "
                        "--lr-drop-factor: a step drop where the validation loss levels off")
    g.add_argument("--lr-drop-factor", type=decay_factor, default=0.1, metavar="F",
                   help="what each --lr-drop-at epoch multiplies the learning rate by")
    g.add_argument("--clipnorm", type=float, default=defaults.get("clipnorm"),
                   help="clip the global gradient norm to this value")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--data-dir", default=None,
                   help="where the datasets are (default: $SCRATCHVAE_DATA, else ~/.cache/scratchvae)")
    g.add_argument("--out", default=None, help="run directory for checkpoints and logs (default: runs/<task>)")
    g.add_argument("--resume", action="store_true", help="continue from <out>/last.npz exactly where it stopped")
    g.add_argument("--checkpoint-every", type=int, default=200, metavar="STEPS")
    g.add_argument("--threads", type=int, default=None, metavar="N",
                   help="CPU threads for BLAS and the numba kernels (default: every core). On a busy or "
                        "shared machine use 1: oversubscribed threads made steps 5-10x slower in our runs")
    g.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    g.add_argument("--distributed", action="store_true",
                   help="data-parallel over MPI ranks: launch with mpirun -n K; each rank takes 1/K of "
                        "every batch (needs mpi4py; GPUs talk through NCCL)")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The command line; with ``only``, just that task's module is imported and given its flags."""
    parser = argparse.ArgumentParser(prog="python -m scratchvae.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="task", required=True, metavar="TASK")
    for name, module_name in TASKS.items():
        p = sub.add_parser(name, help=HELP[name], description=HELP[name],
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        if only is None or name == only:
            module = importlib.import_module(module_name)
            module.add_arguments(p, name)
            add_common_arguments(p, module.DEFAULTS)
    return parser


def limit_threads(n: int) -> None:
    """Use at most n CPU threads in BLAS (through threadpoolctl) and in numba's parallel kernels."""
    try:
        threads.limit_threads(n)
    except ValueError as exc:
        raise TrainingError(str(exc)) from None


def run(args: argparse.Namespace, comm=None) -> dict:
    """Build the task and train it; returns the final validation metrics."""
    if args.threads is not None:
        limit_threads(args.threads)
    from .backend import get_backend
    get_backend(args.backend)        # the backend's start-up check (cupy: compile, launch, GEMM) before any data
    module = importlib.import_module(TASKS[args.task])
    args.out = args.out or f"runs/{args.task}"
    comm = comm if comm is not None else SingleProcess()
    args.progress = args.progress and comm.rank == 0
    task = module.build_task(args)        # also fills the flags a task's preset decides (IMDB)
    model = task.model
    optimizer = make_optimizer(args.optimizer, model.parameters(), model.gradients(),
                               learning_rate=args.lr, global_clipnorm=args.clipnorm,
                               backend=model.backend)
    trainer = Trainer(task, optimizer, args.out, epochs=args.epochs, max_steps=args.max_steps,
                      seed=args.seed, checkpoint_every=args.checkpoint_every, progress=args.progress,
                      comm=comm, lr_decay=args.lr_decay, lr_drop_at=tuple(args.lr_drop_at or ()),
                      lr_drop_factor=args.lr_drop_factor)
    if args.resume and trainer.resume() and args.progress:
        print(f"resuming {args.out}/last.npz at epoch {trainer.epoch + 1}, step {trainer.global_step}")
    if args.progress:
        ranks = f", {comm.size} ranks" if comm.size > 1 else ""
        print(f"{args.task}: {model.num_parameters():,} parameters, backend {model.backend.name}, "
              f"{args.dtype}{ranks}")
    return trainer.fit()


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv[0] if argv and argv[0] in TASKS else None).parse_args(argv)
    comm = SingleProcess()
    try:
        if args.distributed:
            from .backend import get_backend
            comm = MPICommunicator(get_backend(args.backend))
        run(args, comm)
    except Exception as exc:
        if comm.size > 1:  # a failing rank must not leave the others waiting forever
            comm.abort(str(exc) if isinstance(exc, USER_ERRORS) else f"{type(exc).__name__}: {exc}")
        if isinstance(exc, USER_ERRORS):
            print(f"error: {exc}", file=sys.stderr)
            return 2
        raise
    except KeyboardInterrupt:
        print("\ninterrupted; resume with the same command plus --resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
