"""Every custom CUDA kernel of the cupy backend, run on the CPU (the same source, see
scratchvae.backend.cuda) or on the GPU, against the numpy reference in float64."""

from __future__ import annotations

import numpy as np
import pytest

from scratchvae.backend import get_backend
from scratchvae.backend.cuda import kernels


@pytest.fixture
def cupy_backend(cupy_backend_name):
    return get_backend(cupy_backend_name)


def _arrays(rng, shapes, dtype=np.float64):
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


SHAPES = [(3, 4), (5,), (2, 3, 7), (1, 1)]


def test_every_kernel_is_named_for_both_float_types():
    assert set(kernels.name_expressions()) == {f"{k}<{t}>" for k in kernels.KERNELS for t in ("float", "double")}


def test_softmax_cross_entropy_kernel(cupy_backend):
    rng = np.random.default_rng(0)
    ref = get_backend("numpy")
    logits, scale = rng.standard_normal((7, 300)), rng.random(7)
    targets = rng.integers(0, 300, 7)
    expected = logits.copy()
    nll_ref = ref.softmax_cross_entropy(expected, targets, scale)
    got = cupy_backend.asarray(logits)
    nll = cupy_backend.softmax_cross_entropy(got, cupy_backend.asarray(targets), cupy_backend.asarray(scale))
    np.testing.assert_allclose(cupy_backend.to_numpy(nll), nll_ref, rtol=1e-13)
    np.testing.assert_allclose(cupy_backend.to_numpy(got), expected, rtol=1e-13, atol=1e-16)


def test_global_norm_and_clipping_kernels(cupy_backend):
    rng = np.random.default_rng(1)
    host = _arrays(rng, SHAPES)
    grads = [cupy_backend.asarray(a) for a in host]
    norm = cupy_backend.global_norm(grads)
    expected = np.sqrt(sum((a**2).sum() for a in host))
    assert float(norm) == pytest.approx(expected, rel=1e-14)
    cupy_backend.clip_by_global_norm(grads, norm, 10 * expected)  # below the limit: untouched
    for g, a in zip(grads, host):
        np.testing.assert_array_equal(cupy_backend.to_numpy(g), a)
    cupy_backend.clip_by_global_norm(grads, norm, expected / 4)
    for g, a in zip(grads, host):
        np.testing.assert_allclose(cupy_backend.to_numpy(g), a / 4, rtol=1e-14)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fused_adam_is_bit_identical_to_the_reference(cupy_backend, dtype):
    rng = np.random.default_rng(2)
    ref = get_backend("numpy")
    host = {k: _arrays(rng, SHAPES, dtype) for k in ("p", "g", "m")}
    host["v"] = [np.abs(a) for a in _arrays(rng, SHAPES, dtype)]
    dev = {k: [cupy_backend.asarray(a) for a in v] for k, v in host.items()}
    for _ in range(2):
        ref.adam_update_all(host["p"], host["g"], host["m"], host["v"], 3e-3, 0.9, 0.999, 1e-7)
        cupy_backend.adam_update_all(dev["p"], dev["g"], dev["m"], dev["v"], 3e-3, 0.9, 0.999, 1e-7)
    for k in host:
        for got, want in zip(dev[k], host[k]):
            np.testing.assert_array_equal(cupy_backend.to_numpy(got), want)


def test_cell_kernels_refuse_non_contiguous_arrays(cupy_backend):
    xp = cupy_backend.xp
    gates = xp.zeros((4, 8))
    c_prev = xp.zeros((4, 4))[:, ::2]  # a strided view
    with pytest.raises(ValueError, match="c_prev must be C-contiguous"):
        cupy_backend.lstm_cell_forward(gates, c_prev, xp.zeros((4, 2)), xp.zeros((4, 2)))


@pytest.mark.gpu
def test_cupy_gpu_build_matches_the_cpu_build_of_the_same_source(fake_cupy_backend):
    """On a GPU: NVRTC's build of the kernels against the C++ build that CI runs, in float64."""
    from scratchvae.backend.cupy_backend import CupyBackend

    rng = np.random.default_rng(3)
    x = {k: rng.standard_normal((6, 4 * 5) if k == "gates" else (6, 5)) for k in ("gates", "c_prev", "dh", "dc")}
    host_grads = _arrays(rng, SHAPES)
    results = []
    for B in (CupyBackend(), fake_cupy_backend):
        d = {k: B.asarray(v) for k, v in x.items()}
        c, h, dz = B.xp.empty_like(d["c_prev"]), B.xp.empty_like(d["c_prev"]), B.xp.empty_like(d["gates"])
        B.lstm_cell_forward(d["gates"], d["c_prev"], c, h)
        dc_prev = B.lstm_cell_backward(d["dh"], d["dc"], d["gates"], d["c_prev"], c, dz)
        norm = float(B.global_norm([B.asarray(a) for a in host_grads]))
        results.append([B.to_numpy(a) for a in (d["gates"], c, h, dz, dc_prev)] + [np.array(norm)])
    for got, want in zip(*results):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
