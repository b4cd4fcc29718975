"""python -m scratchvae.neighbours CKPT "sentence" [-k 10]: the training sentences nearest in latent space.

Every training sentence and the query are encoded to their posterior means E_q[z|x];
the neighbours are those of highest cosine similarity to the query's, printed with it.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np


def build_parser() -> argparse.ArgumentParser:
    from .backend import BACKENDS
    parser = argparse.ArgumentParser(prog="python -m scratchvae.neighbours", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", metavar="CKPT", help="a checkpoint of 'train ptb' or 'train text'")
    parser.add_argument("sentence", help="the query")
    parser.add_argument("-k", type=int, default=10, help="how many neighbours")
    parser.add_argument("--data-dir", default=None, help="PTB models: where ptb/ is (default: as in training)")
    parser.add_argument("--limit", type=int, default=None, metavar="N",
                        help="search only the first N training sentences")
    parser.add_argument("--backend", choices=BACKENDS, default="numba")
    parser.add_argument("--dtype", choices=("float32", "float64"), default=None, help="default: as trained")
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
    from .data.corpus import encode_text
    from .train import USER_ERRORS
    from .tasks.sentence import load_sentence_model, posterior_means, training_sentences

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.k < 1 or (args.limit is not None and args.limit < 1):
        parser.error("-k and --limit must be at least 1")
    try:
        task = load_sentence_model(args.checkpoint, args.backend, args.dtype)
        max_len = task.data_options.get("max_len", 50)
        query = posterior_means(task, encode_text([args.sentence], task.vocab, max_len))[0]
        sentences = training_sentences(task, args.data_dir)[:args.limit]
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
