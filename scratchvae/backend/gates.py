"""What every backend shares about the LSTM's gates: the recurrent activations, and how z splits into gates."""

from __future__ import annotations

RECURRENT_ACTIVATIONS = ("sigmoid", "hard_sigmoid")


def is_hard_sigmoid(recurrent_activation: str) -> bool:
    """True for "hard_sigmoid", False for "sigmoid"; any other name is a ValueError."""
    if recurrent_activation not in RECURRENT_ACTIVATIONS:
        raise ValueError(f"unknown recurrent_activation {recurrent_activation!r}; use one of {RECURRENT_ACTIVATIONS}")
    return recurrent_activation == "hard_sigmoid"


def split_gates(z, j0: int, j1: int):
    """The four gate blocks of z (..., 4U), Keras order (i, f, g, o), as views: units j0 <= j < j1 of each.

    Column k U + j of z belongs to gate k and unit j.  The same function slices the gates in
    the numpy reference (``split_gates(gates, 0, U)``, rows (B, U) each) and, compiled, in the
    numba kernels (one row and one range of units at a time).
    """
    u = z.shape[-1] // 4
    return z[..., j0:j1], z[..., u + j0 : u + j1], z[..., 2 * u + j0 : 2 * u + j1], z[..., 3 * u + j0 : 3 * u + j1]
