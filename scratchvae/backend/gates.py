"""What every backend shares about the LSTM's gates: the recurrent activations and their names."""

from __future__ import annotations

RECURRENT_ACTIVATIONS = ("sigmoid", "hard_sigmoid")


def is_hard_sigmoid(recurrent_activation: str) -> bool:
    """True for "hard_sigmoid", False for "sigmoid"; any other name is a ValueError."""
    if recurrent_activation not in RECURRENT_ACTIVATIONS:
        raise ValueError(f"unknown recurrent_activation {recurrent_activation!r}; "
                         f"use one of {RECURRENT_ACTIVATIONS}")
    return recurrent_activation == "hard_sigmoid"
