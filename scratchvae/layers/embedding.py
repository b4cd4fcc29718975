"""Embedding: a lookup table from token ids to vectors."""

from __future__ import annotations

import numpy as np

from .base import Array, Layer
from .init import uniform


class Embedding(Layer):
    """Token ids -> vectors (Keras ``Embedding``).

    forward:  ids (B, T) int -> y (B, T, D)      y[b, t] = W[ids[b, t]]
    backward: dy (B, T, D) -> None (ids are not differentiable)
        dW[v] += sum of dy[b, t] over the positions where ids[b, t] == v   (scatter-add)
    With ``mask_zero`` id 0 is padding: :meth:`compute_mask` marks it, and row 0
    receives no gradient.  Parameter: embeddings (V, D).
    """

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        *,
        mask_zero: bool = False,
        trainable: bool = True,
        rng: np.random.Generator | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        rng = rng if rng is not None else np.random.default_rng()
        self.input_dim, self.output_dim = input_dim, output_dim
        self.mask_zero, self.trainable = mask_zero, trainable
        self.add_param("embeddings", uniform(rng, (input_dim, output_dim)))

    def compute_mask(self, ids: Array) -> Array | None:
        """(B, T) bool, True where a real token stands, or None without mask_zero."""
        return ids != 0 if self.mask_zero else None

    def forward(self, ids: Array) -> Array:
        self.ids = ids
        return self.params["embeddings"][ids]

    def backward(self, dy: Array) -> None:
        if not self.trainable:
            return None
        dW = self.backend.embedding_backward(self.ids.reshape(-1), dy.reshape(-1, self.output_dim), self.input_dim)
        if self.mask_zero:
            dW[0] = 0
        self.grads["embeddings"] += dW
        return None
