"""Add a layer with a hand-written backward pass, and let gradcheck verify it.

    python examples/custom_layer.py

(from the repository root after ``pip install .``, or with ``PYTHONPATH=.``)

The layer is layer normalisation (Ba et al. 2016): each row of x is normalised over
its last axis, then scaled and shifted.  Three steps, the same for any new layer:

1. subclass :class:`scratchvae.layers.Layer`: ``add_param`` in ``__init__``; ``forward``
   keeps what ``backward`` needs; ``backward(dy)`` *adds* the parameter gradients into
   ``self.grads`` and returns dx;
2. register a gradient check: a builder ``(backend, dtype, rng) -> Problem``, whose
   Problem is a scalar L = sum(y * R) with its analytic gradients;
3. run it: :func:`scratchvae.gradcheck.run_checks` compares every gradient with central
   finite differences.

To see the check earn its keep, the script also checks a backward pass with one term
of the derivative left out, and shows it fail.

The derivative of dx, for one row (D entries), with s = sqrt(var + eps) and
xhat = (x - mu) / s.  Write g = dL/dxhat = dy * gamma.  Since mu and s depend on every
x_j of the row,

    dxhat_i/dx_j = (delta_ij - 1/D) / s - xhat_i xhat_j / (D s)

(d mu/dx_j = 1/D and d s/dx_j = xhat_j / (D s)), and summing g_i times that over i gives

    dx_j = (g_j - mean(g) - xhat_j mean(g * xhat)) / s.
"""

from __future__ import annotations

import numpy as np

from scratchvae.backend import get_backend
from scratchvae.gradcheck import CASES, Problem, register, run_checks
from scratchvae.layers import Layer


class LayerNorm(Layer):
    """Layer normalisation over the last axis.

    forward:  x (..., D) -> y (..., D)
        mu = mean(x),  s = sqrt(mean((x - mu)^2) + eps),  xhat = (x - mu) / s
        y = gamma * xhat + beta
    backward: dy (..., D) -> dx (..., D)
        dgamma += sum over rows of dy * xhat      dbeta += sum over rows of dy
        g = dy * gamma
        dx = (g - mean(g) - xhat * mean(g * xhat)) / s
    Parameters: gamma (D,) starting at 1, beta (D,) starting at 0.
    """

    def __init__(self, dim: int, *, epsilon: float = 1e-5, **kwargs):
        super().__init__(**kwargs)
        self.dim, self.epsilon = dim, epsilon
        self.add_param("gamma", np.ones(dim))
        self.add_param("beta", np.zeros(dim))

    def forward(self, x):
        xp = self.xp
        mu = x.mean(axis=-1, keepdims=True)
        self.s = xp.sqrt(((x - mu) ** 2).mean(axis=-1, keepdims=True) + self.epsilon)
        self.xhat = (x - mu) / self.s
        return self.params["gamma"] * self.xhat + self.params["beta"]

    def backward(self, dy):
        rows = dy.reshape(-1, self.dim)
        self.grads["gamma"] += (rows * self.xhat.reshape(-1, self.dim)).sum(axis=0)
        self.grads["beta"] += rows.sum(axis=0)
        g = dy * self.params["gamma"]
        return (g - g.mean(axis=-1, keepdims=True) - self.xhat * (g * self.xhat).mean(axis=-1, keepdims=True)) / self.s


class BrokenLayerNorm(LayerNorm):
    """The same layer with the xhat * mean(g * xhat) term forgotten: the variance's own gradient."""

    def backward(self, dy):
        super().backward(dy)  # keeps the (correct) parameter gradients
        g = dy * self.params["gamma"]
        return (g - g.mean(axis=-1, keepdims=True)) / self.s


def layer_norm_problem(layer_class):
    """A gradient-check builder: L = sum(LayerNorm(x) * R) for x (2, 3, 4), R fixed."""

    def build(backend, dtype, rng) -> Problem:
        B = get_backend(backend)
        layer = layer_class(4, backend=B, dtype=dtype)
        layer.params["gamma"][...] = B.asarray(rng.uniform(0.5, 1.5, 4), dtype=dtype)  # not all 1
        layer.params["beta"][...] = B.asarray(rng.standard_normal(4), dtype=dtype)
        x = B.asarray(rng.standard_normal((2, 3, 4)), dtype=dtype)
        R = B.asarray(rng.standard_normal((2, 3, 4)), dtype=dtype)  # dL/dy = R

        def loss() -> float:
            return float((layer.forward(x) * R).sum())

        def gradients() -> dict:
            layer.zero_grad()
            layer.forward(x)
            dx = layer.backward(R)
            return {"x": dx, **layer.gradients()}

        # The arrays to perturb: the input and every parameter (the checker edits them in place).
        return Problem(loss, gradients, {"x": x, **layer.parameters()}, B)

    return build


register("LayerNorm (examples/custom_layer.py)")(layer_norm_problem(LayerNorm))
register("LayerNorm, a term of dx forgotten")(layer_norm_problem(BrokenLayerNorm))


def main() -> list:
    names = [name for name in CASES if name.startswith("LayerNorm")]
    results = run_checks(backend="numpy", dtype="float64", names=names)
    for r in results:
        errors = ", ".join(f"{k} {v:.1e}" for k, v in r.errors.items())
        print(f"{r.name:40s} {'passed' if r.passed else 'FAILED'}   relative errors: {errors}")
    return results


if __name__ == "__main__":
    main()
