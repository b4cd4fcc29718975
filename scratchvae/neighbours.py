"""python -m scratchvae.neighbours CKPT "sentence" [-k 10]: the training sentences nearest in latent space.

Every training sentence and the query are encoded to their posterior means E_q[z|x];
the neighbours are those of highest cosine similarity to the query's, printed with it.
For an IMDB review model the query is a review and the neighbours are labelled training reviews.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from .cli.flags import add_flag, command_parser
from .cli.types import positive_int


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "python -m scratchvae.neighbours",
        "The training sentences nearest a sentence in latent space: every training sentence and the query are "
        "encoded to their posterior means E_q[z|x]; the neighbours are those of highest cosine similarity to "
        "the query's, printed with it.",
        (
            'python -m scratchvae.neighbours runs/ptb/best.npz "the market fell"',
            'python -m scratchvae.neighbours runs/ptb/best.npz "the market fell" -k 20 --limit 5000',
            'python -m scratchvae.neighbours runs/imdb/best.npz "a wonderful film" --limit 2000',
        ),
    )
    add_flag(parser, "checkpoint")
    parser.add_argument("sentence", help="the query")
    parser.add_argument("-k", type=positive_int, default=10, metavar="K", help="how many neighbours")
    add_flag(
        parser,
        "data_dir",
        help="PTB models: where ptb/ is; IMDB models: where aclImdb_v1.tar.gz is (default: "
        "PTB's as in training, IMDB's $SCRATCHVAE_DATA, else ~/.cache/scratchvae)",
    )
    add_flag(
        parser,
        "limit",
        help="search only the first N training sentences (IMDB models: N reviews drawn at "
        "random, seed 0) (default: all)",
    )
    add_flag(parser, "backend")
    add_flag(parser, "dtype", default=None, help="floating-point type of the arithmetic (default: as trained)")
    return parser


def cosine_nearest(query: np.ndarray, keys: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the ``k`` rows of ``keys`` (N, Z) most cosine-similar to ``query`` (Z,), and the similarities."""
    norms = np.linalg.norm(keys, axis=1) * np.linalg.norm(query)
    similarity = keys @ query / np.maximum(norms, np.finfo(float).tiny)
    k = min(k, len(keys))
    top = np.argpartition(-similarity, k - 1)[:k]
    top = top[np.argsort(-similarity[top], kind="stable")]
    return top, similarity[top]


def main(argv=None) -> int:
    from .cli.errors import USER_ERRORS
    from .data.corpus import encode_text
    from .tasks.sentence import load_task, posterior_means, training_sentences
    from .training import load_checkpoint

    args = build_parser().parse_args(argv)
    try:
        ckpt = load_checkpoint(args.checkpoint)
        if ckpt.task() == "imdb":
            from .tasks.imdb_review import neighbours_lines

            print("\n".join(neighbours_lines(ckpt, args)))
            return 0
        task = load_task(ckpt, args.backend, args.dtype)
        max_len = task.data_options.get("max_len", 50)
        query = posterior_means(task, encode_text([args.sentence], task.vocab, max_len))[0]
        sentences = training_sentences(task, args.data_dir)[: args.limit]
        keys = posterior_means(task, sentences)
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    top, similarity = cosine_nearest(query, keys, args.k)
    for i, s in zip(top, similarity):
        print(f"{s:.3f}  {' '.join(sentences[i])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
