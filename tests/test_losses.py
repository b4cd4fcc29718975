"""The numerics under the losses: softplus through one vectorised log (NumPy), one kernel (CuPy)."""

from __future__ import annotations

import numpy as np
import pytest

from scratchvae.backend.numpy_backend import log1p, softplus
from scratchvae.testing import fake_cupy


@pytest.mark.parametrize("dtype, rtol", [(np.float32, 4e-7), (np.float64, 8e-16)])
def test_log1p_is_accurate_to_a_rounding_error_from_zero_to_one(dtype, rtol):
    rng = np.random.default_rng(0)
    x = np.concatenate(
        [[0.0, 1e-38, 1e-20, 1e-8, 1e-4, 0.5, 1.0], rng.uniform(0, 1, 2000), 10.0 ** rng.uniform(-30, 0, 2000)]
    )
    x = x.astype(dtype)
    got = log1p(x)
    assert got.dtype == dtype
    want = np.log1p(x.astype(np.float64))
    np.testing.assert_allclose(got, want, rtol=rtol, atol=0)


@pytest.mark.parametrize("dtype, rtol", [(np.float32, 4e-7), (np.float64, 1e-15)])
def test_softplus_matches_logaddexp_without_overflow(dtype, rtol):
    x = np.concatenate([np.linspace(-100, 100, 4001), [-1e30, -80.0, -1e-12, 0.0, 1e-12, 80.0, 1e30]]).astype(dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        got = softplus(x)
    assert got.dtype == dtype
    # below the smallest normal number e^x is subnormal and carries fewer digits: an absolute bound there
    np.testing.assert_allclose(got, np.logaddexp(0.0, x.astype(np.float64)), rtol=rtol, atol=np.finfo(dtype).tiny)


def test_softplus_on_the_gpu_backend_is_one_kernel_and_agrees():
    backend = fake_cupy.cupy_backend()
    x = np.linspace(-90, 90, 1001).astype(np.float32)
    xd = backend.asarray(x)
    fake_cupy.counters.reset()
    got = backend.softplus(xd)
    assert fake_cupy.counters.launches == 1
    np.testing.assert_allclose(backend.to_numpy(got), softplus(x), rtol=4e-7, atol=np.finfo(np.float32).tiny)
