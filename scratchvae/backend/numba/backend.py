"""NumbaBackend: NumPy arrays, the kernels of this package, and how they share the CPU's threads.

Contract: the kernel methods of :class:`~scratchvae.backend.numpy_backend.NumpyBackend`,
with the same arguments and results (tests hold the two to 1e-12 in float64).

Thread policy. numba's parallel kernels use numba's threads; an LSTM step is split
across them only when its product is large enough (``PARALLEL_FLOPS``). Inside
``backend.concurrently`` (a BiLSTM's two directions side by side) each call gets a share
of the threads: with a share of one its steps run on the serial kernels, without the
GIL; with more, numba's thread count is set for the calling thread (numba's omp and tbb
threading layers allow parallel kernels from two threads at once, its workqueue layer
does not). A thread count of one (a share of one, or a core of a batch-split step, see
:mod:`scratchvae.training.cores`) runs every kernel serially, without numba's thread
pool. Measured when it came in: seed preset forward + backward, 2 threads, numba
1.44-1.49 s a step (1.56-1.72 with both directions on both cores in turn).
"""

from __future__ import annotations

import numba
import numpy as np

from ..gates import is_hard_sigmoid
from ..numpy_backend import NumpyBackend
from . import lstm_cell
from .adam import adam_update, adam_update_serial
from .embedding import embedding_backward
from .softmax import softmax_cross_entropy, softmax_cross_entropy_serial


class NumbaBackend(NumpyBackend):
    """NumPy arrays; kernels compiled with Numba (see the reference for their contracts)."""

    name = "numba"

    def __init__(self):
        super().__init__()
        self._threads: int | None = None  # numba's thread count, read once (see _all_threads)

    # ------------------------------------------------------------------ LSTM
    def lstm_cell_forward(self, gates, c_prev, c_out, h_out, recurrent_activation="sigmoid", *, mask=None, h_prev=None):
        lstm_cell.lstm_cell_forward(gates, c_prev, c_out, h_out, is_hard_sigmoid(recurrent_activation))
        if mask is not None:
            lstm_cell.carry_padding(mask, h_prev, c_prev, h_out, c_out)

    def lstm_cell_backward(self, dh, dc, gates, c_prev, c, dgates_out, recurrent_activation="sigmoid"):
        dc_prev = np.empty_like(c)
        lstm_cell.lstm_cell_backward(
            dh, dc, gates, c_prev, c, dgates_out, dc_prev, is_hard_sigmoid(recurrent_activation)
        )
        return dc_prev

    def lstm_step_forward(
        self, gates, h_prev, Wh, Wh_T, c_prev, c_out, h_out, recurrent_activation="sigmoid", *, mask=None
    ):
        hard, zero, parts = is_hard_sigmoid(recurrent_activation), gates.dtype.type(0), self._parts(h_prev, Wh)
        if parts == 1:
            lstm_cell.step_forward_serial(gates, h_prev, Wh, Wh_T, c_prev, c_out, h_out, hard, zero)
        else:
            lstm_cell.step_forward(gates, h_prev, Wh, Wh_T, c_prev, c_out, h_out, hard, parts, zero)
        if mask is not None:
            lstm_cell.carry_padding(mask, h_prev, c_prev, h_out, c_out)

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
        hard, zero, parts = is_hard_sigmoid(recurrent_activation), gates.dtype.type(0), self._parts(dh, Wh)
        if dy is not None:
            np.add(dh, dy, out=dh)  # dh is the caller's scratch (see the reference)
        dc_prev = np.empty_like(c) if dc_prev_out is None else dc_prev_out
        if parts == 1:
            lstm_cell.step_backward_serial(
                dh, dc, gates, c_prev, c, dgates_out, dc_prev, Wh, Wh_T, dh_prev_out, hard, zero
            )
        else:
            lstm_cell.step_backward(
                dh, dc, gates, c_prev, c, dgates_out, dc_prev, Wh, Wh_T, dh_prev_out, hard, parts, zero
            )
        if mask is not None:
            lstm_cell.pass_padding(mask, dh, dc, dgates_out, dh_prev_out, dc_prev)
        return dc_prev

    # ------------------------------------------------------------------ threads
    def _all_threads(self) -> int:
        """numba's thread count, read once (``numba.get_num_threads`` costs ~20 us a call, and
        _parts asks every step; a later ``numba.set_num_threads`` changes how work is shared,
        not the results)."""
        if self._threads is None:
            self._threads = numba.get_num_threads()
        return self._threads

    def _parts(self, h, Wh):
        """Unit ranges a step is split into: one per thread, or 1 for a step too small to share
        (and inside :meth:`concurrently` with one thread per call: the serial kernels)."""
        return self._thread_count() if 2 * h.shape[0] * Wh.size >= lstm_cell.PARALLEL_FLOPS else 1

    def _can_share(self, share: int) -> bool:
        """A share of more than one thread launches parallel kernels from two threads at once,
        which numba's omp and tbb threading layers allow and its workqueue layer does not."""
        if share == 1:
            return True
        try:
            return numba.threading_layer() in ("omp", "tbb")
        except ValueError:  # no parallel kernel has run yet: no layer chosen
            return False

    def _with_threads(self, share: int, call):
        if share == 1:
            return super()._with_threads(share, call)
        before = numba.get_num_threads()
        numba.set_num_threads(share)  # thread-local in numba
        try:
            return super()._with_threads(share, call)
        finally:
            numba.set_num_threads(before)

    # ------------------------------------------------------------------ the rest
    def embedding_backward(self, ids, dy, num_rows):
        dW = np.zeros((num_rows, dy.shape[1]), dtype=dy.dtype)
        embedding_backward(ids, dy, dW)
        return dW

    def softmax_cross_entropy(self, logits, targets, scale):
        nll = np.empty(logits.shape[0], dtype=logits.dtype)
        kernel = softmax_cross_entropy if self._thread_count() > 1 else softmax_cross_entropy_serial
        kernel(logits, targets, scale, nll)
        return nll

    def adam_update(self, param, grad, m, v, lr_t, beta_1, beta_2, epsilon):
        kernel = adam_update if self._thread_count() > 1 else adam_update_serial
        kernel(param.reshape(-1), grad.reshape(-1), m.reshape(-1), v.reshape(-1), lr_t, beta_1, beta_2, epsilon)
