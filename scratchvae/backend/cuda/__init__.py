"""The CUDA kernels of the cupy backend, and why they are written the way they are.

Decision: the kernels are CUDA C, compiled by CuPy (``cupy.RawModule``, NVRTC) and launched by CuPy;
the test suite compiles *the same source text* with the host C++ compiler and runs every thread of
the grid on the CPU (:mod:`scratchvae.testing.cuda_on_cpu`), comparing the results with the NumPy
reference in float64.  So CI executes the GPU kernels' own code, not a copy of their arithmetic.

Weighed against it: numba.cuda kernels (``@cuda.jit``), which the Numba CUDA simulator
(``NUMBA_ENABLE_CUDASIM=1``; numba 0.68's built-in one works) runs on the CPU.  On a GPU each
numba-cuda launch goes through its Python dispatcher (argument typing, ``__cuda_array_interface__``
per array) on top of the driver's launch, where CuPy's ``RawKernel`` path is a thin Cython call
(about 10 us a launch); not measured here (no GPU), but this backend is launch-bound (launches
per LSTM time step and direction), so the cheaper path matters.  The way round it, numba's PTX
launched by ``cupy.RawKernel``, needs numba's kernel ABI (each array expanded into 5 + 2 ndim
parameters) rebuilt by hand, and numba-cuda would be one more GPU dependency.  The simulator
also runs each thread as a Python thread: tiny tests only.  CUDA C costs no extra dependency,
launches at CuPy's cost and, compiled natively on the CPU, runs at full size in tests and in
``bench/run.py --launches``.

The rule the CPU build enforces: a kernel's threads must not cooperate (no ``__shared__``,
``__syncthreads``, warp shuffles), as threads there run one after another; such a kernel does not
compile in CI.  Floating point: ``--fmad=false`` on the GPU, ``-ffp-contract=off`` on the CPU, so
both round each operation as NumPy does (the Adam update is bit-identical to the reference); the
GPU's ``exp``/``tanh`` differ from glibc's by an ulp or so, hence tolerances in float32.
"""

from .kernels import KERNELS, NVRTC_OPTIONS, SOURCE, grid_for

__all__ = ["KERNELS", "NVRTC_OPTIONS", "SOURCE", "grid_for"]
