"""Central finite differences against the hand-written backward passes.

A *problem* is a scalar function of some arrays together with its analytic gradient.
:func:`check_problem` perturbs each array entry by +-h, takes
(L(x + h) - L(x - h)) / 2h, and compares with the analytic gradient using

    relative error = max_i |analytic_i - numeric_i| / max(max_i |analytic_i|, max_i |numeric_i|)

the error measured against the scale of the whole gradient tensor, so tiny entries
are neither ignored nor allowed to blow the ratio up.  In float64 with h = 1e-5 the
finite-difference error is around 1e-10, far below the 1e-6 bound, so a wrong
derivative cannot hide.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

TOLERANCE = 1e-6
STEP = 1e-5
MAX_ENTRIES = 120  # entries checked per array; larger arrays are sampled at random


@dataclass
class Problem:
    """loss() -> float; gradients() -> {name: analytic dL/d(array)}; arrays: {name: array}."""

    loss: Callable[[], float]
    gradients: Callable[[], dict]
    arrays: dict
    backend: object = None


@dataclass
class Result:
    name: str
    errors: dict = field(default_factory=dict)  # array name -> relative error

    @property
    def max_error(self) -> float:
        return max(self.errors.values(), default=0.0)

    @property
    def passed(self) -> bool:
        return bool(np.isfinite(self.max_error)) and self.max_error <= TOLERANCE


def relative_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """max |a - n| over the entries, relative to the largest magnitude of either."""
    scale = max(np.abs(analytic).max(initial=0.0), np.abs(numeric).max(initial=0.0))
    if scale == 0.0:
        return 0.0
    return float(np.abs(analytic - numeric).max() / scale)


def entries_to_check(size: int, rng: np.random.Generator, limit: int = MAX_ENTRIES) -> np.ndarray:
    """All flat indices of a small array, a random sample of a large one."""
    if size <= limit:
        return np.arange(size)
    return np.sort(rng.choice(size, limit, replace=False))


def numeric_gradient(loss: Callable[[], float], array, flat_indices, h: float = STEP) -> np.ndarray:
    """Central differences of loss() w.r.t. the given entries of ``array`` (perturbed in place)."""
    flat = array.reshape(-1)  # a view: writing it changes the array the problem reads
    out = np.empty(len(flat_indices))
    for k, i in enumerate(flat_indices):
        original = flat[i].item()
        flat[i] = original + h
        plus = loss()
        flat[i] = original - h
        minus = loss()
        flat[i] = original
        out[k] = (plus - minus) / (2 * h)
    return out


def check_problem(name: str, problem: Problem, seed: int = 0, h: float = STEP) -> Result:
    """Compare analytic and numeric gradients for every array of ``problem``."""
    to_numpy = problem.backend.to_numpy if problem.backend is not None else np.asarray
    analytic = {k: to_numpy(v) for k, v in problem.gradients().items()}
    rng = np.random.default_rng(seed)
    result = Result(name)
    for key, array in problem.arrays.items():
        idx = entries_to_check(array.size, rng)
        numeric = numeric_gradient(problem.loss, array, idx, h)
        result.errors[key] = relative_error(analytic[key].reshape(-1)[idx], numeric)
    return result
