"""Argument types shared by the tasks' command-line flags."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1, with a one-line error otherwise."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    """``--threads N``, as in ``train``: apply it with :func:`apply_threads`."""
    parser.add_argument("--threads", type=positive_int, default=None, metavar="N",
                        help="CPU threads for BLAS and the numba kernels (None: every core); "
                             "1 on a busy or shared machine")


def apply_threads(args: argparse.Namespace) -> None:
    if args.threads is not None:
        from ..backend.threads import limit_threads
        limit_threads(args.threads)
