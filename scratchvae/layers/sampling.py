"""The reparameterisation trick: a Gaussian sample that gradients can flow through."""

from __future__ import annotations

from .base import Array, Layer


class GaussianSample(Layer):
    """z = mean + exp(logvar / 2) * eps, with the noise eps ~ N(0, s^2) an explicit input.

    forward:  mean, logvar, eps (B, Z) -> z (B, Z)
    backward: dz (B, Z) -> (dmean, dlogvar)
        dz/dmean = 1      dz/dlogvar = eps * exp(logvar / 2) / 2
    Making eps an input keeps the layer deterministic: tests and Keras parity feed the
    same noise, and the sampling distribution lives in one visible place.
    """

    def forward(self, mean: Array, logvar: Array, eps: Array) -> Array:
        self.eps = eps
        self.std = self.xp.exp(0.5 * logvar)
        return mean + self.std * eps

    def backward(self, dz: Array) -> tuple[Array, Array]:
        return dz, 0.5 * dz * self.eps * self.std
