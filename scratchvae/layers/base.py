"""The Layer protocol shared by every layer, loss and model.

A layer owns named parameters and their gradients and may own child layers.
``forward`` computes outputs and keeps what ``backward`` needs; ``backward`` takes the
gradient of the loss with respect to the outputs, *adds* the parameter gradients into
``self.grads`` and returns the gradient with respect to the inputs.  Gradients
accumulate, so call :meth:`zero_grad` before each step (as an optimiser does).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TypeAlias

import numpy as np
from numpy.typing import DTypeLike

from ..backend import NumpyBackend, get_backend

#: An array on a layer's backend: a numpy.ndarray (a cupy.ndarray, with the same interface, on CuPy).
Array: TypeAlias = np.ndarray


class Layer:
    """Base class: parameters, gradients and children, addressed by '/'-joined paths."""

    def __init__(
        self, *, backend: str | NumpyBackend = "numpy", dtype: DTypeLike = np.float32, name: str | None = None
    ) -> None:
        self.backend = get_backend(backend)
        self.xp = self.backend.xp
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, not {self.dtype}")
        self.name = name or type(self).__name__.lower()
        self.params: dict[str, Array] = {}
        self.grads: dict[str, Array] = {}
        self.children: dict[str, Layer] = {}

    # -------------------------------------------------------------- building
    def add_param(self, name: str, value: np.ndarray) -> Array:
        """Register a parameter from host data; its gradient starts at zero."""
        self.params[name] = self.backend.asarray(value, dtype=self.dtype)
        self.grads[name] = self.xp.zeros_like(self.params[name])
        return self.params[name]

    def add_child(self, name: str, layer: Layer) -> Layer:
        """Register ``layer`` as a child: its parameters appear under ``name/``."""
        self.children[name] = layer
        return layer

    # -------------------------------------------------------------- access
    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Array, Array]]:
        """Yield (path, parameter, gradient) for this layer and all its children."""
        for name, value in self.params.items():
            yield prefix + name, value, self.grads[name]
        for child_name, child in self.children.items():
            yield from child.named_parameters(prefix + child_name + "/")

    def parameters(self) -> dict[str, Array]:
        """{path: parameter array}, e.g. 'encoder/bilstm_0/forward_layer/kernel'."""
        return {path: p for path, p, _ in self.named_parameters()}

    def gradients(self) -> dict[str, Array]:
        """{path: gradient array}, aligned with :meth:`parameters`."""
        return {path: g for path, _, g in self.named_parameters()}

    def zero_grad(self) -> None:
        """Set every gradient of this layer and its children to zero (one kernel on a GPU)."""
        self.backend.zero_all([g for _, _, g in self.named_parameters()])

    def num_parameters(self) -> int:
        """The number of parameter entries, children included."""
        return sum(int(p.size) for _, p, _ in self.named_parameters())

    # -------------------------------------------------------------- state
    def state_dict(self) -> dict[str, np.ndarray]:
        """Parameters as host NumPy arrays, keyed by path."""
        return {path: self.backend.to_numpy(p) for path, p, _ in self.named_parameters()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Copy parameters in by path; names and shapes must match exactly."""
        params = self.parameters()
        missing, unexpected = params.keys() - state.keys(), state.keys() - params.keys()
        if missing or unexpected:
            raise ValueError(f"parameter names differ: missing {sorted(missing)}, unexpected {sorted(unexpected)}")
        for path, p in params.items():
            value = np.asarray(state[path])
            if value.shape != p.shape:
                raise ValueError(f"parameter {path!r} has shape {value.shape}, expected {p.shape}")
            p[...] = self.backend.asarray(value, dtype=self.dtype)
