"""Bidirectional: two LSTMs read the sequence in opposite directions; outputs concatenated."""

from __future__ import annotations

import numpy as np

from ..backend import Array
from .base import Layer
from .lstm import LSTM


class Bidirectional(Layer):
    """Keras ``Bidirectional(LSTM(...), merge_mode="concat")``.

    forward:  x (B, T, D) -> y (B, T, 2U) with return_sequences, else (B, 2U)
        y = concat(forward_layer(x), backward_layer(x))
    The backward layer runs with go_backwards, so its output sequence comes out in
    reversed time; it is flipped back before concatenating, so y[:, t] describes step t
    from both sides (as Keras does).  As in Keras, with ``return_sequences`` both layers
    output zeros at masked steps (``zero_output_for_mask`` defaults to return_sequences).
    backward: dy -> dx = dx_forward + dx_backward (both layers read the same x);
        the backward half of dy is flipped in time before entering the backward layer.
    Children: forward_layer, backward_layer (each an :class:`LSTM`).
    """

    def __init__(
        self,
        input_dim: int,
        units: int,
        *,
        return_sequences: bool = False,
        rng: np.random.Generator | None = None,
        **kwargs,
    ) -> None:
        lstm_options = {
            k: kwargs.pop(k)
            for k in ("recurrent_activation", "unit_forget_bias", "zero_output_for_mask")
            if k in kwargs
        }
        lstm_options.setdefault("zero_output_for_mask", return_sequences)
        super().__init__(**kwargs)
        rng = rng if rng is not None else np.random.default_rng()
        common = dict(
            return_sequences=return_sequences, rng=rng, backend=self.backend, dtype=self.dtype, **lstm_options
        )
        self.forward_layer = self.add_child("forward_layer", LSTM(input_dim, units, **common))
        self.backward_layer = self.add_child("backward_layer", LSTM(input_dim, units, go_backwards=True, **common))
        self.units, self.return_sequences = units, return_sequences

    def forward(self, x: Array, mask: Array | None = None) -> Array:
        """x (B, T, D), mask (B, T) bool or None -> y (B, T, 2U) with return_sequences, else (B, 2U)."""
        # The directions share nothing but x: the backend may run them at the same time.
        y_fwd, y_bwd = self.backend.concurrently(
            lambda: self.forward_layer.forward(x, mask), lambda: self.backward_layer.forward(x, mask)
        )
        if self.return_sequences:
            y_bwd = y_bwd[:, ::-1]
        return self.xp.concatenate([y_fwd, y_bwd], axis=-1)

    def backward(self, dy: Array) -> Array:
        """dy like y -> dx (B, T, D) = dx_forward + dx_backward."""
        u = self.units
        dy_fwd, dy_bwd = dy[..., :u], dy[..., u:]
        if self.return_sequences:
            dy_bwd = dy_bwd[:, ::-1]
        dx_fwd, dx_bwd = self.backend.concurrently(
            lambda: self.forward_layer.backward(dy_fwd), lambda: self.backward_layer.backward(dy_bwd)
        )
        return dx_fwd + dx_bwd
