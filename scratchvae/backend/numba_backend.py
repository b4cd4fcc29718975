"""The Numba backend: NumPy arrays, with the kernels compiled to fused CPU loops.

Each kernel does in one pass over memory what the NumPy reference does in several
array expressions, and computes the same formulas in the same order, so the two agree
to rounding (tests hold them to 1e-12 in float64).  Row-independent kernels run their
rows in parallel (``prange``); the rest stay serial where threads would not pay.
Kernels compile on first use for each dtype and are cached on disk.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .numpy_backend import NumpyBackend, RECURRENT_ACTIVATIONS


@njit(cache=True, inline="always")
def _act(x, hard):
    if hard:
        return min(max(0.2 * x + 0.5, 0.0), 1.0)
    return 1.0 / (1.0 + math.exp(-x))


@njit(cache=True, inline="always")
def _act_grad(y, hard):
    if hard:
        return 0.2 if 0.0 < y < 1.0 else 0.0
    return y * (1.0 - y)


@njit(cache=True)
def _lstm_cell_forward(gates, c_prev, c_out, h_out, hard):
    n, u = c_prev.shape
    for b in range(n):
        for j in range(u):
            i = _act(gates[b, j], hard)
            f = _act(gates[b, u + j], hard)
            g = math.tanh(gates[b, 2 * u + j])
            o = _act(gates[b, 3 * u + j], hard)
            gates[b, j] = i
            gates[b, u + j] = f
            gates[b, 2 * u + j] = g
            gates[b, 3 * u + j] = o
            c = f * c_prev[b, j] + i * g
            c_out[b, j] = c
            h_out[b, j] = o * math.tanh(c)


@njit(cache=True)
def _lstm_cell_backward(dh, dc, gates, c_prev, c, dgates, dc_prev, hard):
    n, u = c.shape
    for b in range(n):
        for j in range(u):
            i = gates[b, j]
            f = gates[b, u + j]
            g = gates[b, 2 * u + j]
            o = gates[b, 3 * u + j]
            tc = math.tanh(c[b, j])
            dc_total = dc[b, j] + dh[b, j] * o * (1.0 - tc * tc)
            dgates[b, j] = dc_total * g * _act_grad(i, hard)
            dgates[b, u + j] = dc_total * c_prev[b, j] * _act_grad(f, hard)
            dgates[b, 2 * u + j] = dc_total * i * (1.0 - g * g)
            dgates[b, 3 * u + j] = dh[b, j] * tc * _act_grad(o, hard)
            dc_prev[b, j] = dc_total * f


@njit(cache=True)
def _embedding_backward(ids, dy, dW):
    n, d = dy.shape
    for k in range(n):
        row = ids[k]
        for j in range(d):
            dW[row, j] += dy[k, j]


@njit(cache=True, parallel=True)
def _softmax_cross_entropy(logits, targets, scale, nll):
    n, v = logits.shape
    for r in prange(n):
        shift = logits[r, 0]
        for j in range(1, v):
            shift = max(shift, logits[r, j])
        t = targets[r]
        target_logit = logits[r, t] - shift
        total = 0.0
        for j in range(v):
            e = math.exp(logits[r, j] - shift)
            logits[r, j] = e
            total += e
        nll[r] = math.log(total) - target_logit
        s = scale[r]
        for j in range(v):
            logits[r, j] = s * (logits[r, j] / total)
        logits[r, t] -= s


@njit(cache=True, parallel=True)
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
