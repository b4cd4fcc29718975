"""python -m scratchvae.sample CKPT [-n 10]: sentences, or reviews, decoded from codes drawn from the prior N(0, I).

The checkpoint's task decides: a sentence VAE (ptb, text) writes sentences; the IMDB review VAE writes reviews,
each with its sentiment head's P(positive), and ``--sentiment positive|negative`` draws z from the prior
restricted to the head's side for that sentiment (:func:`scratchvae.tasks.imdb_review.prior_codes`).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from .cli.flags import add_flag, command_parser
from .cli.types import positive_int


def build_parser() -> argparse.ArgumentParser:
    from .tasks.sentence import add_generation_arguments

    parser = command_parser(
        "python -m scratchvae.sample",
        "Sentences (or IMDB reviews) decoded from latent codes "
        "drawn from the prior N(0, I), one a line. For an IMDB review model, --sentiment "
        "keeps the codes its sentiment head puts on that side of its boundary: z from the "
        "prior conditioned on the head's prediction.",
        (
            "python -m scratchvae.sample runs/ptb/best.npz -n 20",
            "python -m scratchvae.sample runs/ptb/best.npz --method sample --temperature 0.8",
            "python -m scratchvae.sample runs/imdb/best.npz --sentiment negative --method beam",
        ),
    )
    add_generation_arguments(parser)
    parser.add_argument("-n", "--num", type=positive_int, default=10, metavar="N", help="how many sentences")
    add_flag(parser, "sentiment")
    return parser


def main(argv=None) -> int:
    from .cli.errors import USER_ERRORS
    from .tasks.sentence import generate_sentences, load_task
    from .training import load_checkpoint
    from .training.checkpoint import CheckpointError

    args = build_parser().parse_args(argv)
    try:
        ckpt = load_checkpoint(args.checkpoint)
        if ckpt.task() == "imdb":
            from .tasks.imdb_review import sample_lines

            print("\n".join(sample_lines(ckpt, args)))
            return 0
        if args.sentiment is not None:
            raise CheckpointError(
                f"--sentiment needs an IMDB review model; {args.checkpoint} is a "
                f"{ckpt.task()!r} model without a sentiment head"
            )
        task = load_task(ckpt, args.backend, args.dtype)
        rng = np.random.default_rng(args.seed)
        z = rng.standard_normal((args.num, task.model.config.latent_dim))
        sentences = generate_sentences(task, z, args, rng)
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(sentences))
    return 0


if __name__ == "__main__":
    sys.exit(main())
