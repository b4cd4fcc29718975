"""RepeatVector: feed one vector to every time step."""

from __future__ import annotations

from .base import Layer


class RepeatVector(Layer):
    """forward:  x (B, D) -> y (B, n, D), y[:, t] = x  (a read-only broadcast view, no copy)
    backward: dy (B, n, D) -> dx (B, D) = sum over t of dy[:, t]   (every copy gets gradient)
    """

    def __init__(self, n: int, **kwargs):
        super().__init__(**kwargs)
        self.n = n

    def forward(self, x):
        return self.xp.broadcast_to(x[:, None, :], (x.shape[0], self.n, x.shape[1]))

    def backward(self, dy):
        return dy.sum(axis=1)
