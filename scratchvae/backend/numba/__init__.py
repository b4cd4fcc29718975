"""The Numba backend: NumPy arrays, with the kernels compiled to fused CPU loops.

Each kernel does in one pass over memory what the NumPy reference does in several array
expressions, and computes the same formulas in the same order, so the two agree to
rounding (tests hold them to 1e-12 in float64).  Kernels compile on first use for each
dtype and are cached on disk.  One topic a file, each opening with its contract, the
numpy reference it must equal and the measurements that chose its shape:

    options.py            the compile options every kernel shares
    vector_math.py        exp, tanh, sigmoid in plain arithmetic (so their loops vectorize)
    recurrent_product.py  the hand-tiled skinny product of one LSTM step, h Wh
    lstm_cell.py          the LSTM cell and the fused step, parallel and serial variants
    softmax.py            fused softmax + cross-entropy + gradient
    adam.py               the Adam update
    embedding.py          the embedding's scatter-add backward
    backend.py            NumbaBackend: the kernels behind the backend methods; thread policy

Editing a kernel: numba's on-disk cache checks only the file of the function it caches, so
a kernel that inlines a function from another file (every kernel calls vector_math) keeps
its old machine code until its own file changes.  After editing one file, clear the cache:
``find scratchvae -name '*.nb[ic]' -delete``.
"""

from __future__ import annotations

from .backend import NumbaBackend

__all__ = ["NumbaBackend"]
