"""Dense: y = f(x W + b), applied to the last axis (per time step for (B, T, D) inputs)."""

from __future__ import annotations

import numpy as np

from .activations import activation_backward, activation_forward, check_activation
from .base import Array, Layer
from .init import glorot_uniform


class Dense(Layer):
    """Fully connected layer with an optional activation (Keras ``Dense``).

    forward:  x (..., D_in) -> y (..., D_out)    y = f(x W + b)
    backward: dy (..., D_out) -> dx (..., D_in)
        dz = dy * f'(z)      dW += x^T dz      db += sum(dz)      dx = dz W^T
        ``input_grad=False`` skips dx (returns None): for a layer that reads the data itself,
        whose gradient nobody needs, it saves a GEMM as large as the weight gradient's.
    A (B, T, D_in) input is flattened to (B*T, D_in), so all time steps are one GEMM
    (Keras's ``TimeDistributed(Dense)``).
    Parameters: kernel (D_in, D_out), bias (D_out,).
    """

    def __init__(
        self,
        input_dim: int,
        units: int,
        activation: str | None = None,
        *,
        rng: np.random.Generator | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        rng = rng if rng is not None else np.random.default_rng()
        self.input_dim, self.units = input_dim, units
        self.activation = check_activation(activation)
        self.add_param("kernel", glorot_uniform(rng, (input_dim, units)))
        self.add_param("bias", np.zeros(units))

    def forward(self, x: Array) -> Array:
        self.x = x
        x2 = x.reshape(-1, self.input_dim)
        z = x2 @ self.params["kernel"]
        z += self.params["bias"]
        self.y = activation_forward(self.xp, self.activation, z).reshape(*x.shape[:-1], self.units)
        return self.y

    def backward(self, dy: Array, *, input_grad: bool = True) -> Array | None:
        dz = activation_backward(self.xp, self.activation, self.y, dy).reshape(-1, self.units)
        x2 = self.x.reshape(-1, self.input_dim)
        self.grads["kernel"] += x2.T @ dz
        self.grads["bias"] += dz.sum(axis=0)
        if not input_grad:
            return None
        return (dz @ self.params["kernel"].T).reshape(self.x.shape)
