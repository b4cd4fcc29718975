"""LSTM with Keras conventions, and backpropagation through time written out.

One step, with gates in Keras order (i, f, c~, o) and r the recurrent activation:

    z_t = x_t W + h_{t-1} U + b            (B, 4U)
    i = r(z_i)  f = r(z_f)  g = tanh(z_g)  o = r(z_o)
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(c_t)

Backward through time runs the steps in reverse, carrying dh and dc:

    dc_t  += dh_t * o * (1 - tanh(c_t)^2)
    do = dh_t tanh(c_t)   di = dc_t g   df = dc_t c_{t-1}   dg = dc_t i   (times each gate's derivative)
    dh_{t-1} = dz_t U^T   dc_{t-1} = dc_t * f

Because z_t is linear in x_t and h_{t-1}, the parameter gradients are sums over steps
that collapse into single matrix products once every dz_t is known:

    dW = X^T dZ      dU = H_prev^T dZ      db = sum dZ

where X, H_prev and dZ stack all T steps as rows.  Likewise the input projection of all
steps is one GEMM before the loop; only h_{t-1} U stays inside it.
"""

from __future__ import annotations

import numpy as np

from ..backend.numpy_backend import RECURRENT_ACTIVATIONS
from .base import Layer
from .init import glorot_uniform, orthogonal


class LSTM(Layer):
    """Long short-term memory layer (Keras ``LSTM``).

    forward(x, mask=None, initial_state=None)
        x (B, T, D); mask (B, T) bool, False at padding; initial_state (h0, c0), each (B, U).
        Returns (B, T, U) with ``return_sequences``, else (B, U); keeps ``final_state`` (h_T, c_T).
    backward(dy, d_final_state=None)
        dy shaped like the output; d_final_state (dh_T, dc_T) or None.
        Returns dx (B, T, D); keeps ``d_initial_state`` (dh0, dc0).

    Keras semantics:
    * ``go_backwards`` reads the sequence from its end, and the returned sequence is in
      that (reversed) processing order, as in Keras.
    * At a masked step the state is carried over unchanged.  The output there is the
      carried h once a real step has been seen (zero before), or zero with
      ``zero_output_for_mask``.
    * ``unit_forget_bias`` starts the forget-gate bias at 1.
    * ``recurrent_activation`` is "sigmoid" (Keras 3) or "hard_sigmoid" (Keras 2's
      clip(0.2 x + 0.5, 0, 1), used by the original tutorial).
    Parameters: kernel (D, 4U), recurrent_kernel (U, 4U), bias (4U,).

    ``forward(v, steps=T)`` with v (B, D) feeds the same vector at every step: the same
    result as ``RepeatVector(T)`` followed by the LSTM, but v W + b is computed once
    instead of T times, and backward returns dv (B, D) = (sum_t dz_t) W^T.
    """

    def __init__(self, input_dim: int, units: int, *, return_sequences: bool = False,
                 go_backwards: bool = False, recurrent_activation: str = "sigmoid",
                 unit_forget_bias: bool = True, zero_output_for_mask: bool = False,
                 rng: np.random.Generator | None = None, **kwargs):
        super().__init__(**kwargs)
        if recurrent_activation not in RECURRENT_ACTIVATIONS:
            raise ValueError(f"unknown recurrent_activation {recurrent_activation!r}; "
                             f"choose one of {RECURRENT_ACTIVATIONS}")
        rng = rng if rng is not None else np.random.default_rng()
        self.input_dim, self.units = input_dim, units
        self.return_sequences, self.go_backwards = return_sequences, go_backwards
        self.recurrent_activation = recurrent_activation
        self.zero_output_for_mask = zero_output_for_mask
        bias = np.zeros(4 * units)
        if unit_forget_bias:
            bias[units:2 * units] = 1.0
        self.add_param("kernel", glorot_uniform(rng, (input_dim, 4 * units)))
        self.add_param("recurrent_kernel", orthogonal(rng, (units, 4 * units)))
        self.add_param("bias", bias)

    # ------------------------------------------------------------------ forward
    def forward(self, x, mask=None, initial_state=None, steps: int | None = None):
        xp, K = self.xp, self.backend
        W, U, b = self.params["kernel"], self.params["recurrent_kernel"], self.params["bias"]
        self.constant_input = steps is not None
        if self.constant_input:
            (n, D), T = x.shape, steps
        else:
            n, T, D = x.shape
        u = self.units
        if self.go_backwards:
            x = x if self.constant_input else x[:, ::-1]
            mask = None if mask is None else mask[:, ::-1]
        self.x_shape = (n, T, D)

        # Input projections of all steps: one GEMM, time-major (T, B, 4U).
        if self.constant_input:
            self.x_t = x                                         # (B, D), the same every step
            gates = xp.empty((T, n, 4 * u), dtype=self.dtype)
            gates[...] = x @ W + b
        else:
            self.x_t = xp.ascontiguousarray(x.transpose(1, 0, 2))  # (T, B, D)
            gates = (self.x_t.reshape(T * n, D) @ W).reshape(T, n, 4 * u)
            gates += b

        hs = xp.empty((T + 1, n, u), dtype=self.dtype)
        cs = xp.empty((T + 1, n, u), dtype=self.dtype)
        h0, c0 = initial_state if initial_state is not None else (0, 0)
        hs[0], cs[0] = h0, c0
        m = None if mask is None else xp.ascontiguousarray(mask.T)[:, :, None]  # (T, B, 1) bool
        pad = None if m is None else ~m

        self.U_T = xp.ascontiguousarray(U.T)   # each backend's step kernel reads U or U^T, whichever is faster
        for t in range(T):                    # z_t = x_t W + b + h_{t-1} U, then the cell
            K.lstm_step_forward(gates[t], hs[t], U, self.U_T, cs[t], cs[t + 1], hs[t + 1],
                                self.recurrent_activation)
            if m is not None:  # padding: keep the previous state
                xp.copyto(hs[t + 1], hs[t], where=pad[t])
                xp.copyto(cs[t + 1], cs[t], where=pad[t])

        self.gates, self.hs, self.cs, self.m = gates, hs, cs, m
        self.out_mask = self._output_mask(m)
        self.final_state = (hs[T], cs[T])
        if self.return_sequences:
            y = hs[1:] if self.out_mask is None else hs[1:] * self.out_mask
            return y.transpose(1, 0, 2)
        return hs[T] if self.out_mask is None else hs[T] * self.out_mask[T - 1]

    def _output_mask(self, m):
        """(T, B, 1) weight of h_t in the output at step t, or None when every step counts."""
        if m is None:
            return None
        if self.zero_output_for_mask:
            return m.astype(self.dtype)
        return (self.xp.cumsum(m, axis=0) > 0).astype(self.dtype)  # a real step has been seen

    # ------------------------------------------------------------------ backward
    def backward(self, dy, d_final_state=None):
        xp, K = self.xp, self.backend
        W, U = self.params["kernel"], self.params["recurrent_kernel"]
        n, T, D = self.x_shape
        u = self.units
        gates, hs, cs, m, om = self.gates, self.hs, self.cs, self.m, self.out_mask

        if self.return_sequences:
            dys = dy.transpose(1, 0, 2)                       # (T, B, U)
            if om is not None:
                dys = dys * om
        else:
            dys = None
            dy_last = dy if om is None else dy * om[T - 1]
        if d_final_state is None:
            dh, dc = xp.zeros((n, u), self.dtype), xp.zeros((n, u), self.dtype)
        else:
            dh, dc = (xp.array(a, dtype=self.dtype) for a in d_final_state)

        dgates = xp.empty_like(gates)
        dh_z = xp.empty((n, u), dtype=self.dtype)      # dz_t U^T, the part of dh_{t-1} that went through z_t
        for t in range(T - 1, -1, -1):
            if dys is not None:
                dh += dys[t]
            elif t == T - 1:
                dh += dy_last
            if m is None:
                dc = K.lstm_step_backward(dh, dc, gates[t], cs[t], cs[t + 1], dgates[t], U, self.U_T,
                                          dh_z, self.recurrent_activation)
            else:  # a masked step passed dh and dc straight through to step t-1
                keep = ~m[t]
                dc_cell = K.lstm_step_backward(xp.where(keep, 0, dh), xp.where(keep, 0, dc),
                                               gates[t], cs[t], cs[t + 1], dgates[t], U, self.U_T,
                                               dh_z, self.recurrent_activation)
                xp.copyto(dh_z, dh, where=keep)   # the cell saw zero gradients there: dz, dh_z, dc_cell are 0
                xp.copyto(dc_cell, dc, where=keep)
                dc = dc_cell
            dh, dh_z = dh_z, dh                   # dh_{t-1}; the old buffer takes the next product

        # Parameter gradients of all steps at once: dW = X^T dZ, dU = H_prev^T dZ.
        dZ = dgates.reshape(T * n, 4 * u)
        if self.constant_input:
            dZ_sum = dgates.sum(axis=0)                       # (B, 4U)
            self.grads["kernel"] += self.x_t.T @ dZ_sum
            dx = dZ_sum @ W.T                                 # (B, D)
        else:
            self.grads["kernel"] += self.x_t.reshape(T * n, D).T @ dZ
            dx = (dZ @ W.T).reshape(T, n, D).transpose(1, 0, 2)
            if self.go_backwards:
                dx = dx[:, ::-1]
        self.grads["recurrent_kernel"] += hs[:-1].reshape(T * n, u).T @ dZ
        self.grads["bias"] += dZ.sum(axis=0)
        self.d_initial_state = (dh, dc)
        return xp.ascontiguousarray(dx)
