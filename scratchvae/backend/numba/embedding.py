"""The embedding's backward: a scatter-add of output gradients into table rows.

Contract: ``embedding_backward(ids, dy, dW)`` with ids (N,) int, dy (N, D) and dW
(rows, D) zeroed by the caller: dW[ids[n]] += dy[n] for every n, in order.

Numpy reference: ``NumpyBackend.embedding_backward`` (``np.add.at``, which is unbuffered
and slow; this is one serial loop, since two rows of dy may add into the same row of dW).
"""

from __future__ import annotations

from numba import njit


@njit(cache=True)
def embedding_backward(ids, dy, dW):
    n, d = dy.shape
    for k in range(n):
        row = ids[k]
        for j in range(d):
            dW[row, j] += dy[k, j]
