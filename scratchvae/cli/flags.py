"""The flags more than one command takes, declared once: name, type (with its check), default and help.

A command adds them with :func:`add_flag`, changing a default or the help where its meaning differs
(``gradcheck`` runs on numpy by default, ``evaluate``'s ``--dtype`` is the checkpoint's).  Its own flags
use the same types (:mod:`.types`).  Every parser uses :class:`HelpFormatter` and ends its help with
examples (:func:`command_parser`, :func:`examples`).
"""

from __future__ import annotations

import argparse
import textwrap
from dataclasses import dataclass

from ..backend import BACKENDS
from ..models.generate import METHODS
from ..optim import OPTIMIZERS
from .types import decay_factor, non_negative_int, positive_float, positive_int


@dataclass(frozen=True)
class Flag:
    names: tuple[str, ...]
    options: dict  # add_argument's keyword arguments: type, default, action, metavar, help, ...


DTYPES = ("float32", "float64")

FLAGS: dict[str, Flag] = {
    # ---- every command that runs a model
    "backend": Flag(
        ("--backend",),
        dict(
            choices=BACKENDS,
            default="numba",
            help="numba: compiled CPU kernels; numpy: the plain NumPy reference; cupy: a CUDA GPU",
        ),
    ),
    "dtype": Flag(
        ("--dtype",),
        dict(choices=DTYPES, default="float32", help="floating-point type of the parameters and the arithmetic"),
    ),
    "seed": Flag(("--seed",), dict(type=non_negative_int, default=0, metavar="S", help="random seed")),
    "threads": Flag(
        ("--threads",),
        dict(
            type=positive_int,
            default=None,
            metavar="N",
            help="CPU cores (default: every core): training splits each batch across N processes, "
            "one core each; other work runs BLAS and the numba kernels on N threads. On a busy or "
            "shared machine use 1: oversubscribed threads made steps 5-10x slower in our runs",
        ),
    ),
    "data_dir": Flag(
        ("--data-dir",),
        dict(
            default=None,
            metavar="DIR",
            help="where the datasets are (default: $SCRATCHVAE_DATA, else ~/.cache/scratchvae)",
        ),
    ),
    "no_download": Flag(
        ("--no-download",),
        dict(dest="download", action="store_false", help="fail instead of downloading the dataset when it is missing"),
    ),
    "no_progress": Flag(
        ("--no-progress",),
        dict(
            dest="progress",
            action="store_false",
            help="no progress bars: a line every --log-every steps and one per epoch instead "
            "(what a run piped into a file prints anyway)",
        ),
    ),
    "batch_size": Flag(("--batch-size",), dict(type=positive_int, default=32, metavar="N", help="examples per batch")),
    "limit": Flag(
        ("--limit",),
        dict(type=positive_int, default=None, metavar="N", help="only the first N sentences (default: all)"),
    ),
    "checkpoint": Flag(
        ("checkpoint",),
        dict(
            metavar="CKPT",
            help="a checkpoint of 'train ptb', 'train text' or 'train imdb' (a run's best.npz or last.npz)",
        ),
    ),
    # ---- train, every task
    "epochs": Flag(
        ("--epochs",), dict(type=positive_int, default=10, metavar="N", help="passes over the training data")
    ),
    "max_steps": Flag(
        ("--max-steps",),
        dict(
            type=positive_int,
            default=None,
            metavar="N",
            help="stop after this many optimiser steps in all (default: no limit)",
        ),
    ),
    "optimizer": Flag(("--optimizer",), dict(choices=sorted(OPTIMIZERS), default="adam", help="the update rule")),
    "lr": Flag(("--lr",), dict(type=positive_float, default=1e-3, metavar="RATE", help="learning rate")),
    "lr_decay": Flag(
        ("--lr-decay",),
        dict(
            type=decay_factor,
            default=1.0,
            metavar="F",
            help="multiply the learning rate by F after every epoch (epoch e trains at lr * F**e)",
        ),
    ),
    "lr_drop_at": Flag(
        ("--lr-drop-at",),
        dict(
            type=positive_int,
            nargs="+",
            default=None,
            metavar="E",
            help="from each of these epochs (counted from 1) on, multiply the learning rate by "
            "--lr-drop-factor: a step drop where the validation loss levels off (default: none)",
        ),
    ),
    "lr_drop_factor": Flag(
        ("--lr-drop-factor",),
        dict(
            type=decay_factor,
            default=0.1,
            metavar="F",
            help="what each --lr-drop-at epoch multiplies the learning rate by",
        ),
    ),
    "clipnorm": Flag(
        ("--clipnorm",),
        dict(
            type=positive_float,
            default=None,
            metavar="NORM",
            help="clip the global gradient norm to this value (default: no clipping)",
        ),
    ),
    "out": Flag(
        ("--out",), dict(default=None, metavar="DIR", help="run folder for checkpoints and logs (default: runs/<task>)")
    ),
    "resume": Flag(
        ("--resume",), dict(action="store_true", help="continue from <out>/last.npz exactly where it stopped")
    ),
    "overwrite": Flag(
        ("--overwrite",),
        dict(
            action="store_true",
            help="replace the run already in --out (its checkpoints and log) with a new one instead of refusing to",
        ),
    ),
    "checkpoint_every": Flag(
        ("--checkpoint-every",),
        dict(
            type=positive_int,
            default=200,
            metavar="STEPS",
            help="write <out>/last.npz every STEPS optimiser steps (and at every epoch's end)",
        ),
    ),
    "log_every": Flag(
        ("--log-every",),
        dict(
            type=positive_int,
            default=None,
            metavar="N",
            help="without bars (no terminal, or --no-progress), print a line every N steps as well "
            "as one per epoch, and log every N steps to metrics.jsonl (default: one line per "
            "epoch; metrics.jsonl every 20 steps)",
        ),
    ),
    "distributed": Flag(
        ("--distributed",),
        dict(
            action="store_true",
            help="data-parallel over MPI ranks: launch with mpirun -n K; each rank takes 1/K of "
            "every batch (needs mpi4py; GPUs talk through NCCL)",
        ),
    ),
    # ---- sample, interpolate: decoding a latent code
    "method": Flag(
        ("--method",),
        dict(
            choices=METHODS,
            default="greedy",
            help="how to decode a latent code: the likeliest word at each step, a word drawn at "
            "--temperature, or a beam search of --beam-width",
        ),
    ),
    "temperature": Flag(
        ("--temperature",),
        dict(
            type=positive_float,
            default=1.0,
            metavar="T",
            help="--method sample: softmax temperature (below 1: safer words; above 1: more varied)",
        ),
    ),
    "beam_width": Flag(
        ("--beam-width",), dict(type=positive_int, default=5, metavar="W", help="--method beam: hypotheses kept")
    ),
    "max_words": Flag(
        ("--max-words",),
        dict(
            type=positive_int,
            default=None,
            metavar="N",
            help="longest generated sentence (default: the training --max-len; IMDB: --decoder-len)",
        ),
    ),
    "sentiment": Flag(
        ("--sentiment",),
        dict(
            choices=("positive", "negative"),
            default=None,
            help="IMDB review models: only codes the sentiment head calls this (z from the prior "
            "restricted to that side of the head's boundary)",
        ),
    ),
}

# The flags of ``train``, every task, in --help's order.
TRAINING_FLAGS = (
    "backend",
    "dtype",
    "epochs",
    "batch_size",
    "max_steps",
    "optimizer",
    "lr",
    "lr_decay",
    "lr_drop_at",
    "lr_drop_factor",
    "clipnorm",
    "seed",
    "data_dir",
    "out",
    "resume",
    "overwrite",
    "checkpoint_every",
    "log_every",
    "threads",
    "no_progress",
    "distributed",
)


def add_flag(parser, key: str, **changes) -> argparse.Action:
    """Add the flag ``key`` of :data:`FLAGS` to a parser or argument group, with ``changes`` to its options."""
    flag = FLAGS[key]
    return parser.add_argument(*flag.names, **{**flag.options, **changes})


def add_flags(parser, *keys: str) -> None:
    for key in keys:
        add_flag(parser, key)


class HelpFormatter(argparse.HelpFormatter):
    """Each line of a description wrapped on its own, indented lines (examples) kept as written; an
    option's default appended once, where it says something.

    Not for a switch (its help says what it does), nor a default of None (the help says what happens
    then, as "(default: every core)"), nor where the help already names the default.
    """

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return "\n".join(
            line
            if not line or line[0].isspace()
            else textwrap.fill(line, width, initial_indent=indent, subsequent_indent=indent)
            for line in text.splitlines()
        )

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "(default" in text
            or "default:" in text
            or not action.option_strings
            or default is None
            or default is argparse.SUPPRESS
            or isinstance(default, bool)
            or default == []
        ):
            return text
        return text + " (default: %(default)s)"


def examples(*lines: str) -> str:
    """The epilog every command's help ends with."""
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def command_parser(prog: str, description: str, example_lines: tuple[str, ...] | list[str]) -> argparse.ArgumentParser:
    """A command's parser: its description, then its options, then two or three examples."""
    return argparse.ArgumentParser(
        prog=prog, description=description, epilog=examples(*example_lines), formatter_class=HelpFormatter
    )


def apply_threads(args) -> None:
    """What ``--threads N`` does (BLAS and numba at N threads); nothing without it."""
    if args.threads is not None:
        from ..backend.threads import limit_threads

        limit_threads(args.threads)
