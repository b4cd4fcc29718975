"""Dropout: zero a random fraction of activations while training (inverted scaling)."""

from __future__ import annotations

import numpy as np

from .base import Array, Layer


def keep_mask(rng: np.random.Generator, shape: tuple, rate: float) -> np.ndarray:
    """A (B, ...) bool mask, True with probability 1 - rate: example b's from a generator of its own, seeded by
    the b-th of B draws from ``rng``.  Its elements fill in C order, so a sequence's mask at T steps is the
    first T steps of its mask at more: a shard trimmed to its own longest sequence masks what the batch does."""
    seeds = rng.integers(0, 2**63, size=shape[0])
    keep = np.empty(shape, dtype=bool)
    for b, seed in enumerate(seeds):
        keep[b] = np.random.default_rng(seed).random(shape[1:]) >= rate
    return keep


class Dropout(Layer):
    """forward: x -> x * keep / (1 - rate), keep ~ Bernoulli(1 - rate); identity when not training.
    backward: dx = dy * keep / (1 - rate)

    The noise is drawn on the host from the NumPy Generator passed in, so every
    backend sees the same mask for the same seed.  Each example's mask comes from its
    own generator, seeded by one draw per example (:func:`keep_mask`), so that it does not
    depend on the example's batch mates, nor on the batch's width: a batch split into
    shards (training/cores.py, --distributed) gives every example the mask it gets whole.
    """

    def __init__(self, rate: float, **kwargs) -> None:
        super().__init__(**kwargs)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"dropout rate must be in [0, 1), got {rate}")
        self.rate = rate

    def forward(self, x: Array, *, training: bool = False, rng: np.random.Generator | None = None) -> Array:
        if not training or self.rate == 0.0:
            self.scale = None
            return x
        if rng is None:
            raise ValueError("Dropout in training mode needs rng=np.random.Generator")
        keep = keep_mask(rng, x.shape, self.rate)
        self.scale = self.backend.asarray(keep / (1.0 - self.rate), dtype=x.dtype)
        return x * self.scale

    def backward(self, dy: Array) -> Array:
        return dy if self.scale is None else dy * self.scale
