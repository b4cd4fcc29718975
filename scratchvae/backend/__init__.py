"""Backends: where arrays live and how the hot kernels run.

>>> from scratchvae.backend import get_backend
>>> backend = get_backend("numba")
>>> backend.xp        # the array module (numpy or cupy)
>>> backend.lstm_cell_forward(...)   # one of the fused kernels

``numpy`` is the readable reference (numpy_backend.py), ``numba`` compiles the kernels for
the CPU (the numba/ package, one kernel topic a file) and ``cupy`` runs them on a CUDA GPU
(cupy_backend.py).  All three compute the same formulas.  gates.py holds what they share
about the LSTM's gates; threads.py how the CPU backends share threads between calls.
"""

from __future__ import annotations

from typing import Any

from .errors import BackendError
from .numpy_backend import NumpyBackend

BACKENDS = ("numpy", "numba", "cupy")
Array = Any  # an array of the backend's array module: a numpy.ndarray, or a cupy.ndarray on the GPU
_cache: dict[str, NumpyBackend] = {}


def get_backend(name: str | NumpyBackend = "numpy") -> NumpyBackend:
    """The backend called ``name`` (one instance per name); a backend object passes through."""
    if isinstance(name, NumpyBackend):
        return name
    if name not in _cache:
        if name == "numpy":
            _cache[name] = NumpyBackend()
        elif name == "numba":
            from .numba import NumbaBackend

            _cache[name] = NumbaBackend()
        elif name == "cupy":
            from .cupy_backend import CupyBackend

            _cache[name] = CupyBackend()
        else:
            raise BackendError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    return _cache[name]


def available_backends() -> list[str]:
    """The backends that work on this machine (cupy only with CuPy and a GPU)."""
    names = []
    for name in BACKENDS:
        try:
            get_backend(name)
        except BackendError:
            continue
        names.append(name)
    return names


__all__ = ["Array", "BACKENDS", "BackendError", "NumpyBackend", "available_backends", "get_backend"]
