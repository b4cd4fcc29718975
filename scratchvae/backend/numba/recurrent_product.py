"""The recurrent product of one LSTM step: a skinny matrix product, hand-tiled.

Contract: ``add_matmul_columns(out, a, b, b_T, c0, c1, zero)`` adds columns c0 <= c < c1
of a @ b into out:

    out[:, c0:c1] += a @ b[:, c0:c1]        a (N, K), b (K, M), out (N, M)

``b_T`` is b^T as a C-contiguous array (M, K) and ``zero`` is 0 in the dtype to sum in.
The forward step calls it with b = Wh (z += h_prev Wh), the backward step with b = Wh^T
(dh_prev = dz Wh^T); the caller passes both layouts, as the step kernels receive them.

Numpy reference: ``out[:, c0:c1] += a @ b[:, c0:c1]`` (see ``NumpyBackend.lstm_step_forward``
and ``lstm_step_backward``).  The sums are reassociated (vector partial sums), so they
differ from BLAS's in rounding only: the step kernels agree with the reference to 1e-12 in
float64 (tests/test_step_kernels.py reaches every tile, the tail and the threaded split).

Why not BLAS: one step's product, (B, U) @ (U, 4U) with a batch of ~10, is a skinny GEMM
that BLAS runs far below its peak, because it repacks the whole (U, 4U) operand on every
call: (10, 500) @ (500, 2000) ran at ~58 GFLOP/s on one core with OpenBLAS (~88 on two).
Here every output is a dot product of two contiguous rows (a row of a and a row of b^T),
computed in register tiles of 5 rows of a by 4 rows of b^T, so each loaded row serves 4 or
5 products: ~85-100 GFLOP/s on one core, ~170-200 on two.  The shape was chosen by
measurement:

* Rows of a go in tiles of 5 (a batch of 10 is two tiles with no remainder: 20 products
  per 9 loads), then 2 and 1.  A tile of 4 measured the same as none (fwd + bwd step,
  2 threads: B32 U128 120-126 vs 124-133 us, B32 U191 249-254 vs 244-280, B16 U256
  161-173 vs 167-170, B10 U500 293-302 vs 293-299), so there is none.
* The tiles take the dots' first k_vec = K - K % 16 terms (whole AVX-512 float32
  vectors).  The last K % 16 terms, which would leave the vector loops for a scalar tail
  with 20 live sums (a step of 500 units ran 25% slower than one of 496: 75 vs 58
  GFLOP/s), are added as rank-1 updates from rows of b.
"""

from __future__ import annotations

from numba import njit

from .options import DOT_OPTIONS, KERNEL_OPTIONS

VECTOR_WIDTH = 16  # float32 lanes of an AVX-512 register: the tiles' dots run over whole vectors


@njit(**DOT_OPTIONS)
def _tile5(out, a, r, b0, b1, b2, b3, c, w, k_vec, zero):
    """out[r:r+5, c:c+w] += a[r:r+5, :k_vec] . (b0, b1, b2, b3)[:w, :k_vec]"""
    a0, a1, a2, a3, a4 = a[r], a[r + 1], a[r + 2], a[r + 3], a[r + 4]
    s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = s20 = s21 = s22 = s23 = zero
    s30 = s31 = s32 = s33 = s40 = s41 = s42 = s43 = zero
    for q in range(k_vec):
        x0, x1, x2, x3 = b0[q], b1[q], b2[q], b3[q]
        y = a0[q]
        s00 += y * x0
        s01 += y * x1
        s02 += y * x2
        s03 += y * x3  # noqa: E702
        y = a1[q]
        s10 += y * x0
        s11 += y * x1
        s12 += y * x2
        s13 += y * x3  # noqa: E702
        y = a2[q]
        s20 += y * x0
        s21 += y * x1
        s22 += y * x2
        s23 += y * x3  # noqa: E702
        y = a3[q]
        s30 += y * x0
        s31 += y * x1
        s32 += y * x2
        s33 += y * x3  # noqa: E702
        y = a4[q]
        s40 += y * x0
        s41 += y * x1
        s42 += y * x2
        s43 += y * x3  # noqa: E702
    _store(out, r, c, w, s00, s01, s02, s03)
    _store(out, r + 1, c, w, s10, s11, s12, s13)
    _store(out, r + 2, c, w, s20, s21, s22, s23)
    _store(out, r + 3, c, w, s30, s31, s32, s33)
    _store(out, r + 4, c, w, s40, s41, s42, s43)


@njit(**DOT_OPTIONS)
def _tile2(out, a, r, b0, b1, b2, b3, c, w, k_vec, zero):
    """out[r:r+2, c:c+w] += a[r:r+2, :k_vec] . (b0, b1, b2, b3)[:w, :k_vec]"""
    a0, a1 = a[r], a[r + 1]
    s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = zero
    for q in range(k_vec):
        x0, x1, x2, x3 = b0[q], b1[q], b2[q], b3[q]
        y = a0[q]
        s00 += y * x0
        s01 += y * x1
        s02 += y * x2
        s03 += y * x3  # noqa: E702
        y = a1[q]
        s10 += y * x0
        s11 += y * x1
        s12 += y * x2
        s13 += y * x3  # noqa: E702
    _store(out, r, c, w, s00, s01, s02, s03)
    _store(out, r + 1, c, w, s10, s11, s12, s13)


@njit(**DOT_OPTIONS)
def _tile1(out, a, r, b0, b1, b2, b3, c, w, k_vec, zero):
    """out[r, c:c+w] += a[r, :k_vec] . (b0, b1, b2, b3)[:w, :k_vec]"""
    a0 = a[r]
    s00 = s01 = s02 = s03 = zero
    for q in range(k_vec):
        y = a0[q]
        s00 += y * b0[q]
        s01 += y * b1[q]
        s02 += y * b2[q]
        s03 += y * b3[q]  # noqa: E702
    _store(out, r, c, w, s00, s01, s02, s03)


@njit(cache=True, inline="always")
def _store(out, r, c, w, s0, s1, s2, s3):
    """out[r, c:c+w] += (s0, s1, s2, s3)[:w]"""
    out[r, c] += s0
    if w > 1:
        out[r, c + 1] += s1
    if w > 2:
        out[r, c + 2] += s2
    if w > 3:
        out[r, c + 3] += s3


@njit(**KERNEL_OPTIONS)
def add_matmul_columns(out, a, b, b_T, c0, c1, zero):
    """out[:, c0:c1] += a @ b[:, c0:c1]; b_T is b^T, C-contiguous (see the module)."""
    n, k = a.shape
    k_vec = k - k % VECTOR_WIDTH
    for c in range(c0, c1, 4):  # 4 columns of b (rows of b^T) a tile
        w = min(4, c1 - c)  # columns in this tile (repeats pad it)
        b0, b1, b2, b3 = b_T[c], b_T[c + min(1, w - 1)], b_T[c + min(2, w - 1)], b_T[c + min(3, w - 1)]
        r = 0
        while n - r >= 5:
            _tile5(out, a, r, b0, b1, b2, b3, c, w, k_vec, zero)
            r += 5
        while n - r >= 2:
            _tile2(out, a, r, b0, b1, b2, b3, c, w, k_vec, zero)
            r += 2
        if n - r == 1:
            _tile1(out, a, r, b0, b1, b2, b3, c, w, k_vec, zero)
    for r in range(n):  # the tail: out += a[:, k_vec:] b[k_vec:]
        o = out[r, c0:c1]
        for q in range(k_vec, k):
            x, row = a[r, q], b[q, c0:c1]  # slices: zero-based, so the loop vectorizes
            for i in range(c1 - c0):
                o[i] += x * row[i]
