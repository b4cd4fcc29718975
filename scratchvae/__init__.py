"""scratchvae: variational autoencoders for text and images, every backward pass by hand."""

import os

# OpenBLAS's worker threads spin for 2^28 cycles (~0.1 s) after each product before they
# sleep.  The numba backend alternates big BLAS products with its own threaded step
# kernels, so those spinning workers took the cores from the kernels: a training step
# of the IMDB seed preset went from 1.7 s to 2.5 s on 2 cores.  2^4 cycles lets them
# sleep at once.  It must be set before NumPy loads OpenBLAS, hence here; a value you set
# yourself is kept (see README, Speed).
#
# The same for GNU OpenMP, the runtime of numba's "omp" threading layer on Linux: after
# each parallel kernel its idle threads spin up to 300,000 rounds before they sleep,
# holding the core that the next BLAS product's second thread needs.  Full MNIST training
# steps in one process on 2 threads (issue 23), mean (median) over 1,200 steps: 4.5-19 ms
# (2.6-8 ms, a tail of 20-70 ms steps) with libgomp's default, 2.4-4.9 ms (2.4-4.8 ms,
# the 90th percentile within 1.3x of the median) at 1,000 rounds, whose tail was also the
# shortest of 300 / 1,000 / 3,000 / 10,000.  libgomp reads it when it loads, at numba's
# first parallel kernel; a value you set yourself is kept.
SPIN_LIMITS = {"OPENBLAS_THREAD_TIMEOUT": "4", "GOMP_SPINCOUNT": "1000"}
for _variable, _value in SPIN_LIMITS.items():
    os.environ.setdefault(_variable, _value)

__version__ = "0.1.0"
