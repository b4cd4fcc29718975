"""Elementwise activations, each with its derivative written in terms of its *output*.

Expressing f'(x) through y = f(x) means a layer only keeps y for its backward pass.

    linear        y = x                          dy/dx = 1
    relu          y = max(x, 0)                  dy/dx = [y > 0]
    elu           y = x if x > 0 else e^x - 1    dy/dx = 1 if y > 0 else y + 1
    tanh          y = tanh(x)                    dy/dx = 1 - y^2
    sigmoid       y = 1 / (1 + e^-x)             dy/dx = y (1 - y)
    hard_sigmoid  y = clip(0.2 x + 0.5, 0, 1)    dy/dx = 0.2 inside (0, 1), else 0   (Keras 2)
"""

from __future__ import annotations

from types import ModuleType

from .base import Array

ACTIVATIONS = ("linear", "relu", "elu", "tanh", "sigmoid", "hard_sigmoid")


def check_activation(name: str | None) -> str:
    """Normalise an activation name (None means linear); raise for unknown names."""
    name = name or "linear"
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")
    return name


def activation_forward(xp: ModuleType, name: str, x: Array) -> Array:
    """y = f(x); may overwrite x (callers pass a fresh pre-activation buffer)."""
    if name == "linear":
        return x
    if name == "relu":
        return xp.maximum(x, 0, out=x)
    if name == "elu":
        return xp.where(x > 0, x, xp.expm1(xp.minimum(x, 0)))
    if name == "tanh":
        return xp.tanh(x, out=x)
    if name == "sigmoid":
        return 0.5 * (xp.tanh(0.5 * x) + 1.0)  # = 1 / (1 + e^-x), with no overflow
    if name == "hard_sigmoid":
        return xp.clip(0.2 * x + 0.5, 0.0, 1.0)
    raise ValueError(f"unknown activation {name!r}")


def activation_backward(xp: ModuleType, name: str, y: Array, dy: Array) -> Array:
    """dx = dy * f'(x), with f' taken from the output y (see the table above)."""
    if name == "linear":
        return dy
    if name == "relu":
        return dy * (y > 0)
    if name == "elu":
        return dy * xp.where(y > 0, 1.0, y + 1.0).astype(y.dtype)
    if name == "tanh":
        return dy * (1.0 - y * y)
    if name == "sigmoid":
        return dy * y * (1.0 - y)
    if name == "hard_sigmoid":
        return dy * (0.2 * ((y > 0) & (y < 1)))
    raise ValueError(f"unknown activation {name!r}")
