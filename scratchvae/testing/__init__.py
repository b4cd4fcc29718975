"""Test tools that ship with the package: a strict CPU stand-in for CuPy, and CUDA kernels run on the CPU.

>>> from scratchvae.testing import fake_cupy
>>> backend = fake_cupy.cupy_backend()          # the cupy backend, on the stand-in
>>> fake_cupy.counters.reset(); ...; fake_cupy.counters.launches

``python -m scratchvae.testing.with_fake_cupy scratchvae.train imdb --backend cupy ...`` runs a command
with the stand-in imported as ``cupy``.
"""
