"""scratchvae: variational autoencoders for text and images, every backward pass by hand."""

import os

# OpenBLAS's worker threads spin for 2^28 cycles (~0.1 s) after each product before they
# sleep.  The numba backend alternates big BLAS products with its own threaded step
# kernels, so those spinning workers took the cores from the kernels: a training step
# of the IMDB seed preset went from 1.7 s to 2.5 s on 2 cores.  2^4 cycles lets them
# sleep at once.  It must be set before NumPy loads OpenBLAS, hence here; a value you set
# yourself is kept (see README, Speed).
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

__version__ = "0.1.0"
