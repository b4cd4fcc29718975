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

from .backend import threads
from .cli.errors import USER_ERRORS
from .cli.flags import FLAGS, TRAINING_FLAGS, HelpFormatter, add_flag, examples
from .cli.settings import Settings
from .optim import make_optimizer
from .tasks import EXAMPLES, HELP, TASKS
from .training import Trainer, TrainingError
from .training.distributed import MPICommunicator, SingleProcess

__all__ = ["USER_ERRORS", "build_parser", "main", "resolve_settings", "run"]


def add_common_arguments(parser: argparse.ArgumentParser, module) -> None:
    """The flags every task shares, with the task ``module``'s defaults (``DEFAULTS``), or its preset's."""
    g = parser.add_argument_group("training")
    decided = getattr(module, "PRESET_DECIDED", ())
    for key in TRAINING_FLAGS:
        if key in decided:
            add_flag(g, key, default=None,
                     help=f"{FLAGS[key].options['help']} (default: {module.preset_default(key)})")
        elif key in module.DEFAULTS:
            add_flag(g, key, default=module.DEFAULTS[key])
        else:
            add_flag(g, key)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The command line; with ``only``, just that task's module is imported and given its flags."""
    parser = argparse.ArgumentParser(
        prog="python -m scratchvae.train", formatter_class=HelpFormatter,
        description="Train a model, with progress, logs and checkpoints (in --out, default runs/<task>).\n"
                    "python -m scratchvae.train TASK --help lists a task's options.",
        epilog=examples("python -m scratchvae.train mnist --epochs 5",
                        "python -m scratchvae.train ptb --out runs/ptb",
                        "python -m scratchvae.train imdb --out runs/imdb --resume    # continue where it stopped"))
    sub = parser.add_subparsers(dest="task", required=True, metavar="TASK")
    for name, module_name in TASKS.items():
        p = sub.add_parser(name, help=HELP[name], description=HELP[name], epilog=examples(*EXAMPLES[name]),
                           formatter_class=HelpFormatter)
        if only is None or name == only:
            module = importlib.import_module(module_name)
            module.add_arguments(p, name)
            add_common_arguments(p, module)
    return parser


def resolve_settings(args: argparse.Namespace, comm=None) -> Settings:
    """The run's settings: the flags, the default --out, progress on rank 0 only, and the preset's values
    (IMDB) for the flags not given."""
    module = importlib.import_module(TASKS[args.task])
    values = vars(args) | {"out": args.out or f"runs/{args.task}",
                           "progress": args.progress and (comm is None or comm.rank == 0)}
    if hasattr(module, "preset_values"):
        values |= module.preset_values(args)
    return Settings(values)


def limit_threads(n: int) -> None:
    """Use at most n CPU threads in BLAS (through threadpoolctl) and in numba's parallel kernels."""
    try:
        threads.limit_threads(n)
    except ValueError as exc:
        raise TrainingError(str(exc)) from None


def run(args: argparse.Namespace, comm=None) -> dict:
    """Build the task and train it; returns the final validation metrics."""
    comm = comm if comm is not None else SingleProcess()
    args = resolve_settings(args, comm)
    if args.threads is not None:
        limit_threads(args.threads)
    module = importlib.import_module(TASKS[args.task])
    task = module.build_task(args)
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
