"""Shared helpers of the Keras parity tests.

Every parity test imports Keras through this module: it sets ``KERAS_BACKEND=torch``
(unless already set) before the first Keras import, skips the test module when Keras or
torch is missing, and makes float64 the Keras default.  Keras gradients come from torch
autograd: inputs are torch tensors with ``requires_grad``, Keras variables are torch
Parameters, and ``loss.backward()`` fills their ``.grad``.

Tolerances (issue 3): outputs and losses <= 1e-10 absolute, gradients <= 1e-8, in float64.
Set ``SCRATCHVAE_PARITY_REPORT=<file>`` to write the largest difference seen per check.
"""

from __future__ import annotations

import atexit
import json
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np
import pytest

torch = pytest.importorskip("torch")
keras = pytest.importorskip("keras")

if keras.backend.backend() != "torch":  # pragma: no cover
    pytest.skip(f"the parity tests need KERAS_BACKEND=torch, not {keras.backend.backend()}", allow_module_level=True)

keras.config.set_floatx("float64")

# Keras 3.15 demotes float64 results to float32 on every backend but TensorFlow
# (keras/src/backend/common/dtypes.py: BIT64_TO_BIT32_DTYPE, mirroring JAX without x64):
# ops.matmul, ops.maximum, ops.divide_no_nan, ... of float64 tensors compute in float32,
# so a float64 Keras Dense is only float32-accurate (~1e-7).  Enable 64-bit promotion,
# as jax_enable_x64 would; see docs/keras-semantics.md section 0.
from scratchvae.interop.keras_models import enable_float64_promotion  # noqa: E402

enable_float64_promotion()

OUT_TOL = 1e-10  # outputs and losses
GRAD_TOL = 1e-8  # parameter and input gradients

MAX_DIFFS: dict[str, float] = {}


def _dump_report():
    path = os.environ.get("SCRATCHVAE_PARITY_REPORT")
    if path and MAX_DIFFS:
        old = {}
        if os.path.exists(path):
            with open(path) as f:
                old = json.load(f)
        for k, v in MAX_DIFFS.items():
            old[k] = max(v, old.get(k, 0.0))
        with open(path, "w") as f:
            json.dump(old, f, indent=1, sort_keys=True)


atexit.register(_dump_report)


# ----------------------------------------------------------------- conversions
def T(a, grad: bool = False):
    """NumPy -> torch tensor (float64 stays float64, ints stay int64, bools stay bool)."""
    t = torch.as_tensor(np.ascontiguousarray(a))
    if grad:
        t = t.clone().requires_grad_(True)
    return t


def N(t) -> np.ndarray:
    """torch tensor / Keras variable -> NumPy."""
    if hasattr(t, "value") and not isinstance(t, torch.Tensor):
        t = t.value
    return t.detach().cpu().numpy()


def vgrad(v) -> np.ndarray:
    """The torch autograd gradient of a Keras variable (zeros when nothing reached it)."""
    g = v.value.grad
    return np.zeros(tuple(v.shape)) if g is None else g.detach().cpu().numpy()


def zero_keras_grads(variables) -> None:
    for v in variables:
        v.value.grad = None


# ----------------------------------------------------------------- comparisons
def assert_close(actual, expected, tol: float, what: str, key: str | None = None) -> float:
    """max |actual - expected| <= tol; records the difference under ``key`` (default ``what``)."""
    actual, expected = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != Keras {expected.shape}"
    diff = float(np.max(np.abs(actual - expected))) if actual.size else 0.0
    k = key or what
    MAX_DIFFS[k] = max(diff, MAX_DIFFS.get(k, 0.0))
    assert diff <= tol, f"{what}: max abs diff {diff:.3g} > {tol:g}"
    return diff


def assert_out(actual, expected, what: str, key: str | None = None) -> float:
    return assert_close(actual, expected, OUT_TOL, what, key)


def assert_grad(actual, expected, what: str, key: str | None = None) -> float:
    return assert_close(actual, expected, GRAD_TOL, what, key)


def assert_param_grads(sv_layer, keras_vars: dict, what: str, key: str | None = None) -> None:
    """Every scratchvae gradient equals the torch gradient of its Keras variable."""
    grads = {k: sv_layer.backend.to_numpy(g) for k, g in sv_layer.gradients().items()}
    assert grads.keys() == keras_vars.keys(), f"{what}: {sorted(grads)} vs {sorted(keras_vars)}"
    for name, v in keras_vars.items():
        assert_grad(grads[name], vgrad(v), f"{what}: d/d{name}", key and f"{key} d{name.rsplit('/', 1)[-1]}")


# ----------------------------------------------------------------- random data
def rng_from(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def padding_mask(rng, n: int, T: int, padding: str = "post", holes: bool = False) -> np.ndarray:
    """(n, T) bool mask with random lengths 0..T (row 0 full, row 1 empty when n > 2).

    ``holes`` also masks random steps inside the sequences (Keras allows any mask).
    """
    lengths = rng.integers(0, T + 1, n)
    lengths[0] = T
    if n > 2:
        lengths[1] = 0
    pos = np.arange(T)[None, :]
    m = pos < lengths[:, None] if padding == "post" else pos >= (T - lengths)[:, None]
    if holes:
        m &= rng.random((n, T)) > 0.3
    return m


def token_ids(rng, n: int, T: int, vocab: int, mask: np.ndarray | None = None) -> np.ndarray:
    ids = rng.integers(1, vocab, (n, T))
    if mask is not None:
        ids = np.where(mask, ids, 0)
    return ids.astype(np.int64)


# ----------------------------------------------------------------- Keras loss pieces
def keras_gaussian_kl(mean, logvar, free_bits: float = 0.0):
    """KL(N(mean, exp(logvar)) || N(0, I)) in Keras ops: summed over units, batch mean;
    with free bits: sum over units of max(batch-mean KL of the unit, free_bits)."""
    ops = keras.ops
    kl = -0.5 * (1.0 + logvar - ops.square(mean) - ops.exp(logvar))
    if free_bits > 0:
        return ops.sum(ops.maximum(ops.mean(kl, axis=0), free_bits))
    return ops.mean(ops.sum(kl, axis=1))


def keras_sequence_nll(targets, logits, mask):
    """Token cross-entropy summed over the unmasked steps, mean over the batch (nats per sequence)."""
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="sum")
    return loss(T(targets), logits, sample_weight=T(np.asarray(mask, dtype=np.float64))) / targets.shape[0]


def perturb_biases(model, rng, scale=0.3):
    """Move every bias off its initial value, so every gradient path carries signal."""
    for path, p in model.parameters().items():
        if path.endswith("bias"):
            p += rng.standard_normal(p.shape) * scale


def load_into_keras(model, km, layout=None):
    """Assign the scratchvae model's parameters to the Keras model's variables, by layout.
    Returns {scratchvae path: Keras variable}."""
    from scratchvae.interop import layout_of
    from scratchvae.interop.keras_models import keras_model_variables

    variables = keras_model_variables(km, layout_of(model, layout))
    params = model.state_dict()
    assert variables.keys() == params.keys()
    for p, v in variables.items():
        v.assign(params[p])
    return variables


def assert_model_grads(model, variables: dict, key: str) -> None:
    grads = {p: model.backend.to_numpy(g) for p, g in model.gradients().items()}
    for p, v in variables.items():
        assert_grad(grads[p], vgrad(v), f"{key}: d/d {p}", f"{key} parameter gradients")
