"""Checks the model configs share in ``__post_init__``: one-line ValueErrors naming the field at fault."""

from __future__ import annotations

from dataclasses import fields

import numpy as np


def check_positive_ints(config) -> None:
    """ValueError unless every ``int`` field of the dataclass ``config`` holds an integer >= 1."""
    for f in fields(config):
        value = getattr(config, f.name)
        if f.type == "int" and (not isinstance(value, (int, np.integer)) or value < 1):
            raise ValueError(f"{f.name} must be a positive integer, got {value!r}")


def check_non_negative(config, *names: str) -> None:
    """ValueError unless each named field of ``config`` is >= 0 (NaN fails too)."""
    for name in names:
        if not getattr(config, name) >= 0:
            raise ValueError(f"{name} must be >= 0, got {getattr(config, name)}")
