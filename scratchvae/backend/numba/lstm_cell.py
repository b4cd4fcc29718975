"""The LSTM cell and the fused LSTM step, compiled: parallel and serial variants.

Contract (gate order i, f, g, o; r the recurrent activation, ``hard`` True for
hard_sigmoid):

    cell_forward   gates (B, 4U) in: z, out: [r(z_i), r(z_f), tanh(z_g), r(z_o)];
                   c = f c_prev + i g;  h = o tanh(c)
    cell_backward  dz (B, 4U) and dc_prev (B, U) from dh, dc and the forward's gates, c_prev, c
    step_forward   z = gates + h_prev Wh (the recurrent product), then cell_forward
    step_backward  cell_backward, then dh_prev = dz Wh^T
    carry_padding, pass_padding   the padding rows (mask False) of a step, after it: the state
                   carried over forward; dz = 0 and dh, dc passed straight through backward

Numpy reference: ``NumpyBackend.lstm_cell_forward``, ``lstm_cell_backward``,
``lstm_step_forward`` and ``lstm_step_backward``, the same formulas in the same order:
agreement to 1e-12 in float64 (tests/test_step_kernels.py, tests/test_backends_agree.py).

The shape, and the measurements behind it:

* Threads split a step by units: each owns a range j0 <= j < j1, computes its units' four
  gate columns of the product and runs their cells, which need nothing from the other
  ranges, so a forward step is one parallel region (the backward needs every unit's dz
  before its product: two).  Per step, float32, B 10, U 500, best of 500: one thread
  forward 396 -> 257 us and backward 395 -> 288 us against BLAS plus the cell; two
  threads forward 136 us, backward 139 us.
* A step is split only when its product has at least ``PARALLEL_FLOPS`` flops; smaller
  ones, and every step inside ``backend.concurrently`` with one thread per call, run the
  serial variants on the calling thread, without the GIL.
* The cells are separate functions, not inlined: inlined into a prange body, their loops
  kept numba from running the prange's iterations in parallel.
* The serial and parallel variants are separate Python functions: one function compiled
  twice shares numba's on-disk cache entry (keyed by qualname), and a process could then
  load the serial machine code for the parallel kernel.
* The activation branch sits outside the loops (:func:`activate`), so each loop vectorizes.
"""

from __future__ import annotations

from numba import njit, prange

from .. import gates as _gates
from .options import KERNEL_OPTIONS
from .recurrent_product import add_matmul_columns
from .vector_math import hard_sigmoid, sigmoid, tanh

PARALLEL_FLOPS = 2_000_000  # a step's product must be this large to be split across threads

split_gates = njit(cache=True, inline="always")(_gates.split_gates)  # the numpy reference's, compiled


@njit(cache=True, inline="always")
def activate(z, hard):
    """z = r(z) in place, r the recurrent activation (the branch outside the loops, so each vectorizes)."""
    if hard:
        for j in range(z.size):
            z[j] = hard_sigmoid(z[j])
    else:
        for j in range(z.size):
            z[j] = sigmoid(z[j])


@njit(cache=True, inline="always")
def times_derivative(dz, y, hard):
    """dz *= r'(z), written with the activation's output y = r(z)."""
    if hard:
        for j in range(dz.size):
            dz[j] *= 0.2 if 0.0 < y[j] < 1.0 else 0.0  # slope 0.2 inside the ramp
    else:
        for j in range(dz.size):
            dz[j] *= y[j] * (1.0 - y[j])  # sigma' = sigma (1 - sigma)


# ---------------------------------------------------------------------- the cell
@njit(**KERNEL_OPTIONS)
def cell_forward(gates, c_prev, c_out, h_out, j0, j1, hard):
    """The cell forward on units j0 <= j < j1 of every row."""
    for b in range(c_prev.shape[0]):
        i, f, g, o = split_gates(gates[b], j0, j1)
        activate(i, hard)
        activate(f, hard)
        activate(o, hard)
        cp, c, h = c_prev[b, j0:j1], c_out[b, j0:j1], h_out[b, j0:j1]
        for j in range(j1 - j0):
            g[j] = tanh(g[j])
            c[j] = f[j] * cp[j] + i[j] * g[j]
            h[j] = o[j] * tanh(c[j])


@njit(**KERNEL_OPTIONS)
def cell_backward(dh, dc, gates, c_prev, c, dgates, dc_prev, j0, j1, hard):
    """The cell backward on units j0 <= j < j1 of every row."""
    for b in range(c.shape[0]):
        i, f, g, o = split_gates(gates[b], j0, j1)
        di, df, dg, do = split_gates(dgates[b], j0, j1)
        for j in range(j1 - j0):
            tc = tanh(c[b, j0 + j])
            dc_total = dc[b, j0 + j] + dh[b, j0 + j] * o[j] * (1.0 - tc * tc)  # h = o tanh(c)
            do[j] = dh[b, j0 + j] * tc  # each times r'(gate) below
            di[j] = dc_total * g[j]  # c = f c_prev + i g
            df[j] = dc_total * c_prev[b, j0 + j]
            dg[j] = dc_total * i[j] * (1.0 - g[j] * g[j])  # g = tanh(z_g)
            dc_prev[b, j0 + j] = dc_total * f[j]
        times_derivative(di, i, hard)
        times_derivative(df, f, hard)
        times_derivative(do, o, hard)


@njit(**KERNEL_OPTIONS)
def lstm_cell_forward(gates, c_prev, c_out, h_out, hard):
    cell_forward(gates, c_prev, c_out, h_out, 0, c_prev.shape[1], hard)


@njit(**KERNEL_OPTIONS)
def lstm_cell_backward(dh, dc, gates, c_prev, c, dgates, dc_prev, hard):
    cell_backward(dh, dc, gates, c_prev, c, dgates, dc_prev, 0, c.shape[1], hard)


# ---------------------------------------------------------------------- the step, by unit ranges
@njit(**KERNEL_OPTIONS)
def _forward_units(gates, h_prev, Wh, Wh_T, c_prev, c_out, h_out, hard, j0, j1, zero):
    """Units j0 <= j < j1 of a step: their four gate columns of z = gates + h_prev Wh,
    then their cells: a range of units needs nothing from the other ranges."""
    u = c_prev.shape[1]
    for k in range(4):
        add_matmul_columns(gates, h_prev, Wh, Wh_T, k * u + j0, k * u + j1, zero)
    cell_forward(gates, c_prev, c_out, h_out, j0, j1, hard)


@njit(**KERNEL_OPTIONS)
def _backward_product(dgates, Wh, Wh_T, dh_prev, j0, j1, zero):
    """Columns j0 <= j < j1 of dh_prev = dz Wh^T."""
    dh_prev[:, j0:j1] = 0
    add_matmul_columns(dh_prev, dgates, Wh_T, Wh, j0, j1, zero)


@njit(parallel=True, **KERNEL_OPTIONS)
def step_forward(gates, h_prev, Wh, Wh_T, c_prev, c_out, h_out, hard, parts, zero):
    """A step split into ``parts`` unit ranges, one per thread."""
    u = c_prev.shape[1]
    for p in prange(parts):
        _forward_units(gates, h_prev, Wh, Wh_T, c_prev, c_out, h_out, hard, u * p // parts, u * (p + 1) // parts, zero)


@njit(parallel=True, **KERNEL_OPTIONS)
def step_backward(dh, dc, gates, c_prev, c, dgates, dc_prev, Wh, Wh_T, dh_prev, hard, parts, zero):
    """The cell backward, then dh_prev = dz Wh^T (it needs every unit's dz), each split by units."""
    u = c.shape[1]
    for p in prange(parts):
        cell_backward(dh, dc, gates, c_prev, c, dgates, dc_prev, u * p // parts, u * (p + 1) // parts, hard)
    for p in prange(parts):
        _backward_product(dgates, Wh, Wh_T, dh_prev, u * p // parts, u * (p + 1) // parts, zero)


# The same steps on the calling thread alone, without the GIL: what ``backend.concurrently``
# runs when it gives each of its calls a single core, and what a step too small to share runs.
@njit(nogil=True, **KERNEL_OPTIONS)
def step_forward_serial(gates, h_prev, Wh, Wh_T, c_prev, c_out, h_out, hard, zero):
    _forward_units(gates, h_prev, Wh, Wh_T, c_prev, c_out, h_out, hard, 0, c_prev.shape[1], zero)


@njit(nogil=True, **KERNEL_OPTIONS)
def step_backward_serial(dh, dc, gates, c_prev, c, dgates, dc_prev, Wh, Wh_T, dh_prev, hard, zero):
    u = c.shape[1]
    cell_backward(dh, dc, gates, c_prev, c, dgates, dc_prev, 0, u, hard)
    _backward_product(dgates, Wh, Wh_T, dh_prev, 0, u, zero)


# ---------------------------------------------------------------------- padding rows, after a step
# A row of a step depends on no other row (its product reads its own h or dz), so a padding row
# is computed like any other and then overwritten: the fused steps above stay as they are.
@njit(nogil=True, **KERNEL_OPTIONS)
def carry_padding(keep, h_prev, c_prev, h_out, c_out):
    """Rows b with keep[b] False: h_out = h_prev, c_out = c_prev (the state carried over)."""
    for b in range(keep.shape[0]):
        if not keep[b]:
            h_out[b, :] = h_prev[b, :]
            c_out[b, :] = c_prev[b, :]


@njit(nogil=True, **KERNEL_OPTIONS)
def pass_padding(keep, dh, dc, dgates, dh_prev, dc_prev):
    """Rows b with keep[b] False: dz = 0, dh_prev = dh, dc_prev = dc (the gradients passed through)."""
    for b in range(keep.shape[0]):
        if not keep[b]:
            dgates[b, :] = 0
            dh_prev[b, :] = dh[b, :]
            dc_prev[b, :] = dc[b, :]
