"""The Adam update, in place, one pass over the parameters (elements in parallel).

Contract: ``adam_update(param, grad, m, v, lr_t, beta_1, beta_2, epsilon)`` on flat (N,)
views: m += (g - m)(1 - b1); v += (g^2 - v)(1 - b2); p -= lr_t m / (sqrt(v) + eps), the
Keras form with the bias corrections already in lr_t.

Numpy reference: ``NumpyBackend.adam_update`` (the same three lines as array expressions,
which read and write every array three times over).
"""

from __future__ import annotations

import math

from numba import njit, prange

from .options import KERNEL_OPTIONS


@njit(**KERNEL_OPTIONS)
def _adam_element(param, grad, m, v, lr_t, beta_1, beta_2, epsilon, k):
    g = grad[k]
    m[k] += (g - m[k]) * (1.0 - beta_1)
    v[k] += (g * g - v[k]) * (1.0 - beta_2)
    param[k] -= lr_t * m[k] / (math.sqrt(v[k]) + epsilon)


@njit(parallel=True, **KERNEL_OPTIONS)
def adam_update(param, grad, m, v, lr_t, beta_1, beta_2, epsilon):
    for k in prange(param.size):
        _adam_element(param, grad, m, v, lr_t, beta_1, beta_2, epsilon, k)


@njit(nogil=True, **KERNEL_OPTIONS)
def adam_update_serial(param, grad, m, v, lr_t, beta_1, beta_2, epsilon):
    """The same update on the calling thread alone (no thread pool: see the numba backend's thread policy)."""
    for k in range(param.size):
        _adam_element(param, grad, m, v, lr_t, beta_1, beta_2, epsilon, k)
