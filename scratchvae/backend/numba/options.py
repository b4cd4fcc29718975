"""The compile options shared by the numba kernels.

Every kernel is cached on disk (``cache=True``: compiled once per dtype, then loaded) and
compiled with ``error_model="numpy"``: x / 0 gives inf as in NumPy instead of raising,
so a division does not carry a zero check that keeps LLVM from vectorizing its loop.
"""

from __future__ import annotations

KERNEL_OPTIONS = dict(cache=True, error_model="numpy")

# The dot products of the recurrent product may also be reassociated (vector partial sums)
# and contracted (fused multiply-add): they then differ from BLAS's sums in rounding only.
DOT_OPTIONS = dict(KERNEL_OPTIONS, fastmath={"reassoc", "contract"})
