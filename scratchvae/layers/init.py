"""Weight initialisers (Keras 3 defaults), drawn on the host from a NumPy Generator.

Drawing on the host makes every backend start from bit-identical weights for a seed.
"""

from __future__ import annotations

import numpy as np


def glorot_uniform(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """U(-l, l) with l = sqrt(6 / (fan_in + fan_out)): Dense and LSTM input kernels."""
    fan_in, fan_out = shape
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape)


def orthogonal(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """A (semi-)orthogonal matrix, from the QR of a normal matrix: LSTM recurrent kernels."""
    rows, cols = shape
    a = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))  # make the decomposition unique
    return q if rows >= cols else q.T


def uniform(rng: np.random.Generator, shape: tuple[int, ...], limit: float = 0.05) -> np.ndarray:
    """U(-limit, limit): Keras's Embedding default."""
    return rng.uniform(-limit, limit, size=shape)
