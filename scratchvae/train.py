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
import contextlib
import importlib
import shlex
import signal
import sys
import warnings
from pathlib import Path

from .backend import threads
from .cli.errors import USER_ERRORS
from .cli.flags import FLAGS, TRAINING_FLAGS, HelpFormatter, add_flag, examples
from .cli.settings import Settings
from .optim import make_optimizer
from .tasks import EXAMPLES, HELP, TASKS
from .training import (
    RunDirError,
    RunStopped,
    StopRequested,
    StopSignals,
    Trainer,
    TrainingError,
    load_checkpoint,
    run_dir,
)
from .training.cores import cores_for
from .training.distributed import MPICommunicator, SingleProcess

LOG_EVERY = 20  # steps between the records of metrics.jsonl, unless --log-every says otherwise

__all__ = ["USER_ERRORS", "build_parser", "main", "resolve_settings", "run"]


def add_common_arguments(parser: argparse.ArgumentParser, module) -> None:
    """The flags every task shares, with the task ``module``'s defaults (``DEFAULTS``), or its preset's."""
    g = parser.add_argument_group("training")
    decided = getattr(module, "PRESET_DECIDED", ())
    for key in TRAINING_FLAGS:
        if key in decided:
            add_flag(
                g,
                key,
                default=None,
                help=f"{FLAGS[key].options['help'].split(' (default')[0]} (default: {module.preset_default(key)})",
            )
        elif key in module.DEFAULTS:
            add_flag(g, key, default=module.DEFAULTS[key])
        else:
            add_flag(g, key)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The command line; with ``only``, just that task's module is imported and given its flags."""
    parser = argparse.ArgumentParser(
        prog="python -m scratchvae.train",
        formatter_class=HelpFormatter,
        description="Train a model, with progress, logs and checkpoints (in --out, default runs/<task>).\n"
        "python -m scratchvae.train TASK --help lists a task's options.",
        epilog=examples(
            "python -m scratchvae.train mnist --epochs 5",
            "python -m scratchvae.train ptb --out runs/ptb",
            "python -m scratchvae.train imdb --out runs/imdb --resume    # continue where it stopped",
        ),
    )
    sub = parser.add_subparsers(dest="task", required=True, metavar="TASK")
    for name, module_name in TASKS.items():
        p = sub.add_parser(
            name,
            help=HELP[name],
            description=HELP[name],
            epilog=examples(*EXAMPLES[name]),
            formatter_class=HelpFormatter,
        )
        if only is None or name == only:
            module = importlib.import_module(module_name)
            module.add_arguments(p, name)
            add_common_arguments(p, module)
    return parser


def resolve_settings(args: argparse.Namespace, comm=None) -> Settings:
    """The run's settings: the flags, the default --out, progress on rank 0 only, and the preset's values
    (IMDB) for the flags not given."""
    module = importlib.import_module(TASKS[args.task])
    values = vars(args) | {
        "out": args.out or f"runs/{args.task}",
        "progress": args.progress and (comm is None or comm.rank == 0),
    }
    if hasattr(module, "preset_values"):
        values |= module.preset_values(args)
    return Settings(values)


def limit_threads(n: int) -> None:
    """Use at most n CPU threads in BLAS (through threadpoolctl) and in numba's parallel kernels."""
    try:
        threads.limit_threads(n)
    except ValueError as exc:
        raise TrainingError(str(exc)) from None


def open_run_dir(args: argparse.Namespace, lock: run_dir.RunLock):
    """Check ``--out`` against --resume / --overwrite before any work, holding its lock.

    Returns the checkpoint to resume from (read once, here), or None."""
    if args.resume and args.overwrite:
        raise RunDirError("--resume continues the run in --out and --overwrite replaces it: give one of them")
    if args.resume and not Path(args.out).is_dir():
        raise RunDirError(f"--resume: there is no run folder {args.out} to resume; drop --resume to start a new run")
    out = run_dir.prepare_run_dir(args.out)
    lock.acquire()
    run_dir.remove_temporary_files(out)
    found = run_dir.run_files(out)
    if args.resume:
        if "last.npz" not in found:
            held = f"it holds only {', '.join(found)}" if found else "it holds no run"
            raise RunDirError(
                f"--resume: there is no {out / 'last.npz'} to resume ({held}); drop --resume to start a new run"
            )
        ckpt = load_checkpoint(out / "last.npz")
        task = ckpt.task()
        if task != args.task:
            raise RunDirError(
                f"--resume: {out / 'last.npz'} is a run of the {task!r} task, not {args.task!r}: "
                f"resume it with 'train {task} ... --resume', or choose another --out"
            )
        return ckpt
    if found and not args.overwrite:
        raise RunDirError(
            f"{out} already holds a run ({', '.join(found)}); continue it with --resume, replace it "
            "with --overwrite, or choose another --out"
        )
    return None


def step_cores(args: argparse.Namespace, backend, comm) -> int:
    """The cores each training step's batch (each rank's shard) is split across: ``--threads``, else every
    core (shared by the ranks on this machine); 1 on a GPU."""
    if args.threads is None:
        return cores_for(backend, max(1, threads.core_count() // comm.local_size))
    return cores_for(backend, args.threads)


def thread_count(args: argparse.Namespace, backend, cores: int = 1) -> str:
    """The CPU threads the run computes with, for the start line."""
    if backend.name == "cupy":
        return "GPU"
    if cores > 1:
        return f"{cores} cores (each batch split across them)"
    if backend.name == "numba":
        import numba

        return _count(numba.get_num_threads(), "thread")
    return _count(threads.blas_thread_count(), "BLAS thread")


def _count(n: int, what: str) -> str:
    return f"{n} {what}" + ("" if n == 1 else "s")


def run(args: argparse.Namespace | Settings, comm=None, stop_signals: StopSignals | None = None) -> dict:
    """Build the task and train it; returns the final validation metrics.

    ``--out`` is checked and locked first (before any data loads), and stays locked until the
    run ends; see :mod:`.training.run_dir`.
    """
    comm = comm if comm is not None else SingleProcess()
    args = resolve_settings(args, comm)
    if args.threads is not None:
        limit_threads(args.threads)
    from .backend import get_backend

    get_backend(args.backend)  # the backend's start-up check (cupy: compile, launch, GEMM) before any data
    module = importlib.import_module(TASKS[args.task])
    main_rank = comm.rank == 0
    lock = run_dir.RunLock(args.out)
    try:
        ckpt = open_run_dir(args, lock) if main_rank else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a non-finite value is reported as an error
            return _train(args, module, comm, stop_signals, ckpt)
    finally:
        lock.release()


def _train(args: Settings, module, comm, stop_signals, ckpt=None) -> dict:
    task = module.build_task(args)
    model = task.model
    optimizer = make_optimizer(
        args.optimizer,
        model.parameters(),
        model.gradients(),
        learning_rate=args.lr,
        global_clipnorm=args.clipnorm,
        backend=model.backend,
    )
    cores = step_cores(args, model.backend, comm)
    trainer = Trainer(
        task,
        optimizer,
        args.out,
        epochs=args.epochs,
        max_steps=args.max_steps,
        seed=args.seed,
        checkpoint_every=args.checkpoint_every,
        progress=args.progress,
        comm=comm,
        lr_decay=args.lr_decay,
        lr_drop_at=tuple(args.lr_drop_at or ()),
        lr_drop_factor=args.lr_drop_factor,
        log_every=args.log_every or LOG_EVERY,
        print_every=args.log_every,
        stop_signals=stop_signals,
        cores=cores,
    )
    main_rank = comm.rank == 0
    out = Path(args.out)
    if args.resume:
        trainer.resume(ckpt)
        if trainer.finished():
            if main_rank:
                limit = f"--max-steps {args.max_steps}" if trainer._done() else f"--epochs {args.epochs}"
                print(
                    f"nothing to do: {out / 'last.npz'} has finished {limit} (epoch {trainer.epoch}, step "
                    f"{trainer.global_step}); give a larger {limit.split()[0]} to train on"
                )
            return {}
        if main_rank:
            print(f"resuming {out / 'last.npz'} at epoch {trainer.epoch + 1}, step {trainer.global_step}")
    elif args.overwrite and main_rank:
        run_dir.remove_run(out)
    if main_rank:
        n_examples, steps = trainer.epoch_size()
        ranks = f", {comm.size} ranks" if comm.size > 1 else ""
        print(
            f"{args.task}: {n_examples:,} training examples, {steps:,} steps an epoch (batch {args.batch_size}), "
            f"{_count(args.epochs, 'epoch')}; {model.num_parameters():,} parameters; backend {model.backend.name}, "
            f"{thread_count(args, model.backend, trainer.cores.cores)}, {args.dtype}{ranks}",
            flush=True,
        )
    val = trainer.fit()
    if main_rank:
        print("\n".join(trainer.summary()), flush=True)
    return val


def resume_command(argv: list[str]) -> str:
    """The command that resumes the run ``argv`` started: the same flags plus --resume."""
    kept = [a for a in argv if a != "--overwrite"]
    return shlex.join(["python", "-m", "scratchvae.train", *kept, *([] if "--resume" in kept else ["--resume"])])


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv[0] if argv and argv[0] in TASKS else None).parse_args(argv)
    comm = SingleProcess()
    stop_signals = StopSignals()
    try:
        if args.distributed:
            from .backend import get_backend

            comm = MPICommunicator(get_backend(args.backend))
        with stop_signals if comm.size == 1 else contextlib.nullcontext():  # MPI keeps Ctrl-C as it is
            run(args, comm, stop_signals)
    except RunStopped as exc:
        print(f"\n{exc}", file=sys.stderr)
        if exc.checkpoint is not None:
            print(f"resume with: {resume_command(argv)}", file=sys.stderr)
        return 128 + exc.signum
    except StopRequested as exc:
        name = signal.Signals(exc.signum).name
        print(f"\nstopped by {name} before training started; no checkpoint was written", file=sys.stderr)
        return 128 + exc.signum
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
