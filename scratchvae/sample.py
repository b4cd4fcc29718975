"""python -m scratchvae.sample CKPT [-n 10]: sentences decoded from codes drawn from the prior N(0, I)."""

from __future__ import annotations

import argparse
import sys

import numpy as np

from .cli.flags import command_parser
from .cli.types import positive_int


def build_parser() -> argparse.ArgumentParser:
    from .tasks.sentence import add_generation_arguments
    parser = command_parser("python -m scratchvae.sample", "Sentences decoded from latent codes drawn from the "
                            "prior N(0, I), one a line.",
                            ("python -m scratchvae.sample runs/ptb/best.npz -n 20",
                             "python -m scratchvae.sample runs/ptb/best.npz --method sample --temperature 0.8",
                             "python -m scratchvae.sample runs/ptb/best.npz --method beam --beam-width 10 --seed 3"))
    add_generation_arguments(parser)
    parser.add_argument("-n", "--num", type=positive_int, default=10, metavar="N", help="how many sentences")
    return parser


def main(argv=None) -> int:
    from .cli.errors import USER_ERRORS
    from .tasks.sentence import generate_sentences, load_sentence_model

    args = build_parser().parse_args(argv)
    try:
        task = load_sentence_model(args.checkpoint, args.backend, args.dtype)
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
