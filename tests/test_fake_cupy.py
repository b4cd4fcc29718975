"""The CuPy stand-in refuses what CuPy refuses, counts launches, copies and syncs, and checks kernel
arguments against the CUDA parameters."""

from __future__ import annotations

import importlib
import sys

import numpy as np
import pytest

from scratchvae.testing import fake_cupy as cp
from scratchvae.testing.cuda_on_cpu import CpuModule


def test_no_implicit_way_to_numpy():
    x = cp.arange(4.0)
    with pytest.raises(TypeError, match="Implicit conversion to a NumPy array is not allowed"):
        np.asarray(x)
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.array([1.0]) + np.asarray(x)
    np.testing.assert_array_equal(cp.asnumpy(x), np.arange(4.0))
    np.testing.assert_array_equal(x.get(), np.arange(4.0))


@pytest.mark.parametrize(
    "mix",
    [
        lambda x, h: x + h,
        lambda x, h: h * x,
        lambda x, h: x @ h.reshape(4, 1),
        lambda x, h: cp.exp(h),
        lambda x, h: cp.maximum(x, h),
        lambda x, h: cp.where(x > 0, h, x),
        lambda x, h: cp.concatenate([x, h]),
        lambda x, h: x.__setitem__(slice(None), h),
        lambda x, h: cp.copyto(x, h),
        lambda x, h: cp.zeros_like(h),
        lambda x, h: x.__iadd__(h),
    ],
)
def test_numpy_arrays_are_refused_beside_device_arrays(mix):
    with pytest.raises(TypeError, match="Unsupported type|takes device arrays"):
        mix(cp.arange(4.0), np.arange(4.0))


def test_numpy_functions_and_ufuncs_dispatch_to_the_device():
    x = cp.arange(4.0)
    for y in (np.exp(x), np.concatenate([x, x]), np.sum(x)):
        assert isinstance(y, cp.ndarray)
    assert float(np.sum(x)) == 6.0


def test_names_and_keywords_cupy_lacks_are_missing(monkeypatch):
    x = cp.arange(4.0)
    with pytest.raises(TypeError, match="unexpected keyword"):
        x.sum(where=x > 1)
    with pytest.raises(AttributeError):
        _ = cp.nanpercentile
    monkeypatch.setitem(sys.modules, "cupy", cp)
    monkeypatch.setitem(sys.modules, "cupy.cuda", cp.cuda)
    with pytest.raises(ImportError):
        importlib.import_module("cupy.cuda.nccl")  # as on a CuPy built without NCCL


def test_counts():
    cp.counters.reset()
    x = cp.asarray(np.ones((3, 4)))  # one copy in, no launch
    y = x.T  # a view: nothing
    z = (y * 2.0).sum()  # two launches
    assert cp.counters.snapshot() == {"launches": 2, "h2d": 1, "d2h": 0, "syncs": 0}
    assert float(z) == 24.0  # the host waits
    cp.cuda.get_current_stream().synchronize()
    assert cp.counters.snapshot() == {"launches": 2, "h2d": 1, "d2h": 1, "syncs": 2}
    x.fill(0)
    cp.zeros((2,))
    cp.empty((2,))
    assert cp.counters.launches == 4


KERNEL = r"""
template <typename T>
__global__ void axpy(T* y, const T* x, T a, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] += a * x[i];
}
"""


def test_a_kernel_runs_every_thread_and_checks_its_arguments():
    module = cp.RawModule(code=KERNEL, name_expressions=["axpy<double>"])
    axpy = module.get_function("axpy<double>")
    x, y = cp.arange(10.0), cp.ones(10)
    cp.counters.reset()
    axpy((3,), (4,), (y, x, np.float64(2.0), np.int32(10)))
    np.testing.assert_array_equal(y.get(), 1.0 + 2.0 * np.arange(10.0))
    assert cp.counters.launches == 1
    with pytest.raises(TypeError, match="int64 .8 bytes. passed for a 4-byte parameter"):
        axpy((3,), (4,), (y, x, np.float64(2.0), 10))  # a Python int is int64, as in CuPy
    with pytest.raises(TypeError, match="float32 array passed for a pointer to 8-byte elements"):
        axpy((3,), (4,), (y, x.astype(np.float32), np.float64(2.0), np.int32(10)))
    with pytest.raises(TypeError, match="Unsupported type"):
        axpy((3,), (4,), (y, np.arange(10.0), np.float64(2.0), np.int32(10)))


def test_kernels_whose_threads_cooperate_do_not_build():
    source = "__global__ void k(float* a) { __shared__ float s[32]; s[threadIdx.x] = a[0]; __syncthreads(); }"
    with pytest.raises(RuntimeError, match="does not compile as C\\+\\+ on the CPU"):
        CpuModule(source, ["k"])


def test_cublas_gemm_accumulates_in_one_launch():
    a, b, c = cp.asarray(np.ones((2, 3))), cp.asarray(np.full((3, 4), 2.0)), cp.ones((2, 4))
    cp.counters.reset()
    assert cp.cublas.gemm("N", "N", a, b, out=c, alpha=1.0, beta=1.0) is c
    assert cp.counters.launches == 1
    np.testing.assert_array_equal(c.get(), np.full((2, 4), 7.0))
    cp.cublas.gemm("T", "N", cp.asarray(np.ones((3, 2))), b, out=c, alpha=0.5, beta=0.0)
    np.testing.assert_array_equal(c.get(), np.full((2, 4), 3.0))
    with pytest.raises(TypeError, match="must be a 2-d device array"):
        cp.cublas.gemm("N", "N", np.ones((2, 3)), b, out=c)


def test_without_a_cpp_compiler_the_reason_names_the_fix(monkeypatch):
    from scratchvae.testing import cuda_on_cpu

    monkeypatch.setattr(cuda_on_cpu.shutil, "which", lambda name: None)
    with pytest.raises(
        cuda_on_cpu.CompilerMissing, match=r"no C\+\+ compiler .* install one \(apt-get install g\+\+\)"
    ):
        cuda_on_cpu.compiler()
