"""The CuPy backend: arrays on a CUDA GPU, kernels fused into single CUDA launches.

CuPy is an optional dependency (``pip install scratchvae[gpu]``) and is imported only
when this backend is asked for.  Each kernel is an ``ElementwiseKernel`` computing the
same formulas as the NumPy reference, one thread per (row, unit) element.
"""

from __future__ import annotations

import numpy as np

from .errors import BackendError
from .numpy_backend import NumpyBackend
from .gates import is_hard_sigmoid as _is_hard

_GATE = """
template <typename T> __device__ T gate(T x, bool hard) {
    return hard ? min(max(T(0.2) * x + T(0.5), T(0)), T(1)) : T(1) / (T(1) + exp(-x));
}
template <typename T> __device__ T gate_grad(T y, bool hard) {
    return hard ? ((y > T(0) && y < T(1)) ? T(0.2) : T(0)) : y * (T(1) - y);
}
"""


def _import_cupy():
    try:
        import cupy
    except ImportError as exc:
        raise BackendError("the cupy backend needs CuPy: pip install 'scratchvae[gpu]' "
                           "(cupy-cuda12x; cupy-cuda13x for CUDA 13), or use --backend numba") from exc
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDA driver missing or broken
        raise BackendError(f"the cupy backend found no usable CUDA GPU ({exc.__class__.__name__}); "
                           "use --backend numba") from exc
    if count == 0:
        raise BackendError("the cupy backend found no CUDA GPU; use --backend numba")
    return cupy


class CupyBackend(NumpyBackend):
    """CuPy arrays on the current CUDA device; fused elementwise kernels."""

    name = "cupy"

    def __init__(self):
        super().__init__()
        cp = _import_cupy()
        self.xp = cp
        self._lstm_forward = cp.ElementwiseKernel(
            "T c_prev, int32 u, bool hard", "raw T gates, T c_out, T h_out",
            """
            const int b = i / u, j = i % u;
            T* row = &gates[(long long)b * 4 * u];
            const T in_ = gate<T>(row[j], hard), f = gate<T>(row[u + j], hard);
            const T g = tanh(row[2 * u + j]), o = gate<T>(row[3 * u + j], hard);
            row[j] = in_; row[u + j] = f; row[2 * u + j] = g; row[3 * u + j] = o;
            c_out = f * c_prev + in_ * g;
            h_out = o * tanh(c_out);
            """,
            "scratchvae_lstm_cell_forward", preamble=_GATE)
        self._lstm_backward = cp.ElementwiseKernel(
            "T dh, T dc, T c_prev, T c, raw T gates, int32 u, bool hard", "raw T dgates, T dc_prev",
            """
            const int b = i / u, j = i % u;
            const long long base = (long long)b * 4 * u;
            const T in_ = gates[base + j], f = gates[base + u + j];
            const T g = gates[base + 2 * u + j], o = gates[base + 3 * u + j];
            const T tc = tanh(c);
            const T dc_total = dc + dh * o * (T(1) - tc * tc);
            dgates[base + j] = dc_total * g * gate_grad<T>(in_, hard);
            dgates[base + u + j] = dc_total * c_prev * gate_grad<T>(f, hard);
            dgates[base + 2 * u + j] = dc_total * in_ * (T(1) - g * g);
            dgates[base + 3 * u + j] = dh * tc * gate_grad<T>(o, hard);
            dc_prev = dc_total * f;
            """,
            "scratchvae_lstm_cell_backward", preamble=_GATE)
        self._softmax_grad = cp.ElementwiseKernel(
            "T total, T scale, int64 target, int64 v", "T p",
            "p = scale * (p / total) - ((i % v) == target ? scale : T(0));",
            "scratchvae_softmax_xent_grad")
        self._adam = cp.ElementwiseKernel(
            "T g, T lr_t, T beta_1, T beta_2, T epsilon", "T param, T m, T v",
            """
            m += (g - m) * (T(1) - beta_1);
            v += (g * g - v) * (T(1) - beta_2);
            param -= lr_t * m / (sqrt(v) + epsilon);
            """,
            "scratchvae_adam")

    def concurrently(self, *calls):
        """One after another: the GPU queues each call's kernels; host threads would add nothing."""
        return [call() for call in calls]

    def asarray(self, a, dtype=None):
        return self.xp.ascontiguousarray(self.xp.asarray(a, dtype=dtype))

    def to_numpy(self, a) -> np.ndarray:
        return self.xp.asnumpy(a)

    def synchronize(self) -> None:
        self.xp.cuda.get_current_stream().synchronize()

    def lstm_cell_forward(self, gates, c_prev, c_out, h_out, recurrent_activation="sigmoid"):
        self._lstm_forward(c_prev, np.int32(c_prev.shape[1]), _is_hard(recurrent_activation),
                           gates, c_out, h_out)

    def lstm_cell_backward(self, dh, dc, gates, c_prev, c, dgates_out,
                           recurrent_activation="sigmoid"):
        dc_prev = self.xp.empty_like(c)
        self._lstm_backward(dh, dc, c_prev, c, gates, np.int32(c.shape[1]),
                            _is_hard(recurrent_activation), dgates_out, dc_prev)
        return dc_prev

    def embedding_backward(self, ids, dy, num_rows):
        dW = self.xp.zeros((num_rows, dy.shape[1]), dtype=dy.dtype)
        self.xp.add.at(dW, ids, dy)  # atomicAdd scatter on the GPU
        return dW

    def softmax_cross_entropy(self, logits, targets, scale):
        xp = self.xp
        rows = xp.arange(logits.shape[0])
        shift = logits.max(axis=1)
        target_logit = logits[rows, targets] - shift
        logits -= shift[:, None]
        xp.exp(logits, out=logits)
        total = logits.sum(axis=1)
        nll = xp.log(total) - target_logit
        v = logits.shape[1]
        self._softmax_grad(total[:, None], scale[:, None].astype(logits.dtype),
                           targets.astype(np.int64)[:, None], np.int64(v), logits)
        return nll

    def adam_update(self, param, grad, m, v, lr_t, beta_1, beta_2, epsilon):
        dt = param.dtype.type
        self._adam(grad, dt(lr_t), dt(beta_1), dt(beta_2), dt(epsilon), param, m, v)
