"""LSTM with Keras conventions, and backpropagation through time written out.

Shapes: B the batch, T the steps, D the input features, U the units.  Parameters: the
input kernel Wx (D, 4U) ("kernel"), the recurrent kernel Wh (U, 4U) ("recurrent_kernel")
and the bias b (4U,), gates in Keras order (i, f, g, o), r the recurrent activation.
One step, forward on the left and its backward on the right (the backward runs bottom up,
carrying dh and dc from step t+1 to step t):

    forward                                  backward
    z_t = x_t Wx + h_{t-1} Wh + b  (B, 4U)   dx_t = dz_t Wx^T     dh_{t-1} = dz_t Wh^T
    i, f, o = r(z_i), r(z_f), r(z_o)         dz_i = di r'(z_i)    (likewise f, o; r' from r's output)
    g = tanh(z_g)                            dz_g = dg (1 - g^2)
    c_t = f c_{t-1} + i g          (B, U)    di = dc_t g   df = dc_t c_{t-1}   dg = dc_t i   dc_{t-1} = dc_t f
    h_t = o tanh(c_t)              (B, U)    do = dh_t tanh(c_t)  dc_t += dh_t o (1 - tanh(c_t)^2)

Because z_t is linear in x_t and h_{t-1}, the parameter gradients are sums over steps
that collapse into single matrix products once every dz_t is known:

    dWx = X^T dZ      dWh = H_prev^T dZ      db = sum dZ

where X, H_prev and dZ stack all T steps as rows.  Likewise the input projection of all
steps is one GEMM before the loop; only h_{t-1} Wh stays inside it.

Inside the loops each step is one backend call each way (``lstm_step_forward`` and
``lstm_step_backward``), the padding mask and the sum of the two gradients reaching h_t
(from y_t and from step t+1) included, on arrays allocated before the loop
(:mod:`.lstm_buffers`): on a GPU a step is two launches each way, and a whole loop can be
captured once as a CUDA graph and replayed (``backend.run_time_loop``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..backend import Array
from ..backend.gates import RECURRENT_ACTIVATIONS
from .base import Layer
from .init import glorot_uniform, orthogonal
from .lstm_buffers import LoopBufferPool, LoopBuffers

State = tuple[Array, Array]  # (h, c), each (B, U)


@dataclass
class LSTMCache:
    """What a forward pass keeps for its backward pass (time-major: step t is index t)."""

    inputs: Array  # x (T, B, D) in processing order; or v (B, D), the input of every step
    repeated: bool  # True when ``inputs`` is the one vector v fed at every step
    buffers: LoopBuffers  # the loops' arrays: gates (T, B, 4U) activated, hs, cs (T + 1, B, U), Wh^T ...
    step_mask: Array | None  # (T, B) bool, False at padding; None: every step is real
    output_weight: Array | None  # (T, B, 1) weight of h_t in the output at step t; None: all 1

    @property
    def gates(self) -> Array:
        return self.buffers.gates

    @property
    def hs(self) -> Array:
        return self.buffers.hs

    @property
    def cs(self) -> Array:
        return self.buffers.cs


class LSTM(Layer):
    """Long short-term memory layer (Keras ``LSTM``).

    forward(x, mask=None, initial_state=None, return_state=False)
        x (B, T, D); mask (B, T) bool, False at padding; initial_state (h0, c0), each (B, U),
        zeros when None.  Returns y: (B, T, U) with ``return_sequences``, else (B, U);
        with ``return_state``, (y, (h_T, c_T)).
    forward_repeated(v, steps, mask=None, initial_state=None, return_state=False)
        v (B, D) fed at each of ``steps`` steps: the result of ``RepeatVector(steps)``
        followed by the LSTM, but v Wx + b is computed once instead of T times.
    backward(dy, d_state=None, return_state=False)
        dy shaped like y; d_state (dh_T, dc_T), the gradient arriving at the final state,
        zeros when None.  Returns dx, shaped like the forward's input ((B, T, D), or (B, D)
        after forward_repeated: dv = (sum_t dz_t) Wx^T); with ``return_state``,
        (dx, (dh0, dc0)), the gradient at the initial state.

    Keras semantics:
    * ``go_backwards`` reads the sequence from its end, and the returned sequence is in
      that (reversed) processing order, as in Keras.
    * At a masked step the state is carried over unchanged.  The output there is the
      carried h once a real step has been seen (zero before), or zero with
      ``zero_output_for_mask``.
    * ``unit_forget_bias`` starts the forget-gate bias at 1.
    * ``recurrent_activation`` is "sigmoid" (Keras 3) or "hard_sigmoid" (Keras 2's
      clip(0.2 x + 0.5, 0, 1), used by the original tutorial).
    Parameters: kernel Wx (D, 4U), recurrent_kernel Wh (U, 4U), bias b (4U,).
    """

    def __init__(
        self,
        input_dim: int,
        units: int,
        *,
        return_sequences: bool = False,
        go_backwards: bool = False,
        recurrent_activation: str = "sigmoid",
        unit_forget_bias: bool = True,
        zero_output_for_mask: bool = False,
        rng: np.random.Generator | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if recurrent_activation not in RECURRENT_ACTIVATIONS:
            raise ValueError(
                f"unknown recurrent_activation {recurrent_activation!r}; choose one of {RECURRENT_ACTIVATIONS}"
            )
        rng = rng if rng is not None else np.random.default_rng()
        self.input_dim, self.units = input_dim, units
        self.return_sequences, self.go_backwards = return_sequences, go_backwards
        self.recurrent_activation = recurrent_activation
        self.zero_output_for_mask = zero_output_for_mask
        bias = np.zeros(4 * units)
        if unit_forget_bias:
            bias[units : 2 * units] = 1.0
        self.add_param("kernel", glorot_uniform(rng, (input_dim, 4 * units)))
        self.add_param("recurrent_kernel", orthogonal(rng, (units, 4 * units)))
        self.add_param("bias", bias)
        self.cache: LSTMCache | None = None
        self._buffers = LoopBufferPool()

    # ------------------------------------------------------------------ public
    def forward(
        self, x: Array, mask: Array | None = None, initial_state: State | None = None, return_state: bool = False
    ) -> Array | tuple[Array, State]:
        """x (B, T, D) -> y (B, T, U) or (B, U); with ``return_state``, (y, (h_T, c_T))."""
        if x.ndim != 3 or x.shape[2] != self.input_dim:
            raise ValueError(
                f"LSTM.forward takes x (B, T, {self.input_dim}), not shape {tuple(x.shape)}; "
                "for one vector fed at every step use forward_repeated(v, steps)"
            )
        if self.go_backwards:
            x = x[:, ::-1]
        x_steps = self.xp.ascontiguousarray(x.transpose(1, 0, 2))  # (T, B, D), time-major
        buffers = self._loop_buffers(x_steps.shape[0], x_steps.shape[1])
        self._project_sequence(x_steps, buffers.gates)
        return self._time_loop(x_steps, buffers, mask, initial_state, return_state, repeated=False)

    def forward_repeated(
        self,
        v: Array,
        steps: int,
        mask: Array | None = None,
        initial_state: State | None = None,
        return_state: bool = False,
    ) -> Array | tuple[Array, State]:
        """v (B, D), the input of each of ``steps`` steps -> y as :meth:`forward` (v needs no reversal)."""
        if v.ndim != 2 or v.shape[1] != self.input_dim:
            raise ValueError(
                f"LSTM.forward_repeated takes v (B, {self.input_dim}), not shape {tuple(v.shape)}; "
                "for a sequence use forward(x)"
            )
        if int(steps) != steps or steps < 1:
            raise ValueError(f"LSTM.forward_repeated needs steps >= 1, got {steps!r}")
        buffers = self._loop_buffers(int(steps), v.shape[0])
        self._project_repeated(v, buffers.gates)
        return self._time_loop(v, buffers, mask, initial_state, return_state, repeated=True)

    def backward(
        self, dy: Array, d_state: State | None = None, return_state: bool = False
    ) -> Array | tuple[Array, State]:
        """dy like y; d_state (dh_T, dc_T) or None -> dx like the input; with ``return_state``,
        (dx, (dh0, dc0))."""
        cache = self.cache
        if cache is None:
            raise RuntimeError("LSTM.backward needs the forward pass's cache: call forward first")
        dgates, d_initial = self._time_loop_backward(dy, d_state)  # (T, B, 4U), (dh0, dc0)
        self._recurrent_param_grads(dgates)
        if cache.repeated:
            dx = self._project_repeated_backward(dgates)
        else:
            dx = self._project_sequence_backward(dgates)
        return (dx, d_initial) if return_state else dx

    # ------------------------------------------------------------------ input projection, both ways
    def _project_sequence(self, x_steps, gates):
        """x (T, B, D) -> gates (T, B, 4U) = x_t Wx + b of every step: one GEMM."""
        T, n, D = x_steps.shape
        Wx, b = self.params["kernel"], self.params["bias"]
        self.xp.matmul(x_steps.reshape(T * n, D), Wx, out=gates.reshape(T * n, 4 * self.units))
        gates += b

    def _project_sequence_backward(self, dgates):
        """dz (T, B, 4U) -> dx (B, T, D) = dz Wx^T; dWx += X^T dZ (X: the steps stacked as rows)."""
        x_steps, Wx = self.cache.inputs, self.params["kernel"]
        T, n, D = x_steps.shape
        dZ = dgates.reshape(T * n, 4 * self.units)
        self.grads["kernel"] += x_steps.reshape(T * n, D).T @ dZ
        dx = (dZ @ Wx.T).reshape(T, n, D).transpose(1, 0, 2)
        if self.go_backwards:
            dx = dx[:, ::-1]
        return self.xp.ascontiguousarray(dx)

    def _project_repeated(self, v, gates):
        """v (B, D) -> v Wx + b, computed once and copied into each of the (T, B, 4U) steps of gates."""
        Wx, b = self.params["kernel"], self.params["bias"]
        gates[...] = v @ Wx + b

    def _project_repeated_backward(self, dgates):
        """dz (T, B, 4U) -> dv (B, D) = (sum_t dz_t) Wx^T; dWx += v^T sum_t dz_t (v read at every step)."""
        v, Wx = self.cache.inputs, self.params["kernel"]
        dZ_sum = dgates.sum(axis=0)  # (B, 4U)
        self.grads["kernel"] += v.T @ dZ_sum
        return self.xp.ascontiguousarray(dZ_sum @ Wx.T)

    # ------------------------------------------------------------------ the recurrence, both ways
    def _loop_buffers(self, steps, batch) -> LoopBuffers:
        return self._buffers.get(self.xp, self.dtype, steps, batch, self.units, keep=self.backend.captures_time_loops)

    def _time_loop(self, inputs, buffers, mask, initial_state, return_state, *, repeated):
        """The time loop from buffers.gates (T, B, 4U) = x_t Wx + b; fills the cache; returns y [, (h_T, c_T)]."""
        xp, backend = self.xp, self.backend
        Wh, act = self.params["recurrent_kernel"], self.recurrent_activation
        gates, hs, cs, Wh_T = buffers.gates, buffers.hs, buffers.cs, buffers.Wh_T
        T = gates.shape[0]
        h0, c0 = initial_state if initial_state is not None else (0, 0)
        hs[0], cs[0] = h0, c0
        xp.copyto(Wh_T, Wh.T)
        step_mask = None
        if mask is not None:
            step_mask = buffers.mask  # (T, B) bool
            step_mask[...] = (mask[:, ::-1] if self.go_backwards else mask).T

        def steps():  # z_t = x_t Wx + b + h_{t-1} Wh, then the cell
            for t in range(T):
                backend.lstm_step_forward(
                    gates[t],
                    hs[t],
                    Wh,
                    Wh_T,
                    cs[t],
                    cs[t + 1],
                    hs[t + 1],
                    act,
                    mask=None if step_mask is None else step_mask[t],
                )

        # a captured loop reads Wh where it was: its key names the array (parameters are updated in place)
        backend.run_time_loop(buffers.graphs, ("forward", T, step_mask is not None, id(Wh)), steps)

        out_weight = self._output_weight(step_mask)
        self.cache = LSTMCache(
            inputs=inputs, repeated=repeated, buffers=buffers, step_mask=step_mask, output_weight=out_weight
        )
        own = (lambda a: a.copy()) if buffers.shared else (lambda a: a)  # kept buffers: the next call reuses them
        if self.return_sequences:
            y = own(hs[1:]) if out_weight is None else hs[1:] * out_weight
            y = y.transpose(1, 0, 2)
        else:
            y = own(hs[T]) if out_weight is None else hs[T] * out_weight[T - 1]
        return (y, (own(hs[T]), own(cs[T]))) if return_state else y

    def _time_loop_backward(self, dy, d_state):
        """The time loop backward: dy (and dh_T, dc_T) -> dz of every step (T, B, 4U), (dh0, dc0)."""
        xp, backend = self.xp, self.backend
        cache = self.cache
        buffers = cache.buffers
        buffers.ready_for_backward(xp)
        Wh, act = self.params["recurrent_kernel"], self.recurrent_activation
        gates, cs, dgates, Wh_T = buffers.gates, buffers.cs, buffers.dgates, buffers.Wh_T
        step_mask, out_weight = cache.step_mask, cache.output_weight
        T = gates.shape[0]
        dh, dc = buffers.dh, buffers.dc  # [k]: step t's, [1 - k]: step t - 1's

        if d_state is None:
            dh[0], dc[0] = 0, 0
        else:
            dh[0], dc[0] = d_state
        dys = None
        if self.return_sequences:  # h_t feeds the output y_t and step t+1
            dys = buffers.dys
            if out_weight is None:
                dys[...] = dy.transpose(1, 0, 2)
            else:
                xp.multiply(dy.transpose(1, 0, 2), out_weight, out=dys)
        else:  # only h_T is output
            dh[0] += dy if out_weight is None else dy * out_weight[T - 1]

        def steps():  # dz_t (into dgates[t]), dh_{t-1} = dz_t Wh^T (+ the pass-through at padding), dc_{t-1}
            k = 0
            for t in range(T - 1, -1, -1):
                backend.lstm_step_backward(
                    dh[k],
                    dc[k],
                    gates[t],
                    cs[t],
                    cs[t + 1],
                    dgates[t],
                    Wh,
                    Wh_T,
                    dh[1 - k],
                    act,
                    dy=None if dys is None else dys[t],
                    mask=None if step_mask is None else step_mask[t],
                    dc_prev_out=dc[1 - k],
                )
                k = 1 - k

        backend.run_time_loop(buffers.graphs, ("backward", T, step_mask is not None, dys is not None, id(Wh)), steps)
        own = (lambda a: a.copy()) if buffers.shared else (lambda a: a)
        return dgates, (own(dh[T % 2]), own(dc[T % 2]))

    def _recurrent_param_grads(self, dgates):
        """dWh += H_prev^T dZ, db += sum dZ: every step's term in one product (dZ (T*B, 4U))."""
        T, n, _ = dgates.shape
        u = self.units
        dZ = dgates.reshape(T * n, 4 * u)
        self.grads["recurrent_kernel"] += self.cache.hs[:-1].reshape(T * n, u).T @ dZ
        self.grads["bias"] += dZ.sum(axis=0)

    def _output_weight(self, step_mask):
        """(T, B, 1) weight of h_t in the output at step t, or None when every step counts."""
        if step_mask is None:
            return None
        step_mask = step_mask[:, :, None]
        if self.zero_output_for_mask:
            return step_mask.astype(self.dtype)
        return (self.xp.cumsum(step_mask, axis=0) > 0).astype(self.dtype)  # a real step has been seen
