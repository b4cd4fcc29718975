"""Tiny sentence-VAE runs and the tiny corpora they train on, shared by the ptb and text task tests.

train.main(["text", "--file", path, "--out", out, *TINY_LINEAR_KL])   # path holds sentences(120)
"""

from __future__ import annotations

import numpy as np

TINY = [
    "--embedding-dim",
    "8",
    "--encoder-units",
    "8",
    "--decoder-units",
    "8",
    "--latent-dim",
    "2",
    "--batch-size",
    "16",
    "--backend",
    "numpy",
    "--no-progress",
]
TINY_LINEAR_KL = [*TINY, "--kl-schedule", "linear", "--kl-steps", "20"]  # a KL warm-up a few epochs can finish
WORDS = "the a cat dog bird sat ran slept on under near mat rug sofa quickly slowly".split()


def sentences(n: int, seed: int = 0, words: list[str] = WORDS) -> list[str]:
    """n sentences of 2 to 8 words drawn from ``words``, the same ones for the same seed."""
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(words, rng.integers(2, 9))) for _ in range(n)]
