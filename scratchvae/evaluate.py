"""python -m scratchvae.evaluate CKPT [options]: evaluate a trained checkpoint.

The checkpoint knows its task; the rest of the command line goes to that task's
evaluation (``python -m scratchvae.evaluate CKPT --help`` lists its options).
"""

from __future__ import annotations

import argparse
import sys

from .cli.errors import USER_ERRORS
from .cli.flags import HelpFormatter, examples
from .tasks import TASKS, task_module
from .training import load_checkpoint

PROG = "python -m scratchvae.evaluate"


def task_options(name: str) -> str:
    """The options of task ``name``'s evaluation, as its --help lists them, under a heading."""
    parser = task_module(name).eval_parser(name)
    formatter = parser._get_formatter()
    formatter.start_section(f"options for {name} checkpoints")
    formatter.add_arguments([a for a in parser._actions if a.option_strings and a.dest != "help"])
    formatter.end_section()
    return formatter.format_help()


def build_parser() -> argparse.ArgumentParser:
    """The command before the checkpoint is read: its --help lists every task's options."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        usage=f"{PROG} CKPT [options]",
        formatter_class=HelpFormatter,
        description="Evaluate a trained checkpoint (a run's best.npz or last.npz) on its task's held-out data. "
        "The checkpoint knows its task, which decides the options; "
        f"{PROG} CKPT --help lists them for that checkpoint.",
        epilog="\n".join(task_options(name) for name in TASKS)
        + "\n"
        + examples(
            f"{PROG} runs/mnist/best.npz --plots figures/mnist",
            f"{PROG} runs/ptb/best.npz --split test --samples 500",
            f'{PROG} runs/imdb/best.npz --encode "a wonderful film"',
        ),
    )
    parser.add_argument("checkpoint", metavar="CKPT", help="a checkpoint written by python -m scratchvae.train")
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0].startswith("-"):  # --help, or options without the checkpoint first
        parser = build_parser()
        parser.parse_known_args(argv)  # prints the help, or says CKPT is missing
        parser.error(f"put the checkpoint first: {PROG} CKPT [options]")
    try:
        ckpt = load_checkpoint(argv[0])
        return task_module(ckpt.task()).evaluate_main(ckpt, argv[1:])
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
