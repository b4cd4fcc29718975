"""python -m scratchvae.sample CKPT [-n 10]: sentences decoded from codes drawn from the prior N(0, I)."""

from __future__ import annotations

import argparse
import sys

import numpy as np


def build_parser() -> argparse.ArgumentParser:
    from .tasks.sentence import add_generation_arguments
    parser = argparse.ArgumentParser(prog="python -m scratchvae.sample", description=__doc__)
    add_generation_arguments(parser)
    parser.add_argument("-n", "--num", type=int, default=10, help="how many sentences")
    return parser


def main(argv=None) -> int:
    from .train import USER_ERRORS
    from .tasks.sentence import generate_sentences, load_sentence_model

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.num < 1:
        parser.error(f"-n must be at least 1, got {args.num}")
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
