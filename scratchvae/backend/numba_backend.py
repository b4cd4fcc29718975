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

import numba
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


# The cells are separate functions, not inlined: inlined into a prange body, their loops
# kept Numba from running the prange's iterations in parallel.
@njit(**_kernel)
def _cell_forward(gates, c_prev, c_out, h_out, j0, j1, hard):
    """lstm_cell_forward on units j0 <= j < j1 of every row."""
    u = c_prev.shape[1]
    for b in range(c_prev.shape[0]):
        _activate(gates[b, j0:j1], hard)                          # i
        _activate(gates[b, u + j0:u + j1], hard)                  # f
        _activate(gates[b, 3 * u + j0:3 * u + j1], hard)          # o
        i, f = gates[b, j0:j1], gates[b, u + j0:u + j1]
        g, o = gates[b, 2 * u + j0:2 * u + j1], gates[b, 3 * u + j0:3 * u + j1]
        cp, c, h = c_prev[b, j0:j1], c_out[b, j0:j1], h_out[b, j0:j1]
        for j in range(j1 - j0):
            g[j] = _tanh(g[j])
            c[j] = f[j] * cp[j] + i[j] * g[j]
            h[j] = o[j] * _tanh(c[j])


@njit(**_kernel)
def _cell_backward(dh, dc, gates, c_prev, c, dgates, dc_prev, j0, j1, hard):
    """lstm_cell_backward on units j0 <= j < j1 of every row."""
    u = c.shape[1]
    for b in range(c.shape[0]):
        i, f = gates[b, j0:j1], gates[b, u + j0:u + j1]
        g, o = gates[b, 2 * u + j0:2 * u + j1], gates[b, 3 * u + j0:3 * u + j1]
        di, df = dgates[b, j0:j1], dgates[b, u + j0:u + j1]
        dg, do = dgates[b, 2 * u + j0:2 * u + j1], dgates[b, 3 * u + j0:3 * u + j1]
        for j in range(j1 - j0):
            tc = _tanh(c[b, j0 + j])
            dc_total = dc[b, j0 + j] + dh[b, j0 + j] * o[j] * (1.0 - tc * tc)
            do[j] = dh[b, j0 + j] * tc                            # each times r'(gate) below
            di[j] = dc_total * g[j]
            df[j] = dc_total * c_prev[b, j0 + j]
            dg[j] = dc_total * i[j] * (1.0 - g[j] * g[j])
            dc_prev[b, j0 + j] = dc_total * f[j]
        _times_derivative(di, i, hard)
        _times_derivative(df, f, hard)
        _times_derivative(do, o, hard)


@njit(**_kernel)
def _lstm_cell_forward(gates, c_prev, c_out, h_out, hard):
    _cell_forward(gates, c_prev, c_out, h_out, 0, c_prev.shape[1], hard)


@njit(**_kernel)
def _lstm_cell_backward(dh, dc, gates, c_prev, c, dgates, dc_prev, hard):
    _cell_backward(dh, dc, gates, c_prev, c, dgates, dc_prev, 0, c.shape[1], hard)


# ---------------------------------------------------------------------- the recurrent product
# One step's product, (B, K) @ (K, 4U) with a batch of ~10, is a skinny GEMM that BLAS runs
# far below its peak: it repacks the whole (K, 4U) operand on every call.  Here every
# output is a dot product of two contiguous rows (a row of h and a row of U^T), computed
# in register tiles of 4 rows of M by up to 5 rows of a, so each loaded row serves 4 or 5
# products.  Threads share a step by output columns: a step is one parallel region.
# Sums are reassociated (vector partial sums), so they differ from BLAS's in rounding.

_DOT = dict(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})


@njit(**_DOT)
def _tile5(out, a, b, m0, m1, m2, m3, c, w, k_vec, zero):
    """out[b:b+5, c:c+w] += a[b:b+5, :k_vec] . (m0, m1, m2, m3)[:w, :k_vec]"""
    a0, a1, a2, a3, a4 = a[b], a[b + 1], a[b + 2], a[b + 3], a[b + 4]
    s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = s20 = s21 = s22 = s23 = zero
    s30 = s31 = s32 = s33 = s40 = s41 = s42 = s43 = zero
    for q in range(k_vec):
        x0, x1, x2, x3 = m0[q], m1[q], m2[q], m3[q]
        y = a0[q]; s00 += y * x0; s01 += y * x1; s02 += y * x2; s03 += y * x3  # noqa: E702
        y = a1[q]; s10 += y * x0; s11 += y * x1; s12 += y * x2; s13 += y * x3  # noqa: E702
        y = a2[q]; s20 += y * x0; s21 += y * x1; s22 += y * x2; s23 += y * x3  # noqa: E702
        y = a3[q]; s30 += y * x0; s31 += y * x1; s32 += y * x2; s33 += y * x3  # noqa: E702
        y = a4[q]; s40 += y * x0; s41 += y * x1; s42 += y * x2; s43 += y * x3  # noqa: E702
    _store(out, b, c, w, s00, s01, s02, s03)
    _store(out, b + 1, c, w, s10, s11, s12, s13)
    _store(out, b + 2, c, w, s20, s21, s22, s23)
    _store(out, b + 3, c, w, s30, s31, s32, s33)
    _store(out, b + 4, c, w, s40, s41, s42, s43)


@njit(**_DOT)
def _tile2(out, a, b, m0, m1, m2, m3, c, w, k_vec, zero):
    a0, a1 = a[b], a[b + 1]
    s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = zero
    for q in range(k_vec):
        x0, x1, x2, x3 = m0[q], m1[q], m2[q], m3[q]
        y = a0[q]; s00 += y * x0; s01 += y * x1; s02 += y * x2; s03 += y * x3  # noqa: E702
        y = a1[q]; s10 += y * x0; s11 += y * x1; s12 += y * x2; s13 += y * x3  # noqa: E702
    _store(out, b, c, w, s00, s01, s02, s03)
    _store(out, b + 1, c, w, s10, s11, s12, s13)


@njit(**_DOT)
def _tile1(out, a, b, m0, m1, m2, m3, c, w, k_vec, zero):
    a0 = a[b]
    s00 = s01 = s02 = s03 = zero
    for q in range(k_vec):
        y = a0[q]; s00 += y * m0[q]; s01 += y * m1[q]; s02 += y * m2[q]; s03 += y * m3[q]  # noqa: E702
    _store(out, b, c, w, s00, s01, s02, s03)


@njit(cache=True, inline="always")
def _store(out, b, c, w, s0, s1, s2, s3):
    """out[b, c:c+w] += (s0, s1, s2, s3)[:w]"""
    out[b, c] += s0
    if w > 1:
        out[b, c + 1] += s1
    if w > 2:
        out[b, c + 2] += s2
    if w > 3:
        out[b, c + 3] += s3


_VEC = 16      # float32 lanes of an AVX-512 register: the tiles' dots run over whole vectors


@njit(cache=True, error_model="numpy")
def _add_products(out, a, M, M_T, r0, r1, c0, zero):
    """out[b, c0 + r - r0] += a[b] . M[r]  for every row b of a and r0 <= r < r1.

    ``M_T`` is M^T, C-contiguous; ``zero`` is 0 in the dtype to accumulate in.  Rows of a
    go in tiles of 5, the rest in tiles of 2 and 1 (a tile of 4 measured no faster than
    5 + 2 at batch 16 or 32, so there is none).  The tiles take the dots' first k_vec = k - k % 16 terms; the
    last k % 16 terms, which would leave the vector loops for a scalar tail with 20 live
    sums (a step of 500 units ran 25% slower than one of 496), are added as rank-1
    updates from rows of M^T.
    """
    n, k = a.shape
    k_vec = k - k % _VEC
    for r in range(r0, r1, 4):
        w = min(4, r1 - r)                                        # M rows in this tile (repeats pad it)
        m0, m1, m2, m3 = M[r], M[r + min(1, w - 1)], M[r + min(2, w - 1)], M[r + min(3, w - 1)]
        c, b = c0 + r - r0, 0
        while n - b >= 5:
            _tile5(out, a, b, m0, m1, m2, m3, c, w, k_vec, zero)
            b += 5
        while n - b >= 2:
            _tile2(out, a, b, m0, m1, m2, m3, c, w, k_vec, zero)
            b += 2
        if n - b == 1:
            _tile1(out, a, b, m0, m1, m2, m3, c, w, k_vec, zero)
    for b in range(n):                                            # the tail: out += a[:, k_vec:] M^T[k_vec:]
        o = out[b, c0:c0 + r1 - r0]
        for q in range(k_vec, k):
            x, row = a[b, q], M_T[q, r0:r1]                       # slices: zero-based, so the loop vectorizes
            for i in range(r1 - r0):
                o[i] += x * row[i]


@njit(**_kernel)
def _forward_units(gates, h_prev, U, U_T, c_prev, c_out, h_out, hard, j0, j1, zero):
    """Units j0 <= j < j1 of a step: their four gate columns of z = gates + h_prev U (rows
    of U^T), then their cells: a range of units needs nothing from the other ranges."""
    u = c_prev.shape[1]
    for k in range(4):
        _add_products(gates, h_prev, U_T, U, k * u + j0, k * u + j1, k * u + j0, zero)
    _cell_forward(gates, c_prev, c_out, h_out, j0, j1, hard)


@njit(**_kernel)
def _backward_product(dgates, U, U_T, dh_prev, j0, j1, zero):
    """Columns j0 <= j < j1 of dh_prev = dz U^T (rows of U)."""
    dh_prev[:, j0:j1] = 0
    _add_products(dh_prev, dgates, U, U_T, j0, j1, j0, zero)


@njit(parallel=True, **_kernel)
def _step_forward(gates, h_prev, U, U_T, c_prev, c_out, h_out, hard, parts, zero):
    """A step split into ``parts`` unit ranges, one per thread."""
    u = c_prev.shape[1]
    for p in prange(parts):
        _forward_units(gates, h_prev, U, U_T, c_prev, c_out, h_out, hard,
                       u * p // parts, u * (p + 1) // parts, zero)


@njit(parallel=True, **_kernel)
def _step_backward(dh, dc, gates, c_prev, c, dgates, dc_prev, U, U_T, dh_prev, hard, parts, zero):
    """The cell backward, then dh_prev = dz U^T (it needs every unit's dz), each split by units."""
    u = c.shape[1]
    for p in prange(parts):
        _cell_backward(dh, dc, gates, c_prev, c, dgates, dc_prev, u * p // parts, u * (p + 1) // parts, hard)
    for p in prange(parts):
        _backward_product(dgates, U, U_T, dh_prev, u * p // parts, u * (p + 1) // parts, zero)


# The same steps on the calling thread alone, without the GIL: what :meth:`NumbaBackend.concurrently`
# runs when it gives each of its calls a single core.
@njit(nogil=True, **_kernel)
def _step_forward_serial(gates, h_prev, U, U_T, c_prev, c_out, h_out, hard, zero):
    _forward_units(gates, h_prev, U, U_T, c_prev, c_out, h_out, hard, 0, c_prev.shape[1], zero)


@njit(nogil=True, **_kernel)
def _step_backward_serial(dh, dc, gates, c_prev, c, dgates, dc_prev, U, U_T, dh_prev, hard, zero):
    u = c.shape[1]
    _cell_backward(dh, dc, gates, c_prev, c, dgates, dc_prev, 0, u, hard)
    _backward_product(dgates, U, U_T, dh_prev, 0, u, zero)


_PARALLEL_FLOPS = 2_000_000      # a step's product must be this large to be split across threads


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

    def __init__(self):
        super().__init__()
        self._threads: int | None = None   # numba's thread count, read once (see _all_threads)

    def lstm_cell_forward(self, gates, c_prev, c_out, h_out, recurrent_activation="sigmoid"):
        _lstm_cell_forward(gates, c_prev, c_out, h_out, _is_hard(recurrent_activation))

    def lstm_cell_backward(self, dh, dc, gates, c_prev, c, dgates_out,
                           recurrent_activation="sigmoid"):
        dc_prev = np.empty_like(c)
        _lstm_cell_backward(dh, dc, gates, c_prev, c, dgates_out, dc_prev,
                            _is_hard(recurrent_activation))
        return dc_prev

    def lstm_step_forward(self, gates, h_prev, U, U_T, c_prev, c_out, h_out,
                          recurrent_activation="sigmoid"):
        hard, zero, parts = _is_hard(recurrent_activation), gates.dtype.type(0), self._parts(h_prev, U)
        if parts == 1:
            _step_forward_serial(gates, h_prev, U, U_T, c_prev, c_out, h_out, hard, zero)
        else:
            _step_forward(gates, h_prev, U, U_T, c_prev, c_out, h_out, hard, parts, zero)

    def lstm_step_backward(self, dh, dc, gates, c_prev, c, dgates_out, U, U_T, dh_prev_out,
                           recurrent_activation="sigmoid"):
        hard, zero, parts = _is_hard(recurrent_activation), gates.dtype.type(0), self._parts(dh, U)
        dc_prev = np.empty_like(c)
        if parts == 1:
            _step_backward_serial(dh, dc, gates, c_prev, c, dgates_out, dc_prev, U, U_T, dh_prev_out,
                                  hard, zero)
        else:
            _step_backward(dh, dc, gates, c_prev, c, dgates_out, dc_prev, U, U_T, dh_prev_out,
                           hard, parts, zero)
        return dc_prev

    def _all_threads(self) -> int:
        """numba's thread count, read once (``numba.get_num_threads`` costs ~20 us a call, and
        _parts asks every step; a later ``numba.set_num_threads`` changes how work is shared,
        not the results)."""
        if self._threads is None:
            self._threads = numba.get_num_threads()
        return self._threads

    def _parts(self, h, U):
        """Unit ranges a step is split into: one per thread, or 1 for a step too small to share
        (and inside :meth:`concurrently` with one thread per call: the serial kernels)."""
        return self._thread_count() if 2 * h.shape[0] * U.size >= _PARALLEL_FLOPS else 1

    def _can_share(self, share: int) -> bool:
        """A share of more than one thread launches parallel kernels from two threads at once,
        which numba's omp and tbb threading layers allow and its workqueue layer does not."""
        if share == 1:
            return True
        try:
            return numba.threading_layer() in ("omp", "tbb")
        except ValueError:                  # no parallel kernel has run yet: no layer chosen
            return False

    def _with_threads(self, share: int, call):
        if share == 1:
            return super()._with_threads(share, call)
        before = numba.get_num_threads()
        numba.set_num_threads(share)        # thread-local in numba
        try:
            return super()._with_threads(share, call)
        finally:
            numba.set_num_threads(before)

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
