"""Dropout: zero a random fraction of activations while training (inverted scaling)."""

from __future__ import annotations

import numpy as np

from .base import Array, Layer


class Dropout(Layer):
    """forward: x -> x * keep / (1 - rate), keep ~ Bernoulli(1 - rate); identity when not training.
    backward: dx = dy * keep / (1 - rate)

    The noise is drawn on the host from the NumPy Generator passed in, so every
    backend sees the same mask for the same seed.
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
        keep = rng.random(x.shape) >= self.rate
        self.scale = self.backend.asarray(keep / (1.0 - self.rate), dtype=x.dtype)
        return x * self.scale

    def backward(self, dy: Array) -> Array:
        return dy if self.scale is None else dy * self.scale
