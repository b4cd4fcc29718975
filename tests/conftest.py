"""Shared fixtures: the backends to run backend-parametrised tests on.

Every test that takes ``backend_name`` runs once per backend.  The cupy runs are the
same tests; they skip (with the reason) on machines without CuPy or a CUDA GPU.
"""

from __future__ import annotations

import pytest

from scratchvae.backend import BACKENDS, BackendError, get_backend


def _skip_reason(name: str) -> str | None:
    try:
        get_backend(name)
    except BackendError as exc:
        return str(exc)
    return None


@pytest.fixture(params=BACKENDS)
def backend_name(request) -> str:
    reason = _skip_reason(request.param)
    if reason:
        pytest.skip(reason)
    return request.param


@pytest.fixture(params=[b for b in BACKENDS if b != "numpy"])
def fast_backend_name(request) -> str:
    """The compiled backends, each compared against the numpy reference."""
    reason = _skip_reason(request.param)
    if reason:
        pytest.skip(reason)
    return request.param
