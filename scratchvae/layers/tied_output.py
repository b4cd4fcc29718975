"""TiedOutput: a vocabulary-sized output layer that reuses the embedding table as its weights."""

from __future__ import annotations

import numpy as np

from .base import Array, Layer
from .embedding import Embedding


class TiedOutput(Layer):
    """logits = x E^T + b, with E the (V, D) table of an :class:`Embedding` (Press & Wolf 2017;
    Inan et al. 2017): a word's input vector is also its output vector.

    forward:  x (..., D) -> logits (..., V)
    backward: dz (..., V) -> dx (..., D)
        dE += dz^T x   (into the embedding's gradient)    db += sum(dz)    dx = dz E
    The table stays a parameter of the embedding layer alone, which the optimiser updates once
    with the sum of both gradients; this layer owns only the bias (V,).  A frozen table
    (``trainable=False``) gets no gradient from here either.
    """

    def __init__(self, embedding: Embedding, **kwargs) -> None:
        super().__init__(**kwargs)
        self.embedding = embedding  # not a child: its parameter would be listed twice
        self.input_dim, self.units = embedding.output_dim, embedding.input_dim
        self.add_param("bias", np.zeros(self.units))

    def forward(self, x: Array) -> Array:
        self.x = x
        z = x.reshape(-1, self.input_dim) @ self.embedding.params["embeddings"].T
        z += self.params["bias"]
        return z.reshape(*x.shape[:-1], self.units)

    def backward(self, dy: Array) -> Array:
        dz = dy.reshape(-1, self.units)
        if self.embedding.trainable:
            self.embedding.grads["embeddings"] += dz.T @ self.x.reshape(-1, self.input_dim)
        self.grads["bias"] += dz.sum(axis=0)
        return (dz @ self.embedding.params["embeddings"]).reshape(self.x.shape)
