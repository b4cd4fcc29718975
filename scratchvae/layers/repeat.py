"""RepeatVector: feed one vector to every time step."""

from __future__ import annotations

from ..backend import Array
from .base import Layer


class RepeatVector(Layer):
    """forward:  x (B, D) -> y (B, n, D), y[:, t] = x  (a read-only broadcast view, no copy)
    backward: dy (B, n, D) -> dx (B, D) = sum over t of dy[:, t]   (every copy gets gradient)
    """

    def __init__(self, n: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.n = n

    def forward(self, x: Array) -> Array:
        """x (B, D) -> y (B, n, D), a read-only view."""
        return self.xp.broadcast_to(x[:, None, :], (x.shape[0], self.n, x.shape[1]))

    def backward(self, dy: Array) -> Array:
        """dy (B, n, D) -> dx (B, D)."""
        return dy.sum(axis=1)
