"""The compiled backends compute what the numpy reference computes, to rounding.

Each gradient-check problem is built on both backends from the same seed, so the
inputs and weights are bit-identical; losses and every gradient must then agree
to 1e-12 relative in float64.
"""

from __future__ import annotations

import numpy as np
import pytest

from scratchvae.backend import get_backend
from scratchvae.gradcheck import CASES, load_model_cases

load_model_cases()

AGREEMENT = 1e-12


def evaluate(name, backend, dtype):
    problem = CASES[name](backend, dtype, np.random.default_rng(1))
    B = get_backend(backend)
    loss = problem.loss()
    grads = {k: B.to_numpy(v) for k, v in problem.gradients().items()}
    return loss, grads


def assert_close(ref, got, tol, what):
    scale = max(np.abs(ref).max(initial=0.0), 1e-30)
    err = np.abs(np.asarray(got) - np.asarray(ref)).max(initial=0.0) / scale
    assert err <= tol, f"{what}: relative difference {err:.2e} > {tol:g}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_forward_and_backward_agree_with_numpy(name, fast_backend_name):
    ref_loss, ref_grads = evaluate(name, "numpy", "float64")
    loss, grads = evaluate(name, fast_backend_name, "float64")
    assert_close(np.array(ref_loss), np.array(loss), AGREEMENT, f"{name} loss")
    assert grads.keys() == ref_grads.keys()
    for k in ref_grads:
        assert_close(ref_grads[k], grads[k], AGREEMENT, f"{name} d{k}")


@pytest.mark.parametrize(
    "name",
    [
        "LSTM mask post-padding",
        "Bidirectional return_sequences, mask",
        "SparseSoftmaxCrossEntropy sum, mask",
        "Dense relu",
    ],
)
def test_float32_runs_and_stays_close(name, backend_name):
    """float32 works everywhere and stays within float32 rounding of the float64 result."""
    ref_loss, ref_grads = evaluate(name, "numpy", "float64")
    loss, grads = evaluate(name, backend_name, "float32")
    assert all(g.dtype == np.float32 for g in grads.values())
    assert_close(np.array(ref_loss), np.array(loss), 1e-5, f"{name} loss")
    for k in ref_grads:
        assert_close(ref_grads[k], grads[k], 1e-4, f"{name} d{k}")
