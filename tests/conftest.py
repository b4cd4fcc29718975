"""Shared fixtures: the backends to run backend-parametrised tests on.

Every test that takes ``backend_name`` runs once per backend.  The cupy runs use real CuPy on a
machine with CuPy and a CUDA GPU, and otherwise the strict CPU stand-in
(:mod:`scratchvae.testing.fake_cupy`), which runs the backend's own CUDA kernels on the CPU: the
same tests run in CI either way.  Tests marked ``gpu`` need real CuPy and a GPU and skip, saying
so, elsewhere.
"""

from __future__ import annotations

import pytest

import scratchvae.backend as backend_module
from scratchvae.backend import BACKENDS, BackendError, get_backend
from scratchvae.testing import cuda_on_cpu, fake_cupy


def _real_cupy_reason() -> str | None:
    """None when real CuPy and a GPU work here, else why not."""
    if "cupy" in backend_module._cache and backend_module._cache["cupy"].xp is not fake_cupy:
        return None
    try:
        from scratchvae.backend.cupy_backend import CupyBackend

        backend_module._cache["cupy"] = CupyBackend()
    except BackendError as exc:
        return str(exc)
    return None


REAL_CUPY_REASON = _real_cupy_reason()
_fake_backend = None


def pytest_report_header(config):
    if REAL_CUPY_REASON is None:
        return "cupy tests: real CuPy on the GPU"
    return f"cupy tests: the CPU stand-in fake_cupy ({REAL_CUPY_REASON})"


def pytest_collection_modifyitems(config, items):
    if REAL_CUPY_REASON is None:
        return
    skip = pytest.mark.skip(reason=f"marked gpu: needs real CuPy and a GPU ({REAL_CUPY_REASON})")
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)


@pytest.fixture
def fake_cupy_backend():
    """The cupy backend on the stand-in, installed as get_backend('cupy') for one test."""
    global _fake_backend
    try:
        if _fake_backend is None:
            _fake_backend = fake_cupy.cupy_backend()
    except BackendError as exc:
        if isinstance(exc.__cause__, cuda_on_cpu.CompilerMissing):
            pytest.skip(f"the cupy stand-in cannot run the CUDA kernels: {exc.__cause__}")
        raise
    previous = backend_module._cache.get("cupy")
    backend_module._cache["cupy"] = _fake_backend
    try:
        yield _fake_backend
    finally:
        if previous is None:
            backend_module._cache.pop("cupy", None)
        else:
            backend_module._cache["cupy"] = previous


def _use(name: str, request) -> str:
    if name == "cupy" and REAL_CUPY_REASON is not None:
        request.getfixturevalue("fake_cupy_backend")
    else:
        get_backend(name)
    return name


@pytest.fixture(params=BACKENDS)
def backend_name(request) -> str:
    return _use(request.param, request)


@pytest.fixture(params=[b for b in BACKENDS if b != "numpy"])
def fast_backend_name(request) -> str:
    """The compiled backends, each compared against the numpy reference."""
    return _use(request.param, request)


@pytest.fixture
def cupy_backend_name(request) -> str:
    """'cupy', on real CuPy where it works, else on the stand-in."""
    return _use("cupy", request)
