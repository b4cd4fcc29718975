"""The Numba backend: NumPy arrays, with the kernels compiled to fused CPU loops.

Each kernel does in one pass over memory what the NumPy reference does in several
array expressions, and computes the same formulas in the same order, so the two agree
to rounding (tests hold them to 1e-12 in float64).  Row-independent kernels run their
rows in parallel (``prange``); the rest stay serial where threads would not pay.
Kernels compile on first use for each dtype and are cached on disk.

Speed notes.  A call to libm's ``exp`` or ``tanh`` inside a loop keeps LLVM from
vectorizing it (Numba has no vector math library unless Intel's SVML is installed), and
so does a division under Python's error model (it checks for zero).  The kernels
therefore use :func:`_exp` and :func:`_tanh` below, written in plain arithmetic, and
``error_model="numpy"`` (x / 0 gives inf, as in NumPy): their loops compile to SIMD code,
several times faster than the scalar calls, and agree with libm to about 1 ulp.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange, types
from numba.extending import intrinsic, overload

from .numpy_backend import NumpyBackend, RECURRENT_ACTIVATIONS

_kernel = dict(cache=True, error_model="numpy")   # options shared by every compiled kernel


# ---------------------------------------------------------------------- vectorizable exp, tanh
# x = n ln2 + r with n = round(x / ln2) and |r| <= ln2 / 2 (ln2 split in two, Cody and Waite,
# so r is exact); e^r - 1 by its Taylor series; 2^n built from its exponent bits.  Each
# precision has its own polynomial, so float32 loops run at the full float32 vector width.
# Inputs are clamped where e^x leaves the normal range: e^x saturates instead of reaching
# 0 or inf, and tanh is exactly +-1 past the clamp.

def _reinterpret(int_type, float_type):
    """An intrinsic: the float whose IEEE-754 bits are the integer (cast to int_type first)."""
    @intrinsic
    def float_from_bits(typingctx, bits):
        if not isinstance(bits, types.Integer):
            return None

        def codegen(context, builder, sig, args):
            as_int = context.cast(builder, args[0], sig.args[0], int_type)
            return builder.bitcast(as_int, context.get_value_type(float_type))
        return float_type(bits), codegen
    return float_from_bits


_f64_from_bits = _reinterpret(types.int64, types.float64)
_f32_from_bits = _reinterpret(types.int32, types.float32)


@njit(cache=True, inline="always")
def _expm1_reduced_f64(x):
    """(e^r - 1, 2^n) for x = n ln2 + r clamped to [-708, 709]; Taylor to r^13 (error < 1e-17)."""
    x = min(max(x, -708.0), 709.0)
    n = np.floor(x * 1.4426950408889634 + 0.5)
    r = (x - n * 6.93147180369123816490e-01) - n * 1.90821492927058770002e-10
    p = 1.0 / 6227020800.0                                        # 1/13!, Horner down to 1/2!
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    return r + r * r * p, _f64_from_bits((np.int64(n) + 1023) << 52)


_F32 = tuple(np.float32(c) for c in (
    -87.0, 88.0, 1.4426950408889634, 0.693359375, -2.12194440e-4,      # clamp, 1/ln2, ln2 = hi + lo
    1 / 5040, 1 / 720, 1 / 120, 1 / 24, 1 / 6, 0.5, 1.0, 2.0, 9.0))


@njit(cache=True, inline="always")
def _expm1_reduced_f32(x):
    """(e^r - 1, 2^n) for x = n ln2 + r clamped to [-87, 88]; Taylor to r^7 (error < 2e-8)."""
    lo, hi, log2e, ln2_hi, ln2_lo, c7, c6, c5, c4, c3, c2, one, _, _ = _F32
    x = min(max(x, lo), hi)
    n = np.floor(x * log2e + c2)
    r = (x - n * ln2_hi) - n * ln2_lo
    p = ((((c7 * r + c6) * r + c5) * r + c4) * r + c3) * r + c2
    return r + r * r * p, _f32_from_bits((np.int64(n) + 127) << 23)


def _exp(x):
    """e^x, vectorizable; to about 1 ulp of libm."""


def _tanh(x):
    """tanh x = e / (e + 2) with e = e^(2x) - 1: accurate near 0 too."""


@overload(_exp, inline="always")
def _exp_impl(x):
    if x == types.float32:
        one = _F32[11]

        def exp32(x):
            q, scale = _expm1_reduced_f32(x)
            return (one + q) * scale
        return exp32

    def exp64(x):
        q, scale = _expm1_reduced_f64(x)
        return (1.0 + q) * scale
    return exp64


@overload(_tanh, inline="always")
def _tanh_impl(x):
    if x == types.float32:
        one, two, limit = _F32[11], _F32[12], _F32[13]

        def tanh32(x):
            q, scale = _expm1_reduced_f32(two * min(max(x, -limit), limit))
            e = scale * q + (scale - one)                         # e^(2x) - 1 = 2^n (e^r - 1) + 2^n - 1
            return e / (e + two)
        return tanh32

    def tanh64(x):
        q, scale = _expm1_reduced_f64(2.0 * min(max(x, -20.0), 20.0))
        e = scale * q + (scale - 1.0)
        return e / (e + 2.0)
    return tanh64


# ---------------------------------------------------------------------- kernels
def _sigmoid(x):
    """1 / (1 + e^-x), in the precision of x."""


@overload(_sigmoid, inline="always")
def _sigmoid_impl(x):
    one = _F32[11] if x == types.float32 else 1.0
    return lambda x: one / (one + _exp(-x))


@njit(cache=True, inline="always")
def _hard_sigmoid(x):
    return min(max(0.2 * x + 0.5, 0.0), 1.0)


@njit(cache=True, inline="always")
def _activate(z, hard):
    """z = r(z) in place, r the recurrent activation (the branch outside the loops, so each vectorizes)."""
    if hard:
        for j in range(z.size):
            z[j] = _hard_sigmoid(z[j])
    else:
        for j in range(z.size):
            z[j] = _sigmoid(z[j])


@njit(cache=True, inline="always")
def _times_derivative(dz, y, hard):
    """dz *= r'(z), written with the activation's output y = r(z)."""
    if hard:
        for j in range(dz.size):
            dz[j] *= 0.2 if 0.0 < y[j] < 1.0 else 0.0
    else:
        for j in range(dz.size):
            dz[j] *= y[j] * (1.0 - y[j])


@njit(**_kernel)
def _lstm_cell_forward(gates, c_prev, c_out, h_out, hard):
    n, u = c_prev.shape
    for b in range(n):
        _activate(gates[b, :2 * u], hard)                         # i, f
        _activate(gates[b, 3 * u:], hard)                         # o
        i, f, g, o = gates[b, :u], gates[b, u:2 * u], gates[b, 2 * u:3 * u], gates[b, 3 * u:]
        cp, c, h = c_prev[b], c_out[b], h_out[b]
        for j in range(u):
            g[j] = _tanh(g[j])
            c[j] = f[j] * cp[j] + i[j] * g[j]
            h[j] = o[j] * _tanh(c[j])


@njit(**_kernel)
def _lstm_cell_backward(dh, dc, gates, c_prev, c, dgates, dc_prev, hard):
    n, u = c.shape
    for b in range(n):
        i, f, g, o = gates[b, :u], gates[b, u:2 * u], gates[b, 2 * u:3 * u], gates[b, 3 * u:]
        di, df, dg, do = dgates[b, :u], dgates[b, u:2 * u], dgates[b, 2 * u:3 * u], dgates[b, 3 * u:]
        for j in range(u):
            tc = _tanh(c[b, j])
            dc_total = dc[b, j] + dh[b, j] * o[j] * (1.0 - tc * tc)
            do[j] = dh[b, j] * tc                                 # each times r'(gate) below
            di[j] = dc_total * g[j]
            df[j] = dc_total * c_prev[b, j]
            dg[j] = dc_total * i[j] * (1.0 - g[j] * g[j])
            dc_prev[b, j] = dc_total * f[j]
        _times_derivative(dgates[b, :2 * u], gates[b, :2 * u], hard)   # i, f
        _times_derivative(do, o, hard)


@njit(cache=True)
def _embedding_backward(ids, dy, dW):
    n, d = dy.shape
    for k in range(n):
        row = ids[k]
        for j in range(d):
            dW[row, j] += dy[k, j]


@njit(cache=True, error_model="numpy")
def _row_max(row):
    top = row[0]
    for j in range(1, row.size):
        top = max(top, row[j])
    return top


@njit(cache=True, error_model="numpy", fastmath={"reassoc"})
def _row_sum(row):
    """Sum in float64, in vector-wide partial sums (reassociated: rounding differs from NumPy's pairwise sum)."""
    total = 0.0
    for j in range(row.size):
        total += row[j]
    return total


@njit(parallel=True, **_kernel)
def _softmax_cross_entropy(logits, targets, scale, nll):
    n, v = logits.shape
    for r in prange(n):
        row, t = logits[r], targets[r]
        shift = _row_max(row)                                     # for exp without overflow
        target_logit = row[t] - shift
        for j in range(v):
            row[j] = _exp(row[j] - shift)
        total = _row_sum(row)
        nll[r] = math.log(total) - target_logit
        p_target = row[t] / total
        s = scale[r]
        for j in range(v):
            row[j] = (row[j] / total) * s                         # scale * softmax
        row[t] = (p_target - 1.0) * s                             # minus scale * onehot


@njit(parallel=True, **_kernel)
def _adam_update(param, grad, m, v, lr_t, beta_1, beta_2, epsilon):
    for k in prange(param.size):
        g = grad[k]
        m[k] += (g - m[k]) * (1.0 - beta_1)
        v[k] += (g * g - v[k]) * (1.0 - beta_2)
        param[k] -= lr_t * m[k] / (math.sqrt(v[k]) + epsilon)


def _is_hard(recurrent_activation: str) -> bool:
    if recurrent_activation not in RECURRENT_ACTIVATIONS:
        raise ValueError(f"unknown recurrent_activation {recurrent_activation!r}; "
                         f"use one of {RECURRENT_ACTIVATIONS}")
    return recurrent_activation == "hard_sigmoid"


class NumbaBackend(NumpyBackend):
    """NumPy arrays; kernels compiled with Numba (see the reference for their contracts)."""

    name = "numba"

    def lstm_cell_forward(self, gates, c_prev, c_out, h_out, recurrent_activation="sigmoid"):
        _lstm_cell_forward(gates, c_prev, c_out, h_out, _is_hard(recurrent_activation))

    def lstm_cell_backward(self, dh, dc, gates, c_prev, c, dgates_out,
                           recurrent_activation="sigmoid"):
        dc_prev = np.empty_like(c)
        _lstm_cell_backward(dh, dc, gates, c_prev, c, dgates_out, dc_prev,
                            _is_hard(recurrent_activation))
        return dc_prev

    def embedding_backward(self, ids, dy, num_rows):
        dW = np.zeros((num_rows, dy.shape[1]), dtype=dy.dtype)
        _embedding_backward(ids, dy, dW)
        return dW

    def softmax_cross_entropy(self, logits, targets, scale):
        nll = np.empty(logits.shape[0], dtype=logits.dtype)
        _softmax_cross_entropy(logits, targets, scale, nll)
        return nll

    def adam_update(self, param, grad, m, v, lr_t, beta_1, beta_2, epsilon):
        _adam_update(param.reshape(-1), grad.reshape(-1), m.reshape(-1), v.reshape(-1),
                     lr_t, beta_1, beta_2, epsilon)
