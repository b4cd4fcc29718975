"""The NumPy backend: the readable reference every other backend is checked against.

A backend is an array module (``xp``) plus a handful of *kernels*: the few operations
where a fused loop is much faster than a chain of array expressions.  Layer and model
code is written once, against ``backend.xp`` and these kernels, so it reads the same on
every backend.  Each kernel here is plain NumPy, written to be read; the Numba and CuPy
backends override the same methods with compiled loops and must agree to rounding.

Kernel conventions
------------------
* Arrays are C-contiguous, float32 or float64 (ids are integer arrays).
* ``*_out`` arguments are preallocated outputs the kernel writes into; the LSTM kernels
  update the ``gates`` buffer in place (pre-activations in, activations out), so a
  sequence of T steps needs exactly one (T, B, 4U) buffer.
* ``recurrent_activation`` is ``"sigmoid"`` or ``"hard_sigmoid"`` (Keras 2's
  ``clip(0.2 x + 0.5, 0, 1)``).
* The LSTM step kernels take the step's padding ``mask`` ((B,) bool, False at padding) and,
  backward, the output gradient ``dy``: a layer's time loop is then one kernel call a step
  each way, with nothing allocated inside it.
"""

from __future__ import annotations

import math

import numpy as np

from .gates import RECURRENT_ACTIVATIONS, split_gates
from .threads import ThreadSharing


def sigmoid(x):
    """1 / (1 + exp(-x)); exp overflow for very negative x correctly gives 0."""
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


def log1p(x):
    """log(1 + x) for x >= 0, accurate to a rounding error near 0, through one log.

    Goldberg's trick (What every computer scientist should know about floating point, thm. 4):
    u = 1 + x rounds, but log(u) * x / (u - 1) cancels that rounding, and where u == 1 the answer
    is x.  NumPy's float32 log1p is a slow scalar loop; this is vectorised like log itself.
    """
    u = 1 + x
    du = u - 1
    return np.where(du == 0, x, np.log(u) * (x / np.where(du == 0, 1, du)))


def softplus(x):
    """log(1 + e^x) = max(x, 0) + log(1 + e^-|x|), computed without overflow."""
    return np.maximum(x, 0) + log1p(np.exp(-np.abs(x)))


def hard_sigmoid(x):
    """Keras 2's piecewise-linear sigmoid: clip(0.2 x + 0.5, 0, 1)."""
    return np.clip(0.2 * x + 0.5, 0.0, 1.0)


def _gate_activation(name: str):
    if name == "sigmoid":
        return sigmoid
    if name == "hard_sigmoid":
        return hard_sigmoid
    raise ValueError(f"unknown recurrent_activation {name!r}; use one of {RECURRENT_ACTIVATIONS}")


def _gate_derivative(y, name: str):
    """d act / dx written in terms of the activation's output y = act(x)."""
    if name == "sigmoid":
        return y * (1.0 - y)  # sigma' = sigma (1 - sigma)
    return np.where((y > 0.0) & (y < 1.0), 0.2, 0.0).astype(y.dtype)  # slope 0.2 inside the ramp


class NumpyBackend(ThreadSharing):
    """Reference backend: NumPy arrays, kernels written as array expressions.

    ``concurrently(*calls)``, which runs independent calls side by side, each on a share of
    the CPU's threads, comes from :class:`~scratchvae.backend.threads.ThreadSharing`.
    """

    name = "numpy"
    xp = np

    # ------------------------------------------------------------------ arrays
    def asarray(self, a, dtype=None):
        """Host data -> a backend array (a no-op for NumPy)."""
        return np.ascontiguousarray(a, dtype=dtype)

    def to_numpy(self, a) -> np.ndarray:
        """Backend array -> NumPy array on the host."""
        return np.asarray(a)

    def synchronize(self) -> None:
        """Wait for queued work (only asynchronous devices have any)."""

    def to_floats(self, values: dict) -> dict[str, float]:
        """{name: 0-d array or number} -> {name: float}; on a GPU the arrays come back in one transfer
        (a model's loss terms: one synchronisation a step)."""
        return {k: float(v) for k, v in values.items()}

    # ------------------------------------------------------------------ LSTM
    def lstm_cell_forward(self, gates, c_prev, c_out, h_out, recurrent_activation="sigmoid", *, mask=None, h_prev=None):
        """One LSTM step, Keras gate order (i, f, c~, o).

        gates  (B, 4U)  in: z = x Wx + h Wh + b; out: the activated gates [i, f, g, o]
        c_prev (B, U)   previous cell state
        c_out  (B, U)   out: c = f * c_prev + i * g
        h_out  (B, U)   out: h = o * tanh(c)
        mask   (B,) bool or None: a row whose mask is False is padding and carries the state
                        over: c_out = c_prev, h_out = h_prev (h_prev (B, U) is then required)
        """
        u = c_prev.shape[1]
        act = _gate_activation(recurrent_activation)
        i, f, g, o = split_gates(gates, 0, u)
        i[...] = act(i)
        f[...] = act(f)
        np.tanh(g, out=g)
        o[...] = act(o)
        np.multiply(f, c_prev, out=c_out)
        c_out += i * g
        np.multiply(o, np.tanh(c_out), out=h_out)
        if mask is not None:  # padding: keep the previous state
            pad = ~mask
            c_out[pad] = c_prev[pad]
            h_out[pad] = h_prev[pad]

    def lstm_cell_backward(self, dh, dc, gates, c_prev, c, dgates_out, recurrent_activation="sigmoid"):
        """Backward of :meth:`lstm_cell_forward` (without a mask); returns dc_prev (B, U).

        dh, dc     (B, U)   gradients arriving at h and c of this step
        gates      (B, 4U)  the activated gates stored by the forward step
        c_prev, c  (B, U)   cell state before and after the step
        dgates_out (B, 4U)  out: dL/dz, the gradient of the gate pre-activations
        """
        u = c.shape[1]
        i, f, g, o = split_gates(gates, 0, u)
        di, df, dg, do = split_gates(dgates_out, 0, u)
        tc = np.tanh(c)
        dc_total = dc + dh * o * (1.0 - tc * tc)  # h = o tanh(c)
        do[...] = dh * tc * _gate_derivative(o, recurrent_activation)
        di[...] = dc_total * g * _gate_derivative(i, recurrent_activation)  # c = f c_prev + i g
        df[...] = dc_total * c_prev * _gate_derivative(f, recurrent_activation)
        dg[...] = dc_total * i * (1.0 - g * g)  # g = tanh(z_g)
        return dc_total * f

    def lstm_step_forward(
        self, gates, h_prev, Wh, Wh_T, c_prev, c_out, h_out, recurrent_activation="sigmoid", *, mask=None
    ):
        """One LSTM step: the recurrent product, then :meth:`lstm_cell_forward`.

        gates  (B, 4U)  in: x_t Wx + b; out: the activated gates
        h_prev (B, U)   h_{t-1};  z = gates + h_prev Wh
        Wh (U, 4U), Wh_T (4U, U)  the recurrent kernel and a C-contiguous copy of its
                        transpose: each backend multiplies with the layout it reads fastest
        c_prev, c_out, h_out  as in :meth:`lstm_cell_forward`
        mask   (B,) bool or None: False at padding, where the state is carried over
        """
        gates += h_prev @ Wh
        self.lstm_cell_forward(gates, c_prev, c_out, h_out, recurrent_activation, mask=mask, h_prev=h_prev)

    def lstm_step_backward(
        self,
        dh,
        dc,
        gates,
        c_prev,
        c,
        dgates_out,
        Wh,
        Wh_T,
        dh_prev_out,
        recurrent_activation="sigmoid",
        *,
        dy=None,
        mask=None,
        dc_prev_out=None,
    ):
        """Backward of :meth:`lstm_step_forward`: :meth:`lstm_cell_backward`, then the product.

        dh          (B, U)  the gradient reaching h_t from step t+1: the caller's scratch (with dy,
                            backends may leave dh + dy in it)
        dy          (B, U) or None: the gradient reaching h_t from the output y_t, added to dh
        mask        (B,) bool or None: at padding (False) the step passes its gradients straight
                            through: dz = 0, dh_prev = dh + dy, dc_prev = dc
        dh_prev_out (B, U)  out: dz Wh^T (plus the pass-through at padding), the gradient at h_{t-1}
        dc_prev_out (B, U) or None: out: the gradient at c_{t-1} (allocated when None)
        returns dc_prev (B, U) (``dc_prev_out`` when given); the other arguments as in
        :meth:`lstm_cell_backward`.
        """
        if dy is not None:
            dh += dy  # h_t feeds the output y_t and step t+1
        dc_prev = self.lstm_cell_backward(dh, dc, gates, c_prev, c, dgates_out, recurrent_activation)
        self.xp.matmul(dgates_out, Wh_T, out=dh_prev_out)  # a plain product: BLAS is slow on a transposed view
        if mask is not None:  # padding: the gradients pass straight through
            pad = ~mask
            dgates_out[pad] = 0
            dh_prev_out[pad] = dh[pad]
            dc_prev[pad] = dc[pad]
        if dc_prev_out is None:
            return dc_prev
        dc_prev_out[...] = dc_prev
        return dc_prev_out

    def run_time_loop(self, graphs: dict, key, issue_steps) -> None:
        """Run ``issue_steps()``, a layer's time loop on buffers that stay fixed for ``key``.

        Here (and on every CPU backend) it simply runs; the cupy backend captures it once per
        key into a CUDA graph kept in ``graphs`` and replays that, one launch for the whole loop.
        """
        issue_steps()

    @property
    def captures_time_loops(self) -> bool:
        """True when :meth:`run_time_loop` replays captured graphs: the layer must then run its
        loops on buffers that stay fixed between calls (and copy its outputs out of them)."""
        return False

    def zero_all(self, arrays) -> None:
        """Every array of the list set to zero (one kernel on a GPU)."""
        for a in arrays:
            a.fill(0)

    # ------------------------------------------------------------------ embedding
    def embedding_backward(self, ids, dy, num_rows):
        """Scatter-add of output gradients into the rows they were gathered from.

        ids (N,) int, dy (N, D) -> dW (num_rows, D) with dW[ids[n]] += dy[n].
        """
        dW = np.zeros((num_rows, dy.shape[1]), dtype=dy.dtype)
        np.add.at(dW, ids, dy)
        return dW

    # ------------------------------------------------------------------ loss
    def softmax_cross_entropy(self, logits, targets, scale):
        """Fused softmax + cross-entropy + gradient, in place.

        logits  (N, V)  in: unnormalised scores; out: scale[n] * (softmax(logits[n]) - onehot(targets[n]))
        targets (N,)    int class ids (never expanded to one-hot)
        scale   (N,)    weight of each row's loss in the total (0 for padding)
        returns nll (N,) = logsumexp(logits[n]) - logits[n, targets[n]]

        Overwriting the logits keeps one (N, V) block alive per batch.
        """
        rows = np.arange(logits.shape[0])
        shift = logits.max(axis=1)  # for exp without overflow
        target_logit = logits[rows, targets] - shift
        logits -= shift[:, None]
        np.exp(logits, out=logits)
        total = logits.sum(axis=1)
        nll = np.log(total) - target_logit
        logits /= total[:, None]  # softmax
        logits[rows, targets] -= 1.0  # d nll / d logits = p - onehot
        logits *= scale[:, None]
        return nll

    # ------------------------------------------------------------------ losses
    def softplus(self, x):
        """log(1 + e^x) elementwise, without overflow (the binary cross-entropy's log-partition)."""
        return softplus(x)

    # ------------------------------------------------------------------ optimiser
    def adam_update(self, param, grad, m, v, lr_t, beta_1, beta_2, epsilon):
        """In-place Adam step (Keras form; lr_t already carries the bias corrections).

        m += (g - m)(1 - b1);  v += (g^2 - v)(1 - b2);  p -= lr_t m / (sqrt(v) + eps)
        """
        m += (grad - m) * (1.0 - beta_1)
        v += (grad * grad - v) * (1.0 - beta_2)
        param -= lr_t * m / (np.sqrt(v) + epsilon)

    def adam_update_all(self, params, grads, ms, vs, lr_t, beta_1, beta_2, epsilon):
        """:meth:`adam_update` on every (param, grad, m, v) of the aligned lists (one kernel on a GPU)."""
        for param, grad, m, v in zip(params, grads, ms, vs):
            self.adam_update(param, grad, m, v, lr_t, beta_1, beta_2, epsilon)

    def global_norm(self, grads):
        """sqrt of the sum of squares of every entry of every array: a float here, a 0-d device
        array on a GPU (``float()`` of it is then the one synchronisation)."""
        return math.sqrt(sum(float(np.vdot(g.ravel(), g.ravel())) for g in grads))

    def clip_by_global_norm(self, grads, norm, clipnorm: float) -> None:
        """Every array *= clipnorm / norm when norm > clipnorm (norm from :meth:`global_norm`)."""
        if norm > clipnorm:
            scale = clipnorm / norm
            for g in grads:
                g *= scale
