"""python -m scratchvae.interpolate CKPT "sentence one" "sentence two" --steps 6

Decodes points on the line between two sentences' codes (Bowman et al.'s homotopy):
z(t) = (1 - t) z1 + t z2 for ``--steps`` values of t from 0 to 1, the ends included,
z1 and z2 the posterior means E_q[z|x] of the two sentences (or, for an IMDB review model, of two reviews,
each line then with the sentiment head's P(positive) of its code).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from .cli.flags import command_parser
from .cli.types import int_at_least


def build_parser() -> argparse.ArgumentParser:
    from .tasks.sentence import add_generation_arguments

    parser = command_parser(
        "python -m scratchvae.interpolate",
        "Decodes points on the line between two sentences' codes (Bowman et al.'s homotopy): "
        "z(t) = (1 - t) z1 + t z2 for --steps values of t from 0 to 1, the ends included, "
        "z1 and z2 the posterior means E_q[z|x] of the two sentences (or IMDB reviews).",
        (
            'python -m scratchvae.interpolate runs/ptb/best.npz "the market fell" "prices rose sharply"',
            'python -m scratchvae.interpolate runs/ptb/best.npz "i went home" "she left early" --steps 10',
            'python -m scratchvae.interpolate runs/imdb/best.npz "a wonderful film" "boring and far too long"',
        ),
    )
    add_generation_arguments(parser)
    parser.add_argument("first", help="the sentence at t = 0")
    parser.add_argument("second", help="the sentence at t = 1")
    parser.add_argument(
        "--steps", type=int_at_least(2), default=6, metavar="N", help="points on the line, both ends included"
    )
    return parser


def main(argv=None) -> int:
    from .cli.errors import USER_ERRORS
    from .data.corpus import encode_text
    from .tasks.sentence import generate_sentences, load_task, posterior_means
    from .training import load_checkpoint

    args = build_parser().parse_args(argv)
    try:
        ckpt = load_checkpoint(args.checkpoint)
        if ckpt.task() == "imdb":
            from .tasks.imdb_review import interpolate_lines

            print("\n".join(interpolate_lines(ckpt, args)))
            return 0
        task = load_task(ckpt, args.backend, args.dtype)
        ends = encode_text([args.first, args.second], task.vocab, task.data_options.get("max_len", 50))
        z1, z2 = posterior_means(task, ends)
        t = np.linspace(0.0, 1.0, args.steps)[:, None]
        sentences = generate_sentences(task, (1 - t) * z1 + t * z2, args, np.random.default_rng(args.seed))
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for ti, sentence in zip(t[:, 0], sentences):
        print(f"{ti:.2f}  {sentence}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
